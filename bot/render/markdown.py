"""The comparison as GitHub Markdown (the sticky PR comment, the check-run summary) that always fits.

GitHub refuses a comment over 65,536 characters and a check-run summary over 65,535. The verdict, the
file table and the metrics come first; per-file detail sections (text, table, JSON and image diffs)
follow, each folded in `<details>`. When the whole does not fit, detail sections are dropped whole, the
least important first — a failing file's section is kept longest, then sections of files changed beyond
their tolerance, tables before JSON, images and text — and the report links the full HTML report. Only
when the summary alone is still too long are table rows folded into a closing count row: identical files
first, then unchanged metrics, then the remaining rows (files and metrics that fail the check are kept
longest). A table or a diff is never cut in the middle.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from jinja2 import Template

from bot.compare import Comparison, FileChange, MetricChange
from bot.compare.model import JsonDiff, TableDiff, TextDiff
from bot.render.templates import template
from bot.render.view import (
    KIND_RANK,
    QUIET,
    STATUS_ORDER,
    Detail,
    ReportContext,
    View,
    full_view,
    variables,
)

GITHUB_COMMENT_LIMIT = 65_536  # characters of an issue or pull-request comment
GITHUB_CHECK_SUMMARY_LIMIT = 65_535  # characters of a check run's output.summary


def _fold_files(view: View, files: list[FileChange], keep: int | None, failing: set[str]) -> View:
    """Quiet rows become counts; with `keep`, only that many news rows stay, failing files first."""
    listed = [f for f in files if f.status not in QUIET]
    if keep is not None:
        chosen = {f.path for f in sorted(listed, key=lambda f: f.path not in failing)[:keep]}
        listed = [f for f in listed if f.path in chosen]
    hidden = Counter(f.status for f in files) - Counter(f.status for f in listed)
    return replace(view, files=listed, hidden_files={s: hidden[s] for s in STATUS_ORDER if hidden[s]})


def _fold_metrics(view: View, metrics: list[MetricChange], keep: int | None) -> View:
    """Unchanged metrics become a count; with `keep`, failed and worse metrics are kept first."""
    moved = [m for m in metrics if m.change != "same"]
    ranked = sorted(moved, key=lambda m: (not m.failed, m.assessment != "worse"))
    chosen = {id(m) for m in (ranked if keep is None else ranked[:keep])}
    listed = [m for m in metrics if id(m) in chosen]
    return replace(view, metrics=listed, hidden_metrics=len(metrics) - len(listed))


@dataclass
class _Measure:
    """Renders a view of one comparison and says whether it fits the limit."""

    template: Template
    variables: dict
    limit: int

    def text(self, view: View) -> str:
        return self.template.render(**(self.variables | {"view": view}))

    def fits(self, view: View) -> bool:
        return len(self.text(view)) <= self.limit


def _largest_that_fits(measure: _Measure, make: Callable[[int], View], count: int) -> View | None:
    """Binary search for the most rows `make(keep)` can list with the summary still fitting."""
    low, high, best = 0, count, None
    while low <= high:
        middle = (low + high) // 2
        candidate = make(middle)
        if measure.fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _fit_summary(measure: _Measure, comparison: Comparison, view: View) -> View:
    """Shorten the tables, the least useful rows first, until the summary alone fits."""
    files, metrics = list(comparison.files), list(comparison.metrics)
    failing = measure.variables["failing"]
    if measure.fits(view):
        return view
    view = _fold_files(view, files, None, failing)
    if measure.fits(view):
        return view
    view = _fold_metrics(view, metrics, None)
    if measure.fits(view):
        return view
    news = view
    folded = _largest_that_fits(measure, lambda n: _fold_files(news, files, n, failing), len(news.files))
    if folded is not None:
        return folded
    bare = _fold_files(view, files, 0, failing)
    folded = _largest_that_fits(measure, lambda n: _fold_metrics(bare, metrics, n), len(bare.metrics))
    return folded or _fold_metrics(bare, metrics, 0)


def _with_details(summary: View, details: list[Detail], kept: set[int]) -> View:
    """The summary with the details whose indexes are kept, in file order, and counts of the others."""
    omitted = Counter(d.kind for i, d in enumerate(details) if i not in kept)
    return replace(
        summary,
        details=[d for i, d in enumerate(details) if i in kept],
        omitted_details=sum(omitted.values()),
        omitted_kinds={kind: omitted[kind] for kind in KIND_RANK if omitted[kind]},
    )


def _floor(detail: Detail) -> int:
    """A cheap lower bound of a section's length, to skip rendering what cannot fit anyway."""
    body = detail.body
    if isinstance(body, TextDiff):
        return len(body.diff)
    if isinstance(body, TableDiff):  # every row of its tables takes at least this many characters
        rows = len(body.top_changes) + len(body.first_changes) + len(body.columns) + len(body.schema_changes)
        return 20 * rows
    if isinstance(body, JsonDiff):
        return 20 * len(body.changes)
    return 0


def _choose_details(details: list[Detail], room: int, length: Callable[[Detail], int]) -> list[int]:
    """Indexes of the sections kept, most important first: each taken whole when it still fits."""
    chosen = []
    for index in sorted(range(len(details)), key=lambda i: details[i].importance(i)):
        detail = details[index]
        if _floor(detail) > room:
            continue
        needed = length(detail)
        if needed <= room:
            chosen.append(index)
            room -= needed
    return chosen


def render_markdown(comparison: Comparison, ctx: ReportContext, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The PR comment / check summary: summary first, detail sections folded, at most `limit` characters.

    Pass `limit=GITHUB_CHECK_SUMMARY_LIMIT` for a check run's summary.
    """
    full = full_view(comparison)
    measure = _Measure(template("comparison.md.j2", "md"), variables(comparison, ctx, full), limit)
    floor = sum(_floor(detail) for detail in full.details)
    if floor < limit and measure.fits(full):  # rendering megabytes of details only to drop them is slow
        return measure.text(full)
    no_details = _with_details(full, full.details, set())
    summary = _fit_summary(measure, comparison, no_details)
    parts = template("comparison.parts.md.j2", "md").module  # the macros the template uses
    room = limit - len(measure.text(summary)) - len(parts.details_heading())

    def section(detail: Detail) -> int:
        return len(parts.detail(detail, ctx.report_url)) + 2  # and the blank line before it

    chosen = _choose_details(full.details, room, section)
    while chosen:  # the estimate misses only the closing note's digits; drop the least important
        text = measure.text(_with_details(summary, full.details, set(chosen)))
        if len(text) <= limit:
            return text
        chosen.pop()
    text = measure.text(summary)
    return text if len(text) <= limit else _last_resort(text, parts.cut_note(ctx.report_url), limit)


def _last_resort(text: str, note: str, limit: int) -> str:
    """Only when even the shortest summary is too long (a tiny limit): cut between blocks, and say so."""
    head = text[: max(0, limit - len(note))]
    cut = head.rfind("\n\n")
    cut = cut if cut > 0 else head.rfind("\n")
    return head[:cut] + "\n" + note if cut > 0 else note[:limit]
