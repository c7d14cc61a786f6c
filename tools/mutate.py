"""Mutation testing of the gateware: does breaking the RTL break the tests?

The catalogue (``tests/mutations/catalogue.toml``, described in
``docs/verification.md``) lists mutations: each is one literal edit of one
source file (``find`` must occur exactly once; it is replaced by
``replace``), the bug class it stands for, and the pytest node ids that
should catch it. For every entry this tool

1. keeps a scratch copy of the repository's files (``build/mutate/tree-<n>/``,
   never the checkout itself), re-synchronised from the checkout at the
   start of a run;
2. applies the edit there, runs the entry's tests in that copy with a
   timeout, and restores the file;
3. records ``caught`` (a test failed or timed out), ``SURVIVED`` (all
   passed) or ``error`` (the edit does not apply, or pytest could not run
   the tests: exit status 2-5).

The editable install maps ``lpaccel.rtl`` to the checkout's ``rtl/``. So that
the tests import the *mutated* copy, each run puts a ``sitecustomize`` shim
first on ``PYTHONPATH`` that maps every package of ``pyproject.toml``'s
``package-dir`` to the scratch copy (the cocotb simulator inherits the path
from pytest, so it imports the copy as well); before the first entry the tool
checks that ``lpaccel.rtl`` does import from the copy. Simulation builds go to
``build/mutate/build`` (``LPACCEL_BUILD_DIR``); their cache key hashes the
mutated sources, so a mutant never reuses a clean build or the reverse.

Entries with ``equivalent = "why"`` are argued equivalent (no test can tell
them apart from the original); they are listed, not run, and left out of the
score. The score is caught / (entries - equivalent). Before the mutants, the
union of the selected entries' tests runs once on the unmutated copy: a test
that fails there would make every "caught" meaningless, so that is an error.

Usage::

    python tools/mutate.py [--only ID ...] [--list] [--check] [--jobs N] [--timeout S]
                           [--threshold PCT] [--no-baseline] [--from-head]
                           [--tests TEST ...] [--out DIR]

``--only ID ... --tests TEST ...`` runs other tests against chosen entries
(e.g. a slow-suite soak against a mutant, to show the soak can fail); the
report then goes to ``--out`` so it does not replace the catalogue's.

Writes ``build/mutate/report.md`` and ``report.json``; exit status 0 when the
score is at least the threshold (95 %) and no entry is in error.
"""

import argparse
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "tests" / "mutations" / "catalogue.toml"
REQUIRED = ("id", "file", "find", "replace", "kind", "description", "tests")
THRESHOLD = 95.0
TIMEOUT = 600.0


class CatalogueError(Exception):
    """A catalogue entry that cannot be applied as written (names the entry)."""


@dataclass(frozen=True)
class Mutation:
    """One catalogue entry: a literal edit and the tests that should catch it."""

    id: str
    file: str
    find: str
    replace: str
    kind: str
    description: str
    tests: tuple
    equivalent: str = ""

    @property
    def block(self):
        """The block the edited file belongs to (``rtl/dma/engine.py`` -> ``dma``)."""
        parts = Path(self.file).parts
        if len(parts) >= 3 and parts[0] in ("rtl", "sim"):
            return parts[1]
        return Path(self.file).stem


@dataclass
class Result:
    """The outcome of one entry."""

    mutation: Mutation
    result: str                       # caught | SURVIVED | error | equivalent
    seconds: float = 0.0
    caught_by: str = ""
    detail: str = ""
    output_tail: list = field(default_factory=list)


# --- catalogue -------------------------------------------------------------------------

