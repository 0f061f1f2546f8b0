"""The comparison as data: what the engine produces, the database stores and the renderers read.

Every model round-trips through JSON (`model_dump_json` / `model_validate_json`), including metric values
that are NaN or infinite: a loss that became NaN is exactly the kind of change people need to see, so such
values are written as the strings "NaN", "Infinity" and "-Infinity" instead of being lost or producing
JSON that PostgreSQL refuses.
"""

import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, JsonValue, PlainSerializer

Verdict = Literal["pass", "changed", "fail"]
FileStatus = Literal["identical", "changed", "added", "removed", "ignored"]
FileKind = Literal["metrics", "table", "json", "image", "text", "binary"]
MetricMove = Literal["up", "down", "same", "changed", "added", "removed"]
Assessment = Literal["better", "worse", "neutral"]


def _json_number(value: int | float) -> int | float | str:
    """Non-finite floats as the strings pydantic reads back as floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


Number = Annotated[
    int | float, PlainSerializer(_json_number, return_type=int | float | str, when_used="json")
]


class FileChange(BaseModel):
    """One output file present on either side, as one row of the `git diff --stat`-like table."""

    path: str
    status: FileStatus
    kind: FileKind  # how the file was compared; for identical and ignored files, guessed from its name
    size_base: int | None = None
    size_head: int | None = None
    summary: str = ""  # one line: "+12 −3 lines", "4 metrics changed", "size 1.2 KiB → 1.3 KiB"
    volatile_only: bool = False  # text that differs only in masked tokens (timestamps, ids) or line endings


class MetricChange(BaseModel):
    """One numeric leaf of a metrics file, main against the branch."""

    file: str
    name: str  # flattened: `test.accuracy`, `history[0].loss`
    base: Number | None = None
    head: Number | None = None
    delta: Number | None = None  # head − base
    delta_pct: Number | None = None  # percent of |base|; None when base is 0 or missing
    change: MetricMove
    direction: Literal["higher", "lower"] | None = None
    assessment: Assessment = "neutral"
    threshold: str | None = None  # the rule's max_regression as written: "0.01" or "2%"
    failed: bool = False  # worse by more than the threshold (or a guarded metric disappeared)


class TextDiff(BaseModel):
    """A unified diff of one changed text file, after masking volatile tokens."""

    path: str
    lines_added: int
    lines_removed: int
    diff: str  # unified diff lines joined by "\n", at most MAX_DIFF_LINES of them
    truncated: bool = False
    diff_lines: int = 0  # lines of the whole diff, before the cap


class FileProblem(BaseModel):
    """A file that could not be compared as intended; the rest of the comparison still ran."""

    path: str
    message: str
    blocking: bool = False  # a guarded metric could not be checked, so the comparison fails
    skipped: bool = False  # an entry of an outputs directory that was not read (a link out, a FIFO...)


class SchemaChange(BaseModel):
    """A column added, removed, or whose type changed between main's table and the branch's."""

    column: str
    change: Literal["added", "removed", "type"]
    base_type: str | None = None
    head_type: str | None = None


class ColumnDiff(BaseModel):
    """One value column of a keyed table diff, over the rows present on both sides."""

    name: str
    changed: int = 0  # cells that differ at all
    beyond: int = 0  # cells beyond the column's tolerance |a−b| ≤ abs + rel·|base|
    tolerance: str | None = None  # as configured, e.g. "abs 1e-06, rel 0"
    max_abs_delta: Number | None = None  # numeric columns only
    mean_delta: Number | None = None
    p99_abs_delta: Number | None = None


class CellChange(BaseModel):
    """One changed cell, shown `old → new`. Key values and cells are rendered as text."""

    key: dict[str, str]
    column: str
    old: str
    new: str
    delta: Number | None = None
    beyond: bool = False


class TableDiff(BaseModel):
    """A keyed comparison of two tables (CSV, TSV, Parquet, JSON Lines)."""

    path: str
    key: list[str] = []
    key_detected: bool = False  # the key was inferred, not given in tierbot.yaml
    rows_base: int = 0
    rows_head: int = 0
    rows_added: int = 0
    rows_removed: int = 0
    rows_changed: int = 0  # rows on both sides with at least one changed cell
    rows_beyond: int = 0  # rows with at least one cell beyond tolerance
    duplicate_keys_base: int = 0  # rows whose key is not unique; they are reported, never paired
    duplicate_keys_head: int = 0
    schema_changes: list[SchemaChange] = []
    columns: list[ColumnDiff] = []  # only columns with changes
    top_changes: list[CellChange] = []  # the N largest |Δ|, ties broken by key
    first_changes: list[CellChange] = []  # the first N changed cells in key order
    added_keys: list[dict[str, str]] = []  # the first N added rows' keys
    removed_keys: list[dict[str, str]] = []
    positional: bool = False  # both sides had the same keys in the same order (fast path)
    listed: bool = False  # in tierbot.yaml's compare.tables: cells beyond tolerance, rows or columns
    # added or removed, or a type change fail the comparison


class JsonChange(BaseModel):
    """One path-addressed change in a nested JSON/YAML document that is not a metrics file."""

    pointer: str  # `a.b[3].c`
    change: Literal["added", "removed", "changed", "type"]
    old: str | None = None
    new: str | None = None


class JsonDiff(BaseModel):
    path: str
    changes: list[JsonChange] = []  # the first N, in document order
    total: int = 0  # all changes beyond tolerance, listed or not
    within_tolerance: int = 0  # numeric leaves that moved, but not beyond the tolerance


class ImageDiff(BaseModel):
    """Two images compared pixel by pixel; the diff picture is written beside the report."""

    path: str
    size_base: tuple[int, int] | None = None  # (width, height)
    size_head: tuple[int, int] | None = None
    differing_pixels: int = 0
    share: float = 0.0  # differing pixels / pixels (1.0 when the sizes differ)
    diff_image: str | None = None  # file name inside the comparison's artifacts directory
    base_image: str | None = None  # main's picture beside it, for the report; None in older results
    head_image: str | None = None  # the branch's
    scale: int = 1  # the pictures are 1/scale of the images' size (large images are downscaled)


class SeriesSide(BaseModel):
    """One side of a metric series, thinned for drawing (`bot.compare.series.decimate`) but for `points`
    and `last`, which are the whole series'."""

    x: list[Number]
    y: list[Number]
    points: int  # values in the whole series, before thinning
    last: Number | None = None  # its last value


