"""``lpaccel run-gguf``: the quantized matrices of a GGUF file through the accelerator.

Reads the file with ``gguf.GGUFReader``; every 2-D ``Q4_0``/``Q4_1``/``Q8_0``/
``F16`` tensor and every BCQ tensor (``lpaccel.bcq``'s container: the parts
``NAME.bcq_planes``/``.bcq_alpha``/``.bcq_offset`` listed as one tensor
``NAME`` of format ``BCQ`` with its planes, group and offset) is chosen by
default (others are listed as skipped, with their type), or the ones named
with ``--tensor``. Each runs as one GEMV ``y = W x`` on the
device, ``x`` the ``--input`` vector or ``N(0, 1)`` (seeded), and is checked
twice: bit for bit against the golden model of the hardware arithmetic, and
by its relative RMS error against float64 arithmetic on the dequantized
weights (gguf's own ``gguf.quants.dequantize`` for the GGUF block formats,
the exact value of every weight for F16 and BCQ). The table has name, shape,
format, busy cycles, utilization of the memory path (weight bytes / (cycles
x memory word)), bit-exact and the error.

Where it runs: with ``--port`` on the device behind that serial port (a
board, or ``lpaccel serve-sim --pty``); without, in process on the
simulated SoC, its memory sized to fit the largest tensor. The host program
(:func:`run_tensors`) is the same either way.

Every check on the inputs (the file, the tensor names and types, the
activation file, and on a device whether its formats, shape limits and memory
take every tensor) happens before anything is written to the device.

``lpaccel quantize-bcq`` (:func:`quantize_main`) writes such BCQ files from the
float matrices of a GGUF or safetensors file (``docs/bcq.md``).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpaccel import repack
from lpaccel.quant import QuantizedWeights
from lpaccel.rtl.config import WeightFormat
from lpaccel.rtl.soc.sequencer import act_bytes

__all__ = ["SUPPORTED", "GgufTensor", "read_gguf", "select_tensors", "load_input",
           "default_input", "memory_needed", "device_problems", "check_device", "fit",
           "sim_problems", "sim_config", "run_tensors", "tensor_report", "format_label",
           "report_text", "check_args", "main", "read_float_tensors", "quantize_plan",
           "quantize_main"]

#: GGML types the accelerator runs, and their formats; ``BCQ`` tensors are lpaccel's
#: container (:mod:`lpaccel.bcq`), not a GGML type.
SUPPORTED = ("Q4_0", "Q4_1", "Q8_0", "F16", "BCQ")

#: Polling budget of one tensor: cycles per weight byte, and a floor.
TIMEOUT_CYCLES_PER_BYTE = 4
TIMEOUT_CYCLES_MIN = 1_000_000


@dataclass(frozen=True)
class GgufTensor:
    """One 2-D tensor of a supported type.

    Attributes
    ----------
    name : str
    fmt : WeightFormat
    rows, cols : int
        ``rows`` output elements, ``cols`` the input length (GGUF's ``ne[1]``,
        ``ne[0]``).
    data : numpy.ndarray
        The GGUF blocks, ``uint8 [rows, row_bytes]`` (a view of the file), or
        ``None`` for F16 and BCQ tensors, which carry ``quantized``.
    quantized : QuantizedWeights, optional
        The decoded F16 or BCQ weights.
    """

    name: str
    fmt: WeightFormat
    rows: int
    cols: int
    data: np.ndarray = None
    quantized: QuantizedWeights = None

    @property
    def shape(self):
        return f"{self.rows} x {self.cols}"

    @property
    def planes(self):
        """BCQ's plane count (0 for the other formats)."""
        return int(getattr(self.quantized, "planes", 0) or 0)

    @property
    def group(self):
        """Elements per scale (32 for the GGUF formats and F16)."""
        return int(self.quantized.group) if self.quantized is not None else 32

    @property
    def offset(self):
        """Whether a BCQ tensor has group offsets."""
        return bool(self.planes and self.quantized.offset)

    @property
    def label(self):
        """The format as the table shows it: ``Q4_0``, ``F16``, ``BCQ3 g128 +off``."""
        if self.fmt is WeightFormat.BCQ:
            return f"BCQ{self.planes} g{self.group}" + (" +off" if self.offset else "")
        return self.fmt.name

    def layout(self, config):
        """The weight stream of this tensor on an engine with ``config``."""
        if self.fmt is WeightFormat.BCQ:
            return repack.stream_layout(self.fmt, self.rows, self.cols, config, self.group,
                                        planes=self.planes, offset=self.offset)
        return repack.stream_layout(self.fmt, self.rows, self.cols, config)

    def check_job(self, gemv_config):
        """``GemvConfig.check_job`` for this tensor (raises ``ValueError``)."""
        if self.fmt is WeightFormat.BCQ:
            return gemv_config.check_job(self.fmt, self.rows, self.cols, self.group,
                                         self.planes)
        return gemv_config.check_job(self.fmt, self.rows, self.cols)

    def weights(self):
        """The tensor as :class:`QuantizedWeights`."""
        if self.quantized is not None:
            return self.quantized
        return QuantizedWeights.from_gguf(self.data, self.fmt, self.rows, self.cols)

    def reference(self, x):
        """``W x`` in float64 on gguf's own dequantization of the blocks (F16 and BCQ:
        on the exact weights)."""
        x = np.asarray(x, dtype=np.float64)
        if self.quantized is not None:
            return self.quantized.dequantize_f64() @ x
        import gguf
        import gguf.quants
        w = gguf.quants.dequantize(self.data, gguf.GGMLQuantizationType[self.fmt.name])
        w = np.asarray(w, dtype=np.float64).reshape(self.rows, self.cols)
        return w @ x


