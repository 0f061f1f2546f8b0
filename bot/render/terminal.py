"""The report for `tierbot compare`, the demo and the pre-push hook: rich markup, user data escaped.

Compact by design: every file and metric, then a few lines per table, JSON and image diff and the first
lines of text diffs; the HTML report has the rest.
"""

from rich.console import Console

from bot.compare import Comparison
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
    }
    text = template("comparison.term.j2", "term").render(**values)
    console.print(text.rstrip("\n"), highlight=False, emoji=False)


def _width(names, header: str, cap: int) -> int:
    """A column as wide as its longest name, at most `cap`, and never narrower than its header."""
    return max(len(header), min(max((len(name) for name in names), default=4), cap))
