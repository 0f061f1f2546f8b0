"""The verdict and the sentences behind it, from the comparison's rows alone.

Rule v1: **fail** when a metric got worse beyond its threshold (or a guarded metric could not be
checked on the branch), or when a table listed in tierbot.yaml's `compare.tables` has cells beyond
tolerance, rows added or removed, columns added, removed or retyped, or is missing on the branch; else
**changed** when any compared file differs, was added or removed — even if only in volatile tokens or
within tolerance, because the bytes did change and hiding that would make "pass" a lie — or when either
run left an entry that was not read (a link out of the workspace, a FIFO...): what was not compared
cannot pass; else **pass**.
"""

from collections.abc import Sequence

from bot.compare.model import ColumnDiff, FileChange, FileProblem, MetricChange, TableDiff, Verdict
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


def _column_phrase(column: ColumnDiff) -> str:
    cells = _plural(column.beyond, "cell")
    if column.tolerance in (None, "exact"):
        return f"{cells} in {column.name} changed (compared exactly)"
    return f"{cells} in {column.name} beyond tolerance {column.tolerance}"


def table_reasons(table: TableDiff, status: str | None) -> list[str]:
    """Why a listed table fails: `predictions.csv: 31 cells in p_virginica beyond tolerance abs 1e-06`."""
    if not table.listed:
        return []
    if status == "removed":
        return [f"{table.path} is listed in tierbot.yaml but the branch did not produce it"]
    if status != "changed":
        return []
    reasons = []
    beyond = [c for c in table.columns if c.beyond]
    if beyond:
        named = ", ".join(_column_phrase(c) for c in beyond[:3])
        more = f" and {_plural(len(beyond) - 3, 'more column')}" if len(beyond) > 3 else ""
        reasons.append(f"{table.path}: {named}{more}")
    if table.rows_added or table.rows_removed:
        rows = [f"{table.rows_added:,} added"] if table.rows_added else []
        rows += [f"{table.rows_removed:,} removed"] if table.rows_removed else []
        by = f"key {', '.join(table.key)}" if table.key else "row number"
        reasons.append(f"{table.path}: rows {' and '.join(rows)} (by {by})")
    if table.schema_changes:
        changes = [
            f"{c.column} {c.base_type} → {c.head_type}" if c.change == "type" else f"{c.column} {c.change}"
            for c in table.schema_changes[:MAX_NAMED]
        ]
        more = len(table.schema_changes) - len(changes)
        reasons.append(
            f"{table.path}: columns changed: {', '.join(changes)}" + (f" and {more} more" if more else "")
        )
    return reasons


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
    files: Sequence[FileChange],
    metrics: Sequence[MetricChange],
    problems: Sequence[FileProblem],
    tables: Sequence[TableDiff] = (),
) -> tuple[Verdict, list[str]]:
    """The verdict and its reasons, most important first, deterministic for the same rows."""
    failed = [m for m in metrics if m.failed]
    blocking = [p for p in problems if p.blocking]
    reasons = [regression_reason(m) for m in failed[:MAX_NAMED]]
    if len(failed) > MAX_NAMED:
        reasons.append(f"{len(failed) - MAX_NAMED} more metrics regressed beyond their thresholds")
    status = {f.path: f.status for f in files}
    table_failures = [line for t in tables for line in table_reasons(t, status.get(t.path))]
    reasons += table_failures[:MAX_NAMED]
    if len(table_failures) > MAX_NAMED:
        reasons.append(f"{len(table_failures) - MAX_NAMED} more reasons tables failed")
    reasons += [p.message for p in blocking[:MAX_NAMED]]
    files_line, metrics_line = files_reason(files), metrics_reason(metrics)
    reasons += [line for line in (files_line, metrics_line) if line]
    skipped = sum(1 for p in problems if p.skipped)
    if skipped:
        reasons.append(f"{skipped} output {'entry' if skipped == 1 else 'entries'} skipped (see below)")
    others = len(problems) - len(blocking) - skipped
    if others:
        reasons.append(f"{_plural(others, 'problem')} comparing files (see below)")
    if failed or blocking or table_failures:
        return "fail", reasons
    if files_line or skipped:
        return "changed", reasons
    identical = sum(1 for f in files if f.status == "identical")
    ignored = sum(1 for f in files if f.status == "ignored")
    counts = [f"{_plural(identical, 'file')} identical"] if identical else []
    counts += [f"{ignored} ignored"] if ignored else []
    summary = f"no output changed ({', '.join(counts)})" if counts else "no outputs on either side"
    return "pass", [summary, *reasons]
