"""Parameters: what changed in the *inputs* of a run, DVC's `params diff` read as it is.

Params files (`compare.params`, or DVC's `params.yaml` when none are listed) are files of the commits,
not outputs: the pipeline hands over a way to read each side's commit, and this module parses (YAML,
JSON or TOML, by extension), flattens nested keys with dots (`train.lr`; a list is one value) and
diffs key by key. Equal keys are only counted. A file missing on one side is diffed against nothing
(every key new, or removed) and said; a file that cannot be read or parsed on one side is said, and
not diffed. Nothing here raises for what a commit holds, and nothing here makes the verdict: the
inputs changing is the point of a branch, so the reports show them first and judge only the outputs.

Values come from any commit, a fork's too: YAML aliases are shared, not copied, when parsed, so a
few hundred bytes can name billions of values; walking stops at MAX_VALUES.
"""

import json
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from pathlib import PurePosixPath

import yaml
from pydantic import JsonValue

from bot.compare.metrics import parse_document
from bot.compare.model import ParamChange, ParamsDiff
from bot.errors import TierbotError
from bot.spec import PARAMS_FORMATS

DVC_PARAMS = "params.yaml"  # what `dvc params diff` reads when nothing else is named
MAX_CHANGES = 50  # changed keys kept per file, in key order; the rest are counted
MAX_VALUES = 100_000  # values walked per file, lists' items included
MISSING = "missing"

Read = Callable[[str], str | None]  # one side's commit: a file's text, None when it has no such file


class ParamsUnreadable(Exception):
    """One side of a params file cannot be used; the message says why, without naming the side."""


def _plain(value: object, budget: list[int]) -> JsonValue:
    """`value` as JSON holds it: dates as ISO text, non-finite floats as "NaN"/"Infinity" (JSON has no
    such numbers, and NaN would never equal itself), keys as text. Counts against the budget."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ParamsUnreadable(f"it has more than {MAX_VALUES:,} values")
    if isinstance(value, dict):
        return {str(k): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, budget) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)  # what else YAML builds (bytes of !!binary, sets): shown as text


def flatten(document: dict) -> dict[str, JsonValue]:
    """Leaves by dotted key: `{"train": {"lr": 0.1}}` → `train.lr`; a list, or an empty mapping, is one
    value."""
    budget = [MAX_VALUES]  # shared by the walk and `_plain`, which copies each leaf
    found: dict[str, JsonValue] = {}
    stack: list[tuple[str, object]] = [(str(k), v) for k, v in reversed(document.items())]
    while stack:
        name, value = stack.pop()
        if isinstance(value, dict) and value:
            budget[0] -= 1
            stack.extend((f"{name}.{k}", v) for k, v in reversed(value.items()))
        else:
            found[name] = _plain(value, budget)
    return found


def parse_params(text: str, path: str) -> dict[str, JsonValue]:
    """One side's text as flattened keys; ParamsUnreadable says what is wrong with it."""
    if not text.strip():
        return {}
    kind = PARAMS_FORMATS.get(PurePosixPath(path).suffix.lower(), "YAML")
    try:
        document = parse_document(text, path)
    except (ValueError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ParamsUnreadable(f"not valid {kind}: {detail}") from None
    except RecursionError:
        raise ParamsUnreadable(f"not valid {kind}: nested too deeply") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ParamsUnreadable(f"not a mapping of parameters (a {type(document).__name__})")
    try:
        return flatten(document)
    except RecursionError:
        raise ParamsUnreadable("nested too deeply") from None


def _same(old: JsonValue, new: JsonValue) -> bool:
    """Equal as written: `1` and `true` differ (Python says they are equal), key order does not matter."""
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def _change(name: str, base: dict[str, JsonValue], head: dict[str, JsonValue]) -> ParamChange:
    if name not in base:
        return ParamChange(name=name, change="added", new=head[name])
    if name not in head:
        return ParamChange(name=name, change="removed", old=base[name])
    return ParamChange(name=name, change="changed", old=base[name], new=head[name])


def diff_params(path: str, base: dict[str, JsonValue], head: dict[str, JsonValue]) -> ParamsDiff:
    """Keys added, removed or changed, in key order: the first MAX_CHANGES kept, all counted."""
    diff = ParamsDiff(path=path)
    for name in sorted(base.keys() | head.keys()):
        if name in base and name in head and _same(base[name], head[name]):
            diff.unchanged += 1
            continue
        diff.total += 1
        if len(diff.changes) < MAX_CHANGES:
            diff.changes.append(_change(name, base, head))
    return diff


def _side(read: Read, path: str) -> tuple[dict[str, JsonValue] | None, str | None]:
    """(keys, note) of one side: no keys when it cannot be diffed; a missing file has none to diff."""
    try:
        text = read(path)
    except TierbotError as exc:  # too large, or the repository could not be fetched: said, not raised
        return None, f"could not be read: {exc}"
    if text is None:
        return {}, MISSING
    try:
        return parse_params(text, path), None
    except ParamsUnreadable as exc:
        return None, str(exc)


def compare_params(listed: Iterable[str] | None, read_base: Read, read_head: Read) -> list[ParamsDiff]:
    """Each params file `compare.params` lists, at main's commit and the branch's; without the list,
    DVC's params.yaml when either commit has it."""
    diffs = []
    for path in listed if listed is not None else [DVC_PARAMS]:
        (base, base_note), (head, head_note) = _side(read_base, path), _side(read_head, path)
        if listed is None and base_note == head_note == MISSING:
            continue
        diff = ParamsDiff(path=path) if base is None or head is None else diff_params(path, base, head)
        diff.base_note, diff.head_note = base_note, head_note
        diffs.append(diff)
    return diffs
