"""`tierbot gc`: what the data dir and the artifact store hold that no recent run or baseline needs, and
removing it (outputs, logs and reports through the store, `bot.artifacts`: from S3 too).

A plan is made first (`plan`), from the database and the data dir, and only then applied (`apply`), so
that `--dry-run` shows exactly what a real run would remove.

What is kept: everything an unfinished run (waiting, queued, running) or a pending comparison needs; the
newest succeeded baseline of each cache key (it is reused, whatever its age); every run that ended
within `older_than`. Of the other runs, their outputs' blobs (unless a kept run's outputs hold the same
content), logs (unless a kept run shares the log, as a reuse does) and their comparisons' HTML reports
go. Worktrees a run left behind go once the run has ended; environments go when no unfinished run needs
them and none used them within `older_than`. With `max_size`, more goes, oldest first (kept runs by
when they ended, environments by when they were last used), until the data dir fits; never what an
unfinished run needs.

Rows stay: a collected run keeps its row (state, exit code, log tail, reason), and its comparisons keep
their result JSON — the metric history reads those. Its `Output` rows are deleted (no row points at a
missing blob), its `log_path`/the comparison's `report_path` become NULL, and its cache key gets the
`gc:` prefix, so that `bot.reuse` never hands its (now empty) outcome to a new run. As no run row is ever
deleted, `reused_run_id` never dangles: a kept reuse of a collected run keeps its own `Output` rows, and
so the blobs it shares with the original.
"""

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from bot.artifacts import ArtifactStore, Stored, artifact_store
from bot.backends.venv import READY
from bot.settings import Settings
from bot.store.models import ComparisonRecord, Output, Run, RunState, SkippedOutput

COLLECTED = "gc:"  # cache-key prefix of a run whose outputs are gone: never reused


@dataclass(frozen=True)
class Policy:
    older_than: timedelta
    now: datetime
    max_size: int | None = None

    @property
    def cutoff(self) -> datetime:
        return self.now - self.older_than


@dataclass(frozen=True)
class Item:
    """One thing to remove: a run's outputs, a log, a report, a worktree or an environment. Outputs, logs
    and reports are in the artifact store (`Stored`), removed through it; the rest are local paths."""

    kind: str
    paths: tuple[Path | Stored, ...]
    size: int
    why: str
    run_id: int | None = None
    comparison_id: int | None = None


@dataclass
class Plan:
    store: ArtifactStore
    items: list[Item] = field(default_factory=list)
    collected_runs: set[int] = field(default_factory=set)  # whose Output rows go, key marked
    data_size: int = 0  # bytes in the data dir before

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)


@dataclass
class _Held:
    """How many kept runs hold each blob and log, and what the plan already removes."""

    blobs: Counter
    logs: Counter
    removed: set = field(default_factory=set)


def plan(s, settings: Settings, policy: Policy, needed_envs: set[str] | None) -> Plan:
    """What to remove. `needed_envs`: environment keys unfinished runs need; None when unknown (then no
    environment is removed)."""
    runs = {r.id: r for r in s.scalars(select(Run))}
    hashes: dict[int, dict[str, int]] = {}
    for run_id, hash, size in s.execute(select(Output.run_id, Output.hash, Output.size)):
        hashes.setdefault(run_id, {})[hash] = size
    comparisons = list(s.scalars(select(ComparisonRecord)))

    protected = {r.id for r in runs.values() if not RunState(r.state).terminal}
    protected |= {c.head_run_id for c in comparisons if c.state == "pending"}
    protected |= {c.base_run_id for c in comparisons if c.state == "pending"}
    kept = protected | _latest_baselines(runs.values())
    kept |= {r.id for r in runs.values() if _when(r) >= policy.cutoff}

    store = artifact_store(settings)
    result = Plan(store, data_size=_tree_size(settings.data_dir))
    held = _Held(
        blobs=Counter(h for run_id in kept for h in hashes.get(run_id, {})),
        logs=Counter(runs[run_id].log_path for run_id in kept if runs[run_id].log_path),
    )
    reports: dict[int, list[ComparisonRecord]] = {}
    for c in comparisons:
        reports.setdefault(c.head_run_id, []).append(c)

    def collect(run: Run, why: str) -> None:
        if run.id in kept:  # only kept runs were counted as holding their blobs and log
            kept.discard(run.id)
            held.blobs.subtract(hashes.get(run.id, {}).keys())
            if run.log_path:
                held.logs[run.log_path] -= 1
        result.items.extend(_run_items(run, why, hashes.get(run.id, {}), held, reports, store, settings))
        result.collected_runs.add(run.id)

    for run in sorted((r for r in runs.values() if r.id not in kept), key=_when):
        if not run.cache_key.startswith(COLLECTED) or run.log_path:
            collect(run, f"ended {_age(run, policy)} ago")
    result.items.extend(_worktrees(settings.worktrees_dir, runs, protected, policy))
    envs = _environments(settings.envs_dir, needed_envs)
    result.items.extend(
        _env_item(path, used, "unused for", policy) for path, used in envs if used < policy.cutoff
    )

    if policy.max_size is not None:
        left = [(when, path) for path, when in envs if when >= policy.cutoff]
        by_age = sorted(
            [(_when(runs[i]), "run", i) for i in kept - protected] + [(w, "env", p) for w, p in left],
            key=lambda entry: entry[0],
        )
        for when, kind, what in by_age:
            if result.data_size - result.size <= policy.max_size:
                break
            if kind == "run":
                collect(runs[what], f"over --max-size; ended {_age(runs[what], policy)} ago")
            else:
                result.items.append(_env_item(what, when, "over --max-size; unused for", policy))
    result.items = [item for item in result.items if item.paths]
    return result


