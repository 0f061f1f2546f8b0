"""What `tierbot init` proposes from an experiment's outputs: metric files with a direction per metric,
tables with a key, the images, and masks for the volatile tokens the built-in masks miss.

Files are recognised as a comparison will recognise them (`kind_by_name`, `looks_like_text`) and read
with its readers (`parse_document` for metrics, DuckDB through `open_side` for tables), so what is
proposed is what a comparison will see. The rules:

- **Metric files**: a file named `*metrics*.json|yaml|yml|toml`, or a JSON/YAML mapping of at most
  `MAX_METRIC_VALUES` values of which at least half are numbers (`scores.json`). Every number outside a
  list is proposed with a direction guessed from its name (`guess_direction`); numbers in lists (a loss
  per epoch) are compared without a rule. Thresholds are never guessed: how much worse is too much is
  the team's call, and the written file says how to add one.
- **Tables** (CSV, TSV, Parquet, JSON Lines): the key is the first column that is unique and never
  empty in this run's table, trying `id`, `key`, names ending in `_id`/`Id`, `uuid`, then the other
  columns in file order except floating-point and nested ones (unique by accident, not by design).
  Only keyed tables are proposed: a listed table is guarded (any change beyond tolerance fails), and
  rows paired by their order would fail on any inserted row. The others are still compared, and said
  to be in the written file.
- **Images** (PNG, JPEG) take no rule; they are listed so the file says how they are compared.
- **Masks**: text outputs (logs) are searched for timestamps and durations (`VOLATILE_SHAPES`). The
  comparison's built-in masks already replace ISO dates and times, clock times, `12.3s` and `45it/s`
  (`bot.compare.text`): those are listed as seen, and a `compare.mask` pattern is proposed only for the
  shapes they miss (Unix times, compact or slashed dates, `1m23s`, glog prefixes). Each pattern is
  compiled by `compile_mask`, as the spec's validator does, and is the very pattern that found it.
"""

import re
import tempfile
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml

from bot.compare.files import SIDE_NAMES, FileUnreadable, Pair, kind_by_name, looks_like_text
from bot.compare.metrics import MAX_NODES, parse_document
from bot.compare.text import mask as builtin_mask
from bot.manifest import FileEntry, Manifest
from bot.masks import compile_mask

Direction = Literal["higher", "lower"]

MAX_DOCUMENT_BYTES = 1024 * 1024  # a metrics file larger than this is a nested document, not metrics
MAX_METRIC_VALUES = 200
MAX_METRICS_LISTED = 50  # per file; the others are compared without a rule
MAX_TABLE_BYTES = 2 * 1024**3  # larger tables are listed without a key guess: the comparison detects it
MAX_SCAN_BYTES = 1024 * 1024  # of each text output searched for volatile tokens
MAX_FILES_READ = 200

# Words of a metric's name that say which way is better (`test_accuracy`, `val_loss`).
# fmt: off
HIGHER = frozenset([
    "accuracy", "acc", "f1", "fscore", "auc", "roc", "precision", "recall", "r2", "rsquared", "map", "ndcg",
    "bleu", "rouge", "iou", "miou", "dice", "jaccard", "kappa", "mcc", "specificity", "sensitivity", "top1",
    "top5", "hits",
])
LOWER = frozenset([
    "loss", "error", "err", "mse", "mae", "rmse", "mape", "msle", "rmsle", "logloss", "perplexity", "ppl",
    "wer", "cer", "brier",
])
# A last path component that names a split or an aggregate, not the metric: `accuracy.test`.
_QUALIFIERS = frozenset([
    "train", "training", "test", "val", "valid", "validation", "dev", "eval", "holdout", "mean", "avg",
    "average", "overall", "total", "macro", "micro", "weighted", "value", "score",
])
# fmt: on
_FLOATING = ("FLOAT", "DOUBLE", "REAL")
_NESTED = ("STRUCT", "MAP", "UNION", "[")  # `VARCHAR[]` is a list

