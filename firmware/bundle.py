"""Job bundles for ``lpaccel-fw gemv``: one GEMV's device-ready bytes in a file.

A bundle holds what the C tool needs to run one job on pre-placed buffers
without any Python on the device side: the weights repacked for an engine
geometry (:func:`lpaccel.repack.repack_weights_bytes`), the activations in
the device layout (:func:`lpaccel.driver.pack_activations` of the BFP16
vector), the shape, format and group (BCQ: planes and offset), and optionally
the golden results
(``sim/golden/gemv.py``) the tool compares its results with.

File layout (little-endian ``uint32`` fields)::

    0   magic "LPFB"          24  lanes              40  expected rows (0 or rows)
    4   version (2)           28  word_bits          44  BCQ: planes | offset << 8
    8   format code           32  weight bytes       48  weights, activations,
    12  rows                  36  activation bytes       expected float32 bits
    16  cols
    20  group

Version 1 (before BCQ) had 0 at offset 44; it is still read. ``lpaccel-fw
gemv BUNDLE OUT`` writes ``rows`` float32 to ``OUT`` (:func:`read_results`).
"""

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpaccel.driver import pack_activations
from lpaccel.quant import (
    QuantizedWeights,
    parse_weight_format,
    quantize_activations,
    quantize_weights,
)
from lpaccel.repack import repack_weights_bytes
from lpaccel.rtl.config import GemvConfig

__all__ = ["BUNDLE_MAGIC", "BUNDLE_VERSION", "Bundle", "make_bundle", "read_bundle",
           "read_results", "write_bundle"]

BUNDLE_MAGIC = b"LPFB"
BUNDLE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_HEADER = struct.Struct("<4s11I")


@dataclass(frozen=True)
class Bundle:
    """The contents of a bundle file (see the module docstring)."""

    fmt: int
    rows: int
    cols: int
    group: int
    lanes: int
    word_bits: int
    weights: bytes
    activations: bytes
    expected: np.ndarray | None = None      # float32 [rows], the golden results
    planes: int = 0                         # BCQ: binary planes (1 to 4); 0 otherwise
    offset: bool = False                    # BCQ: a per-group offset

    def to_bytes(self):
        """The file image."""
        exp = b"" if self.expected is None else \
            np.asarray(self.expected, dtype="<f4").tobytes()
        head = _HEADER.pack(BUNDLE_MAGIC, BUNDLE_VERSION, self.fmt, self.rows, self.cols,
                            self.group, self.lanes, self.word_bits, len(self.weights),
                            len(self.activations), len(exp) // 4,
                            self.planes | int(self.offset) << 8)
        return head + self.weights + self.activations + exp


def make_bundle(weights, x, config=None, golden=True):
    """Build a :class:`Bundle` for ``y = W x``.

    Parameters
    ----------
    weights : QuantizedWeights
    x : numpy.ndarray
        ``cols`` float activations (quantized to BFP16 here), or a
        ``(mant, exp)`` pair.
    config : GemvConfig, optional
        The device's engine geometry (``CAP_ENGINE``); default ``GemvConfig()``,
        the default SoC's.
    golden : bool
        Include the golden model's results.
    """
    if not isinstance(weights, QuantizedWeights):
        raise ValueError(f"weights is a {type(weights).__name__}: pass QuantizedWeights "
                         f"(lpaccel.quant.quantize_weights)")
    config = config if config is not None else GemvConfig()
    mant, exp = x if isinstance(x, tuple) else quantize_activations(x)
    if np.asarray(mant).size != weights.cols:
        raise ValueError(f"x has {np.asarray(mant).size} elements but the weights have "
                         f"{weights.cols} columns; pass a vector of length {weights.cols}")
    expected = None
    if golden:
        # sim/ is verification code; only this optional check needs it.
        from lpaccel.sim.golden.gemv import gemv_golden_quantized
        expected = gemv_golden_quantized(weights, mant, exp)[1]
    return Bundle(int(weights.fmt), weights.rows, weights.cols, weights.group, config.lanes,
                  config.word_bits, repack_weights_bytes(weights, config),
                  pack_activations(mant, exp), expected, weights.planes, weights.offset)


