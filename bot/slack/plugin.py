"""The Slack door as a plugin (`bot.doors`): commands, clicks and App Home events in; run messages,
private replies and account links out, through one Web API client per worker. slack_sdk (and PyGithub,
which answers who may do what) load when a worker starts the door, not before."""

from typing import TYPE_CHECKING

from bot.doors import DoorPlugin
from bot.events import Event

if TYPE_CHECKING:
    from bot.pipeline import Pipeline


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


PLUGIN = DoorPlugin(name="slack", channels=("slack", "slack_reply", "slack_link"), start=StartedSlack)
