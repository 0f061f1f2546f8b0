"""The runs table as a work queue: enqueue, claim with a lease, heartbeat, finish, cancel, recover.

A worker owns a run only while its lease is fresh. A worker that dies stops heartbeating; the next
`recover` requeues its run (or fails it, with the reason, once it has used up its attempts).
"""

import socket
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from bot.errors import RunNotFound, TierbotError
from bot.reuse import release_joiners
from bot.store.db import Database
from bot.store.models import Run, RunState, utcnow
from bot.tiers import TierSet

HOST = socket.gethostname()
# How long a run's worker may be silent (no heartbeat) before others look whether it is still alive.
TAKEOVER_SECONDS = 2.0
_NOT_STARTED = (RunState.waiting, RunState.queued)
# Queued runs that will execute: not those that joined a run of their key in flight (`bot.reuse`).
_EXECUTES = (Run.state == RunState.queued) & Run.reused_run_id.is_(None)


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
        self.takeovers = 0  # runs of dead workers this process requeued or ended (`/metrics`)

    def position(self, run_id: int) -> int:
        """1-based place among the queued runs of the same tier (0 when not queued, or joined)."""
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None or run.state != RunState.queued or run.reused_run_id is not None:
                return 0
            ahead = s.scalar(select(func.count()).where(_EXECUTES, Run.tier == run.tier, Run.id < run.id))
            return (ahead or 0) + 1

    def waiting_on(self, tier: str) -> int:
        """Runs queued or running on a tier: what a new run there waits behind."""
        with self.db.session() as s:
            busy = [RunState.queued, RunState.running]
            executes = Run.state.in_(busy) & Run.reused_run_id.is_(None)
            return s.scalar(select(func.count()).where(executes, Run.tier == tier)) or 0

    def claim(self, worker: str, only: set[int] | None = None) -> Run | None:
        """Take the oldest queued run on a tier with a free slot, or None."""
        gone, ended = [], []
        with self.db.exclusive() as s:
            busy = dict(
                s.execute(
                    select(Run.tier, func.count()).where(Run.state == RunState.running).group_by(Run.tier)
                ).all()
            )
            query = select(Run).where(_EXECUTES).order_by(Run.id)
            if only is not None:  # and the runs that those joined (`bot.reuse`), which they wait for
                ours = aliased(Run)  # not correlated with the outer query's runs
                joined = select(ours.reused_run_id).where(ours.id.in_(only), ours.reused_run_id.is_not(None))
                query = query.where(Run.id.in_(only) | Run.id.in_(joined))
            for run in s.scalars(query):
                if run.tier not in self.tiers.names():
                    gone.append(run)
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
                run = None
            for lost in gone:  # ended after the loop: ending one reads and writes its joiners
                why = f"tier {lost.tier!r} no longer exists in the tiers file"
                ended += [lost.id, *_end(s, lost, RunState.failed, why)]
        self.on_change(ended + ([run.id] if run else []))
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
            joiners = release_joiners(s, s.get(Run, run_id))
        self.on_change([run_id, *joiners])

    def hand_back(self, run_id: int, worker: str) -> None:
        """Give a run this worker stopped (it is shutting down) back to the queue, for another worker to
        run from the start; the attempt does not count."""
        with self.db.session() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.worker == worker, Run.state == RunState.running)
                .values(
                    state=RunState.queued,
                    phase=RunState.queued.value,
                    reason=f"handed back: its worker {worker} was shut down",
                    attempts=Run.attempts - 1,
                    worker=None,
                    lease_expires_at=None,
                    pgid=None,
                )
            )
        self.on_change([run_id])

    def cancel(self, run_id: int) -> Run:
        """Cancel a queued run at once; ask the worker of a running run to stop it."""
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(f"There is no run {run_id}.")
            if run.run_state.terminal:
                raise TierbotError(f"Run {run_id} has already ended ({run.state}); nothing to cancel.")
            joiners = []
            if run.state in _NOT_STARTED:
                joiners = _end(s, run, RunState.cancelled, "cancelled before it started")
            else:
                run.cancel_requested = True
        self.on_change([run_id, *joiners])
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
            ids = [run.id for run in runs]
            why = "superseded" if keep_sha else "cancelled: the PR was closed"
            for run in runs:
                if run.state in _NOT_STARTED:
                    ids += _end(s, run, RunState.cancelled, why)
                else:
                    run.cancel_requested = True
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
        """Requeue or fail the runs whose worker is gone: its lease expired, or (on PostgreSQL) it has not
        beaten for `TAKEOVER_SECONDS` and nothing holds the run (`Database.alive`): a killed replica's runs
        are taken over in seconds, a slow but living worker keeps its own. `kill` ends orphaned processes."""
        now = utcnow()
        with self.db.exclusive() as s:
            running = select(Run).where(Run.state == RunState.running)
            stale = list(s.scalars(running.where(Run.lease_expires_at < now)))
            if not self.db.is_sqlite:  # last beat over TAKEOVER_SECONDS ago, lease not yet expired
                quiet = now + self.lease - timedelta(seconds=TAKEOVER_SECONDS)
                silent = s.scalars(running.where(Run.lease_expires_at >= now, Run.lease_expires_at < quiet))
                stale += [run for run in silent if not self.db.alive(s, run.id)]
            self.takeovers += len(stale)
            joiners = []
            for run in stale:
                kill(run)
                lost = f"the worker {run.worker} stopped responding"
                if run.cancel_requested:
                    joiners += _end(s, run, RunState.cancelled, "cancelled")
                elif run.attempts >= self.max_attempts:
                    joiners += _end(s, run, RunState.failed, f"{lost}; gave up after {run.attempts} attempts")
                else:
                    run.state, run.phase, run.reason = RunState.queued, "queued", f"requeued: {lost}"
                    run.worker = run.lease_expires_at = run.pgid = None
        if stale:
            self.on_change([run.id for run in stale] + joiners)
        return stale


def _end(s, run: Run, state: RunState, reason: str) -> list[int]:
    """End a run that is not running; the ids of the runs that joined it and changed with it."""
    run.state, run.phase, run.reason, run.finished_at = state, state.value, reason, utcnow()
    run.lease_expires_at = None
    s.flush()
    return release_joiners(s, run)
