"""What people read about a comparison: Markdown (GitHub), a standalone HTML page, and the terminal.

All three come from the same `Comparison` through Jinja2 templates in `templates/`; this module only
prepares plain data for them and, for Markdown, decides what fits. GitHub refuses comments over 65,536
characters, so the Markdown first drops per-file detail sections whole, from the end, and links the
full HTML report instead. Only when the summary alone is still too long are table rows folded into a
closing count row: identical files first, then unchanged metrics, then the remaining rows (files and
metrics that fail the check are kept longest). A table or a diff is never cut in the middle.
"""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape as rich_escape

from bot.compare import Comparison, FileChange, MetricChange, TextDiff
from bot.compare.numbers import format_number, format_percent, format_signed
from bot.resources import resource_dir
from bot.units import format_size

GITHUB_LIMIT = 65_536
STATUS_ORDER = ("changed", "added", "removed", "identical", "ignored")
_QUIET = ("identical", "ignored")  # statuses that carry no news, first to be folded into a count


class ReportContext(BaseModel):
    """Who and what was compared: the part of a report the engine does not know."""

    experiment: str
    head_label: str  # e.g. "feature-x @ 1a2b3c4"
    base_label: str  # e.g. "main @ 9f8e7d6 (merge base)"
    tier: str
    baseline_reused: bool = False
    head_run_id: int | None = None
    base_run_id: int | None = None
    report_url: str | None = None  # link to the full HTML report


@dataclass(frozen=True)
class Detail:
    """A folded per-file section: the file's row and its diff."""

    file: FileChange
    diff: TextDiff


@dataclass(frozen=True)
class View:
    """What a template shows: rows that are listed, counts of rows that are not."""

    files: list[FileChange]
    metrics: list[MetricChange]
    details: list[Detail]
    hidden_files: dict[str, int]  # status -> rows folded into a count
    hidden_metrics: int = 0
    omitted_details: int = 0

    @property
    def shortened(self) -> bool:
        return bool(self.hidden_files or self.hidden_metrics or self.omitted_details)


