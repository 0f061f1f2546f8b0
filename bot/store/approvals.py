"""Approvals of untrusted code: which commits of a subject (a fork's pull request) someone with write
access let run. An approval holds for one commit, now and on reruns; the next push needs another."""

import contextlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.store.db import Database
from bot.store.models import REFUSALS, Approval, Run
from bot.store.queue import Queue


class Approvals:
    def __init__(self, db: Database, queue: Queue):
        self.db, self.queue = db, queue

    def approved(self, subject: str | None, sha: str) -> bool:
        with self.db.session() as s:
            found = select(Approval.id).where(Approval.subject == subject, Approval.sha == sha)
            return s.scalars(found).first() is not None

    def has_run(self, subject: str, sha: str) -> bool:
        """Whether this commit of the subject has run (a refused request did not)."""
        with self.db.session() as s:
            refused = Run.phase.in_(REFUSALS)
            found = select(Run.id).where(Run.subject == subject, Run.sha == sha, ~refused)
            return s.scalars(found.limit(1)).first() is not None

    def approve(self, subject: str, sha: str, by: str) -> list[int]:
        """Let this commit of the subject run (now and on reruns); queues its waiting runs, their ids."""
        if not self.approved(subject, sha):
            # IntegrityError: approved at the same moment elsewhere
            with contextlib.suppress(IntegrityError), self.db.session() as s:
                s.add(Approval(subject=subject, sha=sha, approved_by=by))
        return self.queue.release(subject, sha)
