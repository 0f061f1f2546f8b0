"""`tierbot ci`: the comparison a pull request gets from the bot, from inside GitHub Actions (or any CI
that sets the same variables, `bot.cli.actions`), with no server.

A pull request event runs the head and its merge base in the job's checkout with the local runner,
exactly as `tierbot compare` does, from the request the bot makes for the pull request
(`PullInfo.request`); a push runs the pushed commit alone, as `tierbot run` does, so that what pull
requests reuse is in the cache already. The data dir (database, outputs, environments) is a directory
the workflow keeps between jobs with actions/cache (`--cache`): what ran in an earlier job is reused.

The pull request hears it as it hears the bot: the same check run and sticky comment, synced by the
bot's own `GitHubReporter` from the report rows the pipeline keeps for the run, with the workflow's
token. Posting comes second: when GitHub refuses it, a warning says which permissions the workflow
lacks, and the comparison is still printed, written to the job summary and exited by.
"""

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from bot import wiring
from bot.cli.actions import (
    Actions,
    PushEvent,
    append_summary,
    local_branch,
    pushed_ref,
    read_actions,
    require_history,
    set_outputs,
)
from bot.cli.experiments import (
    JsonOption,
    TierOption,
    console,
    err,
    execute_run,
    interruptible,
    own_runs,
    print_json,
    print_submission,
    show_comparison,
)
from bot.cli.outcome import CliOutput, Exit, comparison_exit, run_doc, run_exit
from bot.cli.progress import execute_and_watch
from bot.errors import TierbotError
from bot.github.gitauth import git_credentials
from bot.github.pull_requests import PullInfo
from bot.pipeline import Pipeline
from bot.render.view import ReportContext
from bot.request import RunRequest
from bot.settings import Settings
from bot.store import ComparisonRecord
from bot.tiers import Requester


class ActionsPipeline(Pipeline):
    """The pipeline of one job. Its reports link the workflow run's page, where the workflow uploads the
    HTML report: a file on the runner is gone once the job ends."""

    run_page: str | None = None

    def report_context(self, comparison: ComparisonRecord) -> ReportContext:
        context = super().report_context(comparison)
        return context.model_copy(update={"report_url": self.run_page}) if self.run_page else context


def ci(
    cache: Annotated[
        Path,
        typer.Option(
            "--cache",
            metavar="DIR",
            envvar="TIERBOT_DATA_DIR",
            help="tierbot's data dir (database, outputs, environments), kept between jobs by actions/cache.",
        ),
    ] = Path(".tierbot-cache"),
    tier: TierOption = None,
    as_json: JsonOption = False,
) -> None:
    """Inside GitHub Actions: compare a pull request's head with its merge base and post the check run
    and sticky comment, or run a pushed commit alone; write the job summary, exit by the verdict."""
    out = err if as_json else console
    actions = read_actions(os.environ)
    require_history(actions.workspace)
    pipe = _pipeline(actions, cache)
    with interruptible():
        if isinstance(actions.event, PushEvent):
            status = _run_push(pipe, actions, actions.event, tier, as_json, out)
        else:
            status = _compare_pull_request(pipe, actions, actions.event, tier, as_json, out)
    raise typer.Exit(status)


def _pipeline(actions: Actions, cache: Path) -> ActionsPipeline:
    """The pipeline on the cached data dir, with GitHub's API at GITHUB_API_URL and the workflow's token
    (nothing else: an App configured for the bot on this machine is not the workflow's)."""
    settings = Settings(
        data_dir=cache.expanduser().resolve(),
        github_api_url=actions.api_url,
        github_token=SecretStr(actions.token) if actions.token else None,
        github_app_id=None,
        github_private_key=None,
    )
    pipe = ActionsPipeline(settings, git_credentials=git_credentials, doors=wiring.DOORS)
    pipe.run_page = actions.run_page
    return pipe


def _compare_pull_request(
    pipe: Pipeline, actions: Actions, pull: PullInfo, tier: str | None, as_json: bool, out: Console
) -> Exit:
    from bot.cli.ci_github import ActionsApi, Publisher, job_summary  # PyGithub: for this command only

    local_branch(actions.workspace, pull.base_ref)
    requester = Requester(name=pull.author, github_login=pull.author)
    # The bot's request for the pull request, run from the job's checkout. The workflow runs this code
    # anyway (a fork's too: GitHub Actions is its sandbox), and each job is a request of its own: a rerun
    # of the job runs again what cannot be reused.
    request = pull.request(None, requester, tier).model_copy(
        update={"repository": actions.workspace, "trusted": True, "once": None}
    )
    publisher = Publisher(pipe, ActionsApi(pipe.settings, pipe.redactor))
    try:
        submission = pipe.submit(request)
    except TierbotError as exc:  # the pull request hears why nothing ran, as from the bot
        refused = pipe.refuse(request, pull.head_sha, exc)
        publisher.publish(refused.id)
        append_summary(actions, job_summary(pipe, refused, None))
        raise
    print_submission(submission, out, pipe.tiers.currency)
    head = submission.head.id
    try:
        with publisher.once_started(head):
            execute_and_watch(pipe, submission.run_ids, out, cancel=own_runs(submission))
    finally:
        publisher.publish(head)  # completed, or as far as it got when interrupted
    record = pipe.comparison(submission.comparison.id)
    status = comparison_exit(record)
    append_summary(actions, job_summary(pipe, record.head_run, record))
    set_outputs(actions, verdict=record.verdict, report=record.report_path)
    show_comparison(pipe, record, submission.baseline_reused, status, as_json, command="ci")
    return status


def _run_push(
    pipe: Pipeline, actions: Actions, push: PushEvent, tier: str | None, as_json: bool, out: Console
) -> Exit:
    from bot.cli.ci_github import job_summary

    request = RunRequest(repository=actions.workspace, ref=pushed_ref(actions.workspace, push), tier=tier)
    run = execute_run(pipe, request, out)
    status = run_exit(run)
    append_summary(actions, job_summary(pipe, run, None))
    if as_json:
        print_json(CliOutput(command="ci", exit_code=status, runs=[run_doc(run)]))
    return status
