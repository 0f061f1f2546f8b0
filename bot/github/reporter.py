"""Syncs a PR's view of a run — its check run and the sticky comment — to the run's current state.

Idempotent, so the report outbox may call it any number of times: the check run is found by its
external id before one is created, the sticky comment by the id stored for the pull request
(`PullComments`), and bodies are only written when they change. POSTs are never retried blindly (a 502
may hide a success); a failed sync is retried later by the outbox, finding before creating.
"""

from datetime import datetime

from github import GithubException
from github.IssueComment import IssueComment
from github.PullRequest import PullRequest
from github.Repository import Repository
from sqlalchemy import select

from bot.costs import run_cost
from bot.github.client import GitHubApi
from bot.github.targets import PullRequestTarget
from bot.github.views import CheckView, check_name, check_view, sticky_body, sticky_marker
from bot.pipeline import Pipeline
from bot.store import Database, Report, Run
from bot.store.models import PullComment, utcnow


class GitHubReporter:
    def __init__(self, api: GitHubApi):
        self.api = api

    # -- sync ---------------------------------------------------------------------------------------

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        """Bring the PR up to date with the run; returns the memo to keep (check run and comment ids)."""
        run = pipeline.run(report.run_id)
        comparison = pipeline.comparison_for(run.id)
        ctx = pipeline.report_context(comparison) if comparison is not None else None
        now, position = utcnow(), pipeline.queue.position(run.id)
        target, memo = PullRequestTarget.model_validate(report.target), dict(report.memo)
        installation = target.installation
        repo = self.api.repo(installation, target.repository)
        pull = repo.get_pull(target.pull_request)
        # Only the PR's own run (its head against its base) may satisfy branch protection or speak in
        # the sticky comment; a run against another base reports beside them, under its own name.
        name = check_name(run, None if target.gating else target.versus)
        cost = run_cost(run, pipeline.tiers.currency)
        if self.api.writes_checks:
            view = check_view(run, comparison, ctx, now, position, cost=cost)
            self._sync_check(repo, run, name, view, now, memo, details_url=pull.html_url)
        if not target.gating:
            return memo
        if pull.head.sha != run.sha:
            memo["comment"] = f"not posted: the PR's head is now {pull.head.sha[:7]}"
            return memo
        comments = PullComments(pipeline.db, target.repository, pull, self.api.bot_login(installation))
        marker = sticky_marker(run)
        comment = comments.find(marker)
        previous = comment.body if comment else None
        body = sticky_body(run, comparison, ctx, now, position, previous=previous, cost=cost)
        if comment is None:
            comments.post(marker, body)
        elif comment.body != body:
            comment.edit(body)
        return memo

    def _sync_check(
        self,
        repo: Repository,
        run: Run,
        name: str,
        view: CheckView,
        now: datetime,
        memo: dict,
        details_url: str,
    ) -> None:
        """Edit the run's check run; a completed one cannot go back to queued (a run waiting for approval
        that was approved), so then a new check run of the same name takes its place."""
        fields: dict = {"status": view.status, "output": {"title": view.title, "summary": view.summary}}
        if view.conclusion:
            fields |= {"conclusion": view.conclusion, "completed_at": now}
        if view.conclusion == "action_required":
            fields["details_url"] = details_url  # GitHub: the details of what to do are found there
        if view.actions:
            fields["actions"] = view.actions
        check = self._find_check(repo, run, name, memo)
        if check is None or (check.status == "completed" and view.status != "completed"):
            check = repo.create_check_run(name=name, head_sha=run.sha, external_id=f"run-{run.id}", **fields)
        else:
            check.edit(**fields)
        memo["check_run_id"] = check.id

    @staticmethod
    def _find_check(repo: Repository, run: Run, name: str, memo: dict):
        if memo.get("check_run_id"):
            return repo.get_check_run(memo["check_run_id"])
        ours = [
            check
            for check in repo.get_commit(run.sha).get_check_runs(check_name=name, filter="all")
            if check.external_id == f"run-{run.id}"
        ]
        return max(ours, key=lambda check: check.id, default=None)


class PullComments:
    """The comments the bot keeps on one pull request (sticky comments, replies), each known by the
    marker its body starts with and found by the id stored when it was posted. Only when none is
    stored (its first sync, or a crash between posting and storing) is it searched for, among the bot's
    comments whose body starts with the marker: a marker elsewhere in a body may be a quote of anyone."""

    def __init__(self, db: Database, repository: str, pull: PullRequest, login: str):
        self.db, self.pull, self.login = db, pull, login
        self.key = {"repository": repository, "pull_request": pull.number}

    def find(self, marker: str) -> IssueComment | None:
        stored = self._stored(marker)
        if stored is not None:
            try:
                return self.pull.get_issue_comment(stored)
            except GithubException as exc:
                if exc.status != 404:  # deleted by someone: found again or posted anew
                    raise
        for comment in self.pull.get_issue_comments():
            if comment.user.login == self.login and (comment.body or "").startswith(marker):
                self._store(marker, comment.id)
                return comment
        return None

    def post(self, marker: str, body: str) -> IssueComment:
        comment = self.pull.create_issue_comment(body)
        self._store(marker, comment.id)
        return comment

    def _stored(self, marker: str) -> int | None:
        with self.db.session() as s:
            return s.scalars(select(PullComment.comment_id).filter_by(marker=marker, **self.key)).first()

    def _store(self, marker: str, comment_id: int) -> None:
        with self.db.session() as s:
            row = s.scalars(select(PullComment).filter_by(marker=marker, **self.key)).first()
            if row is None:
                s.add(PullComment(marker=marker, comment_id=comment_id, **self.key))
            else:
                row.comment_id = comment_id
