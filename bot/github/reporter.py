"""Syncs a PR's view of a run — its check run and the sticky comment — to the run's current state.

Idempotent, so the report outbox may call it any number of times: the check run is found by its
external id before one is created, the sticky comment by its hidden marker among the bot's own
comments, and bodies are only written when they change. POSTs are never retried blindly (a 502 may
hide a success); a failed sync is retried later by the outbox, finding before creating.
"""

from datetime import datetime

from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.PullRequest import PullRequest
from github.Repository import Repository

from bot.errors import TierbotError
from bot.github.views import CheckView, check_name, check_view, sticky_body, sticky_marker
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.store import Report, Run
from bot.store.models import utcnow

IDEMPOTENT = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE", "OPTIONS"})


class GitHubReporter:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._clients: dict[int | None, Github] = {}
        self._logins: dict[int | None, str] = {}

    # -- authentication ---------------------------------------------------------------------------

    @property
    def app_mode(self) -> bool:
        return bool(self.settings.github_app_id and self.settings.github_private_key)

    def client(self, installation: int | None) -> Github:
        """One client per installation; PyGithub refreshes installation tokens before they expire."""
        if installation not in self._clients:
            self._clients[installation] = Github(
                base_url=self.settings.github_api_url,
                auth=self._auth(installation),
                retry=GithubRetry(
                    total=self.settings.github_retries,
                    backoff_factor=0.5,
                    allowed_methods=IDEMPOTENT,
                    secondary_rate_wait=self.settings.github_max_wait_seconds,
                    max_rate_limit_wait=self.settings.github_max_wait_seconds,
                ),
                seconds_between_requests=None,
                seconds_between_writes=None,
            )
        return self._clients[installation]

    def _auth(self, installation: int | None) -> Auth.Auth:
        settings = self.settings
        if self.app_mode:
            if installation is None:
                raise TierbotError("GitHub App mode needs the installation id of the event.")
            app = Auth.AppAuth(settings.github_app_id, settings.github_private_key.get_secret_value())
            return app.get_installation_auth(installation)
        if settings.github_token:
            return Auth.Token(settings.github_token.get_secret_value())
        raise TierbotError(
            "No GitHub credentials: set TIERBOT_GITHUB_TOKEN, or TIERBOT_GITHUB_APP_ID and "
            "TIERBOT_GITHUB_PRIVATE_KEY."
        )

    def bot_login(self, installation: int | None) -> str:
        """Whose comments are ours: the App's `slug[bot]`, or the token's user."""
        if installation not in self._logins:
            settings = self.settings
            if self.app_mode:
                app = Auth.AppAuth(settings.github_app_id, settings.github_private_key.get_secret_value())
                integration = GithubIntegration(
                    auth=app,
                    base_url=settings.github_api_url,
                    retry=settings.github_retries,
                    seconds_between_requests=None,
                    seconds_between_writes=None,
                )
                slug = integration.get_app().slug
                self._logins[installation] = f"{slug}[bot]"
            else:
                self._logins[installation] = self.client(installation).get_user().login
        return self._logins[installation]

    # -- sync ---------------------------------------------------------------------------------------

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        """Bring the PR up to date with the run; returns the memo to keep (check run and comment ids)."""
        run = pipeline.run(report.run_id)
        comparison = pipeline.comparison_for(run.id)
        ctx = pipeline.report_context(comparison) if comparison is not None else None
        now, position = utcnow(), pipeline.queue.position(run.id)
        target, memo = report.target, dict(report.memo)
        installation = target.get("installation")
        repo = self.client(installation).get_repo(target["repository"])
        if self.app_mode:  # GitHub lets only Apps write check runs; token mode has the comment alone
            self._sync_check(repo, run, check_view(run, comparison, ctx, now, position), now, memo)
        pull = repo.get_pull(target["pull_request"])
        if pull.head.sha != run.sha:
            memo["comment"] = f"not posted: the PR's head is now {pull.head.sha[:7]}"
            return memo
        comment = self._find_comment(pull, sticky_marker(run), self.bot_login(installation), memo)
        body = sticky_body(run, comparison, ctx, now, position, previous=comment.body if comment else None)
        if comment is None:
            memo["comment_id"] = pull.create_issue_comment(body).id
        elif comment.body != body:
            comment.edit(body)
        return memo

    def _sync_check(self, repo: Repository, run: Run, view: CheckView, now: datetime, memo: dict) -> None:
        fields: dict = {"status": view.status, "output": {"title": view.title, "summary": view.summary}}
        if view.conclusion:
            fields |= {"conclusion": view.conclusion, "completed_at": now}
        if view.actions:
            fields["actions"] = view.actions
        check_id = memo.get("check_run_id") or self._find_check(repo, run)
        if check_id is None:
            check = repo.create_check_run(
                name=check_name(run), head_sha=run.sha, external_id=f"run-{run.id}", **fields
            )
            memo["check_run_id"] = check.id
        else:
            repo.get_check_run(check_id).edit(**fields)
            memo["check_run_id"] = check_id

    @staticmethod
    def _find_check(repo: Repository, run: Run) -> int | None:
        for check in repo.get_commit(run.sha).get_check_runs(check_name=check_name(run), filter="all"):
            if check.external_id == f"run-{run.id}":
                return check.id
        return None

    @staticmethod
    def _find_comment(pull: PullRequest, marker: str, login: str, memo: dict):
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