def read_gguf(path):
    """Open ``path`` with ``gguf.GGUFReader``.

    Raises
    ------
    ValueError
        If the file does not exist or is not a complete GGUF file.
    """
    import gguf
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass the path of a .gguf file")
    try:
        return gguf.GGUFReader(path)
    except Exception as error:      # noqa: BLE001 - the reader raises many kinds on bad files
        raise ValueError(f"{path} is not a readable GGUF file ({type(error).__name__}: "
                         f"{error}); it may be truncated or not GGUF at all: check its size "
                         f"against the original, or download or convert it again") from None


def _type_name(t):
    return getattr(t.tensor_type, "name", str(t.tensor_type))


def select_tensors(reader, names=None, path="file"):
    """The tensors to run, and the ones skipped.

    Parameters
    ----------
    reader : gguf.GGUFReader
    names : list of str, optional
        ``--tensor`` names; default every 2-D tensor of a supported type.
    path : str
        For messages.

    Returns
    -------
    chosen : list of GgufTensor
    skipped : list of dict
        ``name``, ``type``, ``shape``, ``reason``.

    Raises
    ------
    ValueError
        On a name the file does not have, or a named tensor that cannot run
        (its type, named with the supported ones; not 2-D); or when nothing
        runs at all.
    """
    from lpaccel import bcq
    bcq_tensors = bcq.read_bcq_tensors(reader, path) if bcq.bcq_tensor_names(reader) else {}
    parts = {n + suffix: n for n in bcq_tensors
             for suffix in (bcq.PLANES_SUFFIX, bcq.ALPHA_SUFFIX, bcq.OFFSET_SUFFIX)}
    # The file's tensors in order, a BCQ tensor in the place of its planes.
    by_name = {}
    for t in reader.tensors:
        if t.name not in parts:
            by_name[t.name] = t
        elif t.name.endswith(bcq.PLANES_SUFFIX):
            by_name[parts[t.name]] = bcq_tensors[parts[t.name]]
    chosen, skipped, problems = [], [], []
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            listing = ", ".join(list(by_name)[:12]) + (" ..." if len(by_name) > 12 else "")
            raise ValueError(f"{path} has no tensor {', '.join(missing)} (its tensors: "
                             f"{listing or 'none'}); check --tensor")
        candidates = [(n, by_name[n]) for n in dict.fromkeys(names)]
    else:
        candidates = list(by_name.items())
    for name, t in candidates:
        if name in bcq_tensors:
            chosen.append(GgufTensor(name, WeightFormat.BCQ, t.rows, t.cols, quantized=t))
            continue
        dims = [int(d) for d in t.shape]
        shape = " x ".join(str(d) for d in reversed(dims))
        kind = _type_name(t)
        reason = None
        if kind not in SUPPORTED:
            reason = (f"type {kind} is not supported (supported: {', '.join(SUPPORTED)})")
        elif len(dims) != 2 and not (len(dims) > 2 and all(d == 1 for d in dims[2:])):
            reason = f"{len(dims)}-D ({shape}): only 2-D matrices run as a GEMV"
        if reason is None and kind == "F16":
            cols, rows = dims[0], dims[1]
            try:
                f16 = QuantizedWeights.from_f16(np.asarray(t.data).reshape(rows, cols)
                                                .view(np.uint16))
            except ValueError as error:
                reason = str(error)
            else:
                chosen.append(GgufTensor(t.name, WeightFormat.F16, rows, cols, quantized=f16))
                continue
        if reason is None:
            cols, rows = dims[0], dims[1]
            chosen.append(GgufTensor(t.name, WeightFormat[kind], rows, cols,
                                     np.asarray(t.data).reshape(rows, -1)))
        elif names:
            problems.append(f"tensor {t.name}: {reason}")
        else:
            skipped.append({"name": t.name, "type": kind, "shape": shape, "reason": reason})
    if problems:
        raise ValueError("; ".join(problems) + "; choose other tensors with --tensor")
    if not chosen:
        raise ValueError(f"{path} has no 2-D {'/'.join(SUPPORTED)} tensor to run "
                         f"({len(skipped)} skipped: "
                         f"{', '.join(sorted({s['type'] for s in skipped})) or 'none'})")
    return chosen, skipped