def write_bundle(path, weights, x, config=None, golden=True):
    """Write the bundle of ``y = W x`` to ``path``; return the :class:`Bundle`."""
    bundle = make_bundle(weights, x, config, golden)
    Path(path).write_bytes(bundle.to_bytes())
    return bundle


def read_bundle(path):
    """Read a bundle file back.

    Raises
    ------
    ValueError
        If the file is not a bundle of this version or is truncated.
    """
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError(f"{path}: {len(data)} bytes is shorter than a bundle header "
                         f"({_HEADER.size}); write it with lpaccel.firmware.bundle")
    magic, version, fmt, rows, cols, group, lanes, word_bits, nw, na, ne, bcq = \
        _HEADER.unpack_from(data)
    if magic != BUNDLE_MAGIC or version not in _READABLE_VERSIONS:
        raise ValueError(f"{path}: not an lpaccel bundle of version "
                         f"{' or '.join(map(str, _READABLE_VERSIONS))} (magic {magic!r}, "
                         f"version {version}); write it with lpaccel.firmware.bundle")
    if bcq & ~0x1FF or (version == 1 and bcq):
        raise ValueError(f"{path}: word 44 is {bcq:#x}, but a version-{version} bundle holds "
                         f"{'0 there' if version == 1 else 'planes | offset << 8'}; rewrite "
                         f"it with lpaccel.firmware.bundle")
    if len(data) != _HEADER.size + nw + na + 4 * ne:
        raise ValueError(f"{path}: {len(data)} bytes, the header announces "
                         f"{_HEADER.size + nw + na + 4 * ne}; the file is truncated")
    o = _HEADER.size
    expected = np.frombuffer(data[o + nw + na:], dtype="<f4").astype(np.float32) if ne else None
    return Bundle(fmt, rows, cols, group, lanes, word_bits, data[o:o + nw],
                  data[o + nw:o + nw + na], expected, bcq & 0xFF, bool(bcq >> 8))


def read_results(path, rows=None):
    """The ``float32`` results ``lpaccel-fw gemv`` wrote."""
    y = np.fromfile(path, dtype="<f4").astype(np.float32)
    if rows is not None and y.size != rows:
        raise ValueError(f"{path}: {y.size} results, expected {rows}")
    return y


def main(argv=None):
    """``python -m lpaccel.firmware.bundle --format q4_0 --rows R --cols K OUT``: random job."""
    p = argparse.ArgumentParser(prog="python -m lpaccel.firmware.bundle",
                                description="Write a random GEMV job bundle for lpaccel-fw gemv.")
    p.add_argument("out")
    p.add_argument("--format", default="q4_0")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--cols", type=int, default=256)
    p.add_argument("--group", type=int, default=None)
    p.add_argument("--bits", type=int, default=None, help="BCQ: binary planes, 1 to 4")
    p.add_argument("--offset", action="store_true", help="BCQ: a per-group offset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lanes", type=int, default=GemvConfig().lanes)
    p.add_argument("--word-bits", type=int, default=GemvConfig().word_bits)
    args = p.parse_args(argv)
    fmt = parse_weight_format(args.format)
    rng = np.random.default_rng(args.seed)
    bcq = {"planes": args.bits, "offset": args.offset} if args.bits or args.offset else {}
    w = quantize_weights(rng.standard_normal((args.rows, args.cols)), fmt, args.group, **bcq)
    x = rng.standard_normal(args.cols).astype(np.float32)
    b = write_bundle(args.out, w, x, GemvConfig(lanes=args.lanes, word_bits=args.word_bits))
    print(f"{args.out}: {fmt.name} {b.rows} x {b.cols} group {b.group}, "
          f"{len(b.weights)} weight bytes, {len(b.activations)} activation bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
