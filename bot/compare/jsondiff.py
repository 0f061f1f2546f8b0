"""Nested JSON and YAML documents that are not metrics files: every change, addressed by its path.

A path reads like the code that would fetch the value: `model.layers[3].units`. Keys that a dot or a
bracket would make ambiguous (dots, brackets, quotes, spaces, the empty key) are written `["a.b"]`.
Objects are compared key by key: main's keys in main's order, then the branch's new keys in its order.
Lists are compared index by index — one element inserted at the front shows as every later element
changed and one added at the end. That is cruder than aligning the lists, but simple, fast, and the
same on every run. Numbers are equal within `|a−b| ≤ abs + rel·|main|` (the file's tolerance from
tierbot.yaml, exact by default); NaN equals NaN; a bool is never a number.

A document that cannot be parsed is a problem on that file, and is still shown as a text diff.
"""

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import re2
import yaml

from bot.compare.files import SIDE_NAMES, FileUnreadable, Outcome, Pair, Rules, Side, size_change
from bot.compare.metrics import MAX_METRICS_BYTES, parse_document
from bot.compare.model import FileProblem, JsonChange, JsonDiff
from bot.compare.text import compare_text
from bot.spec import Tolerance

MAX_DOCUMENT_BYTES = MAX_METRICS_BYTES
MAX_VALUES = 1_000_000  # values walked per document; YAML aliases can make a small file an enormous tree
MAX_VALUE_CHARS = 80  # a value shown in a change is cut here, with "…"
ROOT = "(root)"  # the pointer of a document that is a single value

_PLAIN_KEY = re.compile(r"[^.\[\]\"'\s]+")
_MISSING = object()  # a key or index that one side does not have


class DocumentUnparseable(Exception):
    """One side could not be read as a document; `textual` when it can still be diffed as text."""

    def __init__(self, message: str, side: Side | None, textual: bool):
        super().__init__(message)
        self.side = side
        self.textual = textual


def child_pointer(parent: str, key: object) -> str:
    """`parent.key`, or `parent["key.with.dots"]` when a bare key would be ambiguous."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return f"{parent}.{text}" if parent else text
    return f"{parent}[{json.dumps(text, ensure_ascii=False)}]"


def ignore_pattern(glob: str) -> re2._Regexp:
    """`runs[*].seconds`: `*` matches within one key or index; a matched path is skipped with its contents.
    RE2, since the globs come from tierbot.yaml: with `re`, a dozen stars against one long key backtrack
    for seconds."""
    return re2.compile("".join(r"[^.\[\]]*" if ch == "*" else re2.escape(ch) for ch in glob))


def json_type(value: object) -> str:
    """The JSON type of a parsed value; YAML's extra scalars (dates, sets, ...) are their own types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def compact(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Compact JSON text of a value, at most `limit` characters; stops early on huge (or aliased) trees."""
    parts: list[str] = []
    length = 0
    pending: list[tuple[bool, object]] = [(False, value)]  # (is literal text, item), last one first
    while pending and length <= limit:
        literal, item = pending.pop()
        if literal:
            text = str(item)
        elif isinstance(item, dict) and item:
            pending.append((True, "}"))
            for index, (key, child) in enumerate(reversed(item.items())):
                pending += [(False, child), (True, json.dumps(str(key), ensure_ascii=False) + ":")]
                pending.append((True, "," if index < len(item) - 1 else "{"))
            continue
        elif isinstance(item, list) and item:
            pending.append((True, "]"))
            for index, child in enumerate(reversed(item)):
                pending += [(False, child), (True, "," if index < len(item) - 1 else "[")]
            continue
        else:
            text = json.dumps(item, ensure_ascii=False, default=str)
        parts.append(text)
        length += len(text)
    text = "".join(parts)
    return text if length <= limit and not pending else text[: limit - 1] + "…"