def default_input(cols, seed=0):
    """The activation vector used without ``--input``: ``N(0, 1)`` float32, seeded by length."""
    return np.random.default_rng([seed, cols]).normal(0.0, 1.0, cols).astype(np.float32)


def load_input(path, tensors):
    """Read the ``--input`` vector and check it against every chosen tensor.

    Returns
    -------
    numpy.ndarray
        float32 ``[cols]``.

    Raises
    ------
    ValueError
        If the file is missing or not a ``.npy`` array, not a 1-D float
        vector, not finite or not ``|x| < 65536``, or its length is not the
        columns of every chosen tensor.
    """
    from lpaccel.quant import ACT_LIMIT
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"--input {path}: no such file; pass a .npy file written with "
                         f"numpy.save") from None
    except Exception as error:      # noqa: BLE001 - np.load's errors vary with the damage
        raise ValueError(f"--input {path} is not a .npy array ({error}); write it with "
                         f"numpy.save(path, x.astype(numpy.float32))") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise ValueError(f"--input {path} has dtype {getattr(x, 'dtype', type(x).__name__)}: "
                         f"the activations must be float16, float32 or float64; save "
                         f"x.astype(numpy.float32)")
    if x.ndim != 1:
        raise ValueError(f"--input {path} has shape {x.shape}: it must be a 1-D vector; "
                         f"save one vector, e.g. x.reshape(-1)")
    wrong = [t for t in tensors if t.cols != x.size]
    if wrong:
        lengths = sorted({t.cols for t in tensors})
        raise ValueError(f"--input {path} has {x.size} elements but tensor {wrong[0].name} "
                         f"has {wrong[0].cols} columns; pass a vector of length "
                         f"{' or '.join(map(str, lengths))} and choose tensors of that width "
                         f"with --tensor")
    if not np.all(np.isfinite(x)) or np.any(np.abs(x) >= ACT_LIMIT):
        raise ValueError(f"--input {path}: every element must be finite and |x| < "
                         f"{ACT_LIMIT:g} (the BFP16 activation range); scale the vector")
    x32 = x.astype(np.float32)
    if not np.all(np.abs(x32) < ACT_LIMIT):
        raise ValueError(f"--input {path}: an element rounds to {ACT_LIMIT:g} in float32; "
                         f"scale the vector")
    return x32


