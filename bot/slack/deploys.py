"""Deployments in Slack: the messages that follow them, `/run deployments`, `/run rollback` and the
*Rollback* button.

A deployment's run reports to its repository's channel (`TIERBOT_SLACK_NOTIFY`, the channel that hears
a repository's pull requests: `bot.slack.plugin.subscribe`), and a rollback asked for in Slack to the
channel it was asked in; each deployment of the run (its own, and the rollbacks to its release) is one
message there, posted once and then updated in place (`chat.update`, its ts kept in the report's memo).
Commands and the button ask the core (`bot.deploy.plan`) exactly as `tierbot deployments` and
`tierbot rollback` do. Seeing deployments takes read access to the repository; rolling back takes write
access and, when the tiers file's `deploy_access` names the environment, being among those it names.
"""

import difflib
import hashlib
import json

from slack_sdk import WebClient

from bot.deploy.plan import deployments_of, request_rollback
from bot.deploy.report import report_link
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.slack.access import READ, WRITE, AccessDenied
from bot.slack.asker import Asker
from bot.slack.deploy_views import deploy_message, deployments_text, rolling_back_text
from bot.slack.grammar import ROLLBACK, SlackCommand
from bot.slack.targets import DeployMessageTarget
from bot.store import Report
from bot.store.models import Deployment, DeploymentState

RECENT = 10  # deployments `/run deployments` lists
SCAN = 200  # recent deployments of a repository searched for its environments


class DeployMessages:
    """The outbox's syncer of `slack_deployment` reports: each deployment of the run, one message."""

    def __init__(self, client: WebClient):
        self.client = client

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        channel = DeployMessageTarget.model_validate(report.target).channel
        memo = dict(report.memo)
        for d in deployments_of(pipeline).of_run(report.run_id):
            message = deploy_message(d, report_link(pipeline, d))
            digest = hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()
            kept = memo.get(str(d.id))
            if kept is None and d.state == DeploymentState.retired:
                continue  # replaced before the channel heard of the run (a rollback asked there): history
            if kept is not None and kept["digest"] == digest:
                continue  # a sync repeated, or another deployment of the run changed: nothing to say
            if kept is not None:
                self.client.chat_update(channel=kept["channel"], ts=kept["ts"], **message)
                memo[str(d.id)] = kept | {"digest": digest}
            else:
                posted = self.client.chat_postMessage(channel=channel, **message)
                memo[str(d.id)] = {"channel": posted["channel"], "ts": posted["ts"], "digest": digest}
            # Kept at once: should a later call of this sync fail, the outbox retries with this memo and
            # updates what was posted, never posting it twice.
            report.memo = dict(memo)
        return memo


# -- commands and the button ------------------------------------------------------------------------------


def deployments(command: SlackCommand, asker: Asker) -> str:
    """`/run deployments [ENV] [in OWNER/REPO]`: the newest deployments (of one environment)."""
    repository = asker.repository(command.repository)
    asker.access.require(repository, READ, "see deployments")
    known = deployments_of(asker.pipeline).recent(repository, limit=SCAN)
    if command.environment is not None:
        environment_of(repository, command.environment, known)
    shown = [d for d in known if command.environment in (None, d.environment)][:RECENT]
    return asker.reply(deployments_text(repository, command.environment, shown))


def rollback(command: SlackCommand, asker: Asker) -> str:
    """`/run rollback [ENV] [to COMMIT] [in OWNER/REPO]`."""
    repository = asker.repository(command.repository)
    asker.access.require(repository, READ, "see deployments")
    known = deployments_of(asker.pipeline).recent(repository, limit=SCAN)
    return roll_back(asker, repository, environment_of(repository, command.environment, known), command.to)


def rollback_button(action: dict, asker: Asker) -> str:
    """*Rollback* on a live deployment's message: its environment, back to the release before."""
    found = deployments_of(asker.pipeline).get(int(action["value"]))
    if found is None:
        raise TierbotError(f"There is no deployment {action['value']}; nothing was rolled back.")
    require_deployer(asker, found.repository, found.environment)
    if found.state != DeploymentState.live:
        raise TierbotError(
            f"Deployment {found.id} ({found.short_sha}) is no longer live in {found.environment} "
            f"({found.state}: {found.reason}); nothing was rolled back. `/run deployments "
            f"{found.environment}` shows what is."
        )
    return roll_back(asker, found.repository, found.environment, None)


def roll_back(asker: Asker, repository: str, environment: str, to: str | None) -> str:
    """Ask the core for the rollback, reported in the asker's channel unless the release's run reports
    to a channel already; the asker hears where its message follows."""
    require_deployer(asker, repository, environment)
    pipeline = asker.pipeline
    busy = in_progress(pipeline, repository, environment)
    if busy is not None:
        raise TierbotError(
            f"Deployment {busy.id} ({busy.short_sha}) is {busy.state} in {environment} now; roll back "
            f"once it has ended (`/run deployments {environment}` shows how it went)."
        )
    here = DeployMessageTarget(channel=asker.channel) if asker.channel else None
    requester = asker.requester(repository)
    done = request_rollback(pipeline, repository, environment, to, requester, [here] if here else [])
    asker.reply(rolling_back_text(done, message_channel(pipeline, done)))
    return f"rollback {done.id} of {environment} to {done.short_sha} queued"


def require_deployer(asker: Asker, repository: str, environment: str) -> None:
    """Write access to the repository, and a place in `deploy_access` when it names the environment."""
    asker.access.require(repository, WRITE, f"roll back {environment}")
    allowed = asker.pipeline.tiers.deployers(environment)
    if allowed.restricted and not allowed.allows(asker.requester(repository)):
        raise AccessDenied(
            f"Deploying to {environment} of `{repository}` is restricted to {allowed.describe()} "
            "(deploy_access in the tiers file); nothing was rolled back."
        )


def environment_of(repository: str, named: str | None, known: list[Deployment]) -> str:
    """The environment named, checked against those the repository deployed to; unnamed, the only one."""
    environments = list(dict.fromkeys(d.environment for d in known))
    listed = ", ".join(f"`{e}`" for e in environments)
    if not environments:
        raise TierbotError(f"`{repository}` has no deployments yet: merging to its default branch deploys.")
    if named is None:
        if len(environments) == 1:
            return environments[0]
        raise TierbotError(f"Which environment? `{repository}` deploys to {listed}. Write `{ROLLBACK}`.")
    if named not in environments:
        close = difflib.get_close_matches(named, environments, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise TierbotError(f"`{repository}` has no environment `{named}`.{hint} Its environments: {listed}.")
    return named


def in_progress(pipeline: Pipeline, repository: str, environment: str) -> Deployment | None:
    """A deployment of the environment that has not ended (queued, waiting for its run, deploying)."""
    recent = deployments_of(pipeline).recent(repository, environment, limit=SCAN)
    return next((d for d in recent if not DeploymentState(d.state).terminal), None)


def message_channel(pipeline: Pipeline, deployment: Deployment) -> str | None:
    """The channel the deployment's message goes to: its run's `slack_deployment` target's."""
    run = pipeline.run(deployment.run_id) if deployment.run_id is not None else None
    outbox = DeployMessageTarget.outbox
    found = (entry[outbox] for entry in (run.report_to if run else []) if outbox in entry)
    return next((target.get("channel") for target in found), None)
