"""Charts, one renderer for all: main's history of a metric with the branch's value marked, and a metric
series with a line per side, as inline SVG (`templates/chart.svg.j2`: autoescaped, no script, nothing
fetched); and the terminal's sparkline of a history.

This module only turns numbers into coordinates (`plot`). Lines are thinned to the plot's width first
(`bot.compare.series.decimate`: each pixel column's lowest and highest point), so a history of 10,000
points draws as fast as one of 600 and looks the same. Main and the branch differ in more than colour:
main is a solid line, the branch a dashed one, and a value of the branch a diamond; the legend says so.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from bot.compare.model import MetricChange, MetricSeries
from bot.compare.numbers import format_number
from bot.compare.series import decimate
from bot.history import MetricRange
from bot.render.templates import template

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40  # room for the y axis' numbers, the legend, the x axis
PLOT_BUCKETS = (WIDTH - LEFT - RIGHT) // 2  # a pixel column's lowest and highest point
DOTS = 60  # a line of at most this many points shows each one as a dot
BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40


@dataclass(frozen=True)
class Line:
    label: str
    side: str  # "main" or "branch": how it is drawn
    xs: Sequence[float]
    ys: Sequence[float]


@dataclass(frozen=True)
class Mark:
    label: str
    side: str
    x: float
    y: float


@dataclass(frozen=True)
class Tick:
    at: float  # pixels along its axis
    text: str


@dataclass(frozen=True)
class DrawnLine:
    label: str
    side: str
    points: str  # the polyline's "x,y x,y …", in pixels
    dots: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class DrawnMark:
    label: str
    side: str
    x: float
    y: float
    value: str


@dataclass(frozen=True)
class Drawn:
    """What the template draws: everything in pixels of a WIDTH × HEIGHT picture, texts as they read."""

    title: str
    x_label: str
    lines: list[DrawnLine]
    marks: list[DrawnMark]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def _span(values: Sequence[float]) -> tuple[float, float]:
    """The axis' range: the values' own, widened a little (or around a single value) so that no point
    sits on the frame."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or abs(low) * 0.05 or 1.0
    return low - pad, high + pad


def _scale(low: float, high: float, start: float, end: float):
    return lambda value: round(start + (value - low) / (high - low) * (end - start), 1)


def plot(
    title: str, x_label: str, lines: Sequence[Line], marks: Sequence[Mark] = (), x_names: dict | None = None
) -> Drawn:
    """Lines (thinned to the plot's width) and marks in pixels, with ticks at the data's extremes;
    `x_names` names x positions (a commit) instead of their number. Every number is finite: histories
    keep only such, and stored series only such points (`bot.compare.series.side_of`)."""
    thin = [(line, *decimate(line.xs, line.ys, PLOT_BUCKETS)) for line in lines]
    all_x = [x for _, xs, _ in thin for x in xs] + [m.x for m in marks] or [0.0]
    all_y = [y for _, _, ys in thin for y in ys] + [m.y for m in marks] or [0.0]
    px = _scale(*_span(all_x), LEFT, WIDTH - RIGHT)
    py = _scale(*_span(all_y), HEIGHT - BOTTOM, TOP)
    drawn = [
        DrawnLine(
            line.label,
            line.side,
            " ".join(f"{px(x)},{py(y)}" for x, y in zip(xs, ys, strict=True)),
            [(px(x), py(y)) for x, y in zip(xs, ys, strict=True)] if len(xs) <= DOTS else [],
        )
        for line, xs, ys in thin
    ]
    shown = [DrawnMark(m.label, m.side, px(m.x), py(m.y), format_number(m.y)) for m in marks]
    low, high = min(all_x), max(all_x)
    named = {x: name for x, name in (x_names or {}).items() if low <= x <= high}
    x_ticks = {px(x): text for x, text in (named or {x: format_number(x) for x in (low, high)}).items()}
    y_ticks = {py(y): format_number(y) for y in (min(all_y), max(all_y))}
    return Drawn(
        title=title,
        x_label=x_label,
        lines=drawn,
        marks=shown,
        y_ticks=[Tick(at, text) for at, text in y_ticks.items()],
        x_ticks=[Tick(at, text) for at, text in x_ticks.items()],
    )


def svg(chart: Drawn) -> Markup:
    """The chart as an `<svg>` element, for a page or on its own."""
    return Markup(template("chart.svg.j2", "html").render(chart=chart))


def history_svg(metric: MetricChange, recent: MetricRange) -> Markup:
    """Main's last runs as a line, oldest first, and the branch's value as a diamond right after them."""
    count = recent.count
    runs = f"{count} run{'s' if count != 1 else ''}"
    main = Line(f"{recent.branch}'s last {runs}", "main", range(count), recent.values)
    branch = metric.head if isinstance(metric.head, int | float) and math.isfinite(metric.head) else None
    marks = [Mark("the branch", "branch", count, branch)] if branch is not None else []
    names = {0: recent.commits[0], count - 1: recent.commits[-1], count: "branch"}
    title = f"{metric.name} ({metric.file})"
    return svg(plot(title, f"{recent.branch}'s runs, oldest first", [main], marks, names))


def series_svg(series: MetricSeries) -> Markup:
    """Main's and the branch's series of one metric as two lines."""
    lines = [
        Line(label, side, values.x, values.y)
        for label, side, values in (("main", "main", series.base), ("branch", "branch", series.head))
        if values is not None
    ]
    return svg(plot(f"{series.name} ({series.file})", series.x or "step", lines))


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """A history in at most `width` block characters, the lowest ▁ and the highest █; a long one is
    thinned as charts are, so its spikes still show."""
    _, thin = decimate(range(len(values)), values, max(1, (width - 2) // 2))
    if not thin:
        return ""
    low, high = min(thin), max(thin)
    if high == low:
        return BLOCKS[3] * len(thin)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((value - low) / (high - low) * top)] for value in thin)