def load_catalogue(path=CATALOGUE):
    """Read and validate the catalogue; return the list of :class:`Mutation`.

    Raises
    ------
    CatalogueError
        An entry misses a field, repeats an id, or names no test.
    """
    table = tomllib.loads(Path(path).read_text())
    entries = table.get("mutation", [])
    if not entries:
        raise CatalogueError(f"{path}: no [[mutation]] entries")
    seen = set()
    out = []
    for index, entry in enumerate(entries):
        name = entry.get("id", f"entry #{index + 1}")
        missing = [key for key in REQUIRED if key not in entry]
        if missing:
            raise CatalogueError(f"mutation {name!r}: missing field(s) {', '.join(missing)}")
        unknown = set(entry) - set(REQUIRED) - {"equivalent"}
        if unknown:
            raise CatalogueError(
                f"mutation {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
        if name in seen:
            raise CatalogueError(f"mutation {name!r}: the id is used twice; ids must be unique")
        seen.add(name)
        if not entry["tests"]:
            raise CatalogueError(f"mutation {name!r}: lists no test; name the pytest node ids "
                                 "that should catch it")
        if entry["find"] == entry["replace"] and not entry.get("equivalent"):
            raise CatalogueError(f"mutation {name!r}: replace equals find; that is no mutation")
        out.append(Mutation(
            id=name, file=entry["file"], find=entry["find"], replace=entry["replace"],
            kind=entry["kind"], description=entry["description"],
            tests=tuple(entry["tests"]), equivalent=entry.get("equivalent", "")))
    return out


def mutated_text(root, mutation):
    """The text of ``mutation.file`` under ``root`` with the edit applied.

    Raises
    ------
    CatalogueError
        The file is missing, or ``find`` occurs zero or several times in it.
    """
    path = Path(root) / mutation.file
    if not path.is_file():
        raise CatalogueError(f"mutation {mutation.id!r}: file {mutation.file} does not exist")
    text = path.read_text()
    count = text.count(mutation.find)
    if count != 1:
        raise CatalogueError(
            f"mutation {mutation.id!r}: the find text occurs {count} times in {mutation.file}; "
            "it must occur exactly once (quote more of the line to make it unique, or update "
            f"the entry after an edit of the file): {mutation.find!r}")
    return text.replace(mutation.find, mutation.replace)


def check_catalogue(mutations, root=REPO):
    """Check every entry applies to ``root``; return the list of error messages."""
    errors = []
    for mutation in mutations:
        try:
            mutated_text(root, mutation)
        except CatalogueError as error:
            errors.append(str(error))
    return errors


# --- scratch copy and import shim ------------------------------------------------------

_SHIM = '''\
# Written by tools/mutate.py: import the project's packages from this scratch copy,
# not from the editable install's checkout.
import importlib.machinery
import importlib.util
import sys

_MAPPING = {mapping!r}


class _ScratchFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        folder = _MAPPING.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder + "/__init__.py", submodule_search_locations=[folder])


sys.meta_path.insert(0, _ScratchFinder)
'''


def package_dirs(root):
    """``{"lpaccel.rtl": "rtl", ...}`` from ``root/pyproject.toml`` (may be empty)."""
    pyproject = Path(root) / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    table = tomllib.loads(pyproject.read_text())
    return table.get("tool", {}).get("setuptools", {}).get("package-dir", {})


def project_files(root):
    """Relative paths of the project's files: git's tracked and unignored ones."""
    root = Path(root)
    if (root / ".git").exists():
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root, check=True, capture_output=True).stdout.decode()
        return sorted(name for name in listing.split("\0") if name and (root / name).is_file())
    skip = {"build", ".venv", "__pycache__", ".pytest_cache", ".git"}
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and not skip.intersection(path.relative_to(root).parts))


def make_scratch(root, scratch, from_head=False):
    """(Re)create ``scratch`` as a copy of ``root``'s project files and the shim.

    ``from_head``: the files of the last commit (``git archive HEAD``) instead of
    the working tree, e.g. while others edit a shared checkout.
    """
    root, scratch = Path(root), Path(scratch)
    if scratch.exists():
        shutil.rmtree(scratch)
    if from_head:
        scratch.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=root,
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
    else:
        for name in project_files(root):
            target = scratch / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
    mapping = {package: str((scratch / folder).resolve())
               for package, folder in package_dirs(root).items()}
    shim = scratch / "_mutate_shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(_SHIM.format(mapping=mapping))
    return scratch


def scratch_env(scratch, build):
    """The environment for pytest in ``scratch``: the shim first, builds in ``build``."""
    env = dict(os.environ)
    shim = str(Path(scratch, "_mutate_shim").resolve())
    env["PYTHONPATH"] = shim + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LPACCEL_BUILD_DIR"] = str(Path(build).resolve())
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def check_shim(scratch, build, python=sys.executable):
    """Raise unless every mapped package imports from ``scratch`` under the shim."""
    mapping = package_dirs(scratch)
    for package, folder in mapping.items():
        probe = f"import importlib; print(importlib.import_module({package!r}).__file__)"
        out = subprocess.run([python, "-c", probe], cwd=scratch, env=scratch_env(scratch, build),
                             capture_output=True, text=True)
        where = Path(out.stdout.strip() or "/nonexistent").resolve()
        expected = (Path(scratch) / folder).resolve()
        if out.returncode != 0 or expected not in where.parents:
            raise RuntimeError(
                f"the import shim does not work: {package} imports from {where} "
                f"(expected under {expected}); stderr: {out.stderr.strip()[-500:]}")
    return sorted(mapping)


