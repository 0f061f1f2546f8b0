"""The runs table as a work queue: enqueue, claim with a lease, heartbeat, finish, cancel, recover.

A worker owns a run only while its lease is fresh. A worker that dies stops heartbeating; the next
`recover` requeues its run (or fails it, with the reason, once it has used up its attempts).
"""

import socket
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select, update

from bot.errors import RunNotFound, TierbotError
from bot.store.db import Database
from bot.store.models import Run, RunState, utcnow
from bot.tiers import TierSet

HOST = socket.gethostname()
_NOT_STARTED = (RunState.waiting, RunState.queued)


class LeaseLost(Exception):
    """This worker no longer owns the run (its lease expired and the run moved on)."""


class Queue:
    def __init__(
        self,
        db: Database,
        tiers: TierSet,
        lease_seconds: float,
        max_attempts: int,
        on_change: Callable[[list[int]], None] = lambda ids: None,
    ):
        """`on_change` hears which runs changed state or phase (after the change is committed)."""
        self.db = db
        self.on_change = on_change
        self.tiers = tiers
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts

    def position(self, run_id: int) -> int:
        """1-based place among the queued runs of the same tier (0 when not queued)."""
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None or run.state != RunState.queued:
                return 0
            ahead = s.scalar(
                select(func.count()).where(
                    Run.state == RunState.queued, Run.tier == run.tier, Run.id < run.id
                )
            )
            return (ahead or 0) + 1

    def waiting_on(self, tier: str) -> int:
        """Runs queued or running on a tier: what a new run there waits behind."""
        with self.db.session() as s:
            busy = [RunState.queued, RunState.running]
            return s.scalar(select(func.count()).where(Run.state.in_(busy), Run.tier == tier)) or 0

    def claim(self, worker: str, only: set[int] | None = None) -> Run | None:
        """Take the oldest queued run on a tier with a free slot, or None."""
        with self.db.exclusive() as s:
            busy = dict(
                s.execute(
                    select(Run.tier, func.count()).where(Run.state == RunState.running).group_by(Run.tier)
                ).all()
            )
            query = select(Run).where(Run.state == RunState.queued).order_by(Run.id)
            if only is not None:
                query = query.where(Run.id.in_(only))
            for run in s.scalars(query):
                if run.tier not in self.tiers.names():
                    _end(run, RunState.failed, f"tier {run.tier!r} no longer exists in the tiers file")
                    continue
                if busy.get(run.tier, 0) >= self.tiers.get(run.tier).concurrency:
                    continue
                now = utcnow()
                run.state, run.phase, run.worker, run.host = RunState.running, "starting", worker, HOST
                run.attempts += 1
                run.started_at, run.lease_expires_at = now, now + self.lease
                run.pgid = None
                break
            else:
                return None
        self.on_change([run.id])
        return run

    def heartbeat(self, run_id: int, worker: str) -> bool:
        """Extend the lease; return whether cancellation was requested. Raises LeaseLost."""
        with self.db.session() as s:
            result = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.state == RunState.running)
                .values(lease_expires_at=utcnow() + self.lease)
            )
            if result.rowcount != 1:
                raise LeaseLost(run_id)
            return bool(s.scalar(select(Run.cancel_requested).where(Run.id == run_id)))

    def note(self, run_id: int, worker: str, **fields) -> None:
        """Record progress (phase, pgid, last log line) of a run this worker owns."""
        with self.db.session() as s:
            s.execute(update(Run).where(Run.id == run_id, Run.worker == worker).values(**fields))
        if "phase" in fields:
            self.on_change([run_id])

    def finish(self, run_id: int, worker: str, state: RunState, reason: str, **fields) -> None:
        with self.db.session() as s:
            result = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.state == RunState.running)
                .values(state=state, phase=state.value, reason=reason, finished_at=utcnow(), **fields)
            )
            if result.rowcount != 1:
                raise LeaseLost(run_id)
        self.on_change([run_id])

    def cancel(self, run_id: int) -> Run:
        """Cancel a queued run at once; ask the worker of a running run to stop it."""
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(f"There is no run {run_id}.")
            if run.run_state.terminal:
                raise TierbotError(f"Run {run_id} has already ended ({run.state}); nothing to cancel.")
            if run.state in _NOT_STARTED:
                _end(run, RunState.cancelled, "cancelled before it started")
            else:
                run.cancel_requested = True
        self.on_change([run_id])
        return run

    def cancel_subject(self, subject: str, keep_sha: str | None = None) -> list[int]:
        """Cancel the unfinished runs for a subject (a PR), except those of `keep_sha`; their ids."""
        with self.db.session() as s:
            query = select(Run).where(
                Run.subject == subject, Run.state.in_([*_NOT_STARTED, RunState.running])
            )
            if keep_sha:
                query = query.where(Run.sha != keep_sha)
            runs = list(s.scalars(query))
            for run in runs:
                if run.state in _NOT_STARTED:
                    _end(
                        run, RunState.cancelled, "superseded" if keep_sha else "cancelled: the PR was closed"
                    )
                else:
                    run.cancel_requested = True
            ids = [run.id for run in runs]
        self.on_change(ids)
        return ids

    def release(self, subject: str, sha: str) -> list[int]:
        """Queue the runs of `sha` that were waiting for approval; their ids."""
        with self.db.session() as s:
            runs = list(
                s.scalars(
                    select(Run).where(Run.subject == subject, Run.sha == sha, Run.state == RunState.waiting)
                )
            )
            for run in runs:
                run.state, run.phase = RunState.queued, "queued"
            ids = [run.id for run in runs]
        self.on_change(ids)
        return ids

    def is_running(self, run_id: int) -> bool:
        """Whether a worker holds the run now (its lease is fresh): what a backend's reaper leaves alone."""
        with self.db.session() as s:
            held = select(Run.id).where(
                Run.id == run_id, Run.state == RunState.running, Run.lease_expires_at >= utcnow()
            )
            return s.scalar(held) is not None

    def recover(self, kill: Callable[[Run], None]) -> list[Run]:
        """Requeue or fail the runs whose worker stopped heartbeating. `kill` ends orphaned processes."""
        with self.db.exclusive() as s:
            stale = list(
                s.scalars(select(Run).where(Run.state == RunState.running, Run.lease_expires_at < utcnow()))
            )
            for run in stale:
                kill(run)
                lost = f"the worker {run.worker} stopped responding"
                if run.cancel_requested:
                    _end(run, RunState.cancelled, "cancelled")
                elif run.attempts >= self.max_attempts:
                    _end(run, RunState.failed, f"{lost}; gave up after {run.attempts} attempts")
                else:
                    run.state, run.phase, run.reason = RunState.queued, "queued", f"requeued: {lost}"
                    run.worker = run.lease_expires_at = run.pgid = None
        if stale:
            self.on_change([run.id for run in stale])
        return stale


def _end(run: Run, state: RunState, reason: str) -> None:
    run.state, run.phase, run.reason, run.finished_at = state, state.value, reason, utcnow()
    run.lease_expires_at = None
