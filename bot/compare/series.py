"""Metric series: values per step on each side, drawn as one chart of main against the branch.

Two sources. A metrics file (listed in `compare.metrics`, or named like one) may hold lists of numbers,
`"loss": [0.9, 0.7, …]` one an epoch: each list of at least two numbers is a series named by its path
(`loss`, `history.val_loss`) against its positions. It is read as the metrics comparer reads it
(`load_metrics`, whose flattened names say where lists are: `loss[0]`, `loss[1]`…), so the two never
disagree about a file; and, as everywhere in the engine, only when it changed: identical files are
never opened. A table of steps listed in `compare.plots` (CSV or TSV, a header row) gives a series per
`y` column against its `x` column (or the row number), changed or not, since the spec asks for its
charts (an identical one is read once); cells that are not numbers (an empty `val_loss` between
evaluations) are no point.

Series are stored with the comparison, so they are thinned first (`decimate`): a chart is a few hundred
pixels wide, a table of steps may have a million rows. A problem with a plot (its file missing on both
sides, a column missing on one) is said; a metrics file that cannot be read is the metrics comparer's to
report, and has no series here.
"""

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.compare.files import SIDE_NAMES, FileUnreadable, Pair, Side, kind_by_name
from bot.compare.metrics import MetricsUnparseable, Number, lists_in, load_metrics
from bot.compare.model import FileProblem, MetricSeries, SeriesSide
from bot.manifest import FileEntry, Manifest
from bot.spec import CompareSection, PlotFile

MAX_SERIES = 40  # charts in one report; the first ones by file and name
MAX_PLOT_BYTES = 64 * 1024 * 1024  # a table of steps read whole; far beyond a million rows of a few columns
BUCKETS = 200  # a stored side keeps at most two points a bucket: its lowest and its highest


def decimate(xs: Sequence[Number], ys: Sequence[Number], buckets: int = BUCKETS) -> tuple[list, list]:
    """At most `2 × buckets` points (and the first and the last) that draw like all of them: the lowest
    and the highest point of each of `buckets` equal runs of points, in their order. Spikes survive, as
    they would not in an average or every n-th point; linear in the points."""
    count = len(ys)
    if count <= 2 * buckets:
        return list(xs), list(ys)
    keep = {0, count - 1}
    for bucket in range(buckets):
        run = range(bucket * count // buckets, (bucket + 1) * count // buckets)
        keep.add(min(run, key=ys.__getitem__))
        keep.add(max(run, key=ys.__getitem__))
    chosen = sorted(keep)
    return [xs[i] for i in chosen], [ys[i] for i in chosen]


def side_of(xs: list[Number], ys: list[Number]) -> SeriesSide:
    """A stored side: the drawable points thinned, the whole series' length and last value."""
    drawable = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    thin_x, thin_y = decimate([x for x, _ in drawable], [y for _, y in drawable])
    return SeriesSide(x=thin_x, y=thin_y, points=len(ys), last=ys[-1] if ys else None)


def _metrics_series(pair: Pair) -> list[MetricSeries]:
    sides: dict[Side, dict] = {}
    for side in pair.sides:
        try:
            sides[side] = lists_in(load_metrics(pair, side))
        except MetricsUnparseable:
            sides[side] = {}  # said by the metrics comparer
    names = sorted(set().union(*sides.values()))
    return [
        MetricSeries(
            file=pair.path,
            name=name,
            base=side_of(*sides["base"][name]) if name in sides.get("base", {}) else None,
            head=side_of(*sides["head"][name]) if name in sides.get("head", {}) else None,
        )
        for name in names
    ]


def _number(cell: str | None) -> float | None:
    try:
        return float(cell) if cell else None
    except ValueError:
        return None


def read_columns(pair: Pair, side: Side, plot: PlotFile) -> dict[str, tuple[list[Number], list[Number]]]:
    """Each `y` column of one side's table of steps against `x` (or the row number). FileUnreadable
    when it cannot be read or lacks a column, saying which and what it has."""
    data = pair.read(side, MAX_PLOT_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileUnreadable(f"{SIDE_NAMES[side]}'s {pair.path} is not UTF-8 (offset {exc.start})") from None
    rows = csv.reader(io.StringIO(text), delimiter="\t" if pair.path.lower().endswith(".tsv") else ",")
    header = next(rows, [])
    wanted = [plot.x, *plot.y] if plot.x else plot.y
    missing = [column for column in wanted if column not in header]
    if missing:
        listed = ", ".join(header[:20]) or "none"
        raise FileUnreadable(
            f"{SIDE_NAMES[side]}'s {pair.path} has no column {', '.join(map(repr, missing))} to plot "
            f"(its columns: {listed})"
        )
    at = {column: header.index(column) for column in wanted}
    found: dict[str, tuple[list[Number], list[Number]]] = {column: ([], []) for column in plot.y}
    for number, row in enumerate(rows, start=1):
        x = _number(row[at[plot.x]] if at[plot.x] < len(row) else None) if plot.x else number
        if x is None:
            continue
        for column in plot.y:
            y = _number(row[at[column]] if at[column] < len(row) else None)
            if y is not None:
                found[column][0].append(x)
                found[column][1].append(y)
    return found


def _identical(pair: Pair) -> bool:
    return pair.base is not None and pair.head is not None and pair.base.hash == pair.head.hash


def _plot_series(pair: Pair, plot: PlotFile) -> tuple[list[MetricSeries], list[FileProblem]]:
    columns: dict[Side, dict] = {}
    problems = []
    for side in pair.sides:
        if side == "head" and "base" in columns and _identical(pair):
            columns["head"] = columns["base"]
            continue
        try:
            columns[side] = read_columns(pair, side, plot)
        except FileUnreadable as exc:
            problems.append(FileProblem(path=pair.path, message=f"not plotted: {exc}"))
    series = [
        MetricSeries(
            file=pair.path,
            name=column,
            x=plot.x,
            base=side_of(*columns["base"][column]) if "base" in columns else None,
            head=side_of(*columns["head"][column]) if "head" in columns else None,
        )
        for column in plot.y
        if columns
    ]
    return series, problems


def compare_series(
    base: Manifest,
    head: Manifest,
    locate_base: Callable[[FileEntry], Path],
    locate_head: Callable[[FileEntry], Path],
    spec: CompareSection,
) -> tuple[list[MetricSeries], list[FileProblem]]:
    """Every series of both runs' metrics files and listed tables of steps (at most MAX_SERIES), and the
    problems of the plots the spec lists."""
    series: list[MetricSeries] = []
    problems: list[FileProblem] = []
    for path in sorted(base.files.keys() | head.files.keys()):
        pair = Pair(path, base.files.get(path), head.files.get(path), locate_base, locate_head)
        metrics = kind_by_name(path, spec.metric_file(path) is not None) == "metrics"
        if metrics and not spec.ignored(path) and not _identical(pair):
            series += _metrics_series(pair)
    for plot in spec.plots:
        pair = Pair(plot.file, base.files.get(plot.file), head.files.get(plot.file), locate_base, locate_head)
        if not pair.sides:
            message = f"tierbot.yaml lists plot file {plot.file}, but neither run made it"
            problems.append(FileProblem(path=plot.file, message=message))
            continue
        drawn, trouble = _plot_series(pair, plot)
        series += drawn
        problems += trouble
    return series[:MAX_SERIES], problems