# --- running ---------------------------------------------------------------------------

def run_pytest(scratch, build, tests, timeout, python=sys.executable):
    """Run ``tests`` in ``scratch``; return (status, seconds, output, first failed id).

    ``status`` is pytest's exit code, or ``"timeout"``.
    """
    # Node ids name tests explicitly, slow ones included: lpaccel's conftest skips those
    # unless --run-slow is given (a project without the option gets none).
    conftest = Path(scratch) / "tests" / "conftest.py"
    slow = ["--run-slow"] if conftest.is_file() and "--run-slow" in conftest.read_text() else []
    cmd = [python, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-x", "-q",
           "-rfE", "--no-header", *slow, *tests]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=scratch, env=scratch_env(scratch, build),
                              capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"")
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
        return "timeout", time.monotonic() - start, output, ""
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    failed = ""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")) and "::" in line:
            failed = line.split(" ", 1)[1].split(" - ")[0].strip()
            break
    return done.returncode, seconds, output, failed


def run_mutation(mutation, scratch, build, timeout, python=sys.executable):
    """Apply ``mutation`` in ``scratch``, run its tests, restore; return a :class:`Result`."""
    if mutation.equivalent:
        return Result(mutation, "equivalent", detail=mutation.equivalent)
    path = Path(scratch) / mutation.file
    try:
        text = mutated_text(scratch, mutation)
    except CatalogueError as error:
        return Result(mutation, "error", detail=str(error))
    original = path.read_text()
    try:
        path.write_text(text)
        status, seconds, output, failed = run_pytest(scratch, build, mutation.tests, timeout,
                                                     python)
    finally:
        path.write_text(original)
    tail = output.splitlines()[-15:]
    if status == 0:
        return Result(mutation, "SURVIVED", seconds, output_tail=tail)
    if status == "timeout":
        return Result(mutation, "caught", seconds, caught_by="(timeout)",
                      detail=f"tests did not finish in {timeout:.0f} s", output_tail=tail)
    if status == 1:
        return Result(mutation, "caught", seconds, caught_by=failed or "(a test failed)",
                      output_tail=tail)
    return Result(mutation, "error", seconds,
                  detail=f"pytest exit status {status} (could not run the tests)",
                  output_tail=tail)


def score(results):
    """(caught, counted, percent): caught over entries not argued equivalent."""
    caught = sum(r.result == "caught" for r in results)
    counted = sum(r.result != "equivalent" for r in results)
    return caught, counted, (100.0 * caught / counted if counted else 0.0)


def report_markdown(results, baseline_seconds=None, total_seconds=None, threshold=THRESHOLD):
    """The report table and score as Markdown."""
    caught, counted, percent = score(results)
    lines = ["# Mutation testing report", "",
             "| id | block | class | result | seconds | caught by / why |",
             "|---|---|---|---|---:|---|"]
    for r in results:
        why = r.caught_by or r.detail
        lines.append(f"| {r.mutation.id} | {r.mutation.block} | {r.mutation.kind} | {r.result} "
                     f"| {r.seconds:.1f} | {why.replace('|', '/')} |")
    equivalent = sum(r.result == "equivalent" for r in results)
    errors = sum(r.result == "error" for r in results)
    lines += ["", f"Score: {caught}/{counted} caught = {percent:.1f} % "
              f"(threshold {threshold:.0f} %); {equivalent} argued equivalent; {errors} errors; "
              f"{len(results)} entries."]
    if baseline_seconds is not None:
        lines.append(f"Baseline (unmutated) run of the tests: {baseline_seconds:.0f} s.")
    if total_seconds is not None:
        lines.append(f"Total time: {total_seconds:.0f} s.")
    survivors = [r for r in results if r.result in ("SURVIVED", "error")]
    if survivors:
        lines += ["", "## Survivors and errors", ""]
        for r in survivors:
            lines.append(f"- {r.mutation.id} ({r.result}): {r.mutation.description}"
                         + (f" — {r.detail}" if r.detail else ""))
    return "\n".join(lines) + "\n"


