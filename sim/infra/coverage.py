"""Functional coverage: named bins, crosses of them, and the holes left.

A :class:`Coverage` holds coverpoints (a name and its bins) and crosses (a
tuple of coverpoint names, every combination of their bins a bin, minus the
combinations declared impossible). :meth:`Coverage.sample` takes one value
per coverpoint and counts the bin of each coverpoint and of each cross.
What was never hit is a *hole*; :meth:`Coverage.write` puts the counts in
``build/coverage/<name>.json`` and the holes in ``<name>.md``.

Each simulation process writes its own file (the name carries the process
id), so pytest-xdist workers never share one; merge them with::

    python -m lpaccel.sim.infra.coverage merge build/coverage

which sums the counts of every file with the same model (``model`` in the
JSON), prints the holes and writes ``merged-<model>.json`` and ``.md``.

Sampling is a dictionary update per coverpoint and cross: a test samples
once per job or descriptor, not per cycle, so it costs nothing measurable.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from lpaccel.paths import build_dir

__all__ = ["Coverage", "merge_dir", "main", "gemv_coverage", "gemv_sample",
           "dma_coverage", "dma_sample"]


def _key(values):
    return "|".join(str(v) for v in values)


class Coverage:
    """Bins and crosses of one coverage model.

    Parameters
    ----------
    model : str
        Name of the model (``"gemv"``, ``"dma"``): files of the same model merge.
    coverpoints : mapping of str to sequence of str
        Coverpoint name to its bins (strings; the sampled value must be one of them).
    crosses : sequence of tuple of str, optional
        Coverpoint names crossed; every combination of their bins is a bin.
    impossible : callable, optional
        ``impossible(cross, combination)`` is true for a combination that cannot
        occur (for example a group size with an ungrouped format): it is neither
        counted as a bin nor reported as a hole.

    Raises
    ------
    ValueError
        If a coverpoint has no bins or a cross names an unknown coverpoint.
    """

    def __init__(self, model: str, coverpoints: Mapping[str, Sequence[str]],
                 crosses: Sequence[tuple[str, ...]] = (),
                 impossible: Callable[[tuple[str, ...], tuple[str, ...]], bool] | None = None):
        self.model = model
        self.coverpoints = {name: [str(b) for b in bins] for name, bins in coverpoints.items()}
        for name, bins in self.coverpoints.items():
            if not bins:
                raise ValueError(f"coverpoint {name!r} has no bins: give it at least one")
        self.crosses = [tuple(c) for c in crosses]
        for cross in self.crosses:
            unknown = [n for n in cross if n not in self.coverpoints]
            if unknown:
                raise ValueError(f"cross {cross} names unknown coverpoints {unknown}: "
                                 f"declare them in coverpoints first")
        self.impossible = impossible or (lambda cross, combo: False)
        self.counts: dict[str, dict[str, int]] = {}
        for name, bins in self.coverpoints.items():
            self.counts[name] = dict.fromkeys(bins, 0)
        for cross in self.crosses:
            combos = itertools.product(*(self.coverpoints[n] for n in cross))
            self.counts[_key(cross)] = {_key(c): 0 for c in combos
                                        if not self.impossible(cross, c)}
        self.samples = 0

    def sample(self, **values: object) -> None:
        """Count one observation: a value for every coverpoint.

        Raises
        ------
        ValueError
            If a coverpoint is missing or a value is not one of its bins (a
            sampler that invents bins would hide holes).
        """
        values = {k: str(v) for k, v in values.items()}
        for name, bins in self.counts.items():
            if name in self.coverpoints:
                value = values.get(name)
                if value not in bins:
                    raise ValueError(f"{self.model}: coverpoint {name!r} sampled with "
                                     f"{value!r}, not one of its bins {list(bins)}")
                bins[value] += 1
        for cross in self.crosses:
            combo = _key(values[n] for n in cross)
            bins = self.counts[_key(cross)]
            if combo not in bins:
                raise ValueError(f"{self.model}: cross {cross} sampled {combo!r}, which "
                                 f"was declared impossible")
            bins[combo] += 1
        self.samples += 1

    def holes(self) -> dict[str, list[str]]:
        """Bins never hit, per coverpoint or cross (only those with holes)."""
        out = {}
        for name, bins in self.counts.items():
            missing = [b for b, n in bins.items() if n == 0]
            if missing:
                out[name] = missing
        return out

    def summary(self) -> str:
        """One line per coverpoint and cross: bins hit of bins, holes listed."""
        lines = [f"coverage {self.model}: {self.samples} samples"]
        for name, bins in self.counts.items():
            hit = sum(1 for n in bins.values() if n)
            missing = [b for b, n in bins.items() if n == 0]
            line = f"  {name}: {hit}/{len(bins)} bins"
            if missing:
                shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
                line += f"; holes: {shown}"
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"model": self.model, "samples": self.samples,
                "coverpoints": self.coverpoints, "crosses": [list(c) for c in self.crosses],
                "counts": self.counts}

    @classmethod
    def from_dict(cls, d: Mapping) -> Coverage:
        """Rebuild a coverage from :meth:`to_dict` (bins and counts as stored)."""
        cov = cls.__new__(cls)
        cov.model = d["model"]
        cov.coverpoints = {k: list(v) for k, v in d["coverpoints"].items()}
        cov.crosses = [tuple(c) for c in d["crosses"]]
        cov.impossible = lambda cross, combo: False
        cov.counts = {k: dict(v) for k, v in d["counts"].items()}
        cov.samples = d["samples"]
        return cov

    def merge(self, other: Coverage) -> None:
        """Add ``other``'s counts (same model; bins missing on one side are added)."""
        if other.model != self.model:
            raise ValueError(f"cannot merge coverage of model {other.model!r} into "
                             f"{self.model!r}: merge files of one model together")
        for name, bins in other.counts.items():
            mine = self.counts.setdefault(name, {})
            for b, n in bins.items():
                mine[b] = mine.get(b, 0) + n
        self.samples += other.samples

    def markdown(self) -> str:
        """The holes as a Markdown report."""
        lines = [f"# Coverage holes: {self.model}", "",
                 f"{self.samples} samples.", ""]
        for name, bins in self.counts.items():
            hit = sum(1 for n in bins.values() if n)
            lines.append(f"- `{name}`: {hit}/{len(bins)} bins hit")
        holes = self.holes()
        lines += ["", "## Holes (bins never hit)", ""]
        if not holes:
            lines.append("None.")
        for name, missing in holes.items():
            lines.append(f"- `{name}`: " + ", ".join(f"`{b}`" for b in missing))
        return "\n".join(lines) + "\n"

    def write(self, name: str, folder: str | os.PathLike | None = None) -> Path:
        """Write ``<folder>/<name>.json`` (counts) and ``<name>.md`` (holes).

        Parameters
        ----------
        name : str
            File stem; make it unique per process (e.g. with the pid) so that
            parallel runs do not overwrite each other.
        folder : path-like, optional
            Default ``build/coverage``.

        Returns
        -------
        pathlib.Path
            The JSON file.
        """
        folder = Path(folder) if folder is not None else build_dir("coverage")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        (folder / f"{name}.md").write_text(self.markdown())
        return path


