"""The deployments table as a queue: record once, claim with a lease, resume what a dead worker left.

The promises are the database's. One deploy per commit and environment, ever: `record` finds the row a
redelivered merge event (or the push of the same merge) made before, and a partial unique index settles
two replicas recording at once. One deployment of an environment at a time: `claim` takes an environment
only when none of its deployments is `deploying`, inside an exclusive transaction, and a second partial
unique index holds it. The newest queued deployment of an environment wins: older ones still waiting
are skipped, with the reason. A deployment whose worker stopped heartbeating (or whose process is gone,
on PostgreSQL) is claimed again to resume from its step; `max_attempts` such claims and it fails
instead, so none stays `deploying` forever.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store.db import Database
from bot.store.models import Deployment, DeploymentState, Run, utcnow
from bot.store.queue import LeaseLost

State = DeploymentState
KEPT_RELEASES = 5  # releases kept for rollback beside the live one (the sagemaker target keeps as many)
PRUNED = "pruned"  # in a deployment's handle: its release was deleted


@dataclass
class Claim:
    deployment: Deployment | None
    skipped: list[Deployment] = field(default_factory=list)  # superseded while they waited


class Deployments:
    def __init__(self, db: Database, lease_seconds: float, max_attempts: int):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts

    # -- record ---------------------------------------------------------------------------------------

    def record(
        self,
        repository: str,
        environment: str,
        sha: str,
        target: str,
        requested_by: dict,
        report_to: list[dict],
    ) -> tuple[Deployment, bool]:
        """The deployment of this commit to this environment: new, or the one recorded before (with the
        report targets of this request added); whether it is new."""
        try:
            with self.db.session() as s:
                deployment = Deployment(
                    repository=repository,
                    environment=environment,
                    sha=sha,
                    kind="deploy",
                    target=target,
                    requested_by=requested_by,
                    report_to=report_to,
                    instance={},
                )
                s.add(deployment)
                s.flush()
                return deployment, True
        except IntegrityError:  # deployed (or queued) before: a redelivery, or the push of the same merge
            pass
        with self.db.session() as s:
            found = s.scalars(
                select(Deployment).where(
                    Deployment.repository == repository,
                    Deployment.environment == environment,
                    Deployment.sha == sha,
                    Deployment.kind == "deploy",
                )
            ).one()
            merged = more_targets(found.report_to, report_to)
            if merged != found.report_to:
                found.report_to = merged
                if found.run_id is not None:  # its run reports it: it must say so where asked now
                    s.get(Run, found.run_id).report_to = merged
            return found, False

    def record_rollback(
        self, source: Deployment, requested_by: dict, report_to: list[dict] | None = None
    ) -> Deployment:
        """A rollback to `source`'s kept release, reported where `source` was and to `report_to` too (its
        run, which reports it, is told so)."""
        with self.db.session() as s:
            added = report_to or []
            merged = more_targets(source.report_to, added)
            run = s.get(Run, source.run_id) if source.run_id is not None else None
            if run is not None:
                run.report_to = more_targets(run.report_to, added)
            rollback = Deployment(
                repository=source.repository,
                environment=source.environment,
                sha=source.sha,
                kind="rollback",
                target=source.target,
                source_id=source.id,
                run_id=source.run_id,
                artifact_hash=source.artifact_hash,
                requested_by=requested_by,
                report_to=merged,
                instance={},
                state=State.waiting,  # its run is the source's, which ended long ago
            )
            s.add(rollback)
            s.flush()
            return rollback

    # -- claim ----------------------------------------------------------------------------------------

    def claim(self) -> Claim:
        """A deployment to work on now: one a dead worker left (to resume), else the newest of an
        environment that is free, once its run has ended (or to ask for its run)."""
        now, me = utcnow(), self.db.me()
        with self.db.exclusive() as s:
            deploying = Deployment.state == State.deploying
            held = select(Deployment.claimed_by).where(deploying, Deployment.lease_expires_at >= now)
            dead = self.db.dead(s, s.scalars(held.distinct()))
            stale = s.scalars(
                select(Deployment)
                .where(deploying, or_(Deployment.lease_expires_at < now, Deployment.claimed_by.in_(dead)))
                .order_by(Deployment.id)
                .limit(1)
            ).first()
            if stale is not None:
                return Claim(self._take(stale, now, me))
            pending = s.scalars(
                select(Deployment)
                .where(Deployment.state.in_([State.queued, State.waiting]))
                .order_by(Deployment.id)
            ).all()
            newest = {(d.repository, d.environment): d for d in pending}
            skipped = [self._skip(d, newest[(d.repository, d.environment)], now) for d in pending]
            skipped = [d for d in skipped if d is not None]
            busy = set(
                s.execute(select(Deployment.repository, Deployment.environment).where(deploying)).all()
            )
            for d in sorted(newest.values(), key=lambda d: d.id):
                if (d.repository, d.environment) in busy:
                    continue
                run = s.get(Run, d.run_id) if d.run_id is not None else None
                if d.state == State.waiting and run is not None and not run.run_state.terminal:
                    continue
                return Claim(self._take(d, now, me), skipped)
            return Claim(None, skipped)

    def _take(self, d: Deployment, now, me: int) -> Deployment:
        if d.state == State.deploying:  # a dead worker's: resumed from its step
            d.attempts += 1
        else:
            d.step = (
                "planning" if d.run_id is None else ("restarting" if d.kind == "rollback" else "starting")
            )
            d.state, d.attempts = State.deploying, 1
        d.claimed_by, d.lease_expires_at = me, now + self.lease
        d.started_at = d.started_at or now
        return d

    @staticmethod
    def _skip(d: Deployment, newest: Deployment, now) -> Deployment | None:
        if d is newest:
            return None
        d.state, d.finished_at = State.skipped, now
        d.reason = f"superseded by deployment {newest.id} ({newest.short_sha}) before it started"
        return d

    # -- while it is ours -----------------------------------------------------------------------------

    def heartbeat(self, deployment_id: int) -> None:
        self.save(deployment_id, lease_expires_at=utcnow() + self.lease)

    def save(self, deployment_id: int, **fields) -> None:
        """Fields of a deployment this process holds; LeaseLost when it no longer does."""
        with self.db.session() as s:
            done = s.execute(
                update(Deployment)
                .where(
                    Deployment.id == deployment_id,
                    Deployment.state == State.deploying,
                    Deployment.claimed_by == self.db.me(),
                )
                .values(**fields)
            )
            if done.rowcount != 1:
                raise LeaseLost(f"deployment {deployment_id} is no longer this worker's")

    def wait_for_run(self, deployment_id: int, run_id: int) -> None:
        """Its run is queued or running: the environment is free for others until the run ends."""
        self.save(
            deployment_id,
            state=State.waiting,
            step=None,
            run_id=run_id,
            claimed_by=None,
            lease_expires_at=None,
            attempts=0,
        )

    def end(self, deployment_id: int, state: DeploymentState, reason: str, **fields) -> list[int]:
        """The deployment ends in `state`; when it went live, whatever was live before is retired. The
        runs whose reports must say so."""
        self.save(
            deployment_id,
            state=state,
            step=None,
            reason=reason,
            finished_at=utcnow(),
            claimed_by=None,
            **fields,
        )
        with self.db.session() as s:
            d = s.get(Deployment, deployment_id)
            touched = [d.run_id]
            if state == State.live:
                before = select(Deployment).where(
                    Deployment.repository == d.repository,
                    Deployment.environment == d.environment,
                    Deployment.state == State.live,
                    Deployment.id != d.id,
                )
                for old in s.scalars(before):
                    old.state, old.reason = State.retired, f"replaced by deployment {d.id} ({d.short_sha})"
                    touched.append(old.run_id)
            return [run_id for run_id in touched if run_id is not None]

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, deployment_id: int) -> Deployment | None:
        with self.db.session() as s:
            return s.get(Deployment, deployment_id)

    def live(self, repository: str, environment: str) -> Deployment | None:
        with self.db.session() as s:
            query = select(Deployment).where(
                Deployment.repository == repository,
                Deployment.environment == environment,
                Deployment.state == State.live,
            )
            return s.scalars(query.order_by(Deployment.id.desc()).limit(1)).first()

    def of_run(self, run_id: int) -> list[Deployment]:
        """The deployments a run reports (its own, and rollbacks to its release), oldest first."""
        with self.db.session() as s:
            query = select(Deployment).where(Deployment.run_id == run_id).order_by(Deployment.id)
            return list(s.scalars(query))

    def recent(
        self, repository: str | None = None, environment: str | None = None, limit: int = 20
    ) -> list[Deployment]:
        wanted = [
            column == value
            for column, value in ((Deployment.repository, repository), (Deployment.environment, environment))
            if value is not None
        ]
        with self.db.session() as s:
            query = select(Deployment).where(*wanted).order_by(Deployment.id.desc()).limit(limit)
            return list(s.scalars(query))

    # -- between deployments: supervision and pruning -------------------------------------------------

    def live_on(self, targets: tuple[str, ...]) -> list[Deployment]:
        """The live deployments of these targets, every environment's."""
        with self.db.session() as s:
            query = select(Deployment).where(Deployment.state == State.live, Deployment.target.in_(targets))
            return list(s.scalars(query.order_by(Deployment.id)))

    def deploying_in(self, repository: str, environment: str) -> bool:
        """Whether a deployment of the environment is under way (it replaces what is live)."""
        with self.db.session() as s:
            query = select(Deployment.id).where(
                Deployment.repository == repository,
                Deployment.environment == environment,
                Deployment.state == State.deploying,
            )
            return s.scalars(query.limit(1)).first() is not None

    def supervised(self, deployment_id: int, instance: dict, reason: str) -> bool:
        """A live deployment's version restarted (its new handle) or found down, between deployments (no
        lease: the environment's route lock is held); whether it was still live."""
        with self.db.session() as s:
            done = s.execute(
                update(Deployment)
                .where(Deployment.id == deployment_id, Deployment.state == State.live)
                .values(instance=instance, reason=reason)
            )
            return done.rowcount == 1

    def releases(self, repository: str, environment: str) -> list[Deployment]:
        """The deployments whose release is kept (live or retired, not pruned), newest first."""
        with self.db.session() as s:
            query = select(Deployment).where(
                Deployment.repository == repository,
                Deployment.environment == environment,
                Deployment.state.in_([State.live, State.retired]),
            )
            found = s.scalars(query.order_by(Deployment.id.desc()))
            return [d for d in found if d.instance and not d.instance.get(PRUNED)]

    def pruned(self, deployment_ids: list[int]) -> None:
        """Their releases were deleted: a rollback to them says they are no longer kept."""
        with self.db.session() as s:
            for d in s.scalars(select(Deployment).where(Deployment.id.in_(deployment_ids))):
                d.instance = d.instance | {PRUNED: True}


def more_targets(stored: list[dict], added: list[dict]) -> list[dict]:
    """`stored` with `added`'s targets: one of an outbox replaces the stored one of that outbox when it
    says everything it says and more (the merged pull request's event, after the push of its merge)."""
    merged = list(stored)
    for target in added:
        ((outbox, address),) = target.items()
        same = next((i for i, t in enumerate(merged) if outbox in t), None)
        if same is None:
            merged.append(target)
        elif merged[same][outbox].items() <= address.items() and merged[same][outbox] != address:
            merged[same] = target
    return merged