def _nan(value: int | float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def numbers_agree(old: int | float, new: int | float, tolerance: Tolerance) -> str:
    """`equal`, `within` or `beyond` the tolerance; float noise at the boundary counts as within."""
    if old == new or (_nan(old) and _nan(new)):
        return "equal"
    try:
        if not (math.isfinite(old) and math.isfinite(new)):  # inf·rel would let anything through
            return "beyond"
        delta = abs(old - new)
        limit = tolerance.abs + tolerance.rel * abs(old)
    except OverflowError:  # integers beyond any float
        return "beyond"
    if delta <= limit or (limit > 0 and math.isclose(delta, limit, rel_tol=1e-9)):
        return "within"
    return "beyond"


class TooManyValues(Exception):
    pass


@dataclass
class _Walk:
    """Both documents side by side, depth first in document order, counting every change."""

    tolerance: Tolerance
    ignored: tuple[re2._Regexp, ...]
    cap: int  # changes listed; all are counted
    changes: list[JsonChange] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    within: int = 0

    def run(self, base: object, head: object) -> None:
        stack: list[tuple[str, object, object]] = [("", base, head)]
        visited = 0
        while stack:
            pointer, old, new = stack.pop()
            visited += 1
            if visited > MAX_VALUES:
                raise TooManyValues(f"it has more than {MAX_VALUES:,} values")
            if pointer and any(pattern.fullmatch(pointer) for pattern in self.ignored):
                continue
            if old is _MISSING or new is _MISSING:
                self._record(pointer, "added" if old is _MISSING else "removed", old, new)
                continue
            kind = json_type(old)
            if kind != json_type(new):
                self._record(pointer, "type", old, new)
            elif kind == "object":
                assert isinstance(old, dict) and isinstance(new, dict)
                children = [(child_pointer(pointer, k), v, new.get(k, _MISSING)) for k, v in old.items()]
                children += [(child_pointer(pointer, k), _MISSING, v) for k, v in new.items() if k not in old]
                stack.extend(reversed(children))
            elif kind == "array":
                assert isinstance(old, list) and isinstance(new, list)
                items = range(max(len(old), len(new)))
                stack.extend(
                    (
                        f"{pointer}[{i}]",
                        old[i] if i < len(old) else _MISSING,
                        new[i] if i < len(new) else _MISSING,
                    )
                    for i in reversed(items)
                )
            elif kind == "number":
                agreement = numbers_agree(old, new, self.tolerance)  # type: ignore[arg-type]
                if agreement == "beyond":
                    self._record(pointer, "changed", old, new)
                self.within += agreement == "within"
            elif old != new:
                self._record(pointer, "changed", old, new)

    def _record(self, pointer: str, change: str, old: object, new: object) -> None:
        self.counts[change] += 1
        if len(self.changes) < self.cap:  # only listed changes are formatted
            self.changes.append(
                JsonChange(
                    pointer=pointer or ROOT,
                    change=change,  # type: ignore[arg-type]
                    old=None if old is _MISSING else compact(old),
                    new=None if new is _MISSING else compact(new),
                )
            )


def diff_documents(
    path: str, base: object, head: object, tolerance: Tolerance, ignore_paths: list[str], cap: int
) -> tuple[JsonDiff, Counter[str]]:
    """Every change between two parsed documents; the first `cap` of them listed, in document order."""
    walk = _Walk(tolerance, tuple(ignore_pattern(glob) for glob in ignore_paths), cap)
    walk.run(base, head)
    diff = JsonDiff(
        path=path, changes=walk.changes, total=sum(walk.counts.values()), within_tolerance=walk.within
    )
    return diff, walk.counts


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def changes_summary(counts: Counter[str], within: int) -> str:
    """`7 values changed, 2 added; 3 more within tolerance`."""
    verbs = {"changed": "changed", "type": "changed type", "added": "added", "removed": "removed"}
    parts = [
        f"{_plural(counts[change], 'value') if not index else counts[change]} {verb}"
        for index, (change, verb) in enumerate((c, v) for c, v in verbs.items() if counts[c])
    ]
    if not parts:
        if within:
            return f"{_plural(within, 'value')} changed within tolerance"
        return "no value changed (formatting or key order differs)"
    return ", ".join(parts) + (f"; {within} more within tolerance" if within else "")


def _shape(document: object) -> str:
    if isinstance(document, dict):
        return f"an object of {_plural(len(document), 'key')}"
    if isinstance(document, list):
        return f"a list of {_plural(len(document), 'item')}"
    return f"a single {json_type(document)}"


def load_document(pair: Pair, side: Side) -> object:
    """One side parsed by its extension; DocumentUnparseable names the side and what went wrong."""
    where = f"{SIDE_NAMES[side]}'s {pair.path}"
    data = pair.read(side, MAX_DOCUMENT_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{where} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise DocumentUnparseable(message, side, textual=False) from None
    language = "JSON" if PurePosixPath(pair.path).suffix.lower() == ".json" else "YAML"
    try:
        return parse_document(text, pair.path)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        message = f"{where} could not be parsed as {language}: {detail}"
        raise DocumentUnparseable(message, side, textual=True) from None


def _as_text(pair: Pair, rules: Rules, errors: list[DocumentUnparseable]) -> Outcome:
    """Say why the documents were not compared, and still show what changed: as text, else by size."""
    problems = [FileProblem(path=pair.path, message=str(error)) for error in errors]
    if not all(error.textual for error in errors):
        return Outcome("json", f"unreadable; {size_change(pair)}", problems=problems)
    try:
        text = compare_text(pair, rules)
    except FileUnreadable as exc:
        problems.append(FileProblem(path=pair.path, message=str(exc)))
        return Outcome("json", size_change(pair), problems=problems)
    return Outcome(
        "json",
        f"unparseable; {text.summary}",
        text.volatile_only,
        text_diff=text.text_diff,
        problems=problems + text.problems,
    )


def compare_json(pair: Pair, rules: Rules) -> Outcome:
    """A changed, added or removed JSON/YAML document, path by path, with the file's tolerance."""
    parsed: dict[Side, object] = {}
    errors: list[DocumentUnparseable] = []
    for side in pair.sides:
        try:
            parsed[side] = load_document(pair, side)
        except DocumentUnparseable as exc:
            errors.append(exc)
    if errors:
        return _as_text(pair, rules, errors)
    if "base" not in parsed:
        return Outcome("json", f"new, {_shape(parsed['head'])}")
    if "head" not in parsed:
        return Outcome("json", f"removed, was {_shape(parsed['base'])}")
    listed = rules.spec.json_file(pair.path)
    tolerance = listed.tolerance if listed else rules.spec.json_tolerance
    ignore_paths = listed.ignore_paths if listed else []
    cap = rules.options.examples * 4
    try:
        diff, counts = diff_documents(pair.path, parsed["base"], parsed["head"], tolerance, ignore_paths, cap)
    except TooManyValues as exc:
        too_large = DocumentUnparseable(f"{pair.path} was compared as text: {exc}", None, textual=True)
        return _as_text(pair, rules, [too_large])
    summary = changes_summary(counts, diff.within_tolerance)
    unchanged = diff.total == 0 and diff.within_tolerance == 0
    return Outcome("json", summary, volatile_only=unchanged, json_diff=None if unchanged else diff)
