"""Yosys maps the on-chip memories to the FPGA's RAM blocks.

AxiSram must become ECP5 block RAM (DP16KD), not flip-flops; AxiSpram with
the primitive must keep its SB_SPRAM256KA instances through synth_ice40.
Builds live in build/synth/ of the build directory (YoWASP sees a private /tmp).
"""


from amaranth.back import verilog

from lpaccel.boards.toolchain import yosys_synth
from lpaccel.paths import build_dir
from lpaccel.rtl.mem import AxiMemoryConfig, AxiSpram, AxiSram

SYNTH_DIR = build_dir("synth")


def test_axisram_infers_ecp5_bram():
    cfg = AxiMemoryConfig(size_bytes=16384, data_width=64, addr_width=32, id_width=6)
    text = verilog.convert(AxiSram(cfg), name="axi_sram")
    # Stop after memory and flip-flop mapping: that is where BRAM inference
    # happens, and it keeps the test to seconds.
    result = yosys_synth([("axi_sram.v", text)], top="axi_sram", family="ecp5",
                         work_dir=SYNTH_DIR / "axi_sram_ecp5", run=":map_ffs")
    cells = result["cells"]
    print(f"AxiSram 16 KiB x64 on ECP5 ({result['seconds']:.1f} s): {cells}")
    # 16 KiB = 128 Kbit; a DP16KD holds 16 Kbit of data (18 Kbit with parity).
    assert cells.get("DP16KD", 0) == 8, cells
    assert not any(k.startswith("$mem") for k in cells), cells
    flops = sum(v for k, v in cells.items() if "DFF" in k or k == "TRELLIS_FF")
    assert flops < 1000, f"{flops} flip-flops: storage was not mapped to block RAM"


def test_axispram_maps_ice40_spram():
    cfg = AxiMemoryConfig(size_bytes=1 << 17, data_width=32, addr_width=32, id_width=4)
    spram = AxiSpram(cfg, primitive=True)
    assert spram.blocks == 4 and spram.banks == 2
    text = verilog.convert(spram, name="axi_spram")
    result = yosys_synth([("axi_spram.v", text)], top="axi_spram", family="ice40",
                         work_dir=SYNTH_DIR / "axi_spram_ice40")
    cells = result["cells"]
    print(f"AxiSpram 128 KiB x32 on iCE40 UP ({result['seconds']:.1f} s): {cells}")
    assert cells.get("SB_SPRAM256KA", 0) == 4, cells
    assert "SB_LUT4" in cells and not any(k.startswith("$") for k in cells), cells
