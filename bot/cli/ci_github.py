"""What `tierbot ci` tells GitHub: the pull request's check run and sticky comment, brought up to date by
the bot's own `GitHubReporter` with the workflow's token, and the job summary, from the same views.

Apart from `bot.cli.ci` so that PyGithub loads only when `tierbot ci` runs, not with every command.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import github
import requests
from github import GithubException

from bot.cli.experiments import err
from bot.costs import run_cost
from bot.github.client import GitHubApi
from bot.github.reporter import GitHubReporter
from bot.github.views import check_view, render
from bot.pipeline import Pipeline
from bot.render.run_states import ref_label
from bot.render.templates import term_text
from bot.store import ComparisonRecord, Run, RunState
from bot.store.models import utcnow

ACTIONS_LOGIN = "github-actions[bot]"  # whose comments the workflow's own token writes
PERMISSIONS = "permissions:\n      checks: write\n      pull-requests: write"

# PyGithub prints every refused request on stderr (INFO, with a handler of its own); what a refusal means
# for the job, tierbot ci says itself (`Publisher`), and the token's expected refusal of `GET /user` is
# no news.
github.set_log_level(logging.WARNING)


class ActionsApi(GitHubApi):
    """GitHub's API with the workflow's token. GITHUB_TOKEN is an installation token of GitHub Actions'
    own App: it may write check runs, and may not ask who it is (`GET /user` is refused), so its
    comments are known as github-actions[bot]'s. A personal token in its place says who it is."""

    @property
    def writes_checks(self) -> bool:
        return True

    def bot_login(self, installation: int | None) -> str:
        try:
            return super().bot_login(installation)
        except GithubException as exc:
            if exc.status != 403:
                raise
            self._logins[installation] = ACTIONS_LOGIN
            return ACTIONS_LOGIN


class Publisher:
    """Brings the pull request's check run and sticky comment up to date with a run, as the bot's outbox
    does, and marks its report rows synced. GitHub's refusals are warned about once, never raised."""

    def __init__(self, pipe: Pipeline, api: GitHubApi):
        self.pipe, self.reporter = pipe, GitHubReporter(api)
        self._warned: set[str] = set()

    def publish(self, run_id: int) -> None:
        for report in self.pipe.reports.of_run(run_id):
            if report.outbox != "github":
                continue
            try:
                memo = self.reporter.sync(self.pipe, report)
            except (GithubException, requests.RequestException) as exc:
                self._warn(exc)
                continue
            self.pipe.reports.synced(report.id, report.version, memo)

    @contextmanager
    def once_started(self, run_id: int) -> Iterator[None]:
        """Publish the run once it has left the queue (it is executed in this job at once), so the pull
        request shows it in progress while it runs."""
        done = threading.Event()

        def publish_when_started() -> None:
            while not done.wait(0.05):
                if self.pipe.run(run_id).state != RunState.queued:
                    self.publish(run_id)
                    return

        thread = threading.Thread(target=publish_when_started, daemon=True, name="ci-publisher")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _warn(self, exc: Exception) -> None:
        status = exc.status if isinstance(exc, GithubException) else None
        data = exc.data if isinstance(exc, GithubException) else None
        said = f"{status}: {data.get('message')}" if isinstance(data, dict) else str(exc)
        if said in self._warned:
            return
        self._warned.add(said)
        where = "The comparison is in this job's log and summary."
        if status == 403:
            err.print(
                f"[yellow]Warning:[/] GitHub refused the check run or the pull request's comment "
                f"({term_text(said)}). Give the workflow's token these permissions:\n\n"
                f"    {PERMISSIONS}\n\n(A pull request from a fork gets a read-only token whatever the "
                f"workflow asks.) {where}"
            )
        else:
            said = term_text(said)
            err.print(f"[yellow]Warning:[/] could not post to the pull request ({said}). {where}")


def job_summary(pipe: Pipeline, run: Run, record: ComparisonRecord | None) -> str:
    """The job summary: the check run's summary (the comparison, or why there is none), or for a pushed
    commit that ran alone, that it ran and is kept for reuse."""
    if record is None and run.state == RunState.succeeded and run.role == "run":
        return render(
            "state.md.j2",
            title=f"{ref_label(run.ref, run.sha)} ran on tier {run.tier}: {run.reason}",
            reason=None,
            detail="Kept in the cache: a later run of the same tree, spec, environment and tier reuses it "
            "instead of running.",
            advice=None,
            log_tail=None,
            cost=run_cost(run, pipe.tiers.currency),
        )
    context = pipe.report_context(record) if record is not None and record.state == "done" else None
    return check_view(run, record, context, utcnow(), cost=run_cost(run, pipe.tiers.currency)).summary
