"""Slack commands and buttons, handled by a worker from their recorded deliveries. Each answers the
person who asked, privately, through the report outbox (`slack_reply`); runs report to their channel
through their live message (`slack`), deployments through theirs (`bot.slack.deploys`). Every command
that names a repository or a run is checked against what the asker may do there on GitHub
(`bot.slack.access`) before anything else happens."""

import logging
from collections.abc import Callable

from bot.costs import month_costs, month_of
from bot.errors import TierbotError
from bot.events import Event
from bot.pipeline import Pipeline
from bot.render.templates import slack_escaped
from bot.request import RunRequest, is_owner_name
from bot.slack import deploys, grammar
from bot.slack.access import READ, WRITE, SlackAccess
from bot.slack.asker import Asker, SlackDoor
from bot.slack.grammar import SlackCommand
from bot.slack.link import start_link
from bot.slack.targets import MessageTarget
from bot.slack.views import costs_text, home_view, log_text, no_runs_text, run_line
from bot.store import Run
from bot.store.models import SlackChannel, utcnow
from bot.tiers import Requester, role_at_least

log = logging.getLogger(__name__)
RECENT_RUNS = 10
HOME_RUNS = 40  # a Home view holds 100 blocks
RECENT_SCAN = 500  # recent runs searched for the user's


def dispatch(event: Event, door: SlackDoor) -> str:
    if event.name == "event":
        return home(event.payload["event"]["user"], door)
    asker = Asker(door, event.payload)
    try:
        if event.name == "command":
            command = grammar.parse(event.payload.get("text", ""))
            return COMMANDS[command.verb](command, asker)
        action = event.payload["actions"][0]
        return ACTIONS[action["action_id"]](action, asker)
    except TierbotError as exc:  # its message may quote the asker, a repository or GitHub: escaped
        return f"refused: {asker.reply(slack_escaped(str(exc)))}"


def experiment(command: SlackCommand, asker: Asker) -> str:
    repository = asker.repository(command.repository)
    asker.access.require(repository, WRITE, "run experiments")
    requester = asker.requester(repository)
    request = pull_request_run(asker.door, repository, command, requester)
    if request is not None:  # the PR shows this run too, and the message links it
        request.report_to.append(MessageTarget.of_pull_request(asker.channel, request.report_to[0].about()))
    else:
        request = RunRequest(
            repository=repository,
            ref=command.branch or "HEAD",
            base=command.base or ("main" if command.branch else None),
            tier=command.tier,
            requester=requester,
            report_to=[MessageTarget(channel=asker.channel)],
        )
    # Someone asked for this run: it runs again, never an earlier run's outcome (`bot.reuse`).
    submission = asker.pipeline.submit(request.model_copy(update={"fresh": True}))
    return f"queued run {submission.head.id}"


def pull_request_run(door: SlackDoor, repository: str, command: SlackCommand, requester: Requester):
    """The request that runs the branch's open pull request (when the code host is configured and the
    branch has one), else None."""
    github, branch = door.github, command.branch
    if branch is None or github is None or not github.configured:
        return None
    try:
        return github.pull_request_run(repository, branch, requester, command.tier, command.base)
    except Exception as exc:  # GitHub unreachable: the run goes ahead, just without the PR
        log.warning("could not look up the pull request of %s:%s: %s", repository, branch, exc)
        return None


def status(command: SlackCommand, asker: Asker) -> str:
    if command.run_id is not None:
        runs = [asker.run(command.run_id, READ, "see runs")]
    else:
        runs = runs_of(asker.pipeline, asker.access, RECENT_RUNS)
    text = "\n".join(line_of(asker.pipeline, run) for run in runs) or no_runs_text()
    return asker.reply(text)


def cancel(command: SlackCommand, asker: Asker) -> str:
    run = cancel_own(asker, command.run_id)
    return asker.reply(f"Cancelling run {run.id}.")