def apply(s, plan: Plan) -> int:
    """Remove what `plan` lists, files first, then forget them in the database; the bytes freed."""
    freed = 0
    for item in plan.items:
        for path in item.paths:
            if isinstance(path, Stored):
                plan.store.remove(path.location)
            else:
                _remove(path)
        freed += item.size
    for item in plan.items:
        if item.kind == "log" and item.run_id is not None:
            s.execute(update(Run).where(Run.log_path == item.paths[0].location).values(log_path=None))
        if item.kind == "report" and item.comparison_id is not None:
            s.execute(
                update(ComparisonRecord)
                .where(ComparisonRecord.id == item.comparison_id)
                .values(report_path=None)
            )
    for run_id in plan.collected_runs:
        s.execute(delete(Output).where(Output.run_id == run_id))
        s.execute(delete(SkippedOutput).where(SkippedOutput.run_id == run_id))
        run = s.get(Run, run_id)
        if not run.cache_key.startswith(COLLECTED):
            run.cache_key = COLLECTED + run.cache_key
    return freed


def _latest_baselines(runs: Iterable[Run]) -> set[int]:
    latest: dict[str, int] = {}
    for r in runs:
        if r.role == "baseline" and r.state == RunState.succeeded and not r.cache_key.startswith(COLLECTED):
            latest[r.cache_key] = max(latest.get(r.cache_key, 0), r.id)
    return set(latest.values())


def _run_items(run, why, hashes, held: _Held, reports, store: ArtifactStore, settings) -> list[Item]:
    items = []
    blobs = {h: store.blob_location(h) for h in hashes if held.blobs[h] <= 0 and h not in held.removed}
    gone = [h for h, location in blobs.items() if store.size(location) is not None]
    held.removed.update(gone)  # counted once, even when another collected run holds the same content
    if gone:
        files = f"{len(gone)} file{'s' * (len(gone) != 1)}"
        paths = tuple(Stored(blobs[h]) for h in gone)
        why_outputs = f"run {run.id}'s outputs ({files}); {why}"
        items.append(Item("outputs", paths, sum(hashes[h] for h in gone), why_outputs, run.id))
    log = run.log_path
    if log and held.logs[log] <= 0 and log not in held.removed and (size := store.size(log)) is not None:
        held.removed.add(log)
        items.append(Item("log", (Stored(log),), size, f"run {run.id}'s log; {why}", run.id))
    for c in reports.get(run.id, []):
        found = _report_parts(c, settings, store)
        size = sum(part_size for _, part_size in found)
        why_report = f"comparison {c.id}'s report (run {run.id}); {why}"
        paths = tuple(part for part, _ in found)
        items.append(Item("report", paths, size, why_report, run.id, comparison_id=c.id))
    return items


def _report_parts(
    c: ComparisonRecord, settings: Settings, store: ArtifactStore
) -> list[tuple[Path | Stored, int]]:
    """A comparison's report in the store, and what this host holds of it: its diff pictures, and a report
    file left in the data dir (written before a store was configured), each with its size."""
    parts: list[tuple[Path | Stored, int]] = []
    if c.report_path and (size := store.size(c.report_path)) is not None:
        parts.append((Stored(c.report_path), size))
    for path in (
        settings.reports_dir / f"comparison-{c.id}.html",
        settings.reports_dir / f"comparison-{c.id}",
    ):
        if path.exists() and str(path) != c.report_path:
            parts.append((path, _tree_size(path)))
    return parts


def _worktrees(root: Path, runs: dict[int, Run], protected: set[int], policy: Policy) -> list[Item]:
    """Checkouts a run left behind (a worker that died): any once the run has ended, others when old."""
    items = []
    for path in sorted(root.glob("*")) if root.is_dir() else []:
        run_id = _run_id(path.name)
        if run_id in protected:
            continue
        if run_id in runs:
            why = f"run {run_id} has ended"
        elif _mtime(path) < policy.cutoff:
            why = "no run has it; untouched for " + _days(policy.now - _mtime(path))
        else:
            continue
        items.append(Item("worktree", (path,), _tree_size(path), why, run_id))
    return items


def _environments(root: Path, needed: set[str] | None) -> list[tuple[Path, datetime]]:
    """Environments no unfinished run needs, with when each was last used: its directory is touched on
    every reuse (`bot.backends.venv.prepare`), its ready marker written when it was built."""
    if needed is None or not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in needed):
        marker = path / READY
        found.append((path, max(_mtime(path), _mtime(marker)) if marker.exists() else _mtime(path)))
    return found


def _env_item(path: Path, used: datetime, why: str, policy: Policy) -> Item:
    lock = path.with_name(f"{path.name}.lock")
    paths = (path, lock) if lock.exists() else (path,)
    age = _days(policy.now - used)
    return Item("environment", paths, _tree_size(path), f"environment {path.name}: {why} {age}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=_writable_then_retry)
    else:
        path.unlink(missing_ok=True)


def _writable_then_retry(function, path: str, _exc) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    function(path)


def _tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a worker removed it meanwhile
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _run_id(name: str) -> int | None:
    number = name.removeprefix("run-")
    return int(number) if name.startswith("run-") and number.isdigit() else None


def _when(run: Run) -> datetime:
    return run.finished_at or run.created_at


def _age(run: Run, policy: Policy) -> str:
    return _days(policy.now - _when(run))


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 2 else f"{delta.total_seconds() / 3600:.0f} hours"