# -- escaping and formatting, registered as template filters -------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(value: object) -> str:
    """Plain text in Markdown: punctuation that could start markup or end a table cell is escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).splitlines()))


def md_code(value: object, table: bool = False) -> str:
    """A code span that survives any content: a fence longer than the longest backtick run inside."""
    text = " ".join(str(value).splitlines())
    if table:
        text = text.replace("|", "\\|")  # GitHub splits cells before it parses code spans
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(body: str) -> str:
    """A code fence longer than any backtick run that starts a line of the body."""
    longest = max((len(run) for run in re.findall(r"^\s*(`{3,})", body, re.MULTILINE)), default=0)
    return "`" * max(3, longest + 1)


def md_url(url: str) -> str:
    """A link target that cannot end the link early."""
    return "".join({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"}.get(ch, ch) for ch in url)


def fit(value: object, width: int, right: bool = False) -> str:
    """Exactly `width` characters for a terminal column: padded, or shortened from the left with `…`."""
    text = " ".join(str(value).splitlines())
    if len(text) > width:
        text = "…" + text[len(text) - width + 1 :]
    return text.rjust(width) if right else text.ljust(width)


def size(value: int | None) -> str:
    return "—" if value is None else format_size(value)


@cache
def _environment(flavour: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(resource_dir("templates")),
        autoescape=flavour == "html",
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(
        num=format_number,
        signed=format_signed,
        pct=format_percent,
        size=size,
        md=md_text,
        code=md_code,
        fence=md_fence,
        url=md_url,
        esc=rich_escape,
        fit=fit,
    )
    return env


def _template(name: str, flavour: str) -> Template:
    return _environment(flavour).get_template(name)


# -- shared preparation ---------------------------------------------------------------------------------


def full_view(comparison: Comparison) -> View:
    """Everything: every file, every metric, a detail section for every diff."""
    diffs = {d.path: d for d in comparison.text_diffs}
    details = [Detail(f, diffs[f.path]) for f in comparison.files if f.path in diffs]
    return View(
        files=list(comparison.files), metrics=list(comparison.metrics), details=details, hidden_files={}
    )


def _variables(comparison: Comparison, ctx: ReportContext, view: View) -> dict:
    """Template inputs beside the view: counts per status, paths that fail, anchors of diff sections."""
    counts = Counter(f.status for f in comparison.files)
    failing = {m.file for m in comparison.metrics if m.failed}
    failing |= {p.path for p in comparison.problems if p.blocking}
    return {
        "c": comparison,
        "ctx": ctx,
        "view": view,
        "failing": failing,
        "counts": {status: counts[status] for status in STATUS_ORDER if counts[status]},
        "anchors": {d.file.path: index for index, d in enumerate(view.details)},
    }


# -- Markdown: fit GitHub's limit by folding rows into counts and dropping detail sections whole ---------


def _fold_files(view: View, files: list[FileChange], keep: int | None, failing: set[str]) -> View:
    """Quiet rows become counts; with `keep`, only that many news rows stay, failing files first."""
    listed = [f for f in files if f.status not in _QUIET]
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


def render_markdown(comparison: Comparison, ctx: ReportContext, limit: int = GITHUB_LIMIT) -> str:
    """The PR comment / check summary: summary first, detail sections folded, at most `limit` characters."""
    template = _template("comparison.md.j2", "md")
    full = full_view(comparison)
    measure = _Measure(template, _variables(comparison, ctx, full), limit)
    diff_chars = sum(len(detail.diff.diff) for detail in full.details)
    if diff_chars < limit and measure.fits(full):  # rendering megabytes of diffs only to drop them is slow
        return measure.text(full)
    summary = _fit_summary(measure, comparison, replace(full, details=[], omitted_details=len(full.details)))
    sections = _template("comparison.parts.md.j2", "md").module  # the macros the template uses
    room = limit - len(measure.text(summary)) - len(sections.details_heading())
    kept = 0
    for detail in full.details:
        room -= len(sections.detail(detail.file, detail.diff)) + 2
        if room < 0:
            break
        kept += 1
    while kept >= 0:
        view = replace(summary, details=full.details[:kept], omitted_details=len(full.details) - kept)
        text = measure.text(view)
        if len(text) <= limit:
            return text
        kept -= 1
    return _last_resort(measure.text(summary), sections.cut_note(ctx.report_url), limit)


def _last_resort(text: str, note: str, limit: int) -> str:
    """Only when even the shortest summary is too long (a tiny limit): cut between blocks, and say so."""
    head = text[: max(0, limit - len(note))]
    cut = head.rfind("\n\n")
    cut = cut if cut > 0 else head.rfind("\n")
    return head[:cut] + "\n" + note if cut > 0 else note[:limit]


# -- HTML and terminal: everything ----------------------------------------------------------------------


def render_html(comparison: Comparison, ctx: ReportContext) -> str:
    """The full report: a standalone page with inline CSS and no external assets."""
    view = full_view(comparison)
    return _template("comparison.html.j2", "html").render(**_variables(comparison, ctx, view))


def render_terminal(comparison: Comparison, ctx: ReportContext, console: Console) -> None:
    """The report for `tierbot compare` and the git hook, in rich markup with user data escaped."""
    view = full_view(comparison)
    variables = _variables(comparison, ctx, view)
    variables["widths"] = {
        "path": min(max((len(f.path) for f in comparison.files), default=4), 60),
        "metric": min(max((len(m.name) for m in comparison.metrics), default=6), 40),
        "file": min(max((len(m.file) for m in comparison.metrics), default=4), 30),
    }
    text = _template("comparison.term.j2", "term").render(**variables)
    console.print(text.rstrip("\n"), highlight=False, emoji=False)
