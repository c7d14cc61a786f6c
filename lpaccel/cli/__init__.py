"""The ``lpaccel`` command line.

Verbs: ``demo``, ``gemv`` (one GEMV in RTL simulation), ``bench`` (the
benchmark suite), ``mem-bench`` (the LPDDR memory path), ``build`` (a
bitstream and its report), ``regmap`` (the register map's generated
files), ``serve-sim`` (the simulated board on a pseudo-terminal),
``selftest`` and ``run-gguf`` (GGUF tensors through the accelerator). Each
verb prints a short human report, or one JSON object with ``--json``. The
global ``--port DEV`` runs ``gemv``, ``selftest`` and ``run-gguf`` on the
device behind a serial port (a board, or ``serve-sim``'s pty) instead of in
process on the simulated SoC.

This package is the top layer (docs/architecture.md): the only place that
combines the host library with the simulator (``lpaccel.sim``) and the board
flow (``lpaccel.boards``); the modules next to this one run those.
"""

import argparse
import json
import sys

from lpaccel.rtl.config import BCQ_PLANES, GROUP_SIZES, GemvConfig, WeightFormat
from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.soc_config import DEFAULT_LPDDR_RATIO, LPDDR_MEMORIES, ONCHIP

__all__ = ["main"]

# Every choice the command line offers comes from the configuration classes.
FORMATS = tuple(f.name.lower() for f in WeightFormat)
GROUPS = GROUP_SIZES
#: Formats that take --group, and BCQ's plane counts (--bits).
GROUPED_FORMATS = tuple(f.name.lower() for f in WeightFormat if f.grouped)
BCQ_BITS = BCQ_PLANES
WORD_BITS = GemvConfig.WORD_BITS
LANES = GemvConfig.LANES
#: Verbs that run on the device behind --port.
PORT_VERBS = ("gemv", "selftest", "run-gguf")
#: Memories the simulated SoC is built with (lpaccel.cli.soc.MEMORIES, without importing it).
SOC_MEMORIES = (ONCHIP, *LPDDR_MEMORIES)


