"""One output path on both sides (a `Pair`), what kind of file it is, and reading it carefully.

Kinds decide which comparer runs: metrics files (listed in the spec or named `*metrics*.json|yaml|yml|toml`),
text (by extension, else sniffed) and binary (everything else). Identical files are never opened, so
their kind is guessed from the name alone.
"""

import codecs
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from bot.compare.model import (
    FileChange,
    FileKind,
    FileProblem,
    FileStatus,
    ImageDiff,
    JsonDiff,
    MetricChange,
    TableDiff,
    TextDiff,
)
from bot.manifest import FileEntry
from bot.masks import MaskPattern, compile_mask
from bot.spec import CompareSection
from bot.units import format_size

Side = Literal["base", "head"]
SIDE_NAMES: dict[Side, str] = {"base": "main", "head": "the branch"}

TEXT_EXTENSIONS = frozenset(
    [
        ".log",
        ".txt",
        ".md",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".py",
        ".cfg",
        ".ini",
    ]
)
METRICS_PATTERNS = ("*metrics*.json", "*metrics*.yaml", "*metrics*.yml", "*metrics*.toml")
JSON_EXTENSIONS = frozenset([".json", ".yaml", ".yml"])  # nested documents that are not metrics files
IMAGE_EXTENSIONS = frozenset([".png", ".jpg", ".jpeg"])
TABLE_EXTENSIONS = frozenset([".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson"])  # before text
SNIFF_BYTES = 8192


class FileUnreadable(Exception):
    """A side of a pair could not be read, or is too large for what was asked of it."""


class NotText(FileUnreadable):
    """A side that was expected to be text is not UTF-8; it can still be compared as bytes."""


@dataclass(frozen=True)
class Pair:
    """One path with its entry on each side (None where the file does not exist) and how to read it."""

    path: str
    base: FileEntry | None
    head: FileEntry | None
    locate_base: Callable[[FileEntry], Path]
    locate_head: Callable[[FileEntry], Path]

    def entry(self, side: Side) -> FileEntry | None:
        return self.base if side == "base" else self.head

    @property
    def sides(self) -> list[Side]:
        return [side for side in ("base", "head") if self.entry(side) is not None]

    def read(self, side: Side, limit: int) -> bytes:
        """The whole file, refusing files above `limit` bytes before reading them."""
        entry = self._present(side)
        if entry.size > limit:
            raise FileUnreadable(
                f"{SIDE_NAMES[side]}'s {self.path} is {format_size(entry.size)}, above the "
                f"{format_size(limit)} tierbot reads for this kind of file"
            )
        return self._open(side, entry, None)

    def head_bytes(self, side: Side, count: int = SNIFF_BYTES) -> bytes:
        """The first `count` bytes, enough to sniff whether a file is text."""
        return self._open(side, self._present(side), count)

    def _present(self, side: Side) -> FileEntry:
        entry = self.entry(side)
        if entry is None:
            raise FileUnreadable(f"{self.path} does not exist on {SIDE_NAMES[side]}")
        return entry

    def _open(self, side: Side, entry: FileEntry, count: int | None) -> bytes:
        locate = self.locate_base if side == "base" else self.locate_head
        try:
            with locate(entry).open("rb") as handle:
                return handle.read() if count is None else handle.read(count)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise FileUnreadable(f"{SIDE_NAMES[side]}'s {self.path} could not be read: {reason}") from exc


@dataclass(frozen=True)
class Options:
    """How a comparison may use the machine, and where it may write. Set by operators, not by tierbot.yaml."""

    artifacts: Path | None = None  # where comparers write pictures (image diffs); None writes nothing
    temp_dir: Path | None = None  # spill directory for table diffs larger than memory
    memory_limit: str | None = None  # DuckDB's memory cap, e.g. "500MB"; None lets DuckDB decide
    threads: int | None = None  # DuckDB threads; None uses every core
    examples: int = 5  # deterministic examples per table / JSON file (top N by |Δ|, first N by key)


@dataclass(frozen=True)
class Rules:
    """The spec's `compare` section, with its mask patterns compiled once for all files, and the options."""

    spec: CompareSection
    masks: tuple[MaskPattern, ...] = ()
    options: Options = field(default_factory=Options)

    @classmethod
    def of(cls, spec: CompareSection, options: Options | None = None) -> "Rules":
        return cls(spec, tuple(compile_mask(pattern) for pattern in spec.mask), options or Options())


@dataclass
class Outcome:
    """What a per-kind comparer found about one changed, added or removed file."""

    kind: FileKind
    summary: str
    volatile_only: bool = False
    metrics: list[MetricChange] = field(default_factory=list)
    text_diff: TextDiff | None = None
    table: TableDiff | None = None
    json_diff: JsonDiff | None = None
    image: ImageDiff | None = None
    problems: list[FileProblem] = field(default_factory=list)


def is_metrics_name(path: str) -> bool:
    """Auto-detected metric files: the basename says so (`metrics.json`, `eval_metrics.yaml`)."""
    name = PurePosixPath(path).name.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in METRICS_PATTERNS)


def is_text_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in TEXT_EXTENSIONS


def kind_by_name(path: str, listed_metrics: bool) -> FileKind:
    """The kind a file's name promises, without opening it."""
    if listed_metrics or is_metrics_name(path):
        return "metrics"
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in TABLE_EXTENSIONS:
        return "table"
    if suffix in JSON_EXTENSIONS:
        return "json"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return "text" if is_text_name(path) else "binary"


def looks_like_text(start: bytes) -> bool:
    """No NUL byte and valid UTF-8 (a multi-byte character cut at the end of the sample is fine)."""
    if b"\0" in start:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(start, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff_kind(pair: Pair, rules: Rules) -> FileKind:
    """Name first; files with an unknown extension are text when every existing side looks like text."""
    kind = kind_by_name(pair.path, rules.spec.metric_file(pair.path) is not None)
    if kind != "binary":
        return kind
    samples = [pair.head_bytes(side) for side in pair.sides]
    return "text" if all(looks_like_text(sample) for sample in samples) else "binary"


def decode_text(data: bytes, pair: Pair, side: Side) -> str:
    """UTF-8 text, or NotText saying where the first bad byte is."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotText(
            f"{SIDE_NAMES[side]}'s {pair.path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); it was compared as bytes"
        ) from None


def size_change(pair: Pair) -> str:
    """The binary summary: what can be said without reading a file."""
    base, head = pair.base, pair.head
    if base is None and head is not None:
        return f"new, {format_size(head.size)}"
    if head is None and base is not None:
        return f"removed, was {format_size(base.size)}"
    if base is None or head is None:
        return ""
    if base.size == head.size:
        return f"same size ({format_size(head.size)}), content differs"
    return f"size {format_size(base.size)} → {format_size(head.size)}"


def row(
    pair: Pair, status: FileStatus, kind: FileKind, summary: str = "", volatile_only: bool = False
) -> FileChange:
    """The file table's row for a pair; sizes straight from the manifests."""
    return FileChange(
        path=pair.path,
        status=status,
        kind=kind,
        size_base=pair.base.size if pair.base else None,
        size_head=pair.head.size if pair.head else None,
        summary=summary,
        volatile_only=volatile_only,
    )