# --- the models --------------------------------------------------------------

PAUSES = ("none", "periodic", "random")


def gemv_coverage(config) -> Coverage:
    """The GEMV job space of one engine build (:class:`~lpaccel.rtl.config.GemvConfig`).

    Coverpoints: ``fmt`` (every weight format), ``group`` (``none`` or a
    group size), ``rows`` (``one``; ``tile``: 2 to ``lanes``; ``many``),
    ``cols`` (``one_block``: K = 32; ``partial_chunk``: the row ends in a
    chunk of fewer groups than a scale beat has slots, ``docs/gemv.md``;
    ``full_chunks``: whole chunks only; ``max_cols``: K at the buffer
    size), ``idle`` and ``backpressure`` (pause modes). Crosses: format x
    group, format x rows, format x cols, idle x backpressure and format x
    idle x backpressure. F16 has no scale beats, hence no partial chunk.
    """
    from lpaccel.rtl.config import GROUP_SIZES, WeightFormat
    fmts = [f.name for f in WeightFormat]

    def impossible(cross, combo):
        v = dict(zip(cross, combo))
        if "fmt" not in v:
            return False
        fmt = WeightFormat[v["fmt"]]
        if "group" in v and (v["group"] == "none") == fmt.grouped:
            return True
        return v.get("cols") == "partial_chunk" and fmt is WeightFormat.F16

    return Coverage("gemv", {
        "fmt": fmts, "group": ["none", *map(str, GROUP_SIZES)],
        "rows": ["one", "tile", "many"],
        "cols": ["one_block", "partial_chunk", "full_chunks", "max_cols"],
        "idle": PAUSES, "backpressure": PAUSES,
    }, crosses=[("fmt", "group"), ("fmt", "rows"), ("fmt", "cols"), ("idle", "backpressure"),
                ("fmt", "idle", "backpressure")], impossible=impossible)