def cancel_own(asker: Asker, run_id: int) -> Run:
    """Cancelling takes write access to the run's repository; a run started from Slack is, besides, its
    starter's alone to cancel."""
    starter = asker.run(run_id, WRITE, "cancel runs").requested_by
    if starter.get("slack_user") not in (None, asker.user):
        raise TierbotError(f"Run {run_id} is {starter.get('name')}'s; only they can cancel it.")
    return asker.pipeline.queue.cancel(run_id)


def costs(command: SlackCommand, asker: Asker) -> str:
    """A month's spend, as `tierbot costs` counts it; of the repositories (and their budgets), only those
    the asker may read."""
    found = month_costs(asker.pipeline.db, asker.pipeline.tiers, command.month or month_of(utcnow()))

    def readable(repository: str) -> bool:
        return is_owner_name(repository) and role_at_least(asker.access.role(repository), READ)

    repositories = [spend for spend in found.repositories if readable(spend.name)]
    budgets = [b for b in found.budgets if b.kind != "repository" or readable(b.name)]
    shown = found.model_copy(update={"repositories": repositories, "budgets": budgets})
    return asker.reply(costs_text(shown, hidden=len(found.repositories) - len(repositories)))


def link(command: SlackCommand, asker: Asker) -> str:
    return start_link(asker.pipeline, asker.to)


def use(command: SlackCommand, asker: Asker) -> str:
    asker.access.require(command.repository, WRITE, "set a channel's repository")
    with asker.pipeline.db.session() as s:
        s.merge(SlackChannel(channel=asker.channel, repository=command.repository, set_by=asker.user))
    return asker.reply(
        f"<@{asker.user}> set this channel's repository to `{command.repository}`.", public=True
    )


def home(user: str, door: SlackDoor) -> str:
    """The App Home tab: the user's recent runs. Publishing replaces the view, so a retry is harmless."""
    runs = runs_of(door.pipeline, SlackAccess(door.pipeline, door.github, user), HOME_RUNS)
    lines = [line_of(door.pipeline, run) for run in runs]
    door.client.views_publish(user_id=user, view=home_view(lines, utcnow()))
    return f"published the home of {user} with {len(lines)} runs"


def line_of(pipeline: Pipeline, run: Run) -> str:
    comparison = pipeline.comparison_for(run.id)
    if comparison is None or comparison.state != "done":
        return run_line(run)
    return run_line(run, comparison.verdict, pipeline.report_context(comparison).report_url)


def runs_of(pipeline: Pipeline, access: SlackAccess, limit: int) -> list[Run]:
    """The user's newest runs (not the baselines their comparisons used) in repositories they may still
    read."""
    recent = pipeline.recent_runs(RECENT_SCAN)
    mine = [r for r in recent if r.requested_by.get("slack_user") == access.user and r.role != "baseline"]
    return [r for r in mine if role_at_least(access.role(r.repository), READ)][:limit]


def cancel_button(action: dict, asker: Asker) -> str:
    run = cancel_own(asker, int(action["value"]))
    return f"cancelling run {run.id}"  # the live message shows it


def rerun_select(action: dict, asker: Asker) -> str:
    run_id, _, tier = action["selected_option"]["value"].partition(":")
    run = asker.run(int(run_id), WRITE, "rerun")
    submission = asker.pipeline.rerun(run.id, asker.requester(run.repository), tier=tier)
    return f"rerun of run {run_id} on {tier}: run {submission.head.id}"


def logs_button(action: dict, asker: Asker) -> str:
    run = asker.run(int(action["value"]), READ, "see logs")
    tail = run.log_tail
    if tail is None and run.log_path is None:
        tail = run.last_log_line
    asker.reply(log_text(run, tail or ""))
    return f"showed the log of run {run.id}"


COMMANDS: dict[str, Callable[[SlackCommand, Asker], str]] = {
    "experiment": experiment,
    "deployments": deploys.deployments,
    "rollback": deploys.rollback,
    "status": status,
    "cancel": cancel,
    "costs": costs,
    "use": use,
    "link": link,
}
ACTIONS: dict[str, Callable[[dict, Asker], str]] = {
    "tierbot_cancel": cancel_button,
    "tierbot_rerun": rerun_select,
    "tierbot_logs": logs_button,
    "tierbot_rollback": deploys.rollback_button,
}
