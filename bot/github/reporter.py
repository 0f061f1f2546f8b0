"""Syncs a PR's view of a run — its check run and the sticky comment — to the run's current state.

Idempotent, so the report outbox may call it any number of times: the check run is found by its
external id before one is created, the sticky comment by its hidden marker among the bot's own
comments, and bodies are only written when they change. POSTs are never retried blindly (a 502 may
hide a success); a failed sync is retried later by the outbox, finding before creating.
"""

from datetime import datetime

from github import GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from bot.github.client import GitHubApi
from bot.github.views import CheckView, check_name, check_view, sticky_body, sticky_marker
from bot.pipeline import Pipeline
from bot.store import Report, Run
from bot.store.models import utcnow


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
        target, memo = report.target, dict(report.memo)
        installation = target.get("installation")
        repo = self.api.repo(installation, target["repository"])
        pull = repo.get_pull(target["pull_request"])
        if self.api.app_mode:  # GitHub lets only Apps write check runs; token mode has the comment alone
            view = check_view(run, comparison, ctx, now, position)
            self._sync_check(repo, run, view, now, memo, details_url=pull.html_url)
        if pull.head.sha != run.sha:
            memo["comment"] = f"not posted: the PR's head is now {pull.head.sha[:7]}"
            return memo
        comment = find_comment(pull, sticky_marker(run), self.api.bot_login(installation), memo)
        body = sticky_body(run, comparison, ctx, now, position, previous=comment.body if comment else None)
        if comment is None:
            memo["comment_id"] = pull.create_issue_comment(body).id
        elif comment.body != body:
            comment.edit(body)
        return memo

    def _sync_check(
        self, repo: Repository, run: Run, view: CheckView, now: datetime, memo: dict, details_url: str
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
        check = self._find_check(repo, run, memo)
        if check is None or (check.status == "completed" and view.status != "completed"):
            check = repo.create_check_run(
                name=check_name(run), head_sha=run.sha, external_id=f"run-{run.id}", **fields
            )
        else:
            check.edit(**fields)
        memo["check_run_id"] = check.id

    @staticmethod
    def _find_check(repo: Repository, run: Run, memo: dict):
        if memo.get("check_run_id"):
            return repo.get_check_run(memo["check_run_id"])
        ours = [
            check
            for check in repo.get_commit(run.sha).get_check_runs(check_name=check_name(run), filter="all")
            if check.external_id == f"run-{run.id}"
        ]
        return max(ours, key=lambda check: check.id, default=None)


def find_comment(pull: PullRequest, marker: str, login: str, memo: dict):
    """The bot's comment carrying `marker` (remembered in the memo once found), or None."""
    if memo.get("comment_id"):
        try:
            return pull.get_issue_comment(memo["comment_id"])
        except GithubException as exc:
            if exc.status != 404:
                raise
    for comment in pull.get_issue_comments():
        if comment.user.login == login and marker in (comment.body or ""):
            memo["comment_id"] = comment.id
            return comment
    return None