def _positive_int(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _cols(text):
    value = _positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(
            f"{value} is not a multiple of 32 (quantization blocks are 32 wide); "
            f"try {value - value % 32 or 32}")
    return value


def _gemv_text(r):
    status = "PASS" if r["bit_exact"] else f"FAIL ({r['mismatches']} of {r['rows']} rows differ)"
    return "\n".join([
        f"GEMV {r['format'].upper()}"
        + (f"{r['planes']}" if r.get("planes") else "")
        + (" + offset" if r.get("offset") else "")
        + (f" group {r['group']}" if r['format'] in GROUPED_FORMATS else "")
        + f"  {r['rows']} x {r['cols']}  on {r['lanes']} lanes "
        f"({r['word_bits']}-bit weight words), Verilator RTL simulation",
        f"  bit-exact vs golden model : {status}",
        f"  rel. RMS error vs float64 : {r['rel_rms_error']:.3e}  (contract: <= 1e-3)",
        f"  cycles (job -> last row)  : {r['cycles']}  = load {r['load_cycles']}"
        f" + stream {r['stream_cycles']} + drain {r['latency_cycles']}",
        f"  ideal cycles (words)      : {r['ideal_cycles']}  ({r['weight_bytes']} weight bytes)",
        f"  utilization               : {100 * r['bw_utilization']:.2f} % end to end, "
        f"{100 * r['stream_utilization']:.2f} % while streaming",
    ])


def _check_gemv_format(args):
    """The combinations of --format, --group, --bits and --offset argparse cannot check."""
    if args.group is not None and args.format not in GROUPED_FORMATS:
        raise ValueError(f"--group {args.group}: {args.format} has fixed 32-element blocks; "
                         f"--group applies to {', '.join(GROUPED_FORMATS)} only")
    if args.format != "bcq":
        for option, given in (("--bits", args.bits is not None), ("--offset", args.offset)):
            if given:
                raise ValueError(f"{option}: {args.format} has no binary planes; {option} "
                                 f"applies to --format bcq only (drop it, or use --format bcq)")


def _cmd_gemv(args):
    from lpaccel.cli.gemv import make_case, run_gemv
    _check_gemv_format(args)
    extra = {"planes": args.bits or 2, "offset": args.offset} if args.format == "bcq" else {}
    case = make_case(args.format, args.rows, args.cols, group=args.group, seed=args.seed,
                     **extra)
    if args.port:
        return _port_gemv(args, case)
    if args.engine_only:
        if args.memory is not None:
            raise ValueError(f"--memory {args.memory}: the engine-only run streams its "
                             f"weights from the testbench, not from a memory; drop "
                             f"--engine-only to run on the SoC")
        report = run_gemv(case, lanes=args.lanes or 32, word_bits=args.word_bits,
                          seed=args.seed)
        text = _gemv_text
    else:
        from lpaccel.cli.soc import gemv_text, run_soc_gemv, soc_run_ok
        if args.word_bits is not None:
            raise ValueError(f"--word-bits {args.word_bits}: on the SoC the memory word is "
                             f"the memory path's width; use --engine-only to choose it")
        report = run_soc_gemv(case, args.memory or "onchip", lanes=args.lanes, seed=args.seed,
                              checkers=args.protocol_checks)
        report.pop("results")
        text = gemv_text
    if args.json:
        print(json.dumps(report))
    else:
        print(text(report))
    ok = soc_run_ok(report) if not args.engine_only else report["bit_exact"]
    return 0 if ok else 1


def _port_gemv(args, case):
    from lpaccel.cli.serve import open_port, port_gemv_text, run_port_gemv
    given = [o for o, v in (("--memory", args.memory), ("--lanes", args.lanes),
                            ("--word-bits", args.word_bits),
                            ("--engine-only", args.engine_only),
                            ("--protocol-checks", args.protocol_checks)) if v]
    if given:
        raise ValueError(f"{', '.join(given)} configure the simulated SoC; with --port the "
                         f"device is what it is: drop them")
    dev = open_port(args.port, args.baud)
    try:
        report = run_port_gemv(dev, case)
    finally:
        dev.transport.close()
    print(json.dumps(report) if args.json else port_gemv_text(report, args.port))
    return 0 if report["bit_exact"] else 1


def _cmd_selftest(args):
    from lpaccel.cli import selftest
    if args.port is None:
        return selftest.main(args)
    from lpaccel.cli.serve import open_port
    dev = open_port(args.port, args.baud)
    try:
        return selftest.main(args, dev.transport)
    finally:
        dev.transport.close()


def _cmd_run_gguf(args):
    from lpaccel.cli import gguf
    if args.port is None:
        return gguf.main(args)
    # Check the file and the inputs before the device is even opened.
    gguf.check_args(args)
    from lpaccel.cli.serve import open_port
    dev = open_port(args.port, args.baud)
    try:
        return gguf.main(args, dev)
    finally:
        dev.transport.close()


def _cmd_quantize_bcq(args):
    from lpaccel.cli import gguf
    return gguf.quantize_main(args)


def _cmd_serve_sim(args):
    from lpaccel.cli.serve import serve_sim
    if not args.pty:
        raise ValueError("serve-sim serves on a pseudo-terminal: pass --pty")
    return serve_sim(args.memory, uart=args.uart, seed=args.seed)


def _cmd_demo(args):
    if args.engine_only:
        return _demo_engine_only(args)
    from lpaccel.cli.soc import run_demo
    return 0 if run_demo(args.memory, seed=args.seed) else 1


def _demo_engine_only(args):
    from lpaccel.cli.gemv import make_case, run_gemv
    print("lpaccel demo: quantized GEMV on the RTL engine (Verilator), checked bit for bit\n")
    ok = True
    cycles = {}
    for fmt, group in (("q4_0", None), ("q8_0", None), ("q4_1", None), ("int4", 128)):
        case = make_case(fmt, 64, 4096, group=group, seed=args.seed)
        report = run_gemv(case, lanes=32, seed=args.seed)
        print(_gemv_text(report) + "\n")
        ok &= report["bit_exact"] and report["rel_rms_error"] <= 1e-3
        cycles[fmt] = report["cycles"]
    speedup = cycles["q8_0"] / cycles["q4_0"]
    q8, q4 = WeightFormat.Q8_0.block_bytes, WeightFormat.Q4_0.block_bytes
    print(f"Q4_0 vs Q8_0 at equal memory width: {speedup:.3f}x faster, measured; the byte "
          f"ratio {q8}/{q4} is {q8 / q4:.3f}x ({speedup / (q8 / q4):.3f} of it).")
    print("demo: PASS" if ok else "demo: FAIL")
    return 0 if ok else 1


def _cmd_bench(args):
    from lpaccel.cli.bench import run_bench, run_ladder
    log = lambda text: print(text, file=sys.stderr)  # noqa: E731
    if args.ladder:
        memory = args.memory or "lpddr4-3200"
        rows = run_ladder(args.out, rows=args.rows or 4096, cols=args.cols or 4096,
                          memory=None if memory == "engine" else memory,
                          lanes=args.lanes if args.memory == "engine" else None,
                          seed=args.seed, log=log)
        with open(f"{args.out}/ladder.md") as md:
            print(md.read(), end="")
        return 0 if all(r["bit_exact"] for r in rows) else 1
    if args.memory is not None or args.rows is not None or args.cols is not None:
        raise ValueError("--memory, --rows and --cols choose the ladder's run: add --ladder")
    reports = run_bench(args.out, quick=args.quick, lanes=args.lanes, seed=args.seed,
                        log=lambda text: print(text, file=sys.stderr))
    print(f"wrote {args.out}/bench.json and {args.out}/bench.md")
    return 0 if all(r["bit_exact"] for r in reports) else 1


def _cmd_build(args):
    from lpaccel.boards import BOARDS
    from lpaccel.boards.build import build_board
    report = build_board(args.board, design=args.design, seed=args.seed, variant=args.variant)
    if args.json:
        print(json.dumps(report))
    else:
        fmax = ", ".join(f"{clk} {mhz:.1f} MHz (target {report['target_mhz'][clk]:.1f})"
                         for clk, mhz in report["fmax_mhz"].items())
        util = ", ".join(f"{k} {v['used']}/{v['available']}"
                         for k, v in report["utilization"].items())
        print(f"{args.board} {report['design']}: bitstream {report['bitstream']}\n"
              f"  fmax: {fmax}\n  timing met: {report['timing_met']}\n  use: {util}")
        if report["bitstream"] and BOARDS[args.board].programmer:
            print(f"  load: openFPGALoader -b {BOARDS[args.board].programmer} "
                  f"{report['bitstream']}")
    return 0 if report["timing_met"] else 1


def _cmd_synth(args):
    from lpaccel.boards.synth import synth_soc
    from lpaccel.rtl.soc_config import SocConfig
    config = SocConfig(memory=args.memory, memory_size=args.memory_size)
    report = synth_soc(config, board=args.board, seed=args.seed, place=not args.no_place)
    if args.json:
        print(json.dumps(report))
        return 0 if report["fits"] else 1
    util = ", ".join(f"{k} {report['utilization'][k]['used']}/"
                     f"{report['utilization'][k]['available']} "
                     f"({report['utilization'][k]['percent']:g} %)"
                     for k in ("lut4", "ff", "dsp", "bram"))
    print(f"{args.board} ({report['device']}) SoC, memory {args.memory}: "
          f"{'fits' if report['fits'] else 'DOES NOT FIT'}\n  yosys: {util}")
    for problem in report["fit_problems"]:
        print(f"  {problem}")
    if report["placed"]:
        placed = ", ".join(f"{k} {v['used']}/{v['available']}"
                           for k, v in report["placed_utilization"].items()
                           if k in ("lut4", "ff", "dsp", "bram"))
        met = "met" if report["timing_met"] else "NOT met"
        print(f"  nextpnr (out of context): fmax {report['fmax_mhz']:.1f} MHz (target "
              f"{report['target_mhz']:g}: {met}), use: {placed}")
    print(f"  {report['seconds']:.0f} s; report {report['out_dir']}/report.json")
    return 0 if report["fits"] else 1


def _cmd_regmap(args):
    from lpaccel.regmap import generate
    for name, path in generate(args.out).items():
        print(f"{name:9s} {path}")
    return 0


def _cmd_mem_bench(args):
    from lpaccel.cli.membench import run_mem_bench
    report = run_mem_bench(args.memory, args.pattern, args.bytes, refresh=args.refresh,
                           ratio=args.ratio, seed=args.seed)
    if args.json:
        print(json.dumps(report))
    else:
        loss = ", ".join(f"{k} {v}" for k, v in report["loss"].items())
        print(f"mem-bench {report['memory']} {report['pattern']}: {report['bytes']} bytes in "
              f"{report['cycles']} cycles, {100 * report['bw_utilization']:.2f} % of peak "
              f"({report['peak_bytes_per_cycle']} B/cycle); timing violations "
              f"{report['timing_violations']}; lost cycles: {loss}")
    return 0 if report["timing_violations"] == 0 else 1


def _parser():
    p = argparse.ArgumentParser(prog="lpaccel", description=__doc__.splitlines()[0])
    p.add_argument("--port", metavar="DEV", default=None,
                   help="run gemv, selftest and run-gguf on the device at this serial port "
                        "(/dev/ttyUSB0, or the pty lpaccel serve-sim prints) instead of in "
                        "process on the simulated SoC")
    p.add_argument("--baud", type=_positive_int, default=None,
                   help="line rate of --port (default 3000000, the ULX3S's FT231X)")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    d = sub.add_parser("demo", help="the SoC end to end: weights in LPDDR, a queued chain of "
                                     "GEMVs, checked bit for bit and measured")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--memory", choices=LPDDR_MEMORIES, default=LPDDR_MEMORIES[0],
                   help="the LPDDR part holding the weights (default %(default)s)")
    d.add_argument("--engine-only", action="store_true",
                   help="the earlier demo: the GEMV engine alone, weights streamed by the "
                        "testbench")
    d.set_defaults(func=_cmd_demo)

    g = sub.add_parser("gemv", help="one GEMV on the SoC in RTL simulation (Verilator)")
    g.add_argument("--format", choices=FORMATS, default="q4_0")
    g.add_argument("--rows", type=_positive_int, default=64)
    g.add_argument("--cols", type=_cols, default=4096)
    g.add_argument("--group", type=int, choices=GROUPS, default=None,
                   help="elements per scale for int4/int8/bcq (default 128)")
    g.add_argument("--bits", type=int, choices=BCQ_BITS, default=None,
                   help="bcq: binary planes, i.e. bits per weight before scales (default 2)")
    g.add_argument("--offset", action="store_true",
                   help="bcq: a float16 offset per group")
    g.add_argument("--memory", choices=SOC_MEMORIES, default=None,
                   help="memory holding the weights (default onchip)")
    g.add_argument("--engine-only", action="store_true",
                   help="run the GEMV engine alone, its weights streamed by the testbench")
    g.add_argument("--lanes", type=int, choices=LANES, default=None,
                   help="engine lanes (default: one memory word per cycle on the SoC, 32 "
                        "engine-only)")
    g.add_argument("--word-bits", type=int, choices=WORD_BITS, default=None,
                   help="weight-port width, --engine-only (default 4 x lanes)")
    g.add_argument("--protocol-checks", action="store_true",
                   help="run the AXI protocol checkers too (slower)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=_cmd_gemv)

    k = sub.add_parser("bench", help="benchmark suite -> bench.json and bench.md")
    k.add_argument("--out", required=True, help="output directory, e.g. build/bench")
    k.add_argument("--quick", action="store_true", help="only the 64 x 4096 shape")
    k.add_argument("--lanes", type=int, choices=LANES, default=32)
    k.add_argument("--seed", type=int, default=1)
    k.add_argument("--ladder", action="store_true",
                   help="the speed-up ladder F16 -> Q8_0 -> Q4_0/INT4 -> BCQ3 -> BCQ2 -> BCQ1, "
                        "each against its byte ratio to F16 -> ladder.json and ladder.md")
    k.add_argument("--memory", choices=(*SOC_MEMORIES, "engine"), default=None,
                   help="--ladder: the memory holding the weights (default lpddr4-3200), or "
                        "'engine' for the engine alone at one word per cycle")
    k.add_argument("--rows", type=_positive_int, default=None, help="--ladder: rows (4096)")
    k.add_argument("--cols", type=_cols, default=None, help="--ladder: columns (4096)")
    k.set_defaults(func=_cmd_bench)

    b = sub.add_parser("build", help="bitstream and timing/resource report for a board")
    from lpaccel.boards import BOARDS, DESIGNS
    b.add_argument("--board", choices=list(BOARDS), default="ulx3s-85f")
    b.add_argument("--design", choices=list(DESIGNS), default=None,
                   help="what to build (default per board: " + ", ".join(
                       f"{n} {e.default_design}" for n, e in BOARDS.items()) + ")")
    b.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    b.add_argument("--variant", default=None,
                   help="top variant of the design (gemv-selftest: selftest, the default, "
                        "blinky, or all-formats: the engine with F16 and BCQ too)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=_cmd_build)

    from lpaccel.rtl.soc_config import MEMORIES
    s = sub.add_parser("synth", help="does the SoC fit a board's FPGA: Yosys resource use, "
                                     "nextpnr Fmax (out of context)")
    s.add_argument("--board", choices=list(BOARDS), default="ulx3s-85f")
    s.add_argument("--memory", choices=MEMORIES, default=ONCHIP,
                   help="memory backend of the SoC (default %(default)s)")
    s.add_argument("--memory-size", type=_positive_int, default=None,
                   help="bytes behind the memory window (default: 64 KiB on chip)")
    s.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    s.add_argument("--no-place", action="store_true", help="Yosys only (no nextpnr, no Fmax)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_synth)

    r = sub.add_parser("regmap", help="C header, Markdown/HTML docs and Python table of the "
                                      "register map")
    r.add_argument("--out", required=True, help="output directory, e.g. build/regmap")
    r.set_defaults(func=_cmd_regmap)

    st = sub.add_parser("selftest", help="identification, register walk, memory test and one "
                                         "GEMV per format, PASS/FAIL per step")
    st.add_argument("--memory", choices=SOC_MEMORIES, default=ONCHIP,
                    help="memory of the simulated SoC without --port (default %(default)s)")
    st.add_argument("--skip-memory", action="store_true",
                    help="leave out the memory test (it overwrites device memory)")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=_cmd_selftest)

    rg = sub.add_parser("run-gguf", help="the 2-D Q4_0/Q4_1/Q8_0/F16/BCQ tensors of a GGUF file "
                                          "through the accelerator, checked")
    rg.add_argument("file", metavar="FILE", help="a .gguf file")
    rg.add_argument("--tensor", metavar="NAME", action="append", default=None,
                    help="run this tensor (repeat for more; default every 2-D Q4_0/Q4_1/Q8_0/"
                         "F16 tensor and every BCQ tensor)")
    rg.add_argument("--input", metavar="X.npy", default=None,
                    help="activation vector, a 1-D float .npy of the tensors' column count "
                         "(default N(0, 1), seeded)")
    rg.add_argument("--output", metavar="Y.npy", default=None,
                    help="write the FP32 result here (one tensor only)")
    rg.add_argument("--seed", type=int, default=0)
    rg.add_argument("--json", action="store_true", help="print one JSON object")
    rg.set_defaults(func=_cmd_run_gguf)

    qb = sub.add_parser("quantize-bcq", help="quantize the 2-D float matrices of a GGUF or "
                                             "safetensors file to BCQ (docs/bcq.md)")
    qb.add_argument("input", metavar="IN", help="a .gguf or .safetensors file")
    qb.add_argument("output", metavar="OUT", help="the BCQ .gguf file to write")
    qb.add_argument("--planes", type=int, required=True, help="binary planes, 1 to 4")
    qb.add_argument("--group", type=int, default=128, help="weights per scale: 32, 64 or "
                                                           "128 (default %(default)s)")
    qb.add_argument("--offset", action="store_true", help="a float16 offset per group too")
    qb.add_argument("--tensor", metavar="NAME", action="append", default=None,
                    help="quantize this tensor (repeat; default every 2-D float matrix whose "
                         "columns are a multiple of the group)")
    qb.add_argument("--keep-others", action="store_true",
                    help="copy the tensors that are not quantized into OUT as they are")
    qb.add_argument("--json", action="store_true", help="print one JSON object")
    qb.set_defaults(func=_cmd_quantize_bcq)

    sv = sub.add_parser("serve-sim", help="the simulated board (SoC + host bridge in "
                                           "Verilator) on a pseudo-terminal, until Ctrl-C")
    sv.add_argument("--pty", action="store_true",
                    help="serve on a new pseudo-terminal and print its path")
    sv.add_argument("--memory", choices=(ONCHIP,), default=ONCHIP,
                    help="memory of the simulated SoC (default %(default)s)")
    sv.add_argument("--uart", action="store_true",
                    help="through the bridge's UART pins (bit-level, slower) instead of its "
                         "byte streams")
    sv.add_argument("--seed", type=int, default=0)
    sv.set_defaults(func=_cmd_serve_sim)

    mb = sub.add_parser("mem-bench", help="LPDDR controller + device model bandwidth (Verilator)")
    mb.add_argument("--memory", choices=LPDDR_MEMORIES, default=LPDDR_MEMORIES[0])
    mb.add_argument("--pattern", choices=("seq", "random"), default="seq")
    mb.add_argument("--bytes", type=_positive_int, default=1 << 20)
    mb.add_argument("--refresh", choices=LpddrConfig.REFRESH_MODES,
                    default=LpddrConfig.REFRESH_MODES[0])
    mb.add_argument("--ratio", type=int, choices=LpddrConfig.RATIOS, default=None,
                    help="controller:DRAM clock ratio (default per part: " + ", ".join(
                        f"{m} 1:{r}" for m, r in DEFAULT_LPDDR_RATIO.items()) + ")")
    mb.add_argument("--seed", type=int, default=1)
    mb.add_argument("--json", action="store_true", help="print one JSON object")
    mb.set_defaults(func=_cmd_mem_bench)
    return p


def main(argv=None):
    """Entry point of the ``lpaccel`` console script."""
    args = _parser().parse_args(argv)
    from lpaccel.driver import DeviceError
    from lpaccel.link import LinkError
    try:
        if args.port is not None and args.verb not in PORT_VERBS:
            raise ValueError(f"--port {args.port}: {args.verb} does not run on a device; "
                             f"--port applies to {', '.join(PORT_VERBS)}")
        if args.baud is not None and args.port is None:
            raise ValueError(f"--baud {args.baud} is the line rate of --port: pass --port too")
        return args.func(args)
    except (ValueError, LinkError, DeviceError) as error:
        print(f"lpaccel {args.verb}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