# (what, RE2 pattern), tried in this order, each on the text left once the previous ones are masked.
VOLATILE_SHAPES: tuple[tuple[str, str], ...] = (
    ("date and time", r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?([.,]\d+)?(Z|[+-]\d{2}:?\d{2})?"),
    ("glog/absl line prefix", r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+ +\d+"),
    (
        "compact date and time",
        r"(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[T_-]?([01]\d|2[0-3])[0-5]\d[0-5]\d",
    ),
    ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("date", r"\b\d{4}/\d{2}/\d{2}\b"),
    ("date", r"\b\d{1,2}/\d{1,2}/\d{4}\b"),
    ("time of day", r"\b\d{1,2}:\d{2}:\d{2}([.,]\d+)?\b"),
    ("Unix time", r"\b1[5-9]\d{8}(\d{3})?(\.\d+)?\b"),
    ("duration", r"\b\d+h\d+m(\d+(\.\d+)?s)?\b|\b\d+m\d+(\.\d+)?s\b"),
    ("duration", r"\b\d+(\.\d+)?\s?(ms|s|sec|secs|seconds|min|mins|minutes)\b"),
    ("rate", r"\b\d+(\.\d+)?\s?(it|s|samples|examples|tokens|steps|batches)/s\b"),
)


@dataclass(frozen=True)
class MetricGuess:
    path: str  # flattened, as rules name it: `test.accuracy`
    direction: Direction | None


@dataclass(frozen=True)
class MetricFileProposal:
    file: str
    metrics: list[MetricGuess]
    series: int = 0  # numbers inside lists, compared without a rule
    more: int = 0  # numbers beyond MAX_METRICS_LISTED, compared without a rule


@dataclass(frozen=True)
class TableProposal:
    file: str
    key: str | None
    why: str  # said beside the key in the written file


@dataclass(frozen=True)
class VolatileToken:
    what: str
    pattern: str  # RE2, as compare.mask takes it
    example: str  # the first token of this shape seen
    file: str
    builtin: bool  # the built-in masks replace every token of this shape that was seen


@dataclass
class OutputsProposal:
    metrics: list[MetricFileProposal] = field(default_factory=list)
    tables: list[TableProposal] = field(default_factory=list)  # with a key
    unkeyed: list[TableProposal] = field(default_factory=list)  # compared, not listed: no key was found
    images: list[str] = field(default_factory=list)
    masks: list[VolatileToken] = field(default_factory=list)  # proposed as compare.mask
    builtin: list[VolatileToken] = field(default_factory=list)  # seen, masked without a pattern
    other: list[str] = field(default_factory=list)  # compared as text (after masking) or by their bytes
    notes: list[str] = field(default_factory=list)


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


def _direction_of(words: list[str]) -> Direction | None:
    found = {"higher" for w in words if w in HIGHER} | {"lower" for w in words if w in LOWER}
    if len(found) != 1:
        return None
    (direction,) = found
    if "neg" in words:  # scikit-learn's scorers negate errors so that higher is better
        return "higher" if direction == "lower" else "lower"
    return direction  # type: ignore[return-value]


def guess_direction(path: str) -> Direction | None:
    """From the metric's own name (the last path component): `test.accuracy` → higher, `val_loss` →
    lower, `neg_mean_squared_error` → higher; from the whole path when the last part only names a split
    or an aggregate (`accuracy.test`); None when the name says nothing or says both."""
    parts = [part for part in re.split(r"\.|\[\d+\]", path) if part]
    if not parts:
        return None
    last = _words(parts[-1])
    if direction := _direction_of(last):
        return direction
    if all(word in _QUALIFIERS for word in last):
        return _direction_of([word for part in parts for word in _words(part)])
    return None


def _leaves(document: object) -> tuple[dict[str, object], int]:
    """Scalar values outside lists by flattened path (as `flatten` names them), and how many numbers lie
    inside lists; ValueError past MAX_NODES values."""
    scalars: dict[str, object] = {}
    in_lists = visited = 0
    stack: list[tuple[str, object, bool]] = [("", document, False)]
    while stack:
        prefix, node, listed = stack.pop()
        visited += 1
        if visited > MAX_NODES:  # YAML aliases can make a small file an enormous tree
            raise ValueError(f"it has more than {MAX_NODES:,} values")
        if isinstance(node, dict):
            children = [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in node.items()]
            stack.extend((path, value, listed) for path, value in reversed(children))
        elif isinstance(node, list):
            stack.extend((f"{prefix}[{i}]", value, True) for i, value in reversed(list(enumerate(node))))
        elif listed:
            in_lists += _is_number(node)
        else:
            scalars[prefix or "(value)"] = node
    return scalars, in_lists


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_file(name: str, document: object, named: bool) -> MetricFileProposal | None:
    """A metric file's proposal, or None when the document does not look like metrics (`named`: its
    file name says it is one, so it is proposed whatever it holds)."""
    scalars, series = _leaves(document)
    numbers = [path for path, value in scalars.items() if _is_number(value)]
    looks_like_metrics = (
        isinstance(document, dict)
        and 0 < len(scalars) <= MAX_METRIC_VALUES
        and 2 * len(numbers) >= len(scalars)
    )
    if not named and not looks_like_metrics:
        return None
    listed = [MetricGuess(path, guess_direction(path)) for path in numbers[:MAX_METRICS_LISTED]]
    return MetricFileProposal(name, listed, series=series, more=len(numbers) - len(listed))


def key_candidates(columns: dict[str, str]) -> list[str]:
    """Columns worth trying as the key, in the order they are tried (module docstring)."""
    lower = {name: name.lower() for name in columns}
    named = [n for n in columns if lower[n] == "id"] + [n for n in columns if lower[n] == "key"]
    named += [n for n in columns if lower[n].endswith("_id") or n.endswith("Id") or lower[n] == "uuid"]
    named = list(dict.fromkeys(named))
    others = [
        name
        for name, duck_type in columns.items()
        if name not in named
        and not duck_type.startswith(_FLOATING)
        and not any(marker in duck_type for marker in _NESTED)
        and duck_type != "BOOLEAN"
    ]
    return named + others


def guess_key(path: Path, name: str) -> TableProposal:
    """Open the table as a comparison would and try `key_candidates` for uniqueness in DuckDB."""
    import duckdb  # only when a table is proposed: every other command starts without it

    from bot.compare.tables_read import open_side, quote

    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        return TableProposal(name, None, "too large to read now: the comparison detects a key itself")
    entry = FileEntry(path=name, size=size, hash="")
    pair = Pair(name, entry, entry, lambda _: path, lambda _: path)
    with tempfile.TemporaryDirectory(prefix="tierbot-init-") as scratch, duckdb.connect(":memory:") as con:
        con.execute("SET enable_progress_bar = false")
        try:
            table = open_side(con, pair, "head", Path(scratch))
        except FileUnreadable as exc:
            said = str(exc).replace(f"{SIDE_NAMES['head']}'s ", "", 1)
            return TableProposal(name, None, f"not read: {said}")
        if table.rows == 0:
            return TableProposal(name, None, "empty in this run: no key guessed")
        for column in key_candidates(table.columns):
            distinct = con.execute(f"SELECT count(DISTINCT {quote(column)}) FROM head").fetchone()[0]
            if distinct == table.rows:
                return TableProposal(
                    name, column, f"unique and never empty in this run's {table.rows:,} rows"
                )
    return TableProposal(name, None, "no column is unique and never empty, so rows are paired by their order")


def volatile_tokens(text: str, file: str) -> list[VolatileToken]:
    """The shapes of `VOLATILE_SHAPES` found in `text`, each with its first example; a shape is `builtin`
    when the comparison's own masks replace every token of it that was seen."""
    found = []
    for what, pattern in VOLATILE_SHAPES:
        compiled = compile_mask(pattern)
        tokens = [match.group(0) for match in islice(compiled.finditer(text), 100)]
        if not tokens:
            continue
        missed = [token for token in tokens if re.search(r"\d", builtin_mask(token))]
        found.append(VolatileToken(what, pattern, (missed or tokens)[0], file, builtin=not missed))
        text = compiled.sub("<masked>", text)
    return found


def _read_start(path: Path, count: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(count)


def _document(path: Path, name: str) -> object:
    """The parsed metrics/JSON/YAML file; ValueError (of any parser) when it is not one."""
    data = _read_start(path, MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError("larger than a metrics file")
    return parse_document(data.decode("utf-8"), name)


def propose_outputs(directory: Path, manifest: Manifest) -> OutputsProposal:
    """Classify each file of `manifest` (read at `directory / path`) and propose rules for it."""
    found = OutputsProposal()
    seen: dict[str, VolatileToken] = {}  # by pattern: the first sighting, or the first a built-in misses
    for count, name in enumerate(sorted(manifest.files)):
        if count >= MAX_FILES_READ:
            found.notes.append(f"only the first {MAX_FILES_READ} outputs were read for proposals")
            found.other.extend(sorted(manifest.files)[MAX_FILES_READ:])
            break
        path = directory / name
        kind = kind_by_name(name, listed_metrics=False)
        if kind in ("metrics", "json") or PurePosixPath(name).suffix.lower() == ".toml":
            try:
                proposal = metric_file(name, _document(path, name), named=kind == "metrics")
            except (ValueError, yaml.YAMLError, RecursionError) as exc:  # JSON, TOML, YAML, UTF-8
                if kind == "metrics":
                    found.notes.append(f"{name} looks like a metrics file but could not be read: {exc}")
                proposal = None
            if proposal is not None:
                found.metrics.append(proposal)
                continue
            if kind != "text":  # a nested document: compared path by path without a rule
                found.other.append(name)
                continue
        if kind == "table":
            table = guess_key(path, name)
            (found.tables if table.key else found.unkeyed).append(table)
        elif kind == "image":
            found.images.append(name)
        else:
            found.other.append(name)
            start = _read_start(path, MAX_SCAN_BYTES)
            if kind == "text" or looks_like_text(start[:8192]):
                for token in volatile_tokens(start.decode("utf-8", errors="replace"), name):
                    first = seen.get(token.pattern)
                    if first is None or (first.builtin and not token.builtin):
                        seen[token.pattern] = token
    in_order = [seen[pattern] for _, pattern in VOLATILE_SHAPES if pattern in seen]
    found.masks = [token for token in in_order if not token.builtin]
    found.builtin = [token for token in in_order if token.builtin]
    found.notes += [f"{entry.path}: {entry.reason}" for entry in manifest.skipped]
    return found
