"""The Slack door as a plugin (`bot.doors`): commands, clicks and App Home events in; run messages,
private replies and account links out, through one Web API client per worker. slack_sdk (and PyGithub,
which answers who may do what) load when a worker starts the door, not before."""

from typing import TYPE_CHECKING

from bot.doors import DoorPlugin
from bot.events import Event

if TYPE_CHECKING:
    from bot.pipeline import Pipeline
    from bot.request import RunRequest
    from bot.settings import Settings


class StartedSlack:
    def __init__(self, pipeline: "Pipeline"):
        from bot.github.client import GitHubApi
        from bot.slack.bolt import web_client
        from bot.slack.handlers import SlackDoor, dispatch
        from bot.slack.link import poll_link
        from bot.slack.reporter import SlackReporter

        client = web_client(pipeline.settings, pipeline.redactor)
        self.door = SlackDoor(pipeline, client, GitHubApi(pipeline.settings, pipeline.redactor))
        self.dispatch = dispatch
        reporter = SlackReporter(client)
        self.syncers = {"slack": reporter.sync, "slack_reply": reporter.reply, "slack_link": poll_link}

    def handle(self, event: Event) -> str:
        return self.dispatch(event, self.door)


def pull_request_message(channel: str, pull: dict) -> dict:
    """The report target of a run's message in `channel` about the pull request of a GitHub target."""
    about = f"{pull['repository']}#{pull['pull_request']}"
    return {"slack": {"channel": channel, "pull_request": about, "pull_url": pull.get("url")}}


def subscribe(settings: "Settings", request: "RunRequest") -> list[dict]:
    """A pull request's runs show in its repository's channel too (TIERBOT_SLACK_NOTIFY), unless they
    are reported to Slack already (asked for there)."""
    channel = settings.slack_notify.get(request.repository)
    pulls = [target["github"] for target in request.report_to if "github" in target]
    if channel is None or not pulls or any("slack" in target for target in request.report_to):
        return []
    return [pull_request_message(channel, pulls[0])]


PLUGIN = DoorPlugin(
    name="slack", channels=("slack", "slack_reply", "slack_link"), start=StartedSlack, subscribe=subscribe
)
