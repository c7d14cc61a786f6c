"""The mutation tool itself (``tools/mutate.py``), fast: a scratch project, no gateware.

The catalogue applies to this checkout (every find text once, >= 60
entries, every named test file exists); a broken entry is an error that
names it; and on a tiny project of its own the tool reports a mutation its
test sees as ``caught``, a no-op one as ``SURVIVED``, and proves that the
tests ran against the mutated copy (the project is not installed: only the
tool's import shim makes it importable, from the scratch copy).
"""

import json
import sys
import textwrap

import pytest

from lpaccel.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import mutate  # noqa: E402


def test_catalogue_applies_to_this_checkout():
    mutations = mutate.load_catalogue()
    assert len(mutations) >= 60
    assert mutate.check_catalogue(mutations, ROOT) == []
    for m in mutations:
        for node in m.tests:
            assert (ROOT / node.split("::")[0]).is_file(), f"{m.id}: no test file for {node}"


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _entry(id, find, replace, tests=('tests/test_add.py::test_add',), **extra):
    fields = {"id": id, "file": "src/arith.py", "find": find, "replace": replace,
              "kind": "operator swap", "description": "demo", **extra}
    lines = ["[[mutation]]"] + [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    lines.append(f"tests = {json.dumps(list(tests))}")
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "demo"
    _write(root / "pyproject.toml", """\
        [tool.setuptools]
        package-dir = { "mutdemo" = "src" }
        """)
    _write(root / "src" / "__init__.py", "")
    _write(root / "src" / "arith.py", """\
        def add(a, b):
            return a + b


        def twice(a):
            return 2 * a


        def twice_too(a):
            return 2 * a
        """)
    _write(root / "tests" / "test_add.py", """\
        from mutdemo.arith import add


        def test_add():
            assert add(2, 3) == 5
        """)
    return root


@pytest.mark.parametrize("entry,message", [
    (_entry("gone", "return a * b", "return a"), "mutation 'gone': the find text occurs 0 times"),
    (_entry("twice", "return 2 * a", "return 3 * a"),
     "mutation 'twice': the find text occurs 2 times"),
])
def test_broken_entry_is_an_error_naming_it(project, entry, message):
    catalogue = project / "catalogue.toml"
    catalogue.write_text(entry)
    mutations = mutate.load_catalogue(catalogue)
    assert [e.split(" in ")[0] for e in mutate.check_catalogue(mutations, project)] == \
        [message]
    assert mutate.main([], root=project, catalogue=catalogue, out=project / "out") == 2


def test_malformed_catalogue(project):
    catalogue = project / "catalogue.toml"
    catalogue.write_text(_entry("a", "x", "y") + _entry("a", "x", "z"))
    with pytest.raises(mutate.CatalogueError, match="mutation 'a': the id is used twice"):
        mutate.load_catalogue(catalogue)
    catalogue.write_text(_entry("b", "x", "y", tests=()))
    with pytest.raises(mutate.CatalogueError, match="mutation 'b': lists no test"):
        mutate.load_catalogue(catalogue)
    catalogue.write_text('[[mutation]]\nid = "c"\nfile = "src/arith.py"\n')
    with pytest.raises(mutate.CatalogueError, match="mutation 'c': missing field"):
        mutate.load_catalogue(catalogue)


def test_caught_survived_and_error_in_a_scratch_copy(project, capsys):
    catalogue = project / "catalogue.toml"
    catalogue.write_text(
        _entry("minus", "return a + b", "return a - b") +
        _entry("commuted", "return a + b", "return b + a") +
        _entry("argued", "return a + b", "return (a + b)", equivalent="parentheses") +
        _entry("no-such-test", "return a + b", "return a - b",
               tests=("tests/test_add.py::test_nothing",)))
    out = project / "build" / "mutate"
    # The unmutated copy must pass every named test first: a misspelt one stops the run.
    assert mutate.main(["--timeout", "60"], root=project, catalogue=catalogue, out=out) == 2
    assert "the tests fail without a mutation" in capsys.readouterr().err
    status = mutate.main(["--jobs", "1", "--timeout", "60", "--no-baseline"], root=project,
                         catalogue=catalogue, out=out)
    report = json.loads((out / "report.json").read_text())
    results = {e["id"]: e for e in report["entries"]}
    assert results["minus"]["result"] == "caught"
    assert results["minus"]["caught_by"] == "tests/test_add.py::test_add"
    assert results["commuted"]["result"] == "SURVIVED"
    assert results["argued"]["result"] == "equivalent"
    assert results["no-such-test"]["result"] == "error"
    assert (report["caught"], report["counted"]) == (1, 3)
    assert status == 1
    # The checkout itself is never edited; the scratch copy is restored.
    assert "return a + b" in (project / "src" / "arith.py").read_text()
    assert "return a + b" in (out / "tree-0" / "src" / "arith.py").read_text()
    assert "Score: 1/3 caught" in (out / "report.md").read_text()
    assert "minus" in capsys.readouterr().out


def test_other_tests_against_chosen_entries(project, capsys):
    # --only ... --tests ...: the chosen entries run the given tests instead of
    # their own (a soak against a mutant), with the report in --out.
    _write(project / "tests" / "test_more.py", """\
        from mutdemo.arith import add


        def test_add_commutes():
            assert add(2, 3) == add(3, 2) == 5


        def test_blind():
            assert True
        """)
    catalogue = project / "catalogue.toml"
    catalogue.write_text(_entry("minus", "return a + b", "return a - b") +
                         _entry("commuted", "return a + b", "return b + a"))
    out = project / "soaks"
    status = mutate.main(["--only", "minus", "--tests", "tests/test_more.py::test_add_commutes",
                          "--no-baseline", "--out", str(out)],
                         root=project, catalogue=catalogue)
    report = json.loads((out / "report.json").read_text())
    assert [(e["id"], e["result"], e["caught_by"]) for e in report["entries"]] == \
        [("minus", "caught", "tests/test_more.py::test_add_commutes")]
    assert status == 0
    status = mutate.main(["--only", "minus", "--tests", "tests/test_more.py::test_blind",
                          "--no-baseline", "--out", str(out)],
                         root=project, catalogue=catalogue)
    assert json.loads((out / "report.json").read_text())["entries"][0]["result"] == "SURVIVED"
    assert status == 1
    assert not (project / "build" / "mutate").exists()
    assert mutate.main(["--tests", "tests/test_more.py::test_blind"], root=project,
                       catalogue=catalogue, out=out) == 2
    assert "name the entries (--only ID ...)" in capsys.readouterr().err