class MetricSeries(BaseModel):
    """A series of values per step (a `loss` list in a metrics file, a column of a table of steps), on
    each side that has it: one chart with both lines."""

    file: str
    name: str  # `loss`, `history.val_loss`; a column of a table of steps
    x: str | None = None  # the column of the x axis; None: the position in the list (or row)
    base: SeriesSide | None = None
    head: SeriesSide | None = None


def param_text(value: JsonValue) -> str:
    """A parameter's value as people read it: text as it is unless it would read as another type
    (`"0.1"`, `"true"`, `""` are quoted), everything else as JSON (`0.01`, `true`, `null`, `[1, 2]`)."""
    if isinstance(value, str) and value.strip() == value and value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


class ParamChange(BaseModel):
    """One flattened key of a params file (`train.lr`) whose value differs between the two commits."""

    name: str
    change: Literal["added", "removed", "changed"]
    old: JsonValue = None  # as parsed: numbers stay numbers, a list is one value
    new: JsonValue = None

    @property
    def old_text(self) -> str:
        return param_text(self.old)

    @property
    def new_text(self) -> str:
        return param_text(self.new)


class ParamsDiff(BaseModel):
    """A params file, an input of the run read at main's commit and the branch's (`bot.compare.params`)."""

    path: str
    changes: list[ParamChange] = []  # the first N keys that differ, in key order
    total: int = 0  # keys that differ, listed or not
    unchanged: int = 0
    base_note: str | None = None  # why main's side is not what it should be: "missing", "not valid YAML: …"
    head_note: str | None = None


class Comparison(BaseModel):
    """The branch's outputs against main's, with a verdict and the sentences that justify it."""

    version: int = 1
    verdict: Verdict
    reasons: list[str]
    files: list[FileChange] = []
    metrics: list[MetricChange] = []
    text_diffs: list[TextDiff] = []
    tables: list[TableDiff] = []
    json_diffs: list[JsonDiff] = []
    images: list[ImageDiff] = []
    problems: list[FileProblem] = []
    params: list[ParamsDiff] = []  # the inputs: not judged, shown first; empty in older results
    series: list[MetricSeries] = []  # drawn as charts; empty in results stored before they existed

    def count(self, status: FileStatus) -> int:
        return sum(1 for f in self.files if f.status == status)

    def file(self, path: str) -> FileChange | None:
        return next((f for f in self.files if f.path == path), None)

    def text_diff(self, path: str) -> TextDiff | None:
        return next((d for d in self.text_diffs if d.path == path), None)

    @property
    def failed_metrics(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.failed]
