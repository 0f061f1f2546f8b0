"""Metric files (JSON, YAML, TOML): every numeric leaf, main against the branch, judged by the spec's rules.

A long list of numbers (a loss per epoch) is a series: its chart shows it (`bot.compare.series`) and the
table only its last value, as `loss[-1]`, which `loss`'s rule judges; a short one (a score per class) is
listed element by element.

A rule knows which way is better (`direction`) and how much worse is too much (`max_regression`, absolute
or relative to main's value). A guarded metric that disappears from the branch fails too: otherwise
deleting a metric would be the easiest way to pass the check.
"""

import json
import math
import re
import tomllib
from pathlib import PurePosixPath

import yaml

from bot.compare.files import SIDE_NAMES, FileUnreadable, Outcome, Pair, Rules, Side, size_change
from bot.compare.model import FileProblem, MetricChange, MetricMove
from bot.compare.numbers import denoise, format_number
from bot.compare.text import compare_text
from bot.spec import MetricRule, parse_threshold
from bot.yamlmodel import CoreLoader

MAX_METRICS_BYTES = 16 * 1024 * 1024
MAX_NODES = 100_000  # YAML aliases can make a small file an enormous tree; stop walking long before that
LISTED_ELEMENTS = 10  # a longer list of numbers is a series: one row, its last value
LAST = "[-1]"  # a series' row: `loss[-1]`
_ELEMENT = re.compile(r"^(.*)\[(\d+)\]$")  # a flattened name of a list's number: `loss[3]`

Number = int | float


class MetricsUnparseable(Exception):
    """One side of a metrics file could not be read; `textual` when it can still be diffed as text."""

    def __init__(self, message: str, side: Side, textual: bool):
        super().__init__(message)
        self.side = side
        self.textual = textual


def parse_document(text: str, path: str) -> object:
    """By extension: JSON, TOML, else YAML 1.2 (which also reads JSON)."""
    suffix = PurePosixPath(path).suffix.lower()
    if not text.strip():
        raise ValueError("the file is empty")
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    return yaml.load(text, Loader=CoreLoader)  # noqa: S506 (a safe loader)


def flatten(document: object) -> dict[str, int | float]:
    """Numeric leaves by path: `{"test": {"acc": 1}}` → `test.acc`, lists as `[0]`; bools are not metrics."""
    found: dict[str, int | float] = {}
    stack: list[tuple[str, object]] = [("", document)]
    visited = 0
    while stack:
        prefix, node = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise ValueError(f"it has more than {MAX_NODES:,} values")
        if isinstance(node, dict):
            children = [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in node.items()]
        elif isinstance(node, list):
            children = [(f"{prefix}[{index}]", value) for index, value in enumerate(node)]
        else:
            if isinstance(node, int | float) and not isinstance(node, bool):
                found[prefix or "(value)"] = node
            continue
        stack.extend(reversed(children))
    return found


def lists_in(metrics: dict[str, Number]) -> dict[str, tuple[list[Number], list[Number]]]:
    """The lists of numbers among flattened metrics, by name: positions and values, in document order."""
    found: dict[str, tuple[list[Number], list[Number]]] = {}
    for name, value in metrics.items():
        element = _ELEMENT.match(name)
        if element is not None:
            xs, ys = found.setdefault(element.group(1) or "(list)", ([], []))
            xs.append(int(element.group(2)))
            ys.append(value)
    return {name: points for name, points in found.items() if len(points[1]) >= 2}


def _listed(metrics: dict[str, Number], series: set[str]) -> dict[str, Number]:
    """The rows of a table: every number, but of each of `series` only its last value."""
    rows, last = {}, {}
    for name, value in metrics.items():
        element = _ELEMENT.match(name)
        listed = element and (element.group(1) or "(list)")
        if listed in series:
            last[listed + LAST] = value  # in document order: the list's last element stays
        else:
            rows[name] = value
    return rows | last


def _natural(name: str) -> tuple:
    """`loss[2]` before `loss[10]`: the digits in a name compared as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def load_metrics(pair: Pair, side: Side) -> dict[str, int | float]:
    """One side's metrics, or MetricsUnparseable with a message that names the side and the error."""
    where = f"{SIDE_NAMES[side]}'s {pair.path}"
    try:
        data = pair.read(side, MAX_METRICS_BYTES)
    except FileUnreadable as exc:
        raise MetricsUnparseable(str(exc), side, textual=False) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{where} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise MetricsUnparseable(message, side, textual=False) from None
    try:
        return flatten(parse_document(text, pair.path))
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        message = f"{where} could not be parsed as metrics: {detail}"
        raise MetricsUnparseable(message, side, textual=True) from None


def _beyond(worse_by: float, base: float, rule: MetricRule) -> bool:
    """Worse by strictly more than the threshold; float noise at the boundary does not fail."""
    if rule.max_regression is None or worse_by <= 0:
        return False
    amount, relative = parse_threshold(rule.max_regression)
    limit = amount * abs(base) if relative else amount
    return worse_by > limit and not math.isclose(worse_by, limit, rel_tol=1e-9, abs_tol=1e-12)


def _move(base: int | float, head: int | float) -> MetricMove:
    if math.isnan(base) or math.isnan(head):
        return "same" if math.isnan(base) and math.isnan(head) else "changed"
    return "same" if base == head else ("up" if head > base else "down")