def gemv_sample(cov: Coverage, config, weights, idle: str, backpressure: str) -> None:
    """Sample one job (a :class:`~lpaccel.quant.QuantizedWeights`) into ``cov``."""
    from lpaccel.rtl.config import BLOCK
    rows, cols, fmt = weights.rows, weights.cols, weights.fmt
    if cols == config.max_cols:
        cols_bin = "max_cols"
    elif cols == BLOCK:
        cols_bin = "one_block"
    elif fmt.slot_bits and (cols // (weights.group or BLOCK)) % config.slots_per_beat(fmt):
        cols_bin = "partial_chunk"
    else:
        cols_bin = "full_chunks"
    cov.sample(fmt=fmt.name, group=weights.group if fmt.grouped else "none",
               rows="one" if rows == 1 else "tile" if rows <= config.lanes else "many",
               cols=cols_bin, idle=idle, backpressure=backpressure)


def dma_coverage(config) -> Coverage:
    """The DMA descriptor space of one engine build (:class:`~lpaccel.rtl.dma.engine.DmaConfig`).

    Coverpoints: ``direction`` (``mm2s``, ``s2mm``); ``length`` (``zero``,
    ``sub_beat``, ``one_beat``, ``in_burst``: up to ``max_burst_beats``
    beats, ``multi_burst``, ``page``: 4 KiB or more); ``align`` (which ends
    are off the beat grid: ``aligned``, ``start``, ``end``, ``both``);
    ``page4k`` (``inside`` or ``crosses`` a 4 KiB boundary); ``idle``,
    ``backpressure`` and ``bus`` (pause modes); ``error`` (the status code).
    Crosses: direction with each of length, align, page4k and error;
    direction x length x align; idle x backpressure x bus; direction x
    error x bus. Impossible: LENGTH_MISMATCH on MM2S; ends that a length
    class cannot have (a zero or one-beat length has both ends or neither
    off the grid, a sub-beat one not neither); a zero length crossing a page.
    """
    from lpaccel.rtl.dma.engine import DmaError

    def impossible(cross, combo):
        v = dict(zip(cross, combo))
        if v.get("direction") == "mm2s" and v.get("error") == "LENGTH_MISMATCH":
            return True
        length, align = v.get("length"), v.get("align")
        if length in ("zero", "one_beat") and align in ("start", "end"):
            return True
        if length == "sub_beat" and align == "aligned":
            return True
        return length == "zero" and v.get("page4k") == "crosses"

    return Coverage("dma", {
        "direction": ["mm2s", "s2mm"],
        "length": ["zero", "sub_beat", "one_beat", "in_burst", "multi_burst", "page"],
        "align": ["aligned", "start", "end", "both"],
        "page4k": ["inside", "crosses"],
        "idle": PAUSES, "backpressure": PAUSES, "bus": PAUSES,
        "error": [e.name for e in DmaError],
    }, crosses=[("direction", "length"), ("direction", "align"), ("direction", "page4k"),
                ("direction", "error"), ("direction", "length", "align"),
                ("idle", "backpressure", "bus"), ("direction", "error", "bus")],
        impossible=impossible)


def dma_sample(cov: Coverage, config, direction: str, addr: int, length: int, error,
               idle: str, backpressure: str, bus: str) -> None:
    """Sample one descriptor and the error its status reported into ``cov``."""
    b = config.beat_bytes
    if length == 0:
        length_bin = "zero"
    elif length < b:
        length_bin = "sub_beat"
    elif length == b:
        length_bin = "one_beat"
    elif length <= b * config.max_burst_beats:
        length_bin = "in_burst"
    elif length < 4096:
        length_bin = "multi_burst"
    else:
        length_bin = "page"
    start_off, end_off = addr % b != 0, (addr + length) % b != 0
    align = {(False, False): "aligned", (True, False): "start",
             (False, True): "end", (True, True): "both"}[start_off, end_off]
    crosses = length > 0 and addr // 4096 != (addr + length - 1) // 4096
    cov.sample(direction=direction, length=length_bin, align=align,
               page4k="crosses" if crosses else "inside", idle=idle,
               backpressure=backpressure, bus=bus, error=error.name)


def merge_dir(folder: str | os.PathLike,
              files: Iterable[Path] | None = None) -> dict[str, Coverage]:
    """Merge every per-run JSON file in ``folder`` by model.

    Files named ``merged-*.json`` (earlier merges) are skipped.

    Returns
    -------
    dict of str to Coverage
        Model name to its merged coverage.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.json")) if files is None else files
    merged: dict[str, Coverage] = {}
    for f in files:
        if f.name.startswith("merged-"):
            continue
        cov = Coverage.from_dict(json.loads(f.read_text()))
        if cov.model in merged:
            merged[cov.model].merge(cov)
        else:
            merged[cov.model] = cov
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lpaccel.sim.infra.coverage merge DIR``: merge, print, write."""
    parser = argparse.ArgumentParser(prog="python -m lpaccel.sim.infra.coverage")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge the per-run files of a folder and print the holes")
    m.add_argument("folder", nargs="?", default=str(build_dir("coverage")))
    args = parser.parse_args(argv)
    merged = merge_dir(args.folder)
    if not merged:
        print(f"no coverage files in {args.folder}", file=sys.stderr)
        return 1
    for model, cov in sorted(merged.items()):
        print(cov.summary())
        cov.write(f"merged-{model}", args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
