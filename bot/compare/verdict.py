"""The verdict and the sentences behind it, from the comparison's rows alone.

Rule v1: **fail** when a metric got worse beyond its threshold (or a guarded metric could not be
checked on the branch); else **changed** when any compared file differs, was added or removed — even
if only in volatile tokens, because the bytes did change and hiding that would make "pass" a lie;
else **pass**.
"""

from collections.abc import Sequence

from bot.compare.model import FileChange, FileProblem, MetricChange, Verdict
from bot.compare.numbers import format_number, format_percent

MAX_NAMED = 10  # reasons name this many metrics and problems, then count the rest


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def regression_reason(metric: MetricChange) -> str:
    """`metric accuracy in metrics.json got worse by 0.031 (threshold 0.01)`."""
    where = f"metric {metric.name} in {metric.file}"
    if metric.change == "removed":
        return f"{where} is missing on the branch (threshold {metric.threshold})"
    if metric.delta is None:
        return f"{where} became {format_number(metric.head)} (threshold {metric.threshold})"
    worse_by = format_number(abs(metric.delta))
    relative = (metric.threshold or "").endswith("%") and metric.delta_pct is not None
    share = f"{format_percent(abs(metric.delta_pct))[1:]}; " if relative else ""
    return f"{where} got worse by {worse_by} ({share}threshold {metric.threshold})"


def files_reason(files: Sequence[FileChange]) -> str | None:
    """`3 files changed (1 only in volatile tokens), 1 added, 2 removed`."""
    changed = [f for f in files if f.status == "changed"]
    volatile = sum(1 for f in changed if f.volatile_only)
    parts = []
    if changed:
        note = f" ({volatile} only in volatile tokens)" if volatile and volatile < len(changed) else ""
        note = " (only in volatile tokens)" if volatile and volatile == len(changed) else note
        parts.append(f"{_plural(len(changed), 'file')} changed{note}")
    for status in ("added", "removed"):
        count = sum(1 for f in files if f.status == status)
        if count:
            parts.append(f"{count} {status}" if parts else f"{_plural(count, 'file')} {status}")
    return ", ".join(parts) or None


def metrics_reason(metrics: Sequence[MetricChange]) -> str | None:
    """`metrics: 2 better, 1 worse within threshold, 3 changed without a direction, 1 added`."""
    moved = [m for m in metrics if m.change not in ("same", "added", "removed") and not m.failed]
    counts = {
        "better": sum(1 for m in moved if m.assessment == "better"),
        "worse within threshold": sum(1 for m in moved if m.assessment == "worse"),
        "changed without a direction": sum(1 for m in moved if m.assessment == "neutral"),
        "added": sum(1 for m in metrics if m.change == "added"),
        "removed": sum(1 for m in metrics if m.change == "removed" and not m.failed),
    }
    parts = [f"{count} {what}" for what, count in counts.items() if count]
    if not parts:
        return None
    return f"{'metric' if sum(counts.values()) == 1 else 'metrics'}: " + ", ".join(parts)


def decide(
    files: Sequence[FileChange], metrics: Sequence[MetricChange], problems: Sequence[FileProblem]
) -> tuple[Verdict, list[str]]:
    """The verdict and its reasons, most important first, deterministic for the same rows."""
    failed = [m for m in metrics if m.failed]
    blocking = [p for p in problems if p.blocking]
    reasons = [regression_reason(m) for m in failed[:MAX_NAMED]]
    if len(failed) > MAX_NAMED:
        reasons.append(f"{len(failed) - MAX_NAMED} more metrics regressed beyond their thresholds")
    reasons += [p.message for p in blocking[:MAX_NAMED]]
    files_line, metrics_line = files_reason(files), metrics_reason(metrics)
    reasons += [line for line in (files_line, metrics_line) if line]
    others = len(problems) - len(blocking)
    if others:
        reasons.append(f"{_plural(others, 'problem')} comparing files (see below)")
    if failed or blocking:
        return "fail", reasons
    if files_line:
        return "changed", reasons
    identical = sum(1 for f in files if f.status == "identical")
    ignored = sum(1 for f in files if f.status == "ignored")
    counts = [f"{_plural(identical, 'file')} identical"] if identical else []
    counts += [f"{ignored} ignored"] if ignored else []
    summary = f"no output changed ({', '.join(counts)})" if counts else "no outputs on either side"
    return "pass", [summary, *reasons]
