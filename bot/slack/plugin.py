"""The Slack door as a plugin (`bot.doors`): commands, clicks and App Home events in; run messages,
deployment messages, private replies and account links out, through one Web API client per worker
(slack_sdk loads when a worker starts the door). Who may do what, and a branch's pull request, it asks
of the code host (`bot.doors.CodeHost`) it is plugged in with."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.deploy.plan import is_deploy_run
from bot.doors import CodeHost, DoorPlugin, Front
from bot.events import Event
from bot.slack.targets import DeployMessageTarget, MessageTarget
from bot.targets import Target

if TYPE_CHECKING:
    from bot.pipeline import Pipeline
    from bot.request import RunRequest
    from bot.settings import Settings


class StartedSlack:
    def __init__(self, pipeline: "Pipeline", code_host: "Callable[[Pipeline], CodeHost]"):
        from bot.slack.bolt import web_client
        from bot.slack.deploys import DeployMessages
        from bot.slack.handlers import SlackDoor, dispatch
        from bot.slack.link import poll_link
        from bot.slack.reporter import SlackReporter

        client = web_client(pipeline.settings, pipeline.redactor)
        self.door = SlackDoor(pipeline, client, code_host(pipeline))
        self.dispatch = dispatch
        reporter = SlackReporter(client)
        self.syncers = {
            "slack": reporter.sync,
            "slack_reply": reporter.reply,
            "slack_link": poll_link,
            "slack_deployment": DeployMessages(client).sync,
        }

    def handle(self, event: Event) -> str:
        return self.dispatch(event, self.door)


def subscribe(settings: "Settings", request: "RunRequest") -> list[Target]:
    """A pull request's runs show in its repository's channel too (TIERBOT_SLACK_NOTIFY), unless they
    are reported to Slack already (asked for there); so do the deployments of the repository, whichever
    door asked for them (through their runs: `bot.slack.deploys`)."""
    channel = settings.slack_notify.get(request.repository)
    if channel is not None and is_deploy_run(request):
        shown = any(isinstance(t, DeployMessageTarget) for t in request.report_to)
        return [] if shown else [DeployMessageTarget(channel=channel)]
    pulls = [pull for pull in (target.about() for target in request.report_to) if pull is not None]
    if channel is None or not pulls or any(isinstance(t, MessageTarget) for t in request.report_to):
        return []
    return [MessageTarget.of_pull_request(channel, pulls[0])]


def mount(front: Front) -> None:
    from bot.slack.front import mount  # slack-bolt loads with the server, not with every worker

    mount(front)


def plugin(code_host: "Callable[[Pipeline], CodeHost]") -> DoorPlugin:
    """The Slack door, asking `code_host` (GitHub's, in `bot.wiring`) who may do what."""
    return DoorPlugin(
        name="slack",
        channels=("slack", "slack_reply", "slack_link", "slack_deployment"),
        start=lambda pipeline: StartedSlack(pipeline, code_host),
        mount=mount,
        subscribe=subscribe,
    )
