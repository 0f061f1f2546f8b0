"""What every rendering shows, prepared once from a `Comparison`: rows, per-file details, and how they rank.

A `Detail` is one folded per-file section — a text diff, a table diff, a JSON diff or an image diff —
with the facts the renderers need to order and drop sections without knowing their kind: whether the
file fails the check, and whether it changed beyond its tolerance. A `View` is the part of a comparison a
template shows: the listed rows, the detail sections, and counts of what was left out.
"""

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel

from bot.compare import Comparison, FileChange, MetricChange
from bot.compare.model import ImageDiff, JsonDiff, TableDiff, TextDiff
from bot.costs import RunCost
from bot.history import MetricRange
from bot.render.chart import history_svg, series_svg
from bot.render.run_states import reused_run

STATUS_ORDER = ("changed", "added", "removed", "identical", "ignored")
QUIET = ("identical", "ignored")  # statuses that carry no news, first to be folded into a count

DetailBody = TableDiff | JsonDiff | ImageDiff | TextDiff
DETAIL_KINDS: dict[type, str] = {TableDiff: "table", JsonDiff: "json", ImageDiff: "image", TextDiff: "text"}
# When not everything fits, structured details outlive text diffs: a table's numbers say more per line.
KIND_RANK = {"table": 0, "json": 1, "image": 2, "text": 3}


class ReportContext(BaseModel):
    """Who and what was compared: the part of a report the engine does not know."""

    experiment: str
    head_label: str  # e.g. "feature-x @ 1a2b3c4"
    base_label: str  # e.g. "main @ 9f8e7d6 (merge base)"
    tier: str
    baseline_reused: bool = False
    head_run_id: int | None = None
    base_run_id: int | None = None
    head_reused_run_id: int | None = None  # the run whose outcome the branch's run took (`bot.reuse`)
    report_url: str | None = None  # link to the full HTML report
    # Each metric's range in the last runs of the branch compared against, by `MetricRange.key_of`
    history: dict[str, MetricRange] = {}
    # What the branch's run and the baseline (when it was not reused) cost, on priced tiers (`bot.costs`)
    cost: RunCost | None = None
    baseline_cost: RunCost | None = None

    def range_of(self, metric: MetricChange) -> MetricRange | None:
        return self.history.get(MetricRange.key_of(metric.file, metric.name))

    def run_notes(self, branch_run: bool = False) -> list[str]:
        """What the header says of the runs behind the comparison, in the same words in every report:
        a side that did not run again (`baseline reused (run 7)`, `branch: reused run 9`), and with
        `branch_run`, the branch's own run (`branch run 12`, `branch run 12: reused run 9`)."""
        notes = []
        if self.baseline_reused:
            run = f" (run {self.base_run_id})" if self.base_run_id is not None else ""
            notes.append(f"baseline reused{run}")
        branch = f"branch run {self.head_run_id}" if branch_run and self.head_run_id is not None else ""
        if self.head_reused_run_id is not None:
            notes.append(f"{branch or 'branch'}: {reused_run(self.head_reused_run_id)}")
        elif branch:
            notes.append(branch)
        return notes


@dataclass(frozen=True)
class Detail:
    """A folded per-file section: the file's row and what changed in it, of one of four kinds."""

    file: FileChange
    body: DetailBody
    anchor: str  # HTML id of the section in the full report, the same in every rendering
    failing: bool = False  # the file is part of why the check fails
    beyond: bool = True  # changed beyond tolerance (a text diff always is)

    @property
    def kind(self) -> str:
        return DETAIL_KINDS[type(self.body)]

    def importance(self, order: int) -> tuple:
        """Sort key, most important first: failing files, then beyond tolerance, then by kind and order."""
        return (not self.failing, not self.beyond, KIND_RANK[self.kind], order)


@dataclass(frozen=True)
class View:
    """What a template shows: rows that are listed, counts of rows that are not."""

    files: list[FileChange]
    metrics: list[MetricChange]
    details: list[Detail]
    hidden_files: dict[str, int]  # status -> rows folded into a count
    hidden_metrics: int = 0
    omitted_details: int = 0
    omitted_kinds: dict[str, int] = field(default_factory=dict)  # kind -> detail sections left out

    @property
    def shortened(self) -> bool:
        return bool(self.hidden_files or self.hidden_metrics or self.omitted_details)


def table_beyond(table: TableDiff) -> bool:
    """Anything a tolerance cannot excuse: rows in or out, schema, duplicate keys, cells beyond it."""
    return bool(
        table.rows_added
        or table.rows_removed
        or table.rows_beyond
        or table.schema_changes
        or table.duplicate_keys_base
        or table.duplicate_keys_head
        or any(column.beyond for column in table.columns)
    )


def beyond_tolerance(body: DetailBody) -> bool:
    if isinstance(body, TableDiff):
        return table_beyond(body)
    if isinstance(body, JsonDiff):
        return body.total > 0
    if isinstance(body, ImageDiff):
        return body.differing_pixels > 0 or body.share > 0 or body.size_base != body.size_head
    return True


def failing_paths(comparison: Comparison) -> set[str]:
    """Files that make the check fail: a metric beyond its threshold, a blocking problem."""
    failing = {m.file for m in comparison.metrics if m.failed}
    return failing | {p.path for p in comparison.problems if p.blocking}


def _bodies(comparison: Comparison) -> dict[str, list[DetailBody]]:
    bodies: dict[str, list[DetailBody]] = {}
    for group in (comparison.tables, comparison.json_diffs, comparison.images, comparison.text_diffs):
        for body in group:
            bodies.setdefault(body.path, []).append(body)
    return bodies


def full_view(comparison: Comparison) -> View:
    """Everything: every file, every metric, a detail section for every diff, in the order of the files."""
    failing = failing_paths(comparison)
    bodies = _bodies(comparison)
    rows = list(comparison.files)
    listed = {f.path for f in rows}
    for path in sorted(bodies.keys() - listed):  # a diff without a row still gets its section
        rows.append(FileChange(path=path, status="changed", kind=DETAIL_KINDS[type(bodies[path][0])]))
    details = []
    for row in rows:
        for body in bodies.get(row.path, []):
            anchor = f"diff-{len(details)}"
            details.append(Detail(row, body, anchor, row.path in failing, beyond_tolerance(body)))
    return View(
        files=list(comparison.files), metrics=list(comparison.metrics), details=details, hidden_files={}
    )


def within_tolerance(view: View) -> set[str]:
    """Changed files whose every difference is within tolerance (tables, JSON, pixel-identical images)."""
    within: dict[str, bool] = {}
    for detail in view.details:
        if detail.kind != "text" and detail.file.status == "changed":
            within[detail.file.path] = within.get(detail.file.path, True) and not detail.beyond
        else:
            within[detail.file.path] = False
    return {path for path, yes in within.items() if yes}


def variables(comparison: Comparison, ctx: ReportContext, view: View) -> dict:
    """Template inputs beside the view: counts per status, paths that fail, anchors of detail sections."""
    counts = Counter(f.status for f in comparison.files)
    anchors: dict[str, str] = {}
    for detail in view.details:
        anchors.setdefault(detail.file.path, detail.anchor)
    return {
        "c": comparison,
        "ctx": ctx,
        "view": view,
        "failing": failing_paths(comparison),
        "within": within_tolerance(view),
        "counts": {status: counts[status] for status in STATUS_ORDER if counts[status]},
        "anchors": anchors,
        # Drawn when a template asks (only the HTML report does): `{{ history_svg(m, ctx.range_of(m)) }}`
        "history_svg": history_svg,
        "series_svg": series_svg,
    }