def report_json(results):
    """The results as JSON-able data."""
    caught, counted, percent = score(results)
    return {
        "score_percent": percent, "caught": caught, "counted": counted,
        "entries": [{
            "id": r.mutation.id, "file": r.mutation.file, "block": r.mutation.block,
            "kind": r.mutation.kind, "description": r.mutation.description,
            "tests": list(r.mutation.tests), "result": r.result,
            "seconds": round(r.seconds, 2), "caught_by": r.caught_by, "detail": r.detail,
        } for r in results],
    }


def main(argv=None, root=REPO, catalogue=None, out=None, python=sys.executable):
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these entries")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--check", action="store_true",
                        help="only check that every entry applies (find occurs once)")
    parser.add_argument("--jobs", type=int, default=1, help="scratch copies run in parallel")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help=f"seconds per entry's tests (default {TIMEOUT:.0f})")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"minimum score in percent (default {THRESHOLD:.0f})")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the tests on the unmutated copy")
    parser.add_argument("--from-head", action="store_true",
                        help="copy the last commit (git archive HEAD), not the working tree")
    parser.add_argument("--tests", nargs="+", metavar="TEST",
                        help="with --only: run these pytest ids against the entries instead "
                             "of their own tests")
    parser.add_argument("--out", metavar="DIR",
                        help="scratch copies, builds and report (default build/mutate)")
    args = parser.parse_args(argv)
    root = Path(root)
    catalogue = Path(catalogue) if catalogue else root / "tests" / "mutations" / "catalogue.toml"
    if args.out:
        out = Path(args.out)
    out = Path(out) if out else root / "build" / "mutate"

    try:
        mutations = load_catalogue(catalogue)
    except CatalogueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.only:
        known = {m.id for m in mutations}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            print(f"error: no catalogue entry named {', '.join(unknown)} (see --list)",
                  file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.id in args.only]
    if args.tests:
        if not args.only:
            print("error: --tests replaces the tests of the entries chosen with --only; "
                  "name the entries (--only ID ...)", file=sys.stderr)
            return 2
        mutations = [dataclasses.replace(m, tests=tuple(args.tests)) for m in mutations]
    if args.list:
        for m in mutations:
            flag = " (equivalent)" if m.equivalent else ""
            print(f"{m.id:32} {m.block:10} {m.kind:22} {m.description}{flag}")
        return 0
    errors = check_catalogue(mutations, root)
    if errors or args.check:
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        if args.check and not errors:
            print(f"{len(mutations)} entries apply")
        return 2 if errors else 0

    start = time.monotonic()
    jobs = max(1, args.jobs)
    build = out / "build"
    scratches = [make_scratch(root, out / f"tree-{n}", args.from_head) for n in range(jobs)]
    check_shim(scratches[0], build, python)

    baseline_seconds = None
    if not args.no_baseline:
        tests = sorted({t for m in mutations if not m.equivalent for t in m.tests})
        status, baseline_seconds, output, failed = run_pytest(
            scratches[0], build, tests, args.timeout * 4, python)
        print(f"baseline: {len(tests)} test ids on the unmutated copy, {baseline_seconds:.0f} s, "
              f"status {status}", flush=True)
        if status != 0:
            print("\n".join(output.splitlines()[-30:]), file=sys.stderr)
            print(f"error: the tests fail without a mutation ({failed or status}); fix that "
                  "first, every 'caught' would be meaningless", file=sys.stderr)
            return 2

    results = [None] * len(mutations)

    def worker(n):
        for index in range(n, len(mutations), jobs):
            result = run_mutation(mutations[index], scratches[n], build, args.timeout, python)
            results[index] = result
            print(f"{result.mutation.id:32} {result.result:10} {result.seconds:6.1f} s  "
                  f"{result.caught_by or result.detail}", flush=True)
            if result.result == "error":
                print("\n".join("    " + line for line in result.output_tail), flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(worker, range(jobs)))

    total = time.monotonic() - start
    out.mkdir(parents=True, exist_ok=True)
    markdown = report_markdown(results, baseline_seconds, total, args.threshold)
    (out / "report.md").write_text(markdown)
    data = report_json(results)
    data.update(baseline_seconds=baseline_seconds, total_seconds=round(total, 1),
                threshold_percent=args.threshold)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    print(markdown)
    caught, counted, percent = score(results)
    failed = percent < args.threshold or any(r.result == "error" for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