def _assess(move: MetricMove, head: int | float | None, direction: str | None) -> str:
    """Better or worse by the rule's direction; to or from NaN, a NaN on the branch is never better."""
    if direction is None:
        return "neutral"
    if move == "changed":
        return "worse" if head is not None and math.isnan(head) else "better"
    if move in ("up", "down"):
        return "better" if (move == "up") == (direction == "higher") else "worse"
    return "neutral"


def _threshold_text(rule: MetricRule) -> str | None:
    """The threshold as the user wrote it: `0.01`, `2%` (pydantic turns `1` into `1.0`; undo that)."""
    value = rule.max_regression
    if value is None or isinstance(value, str):
        return value
    return format_number(value)


def compare_values(
    file: str, name: str, base: int | float | None, head: int | float | None, rule: MetricRule | None
) -> MetricChange:
    """One metric: its move, whether the move is better or worse, and whether it breaks the rule."""
    rule = rule or MetricRule()
    guarded = rule.max_regression is not None
    delta = delta_pct = None
    if base is None or head is None:
        move: MetricMove = "added" if base is None else "removed"
        assessment = "worse" if move == "removed" and guarded else "neutral"
        failed = move == "removed" and guarded
    else:
        move = _move(base, head)
        assessment = _assess(move, head, rule.direction)
        if move == "changed":  # to or from NaN: there is no delta, and no threshold a NaN stays within
            failed = guarded and assessment == "worse"
        else:
            delta = 0 if move == "same" else denoise(head - base)
            if move != "same" and base != 0 and math.isfinite(base) and math.isfinite(delta):
                delta_pct = denoise(delta / abs(base) * 100)
            failed = assessment == "worse" and _beyond(abs(head - base), base, rule)
    return MetricChange(
        file=file,
        name=name,
        base=base,
        head=head,
        delta=delta,
        delta_pct=delta_pct,
        change=move,
        direction=rule.direction,
        assessment=assessment,
        threshold=_threshold_text(rule),
        failed=failed,
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(pair: Pair, changes: list[MetricChange]) -> str:
    if pair.base is None:
        return f"new, {_plural(len(changes), 'metric')}"
    if pair.head is None:
        return f"removed, had {_plural(len(changes), 'metric')}"
    moved = sum(1 for m in changes if m.change != "same")
    failed = sum(1 for m in changes if m.failed)
    summary = f"{_plural(moved, 'metric')} changed"
    return summary + (f", {failed} beyond threshold" if failed else "")


def _as_text(pair: Pair, rules: Rules) -> Outcome:
    """The text view of a metrics file, or why there is none; never raises for one file."""
    try:
        return compare_text(pair, rules)
    except FileUnreadable as exc:
        return Outcome("metrics", size_change(pair), problems=[FileProblem(path=pair.path, message=str(exc))])


def _unparseable(pair: Pair, errors: list[MetricsUnparseable], guarded: bool, rules: Rules) -> Outcome:
    """Say why, and still show what changed: as text when it is text, else by size."""
    problems = []
    for error in errors:
        blocking = guarded and error.side == "head"
        suffix = "; its guarded metrics could not be checked" if blocking else ""
        problems.append(FileProblem(path=pair.path, message=str(error) + suffix, blocking=blocking))
    if all(error.textual for error in errors):
        text = _as_text(pair, rules)
        return Outcome(
            "metrics",
            f"unparseable; {text.summary}",
            text.volatile_only,
            text_diff=text.text_diff,
            problems=problems + text.problems,
        )
    return Outcome("metrics", f"unreadable; {size_change(pair)}", problems=problems)


def _rule(rules: dict[str, MetricRule], name: str) -> MetricRule | None:
    """A metric's rule; a series' last value is judged by the series' rule (`loss` for `loss[-1]`)."""
    return rules.get(name) or (rules.get(name.removesuffix(LAST)) if name.endswith(LAST) else None)


def compare_metrics(pair: Pair, rules: Rules) -> Outcome:
    """Every metric of a changed, added or removed metrics file, judged by the spec's rules for it."""
    listed = rules.spec.metric_file(pair.path)
    metric_rules = listed.metrics if listed else {}
    parsed: dict[Side, dict[str, int | float]] = {}
    errors: list[MetricsUnparseable] = []
    for side in pair.sides:
        try:
            parsed[side] = load_metrics(pair, side)
        except MetricsUnparseable as exc:
            errors.append(exc)
    guarded = any(rule.max_regression is not None for rule in metric_rules.values())
    if errors:
        return _unparseable(pair, errors, guarded, rules)
    series = {
        name
        for found in parsed.values()
        for name, (_, ys) in lists_in(found).items()
        if len(ys) > LISTED_ELEMENTS
    }
    base, head = (_listed(parsed.get(side, {}), series) for side in ("base", "head"))
    changes = [
        compare_values(pair.path, name, base.get(name), head.get(name), _rule(metric_rules, name))
        for name in sorted(base.keys() | head.keys(), key=_natural)
    ]
    outcome = Outcome("metrics", _summary(pair, changes), metrics=changes)
    outcome.problems = [
        FileProblem(
            path=pair.path,
            message=f"tierbot.yaml has a rule for metric {name}, but {pair.path} "
            f"has no numeric value by that name on either side",
        )
        for name in sorted(metric_rules)
        if not {name, name + LAST} & (base.keys() | head.keys())
    ]
    if pair.base is not None and pair.head is not None and not any(m.change != "same" for m in changes):
        text = _as_text(pair, rules)  # nothing numeric moved: show what else did
        outcome.summary = f"no metric changed; {text.summary}"
        outcome.text_diff, outcome.volatile_only = text.text_diff, text.volatile_only
        outcome.problems += text.problems
    return outcome
