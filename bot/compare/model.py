"""The comparison as data: what the engine produces, the database stores and the renderers read.

Every model round-trips through JSON (`model_dump_json` / `model_validate_json`), including metric values
that are NaN or infinite: a loss that became NaN is exactly the kind of change people need to see, so such
values are written as the strings "NaN", "Infinity" and "-Infinity" instead of being lost or producing
JSON that PostgreSQL refuses.
"""

import math
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

Verdict = Literal["pass", "changed", "fail"]
FileStatus = Literal["identical", "changed", "added", "removed", "ignored"]
FileKind = Literal["metrics", "text", "binary"]
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


class Comparison(BaseModel):
    """The branch's outputs against main's, with a verdict and the sentences that justify it."""

    version: int = 1
    verdict: Verdict
    reasons: list[str]
    files: list[FileChange] = []
    metrics: list[MetricChange] = []
    text_diffs: list[TextDiff] = []
    problems: list[FileProblem] = []

    def count(self, status: FileStatus) -> int:
        return sum(1 for f in self.files if f.status == status)

    def file(self, path: str) -> FileChange | None:
        return next((f for f in self.files if f.path == path), None)

    def text_diff(self, path: str) -> TextDiff | None:
        return next((d for d in self.text_diffs if d.path == path), None)

    @property
    def failed_metrics(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.failed]
