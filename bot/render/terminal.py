"""The report for `tierbot compare`, the demo and the pre-push hook: rich markup, user data escaped.

Compact by design: every file and metric, then a few lines per table, JSON and image diff and the first
lines of text diffs; the HTML report has the rest.
"""

from rich.console import Console

from bot.compare import Comparison
from bot.compare.numbers import format_number, format_percent, format_signed
from bot.render.templates import template
from bot.render.view import ReportContext, full_view, variables


def render_terminal(comparison: Comparison, ctx: ReportContext, console: Console) -> None:
    """Print the report to `console`."""
    view = full_view(comparison)
    values = variables(comparison, ctx, view)
    values["widths"] = {
        "path": _width((f.path for f in comparison.files), "", 60),
        "metric": _width((m.name for m in comparison.metrics), "metric", 40),
        "file": _width((m.file for m in comparison.metrics), "file", 30),
        "column": _width((c.name for t in comparison.tables for c in t.columns), "column", 24),
        # numbers are never shortened: a column is as wide as its widest
        "number": _width(_numbers(comparison), "", 40, at_least=10),
        "percent": _width((format_percent(m.delta_pct) for m in comparison.metrics), "", 40, at_least=8),
    }
    text = template("comparison.term.j2", "term").render(**values)
    console.print(text.rstrip("\n"), highlight=False, emoji=False)


def _width(names, header: str, cap: int, at_least: int = 0) -> int:
    """A column as wide as its longest name, at most `cap`, and never narrower than its header."""
    return max(len(header), at_least, min(max((len(name) for name in names), default=4), cap))


def _numbers(comparison: Comparison):
    """Every number the metrics and tables columns print, as printed."""
    for m in comparison.metrics:
        yield from (format_number(m.base), format_number(m.head), format_signed(m.delta))
    for column in (c for t in comparison.tables for c in t.columns):
        yield from (format_number(column.max_abs_delta), format_signed(column.mean_delta))
        yield format_number(column.p99_abs_delta)
