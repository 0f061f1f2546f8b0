"""The report outbox: which runs' views (PR comment and check run, ...) are behind their state, and
one-off messages (replies to commands) still to deliver.

`touch` is called after every state change a user should see; workers `claim` a due report, sync the
door's view, and mark the version they synced. A newer touch during a sync leaves the report due again.
"""

from datetime import timedelta

from sqlalchemy import or_, select, update

from bot.retry import backoff
from bot.store.db import Database
from bot.store.models import Report, Run, utcnow
from bot.targets import Target


class NotYet(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by a syncer that must look again later (a poll still pending): due again after `seconds`,
    with `memo` kept, and not counted as a failure."""

    def __init__(self, seconds: float, memo: dict):
        super().__init__(f"not yet; again in {seconds:.0f} s")
        self.seconds, self.memo = seconds, memo


class Reports:
    def __init__(self, db: Database, lease_seconds: float):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)

    def touch(self, run_ids: list[int] | set[int]) -> None:
        """The runs changed: every door that shows them is due for a sync."""
        with self.db.session() as s:
            for run in s.scalars(select(Run).where(Run.id.in_(list(run_ids)))):
                for target in run.report_to:
                    for outbox, address in target.items():
                        self._bump(s, run.id, outbox, address)

    def post(self, target: Target) -> None:
        """A one-off message that belongs to no run (a reply to a command): delivered once, by a worker."""
        with self.db.session() as s:
            s.add(Report(run_id=None, outbox=target.outbox, target=target.fields(), memo={}))

    @staticmethod
    def _bump(s, run_id: int, outbox: str, address: dict) -> None:
        report = s.scalars(select(Report).where(Report.run_id == run_id, Report.outbox == outbox)).first()
        if report is None:
            s.add(Report(run_id=run_id, outbox=outbox, target=address, memo={}))
        else:
            report.version += 1
            if report.attempts == 0:  # a failed report keeps its backoff: the API may have asked for it
                report.next_attempt_at = min(report.next_attempt_at, utcnow())

    def claim(self) -> tuple[Report, int] | None:
        """A report that is behind and not being synced; with the version this sync brings it to."""
        now, me = utcnow(), self.db.me()
        with self.db.exclusive() as s:
            leased = select(Report.claimed_by).where(Report.lease_expires_at >= now).distinct()
            dead = self.db.dead(s, s.scalars(leased))  # a killed replica's syncs: taken over at once
            report = s.scalars(
                select(Report)
                .where(
                    Report.synced_version < Report.version,
                    Report.next_attempt_at <= now,
                    or_(
                        Report.lease_expires_at.is_(None),
                        Report.lease_expires_at < now,
                        Report.claimed_by.in_(dead),
                    ),
                )
                .order_by(Report.next_attempt_at, Report.id)
                .limit(1)
            ).first()
            if report is None:
                return None
            report.lease_expires_at, report.claimed_by = now + self.lease, me
            return report, report.version

    def synced(self, report_id: int, version: int, memo: dict) -> None:
        with self.db.session() as s:
            s.execute(
                update(Report)
                .where(Report.id == report_id)
                .values(synced_version=version, memo=memo, attempts=0, error=None, lease_expires_at=None)
            )

    def later(self, report_id: int, memo: dict, seconds: float) -> None:
        """Still due, after `seconds` (see NotYet)."""
        with self.db.session() as s:
            report = s.get(Report, report_id)
            report.next_attempt_at = utcnow() + timedelta(seconds=seconds)
            report.memo, report.lease_expires_at = memo, None

    def failed(self, report_id: int, error: str, memo: dict, retry_after: float | None = None) -> None:
        """Retry later, after `bot.retry.backoff` (never sooner than the door asked: `retry_after` s);
        due until a sync succeeds."""
        with self.db.session() as s:
            report = s.get(Report, report_id)
            report.attempts += 1
            report.next_attempt_at = utcnow() + timedelta(seconds=backoff(report.attempts, retry_after))
            report.error, report.memo, report.lease_expires_at = error[:4000], memo, None

    def of_run(self, run_id: int) -> list[Report]:
        with self.db.session() as s:
            return list(s.scalars(select(Report).where(Report.run_id == run_id)))
