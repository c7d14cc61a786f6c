"""The generated ULX3S LiteDRAM core in Verilator: init by the wrapper, then
random AXI4 traffic (litedram's SDRAMPHYModel stands in for the SDRAM).

Not through lpaccel.sim.harness.run_cocotb: the build needs the generated
core's Verilog next to the Amaranth top. Marked ``synth`` like the other
board tests (the Verilator build of the core takes about 40 s of CPU).
"""

import hashlib
import json

import pytest
from litedram_sim_top import LiteDramSimTop
from lpaccel.boards.litedram_core import generate_litedram_core
from lpaccel.sim import harness


@pytest.mark.synth
def test_litedram_sdr_core_in_verilator():
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    core = generate_litedram_core("ulx3s", sim=True)
    top = verilog.convert(LiteDramSimTop(core), name="litedram_sim")
    core_text = core.verilog.read_text()
    digest = hashlib.sha256((top + core_text + harness._tool_versions()).encode()).hexdigest()
    build_dir = core.directory / f"verilator-{digest[:12]}"
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "litedram_sim.v").write_text(top)
    (build_dir / "litedram_core.v").write_text(core_text)
    env = {**harness._verilator_env(), "PYTHONWARNINGS": "error::DeprecationWarning",
           "LITEDRAM_TEST": json.dumps({"init_cycles": 20_000, "window": 1 << 20,
                                        "beats": 9_000, "seed": 5})}
    runner = get_runner("verilator")
    results = build_dir / "results.xml"
    with harness._scoped_environ(env), harness._scoped_sys_path(
            harness._TESTS_DIR / "boards"):
        if not (build_dir / "built").exists():
            runner.build(sources=[build_dir / "litedram_sim.v", build_dir / "litedram_core.v"],
                         hdl_toplevel="litedram_sim", build_dir=build_dir,
                         build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"],
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
            (build_dir / "built").write_text("ok\n")
        if results.exists():
            results.unlink()
        try:
            runner.test(test_module="cocotb_litedram", hdl_toplevel="litedram_sim",
                        hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=build_dir,
                        results_xml=str(results), log_file=build_dir / "sim.log", seed=5)
        except (SystemExit, RuntimeError):
            pass
    log = (build_dir / "sim.log").read_text(errors="replace")
    print("\n".join(line for line in log.splitlines() if "LITEDRAM" in line))
    tests, failures = harness._parse_results(results)
    assert tests and not failures, (failures, "\n".join(log.splitlines()[-40:]))
