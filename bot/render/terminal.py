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
        "path": min(max((len(f.path) for f in comparison.files), default=4), 60),
        "metric": min(max((len(m.name) for m in comparison.metrics), default=6), 40),
        "file": min(max((len(m.file) for m in comparison.metrics), default=4), 30),
        "column": min(max((len(c.name) for t in comparison.tables for c in t.columns), default=6), 24),
    }
    text = template("comparison.term.j2", "term").render(**values)
    console.print(text.rstrip("\n"), highlight=False, emoji=False)