def _round_up(n, unit):
    return -(-n // unit) * unit


def memory_needed(tensor, gemv_config):
    """Bytes one tensor's GEMV takes in device memory (weights, activations, results)."""
    word = gemv_config.word_bytes
    layout = tensor.layout(gemv_config)
    return (_round_up(layout.bytes, word) + _round_up(act_bytes(tensor.cols), word)
            + _round_up(4 * tensor.rows, word))


def device_problems(dev, tensors):
    """Why the device behind ``dev`` cannot run some of ``tensors`` (no device access).

    Returns
    -------
    dict
        ``{name: reason}``: a format not in ``CAP_FORMATS``, more rows or
        columns than ``CAP_MAX_ROWS``/``CAP_MAX_COLS``, or more bytes than the
        device memory (``CAP_MEM_SIZE``).
    """
    problems = {}
    size = dev.info.memory_size
    for t in tensors:
        if t.fmt not in dev.info.formats:
            problems[t.name] = (f"tensor {t.name}: format {t.fmt.name} is not in the device's "
                                f"CAP_FORMATS ({', '.join(f.name for f in dev.info.formats)})")
        elif t.rows > dev.info.max_rows or t.cols > dev.info.max_cols:
            problems[t.name] = (f"tensor {t.name} ({t.shape}): the device takes at most "
                                f"{dev.info.max_rows} rows (CAP_MAX_ROWS) and "
                                f"{dev.info.max_cols} columns (CAP_MAX_COLS)")
        elif (need := memory_needed(t, dev.config)) > size:
            problems[t.name] = (f"tensor {t.name} ({t.shape} {t.label}) needs {need} bytes "
                                f"of device memory (weights, activations, results) but the "
                                f"device has {size} (CAP_MEM_SIZE)")
    return problems


def check_device(dev, tensors):
    """Refuse, before anything is written, tensors the device cannot run.

    Raises
    ------
    ValueError
        Naming every such tensor (:func:`device_problems`) and the fix.
    """
    problems = device_problems(dev, tensors)
    if problems:
        raise ValueError("; ".join(problems.values()) + "; leave those out with --tensor, or "
                         "use a device with more memory")


def fit(tensors, skipped, problems, explicit, path):
    """Drop the tensors with ``problems``: an error if they were named, else skipped.

    Returns
    -------
    list of GgufTensor
        The tensors that run; ``skipped`` gets the others, with their reason.

    Raises
    ------
    ValueError
        If a tensor named with ``--tensor`` cannot run, or none can.
    """
    if not problems:
        return tensors
    if explicit:
        raise ValueError("; ".join(problems.values()) + "; leave those out with --tensor, or "
                         "use a device with more memory")
    kept = [t for t in tensors if t.name not in problems]
    if not kept:
        raise ValueError(f"no tensor of {path} fits the device: "
                         + "; ".join(problems.values())
                         + "; use a device with more memory")
    for t in tensors:
        if t.name in problems:
            skipped.append({"name": t.name, "type": t.label, "shape": t.shape,
                            "reason": problems[t.name]})
    return kept


def run_tensors(transport, path, names, input_path=None, seed=0):
    """The host program: one GEMV per tensor on the device behind ``transport``.

    Blocking; the same over a serial link and in the simulator (through
    :func:`lpaccel.cli.serve.run_in_process`). Checks every tensor against the
    device before it writes anything, then per tensor: place weights and
    activations, clear the counters, run, read results and counters, free.

    Parameters
    ----------
    transport : lpaccel.driver.Transport or lpaccel.driver.Device
    path : str
        The GGUF file.
    names : list of str
        The tensors (already chosen by :func:`select_tensors`).
    input_path : str, optional
        ``--input``; default :func:`default_input`.
    seed : int

    Returns
    -------
    dict
        ``word_bytes`` (the memory word), ``memory_size`` and ``tensors``: per
        tensor ``name``, ``bits`` (results as uint32) and ``counters``.
    """
    from lpaccel.driver import Device
    dev = transport if isinstance(transport, Device) else Device(transport)
    tensors, _ = select_tensors(read_gguf(path), names, str(path))
    x_given = load_input(input_path, tensors) if input_path else None
    check_device(dev, tensors)
    out = []
    for t in tensors:
        x = x_given if x_given is not None else default_input(t.cols, seed)
        layout = t.layout(dev.config)
        timeout = max(TIMEOUT_CYCLES_MIN, TIMEOUT_CYCLES_PER_BYTE * layout.bytes)
        w = dev.put_weights(t.weights(), t.name)
        a = dev.put_activations(x, f"{t.name} input")
        r = dev.alloc_results(t.rows, f"{t.name} results")
        try:
            dev.clear_counters()
            tag = dev.submit(w, a, r, timeout_cycles=timeout)
            dev.wait(tag, timeout_cycles=timeout)
            counters = dev.counters()
            bits = dev.read_results_bits(r)[:t.rows]
        finally:
            dev.free(w, a, r)
        out.append({"name": t.name, "bits": [int(b) for b in bits], "counters": counters})
    return {"word_bytes": dev.info.word_bytes, "memory_size": dev.info.memory_size,
            "tensors": out}


def tensor_report(t, x, bits, counters, word_bytes):
    """One row of the table: checks and numbers of tensor ``t``'s GEMV."""
    from lpaccel.sim.golden.gemv import gemv_golden, rel_rms_error
    got = np.asarray(bits, dtype=np.uint32)
    want = gemv_golden(t.weights(), x).view(np.uint32)
    mismatches = int(np.count_nonzero(got != want))
    cycles = int(counters.get("busy_cycles", 0))
    weight_bytes = int(counters.get("weight_bytes", 0))
    extra = {"planes": t.planes, "group": t.group, "offset": t.offset} \
        if t.fmt is WeightFormat.BCQ else {}
    return {
        "name": t.name,
        "shape": [t.rows, t.cols],
        "format": t.fmt.name.lower(),
        **extra,
        "cycles": cycles,
        "weight_bytes": weight_bytes,
        "utilization": round(weight_bytes / (cycles * word_bytes), 6) if cycles else 0.0,
        "bit_exact": mismatches == 0,
        "mismatches": mismatches,
        "rel_error_vs_gguf_f64": float(rel_rms_error(got.view(np.float32), t.reference(x))),
    }


def format_label(row):
    """The format column of a report row: ``Q4_0``, ``F16``, ``BCQ3 g128 +off``."""
    if row["format"] == "bcq":
        return f"BCQ{row['planes']} g{row['group']}" + (" +off" if row["offset"] else "")
    return row["format"].upper()


def report_text(report):
    """The table of ``lpaccel run-gguf``."""
    rows = report["tensors"]
    name_w = max([len("tensor")] + [len(r["name"]) for r in rows])
    fmt_w = max([6] + [len(format_label(r)) for r in rows])
    lines = [f"lpaccel run-gguf {report['file']} {report['where']}",
             f"  {'tensor':{name_w}s}  {'shape':>13s}  {'format':{fmt_w}s}  {'cycles':>9s}  "
             f"{'util.':>7s}  {'bit-exact':9s}  rel. error vs gguf f64"]
    for r in rows:
        shape = f"{r['shape'][0]} x {r['shape'][1]}"
        exact = "yes" if r["bit_exact"] else f"NO ({r['mismatches']})"
        lines.append(f"  {r['name']:{name_w}s}  {shape:>13s}  {format_label(r):{fmt_w}s}  "
                     f"{r['cycles']:9d}  {100 * r['utilization']:6.2f}%  {exact:9s}  "
                     f"{r['rel_error_vs_gguf_f64']:.3e}")
    for s in report["skipped"]:
        lines.append(f"  skipped {s['name']} ({s['shape']}): {s['reason']}")
    if report.get("output"):
        lines.append(f"  wrote {report['output']}")
    ok = report["ok"]
    lines.append(f"run-gguf: {'PASS' if ok else 'FAIL'} ({sum(r['bit_exact'] for r in rows)} "
                 f"of {len(rows)} tensors bit-exact)")
    return "\n".join(lines)


class _TensorPlan:
    """What :func:`lpaccel.cli.soc.soc_config_for` asks of a plan, for tensors run one by one."""

    def __init__(self, tensors):
        self.tensors = tensors

    @property
    def max_cols(self):
        return max(t.cols for t in self.tensors)

    def memory_bytes(self, config):
        return max(memory_needed(t, config) for t in self.tensors)


def sim_problems(tensors):
    """Why the simulated SoC cannot run some of ``tensors``: ``{name: reason}``."""
    from lpaccel.cli.soc import soc_config_for
    problems = {}
    for t in tensors:
        try:
            t.check_job(soc_config_for("onchip", _TensorPlan([t])).gemv)
        except ValueError as error:
            problems[t.name] = f"tensor {t.name} ({t.shape} {t.label}): {error}"
    return problems


def sim_config(tensors):
    """The simulated SoC for ``tensors``: on-chip memory sized for the largest one."""
    from lpaccel.cli.soc import soc_config_for
    return soc_config_for("onchip", _TensorPlan(tensors))


def check_args(args):
    """Check the file, the tensor choice, ``--input`` and ``--output`` (no device needed).

    Returns
    -------
    tuple of (list of GgufTensor, list of dict, numpy.ndarray or None)
        The chosen tensors, the skipped ones, the ``--input`` vector.
    """
    path = Path(args.file)
    tensors, skipped = select_tensors(read_gguf(path), args.tensor, str(path))
    if args.output and len(tensors) != 1:
        raise ValueError(f"--output {args.output} writes one tensor's result, but "
                         f"{len(tensors)} tensors are chosen; name one with --tensor")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise ValueError(f"--output {args.output}: directory "
                         f"{Path(args.output).resolve().parent} does not exist; create it "
                         f"or write elsewhere")
    x_given = load_input(args.input, tensors) if args.input else None
    return tensors, skipped, x_given


def main(args, dev=None):
    """``lpaccel [--port DEV] run-gguf FILE ...``; return the exit code.

    ``dev``: the open device when ``--port`` was given.
    """
    path = Path(args.file)
    tensors, skipped, x_given = check_args(args)
    explicit = bool(args.tensor)
    if dev is not None:
        tensors = fit(tensors, skipped, device_problems(dev, tensors), explicit, path)
    else:
        tensors = fit(tensors, skipped, sim_problems(tensors), explicit, path)
    xs = {t.name: x_given if x_given is not None else default_input(t.cols, args.seed)
          for t in tensors}
    names = [t.name for t in tensors]
    if dev is not None:
        result = run_tensors(dev, str(path), names, args.input, args.seed)
        where = f"on {args.port}"
    else:
        from lpaccel.cli.serve import run_in_process
        config = sim_config(tensors)
        report = run_in_process("lpaccel.cli.gguf:run_tensors",
                                {"path": str(path.resolve()), "names": names,
                                 "input_path": str(Path(args.input).resolve())
                                 if args.input else None,
                                 "seed": args.seed},
                                config, seed=args.seed)
        result = report["result"]
        where = (f"on the simulated SoC (in process, {config.memory_size // 1024} KiB on-chip "
                 f"memory, {config.gemv.lanes} lanes)")
    rows = [tensor_report(t, xs[t.name], r["bits"], r["counters"], result["word_bytes"])
            for t, r in zip(tensors, result["tensors"])]
    out = {"file": str(path), "where": where, "tensors": rows, "skipped": skipped,
           "ok": all(r["bit_exact"] for r in rows), "output": None}
    if args.output:
        y = np.asarray(result["tensors"][0]["bits"], dtype=np.uint32).view(np.float32)
        np.save(args.output, y)
        out["output"] = str(args.output)
    if args.json:
        print(json.dumps(out))
    else:
        print(report_text(out))
    return 0 if out["ok"] else 1


# --- lpaccel quantize-bcq ---------------------------------------------------------------

def read_float_tensors(path):
    """The tensors of a GGUF or safetensors file, for ``quantize-bcq``.

    Returns
    -------
    dict
        ``{name: value}`` in file order: a float32/float16 ``numpy.ndarray``
        (numpy order, ``[rows, cols]`` for a matrix), or for GGUF tensors of
        other types ``(uint8 data, GGMLQuantizationType)``, copied as they are.

    Raises
    ------
    ValueError
        On a missing or unreadable file, or a safetensors header that does
        not describe the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass a .gguf or .safetensors file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    reader = read_gguf(path)
    out = {}
    for t in reader.tensors:
        data = np.asarray(t.data)
        if _type_name(t) in ("F32", "F16"):
            out[t.name] = data
        else:
            out[t.name] = (np.asarray(data).view(np.uint8), t.tensor_type)
    return out


_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "i1", "U8": "u1",
                       "I16": "<i2", "I32": "<i4", "I64": "<i8"}


def _read_safetensors(path):
    """A safetensors file by hand: 8-byte little-endian header length, JSON header, data."""
    data = path.read_bytes()
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                raise ValueError(f"tensor {name} has dtype {info['dtype']}, which "
                                 f"quantize-bcq does not read (F32, F16, F64, integers); "
                                 f"convert the file to float32")
            lo, hi = info["data_offsets"]
            if not base <= base + lo <= base + hi <= len(data):
                raise ValueError(f"tensor {name} lies outside the file")
            a = np.frombuffer(data[base + lo:base + hi], dtype).reshape(info["shape"])
            out[name] = a.astype(np.float32) if a.dtype == np.float64 else a
        return out
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); it may be "
                         f"truncated: check its size or download it again") from None


def quantize_plan(tensors, names, group):
    """Which tensors become BCQ: the named ones, or every 2-D float matrix whose columns
    are a multiple of ``group``. Returns ``(to quantize, copied as they are)`` (names)."""
    def fits(v):
        return (isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.ndim == 2
                and v.shape[1] % group == 0)
    if names:
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"no tensor {', '.join(missing)} in the input (its tensors: "
                             f"{', '.join(list(tensors)[:12])}{' ...' if len(tensors) > 12 else ''}"
                             f"); check --tensor")
        bad = [n for n in names if not fits(tensors[n])]
        if bad:
            v = tensors[bad[0]]
            what = f"{v.dtype} {list(v.shape)}" if isinstance(v, np.ndarray) else \
                getattr(v[1], "name", v[1])
            raise ValueError(f"tensor {bad[0]} is {what}: quantize-bcq takes 2-D float "
                             f"matrices whose columns are a multiple of --group {group}; "
                             f"leave it out of --tensor")
        chosen = list(dict.fromkeys(names))
    else:
        chosen = [n for n, v in tensors.items() if fits(v)]
    if not chosen:
        raise ValueError(f"the input has no 2-D float matrix with a multiple of {group} "
                         f"columns to quantize")
    return chosen, [n for n in tensors if n not in chosen]


def quantize_main(args):
    """``lpaccel quantize-bcq IN OUT --planes q --group G [--offset]``; return the exit code."""
    from lpaccel import bcq
    bcq._check_planes(args.planes)
    bcq._check_bcq_group(args.group)
    out_path = Path(args.output)
    if not out_path.resolve().parent.is_dir():
        raise ValueError(f"{args.output}: directory {out_path.resolve().parent} does not "
                         f"exist; create it or write elsewhere")
    tensors = read_float_tensors(args.input)
    chosen, copied = quantize_plan(tensors, args.tensor, args.group)
    quantized, rows = {}, []
    for name in chosen:
        w = np.asarray(tensors[name], dtype=np.float32)
        qw = bcq.quantize_bcq(w, args.planes, group=args.group, offset=args.offset)
        quantized[name] = qw
        w64 = w.astype(np.float64)
        norm = float(np.linalg.norm(w64))
        err = float(np.linalg.norm(qw.dequantize_f64() - w64))
        rows.append({"name": name, "shape": list(w.shape),
                     "rel_frobenius_error": err / norm if norm else 0.0})
    extra = {n: tensors[n] for n in copied if args.keep_others}
    bcq.write_bcq_gguf(out_path, quantized, extra=extra)
    report = {"input": str(args.input), "output": str(out_path), "planes": args.planes,
              "group": args.group, "offset": bool(args.offset),
              "bits_per_weight": bcq.bits_per_weight(args.planes, args.group, args.offset),
              "tensors": rows, "copied": list(extra),
              "left_out": [n for n in copied if n not in extra]}
    if args.json:
        print(json.dumps(report))
        return 0
    label = f"BCQ{args.planes} g{args.group}" + (" +off" if args.offset else "")
    name_w = max([len("tensor")] + [len(r["name"]) for r in rows])
    lines = [f"lpaccel quantize-bcq {args.input} -> {out_path} ({label}, "
             f"{report['bits_per_weight']:g} bits per weight)",
             f"  {'tensor':{name_w}s}  {'shape':>13s}  rel. Frobenius error"]
    for r in rows:
        lines.append(f"  {r['name']:{name_w}s}  {r['shape'][0]:>5d} x {r['shape'][1]:<5d}  "
                     f"{r['rel_frobenius_error']:.4f}")
    if report["copied"]:
        lines.append(f"  copied as they are: {len(report['copied'])} tensors")
    if report["left_out"]:
        lines.append(f"  left out: {len(report['left_out'])} tensors (--keep-others copies "
                     f"them)")
    print("\n".join(lines))
    return 0
