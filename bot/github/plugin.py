"""The GitHub door as a plugin (`bot.doors`): webhook deliveries in, PR comments, check runs and replies
out, through one API client per worker. PyGithub loads when a worker starts the door, not before."""

from typing import TYPE_CHECKING

from bot.doors import DoorPlugin, Front
from bot.events import Event

if TYPE_CHECKING:
    from bot.pipeline import Pipeline


class StartedGitHub:
    def __init__(self, pipeline: "Pipeline"):
        from bot.github.client import GitHubApi
        from bot.github.deployment_statuses import GitHubDeployments
        from bot.github.handlers import dispatch
        from bot.github.replies import GitHubReplies
        from bot.github.reporter import GitHubReporter
        from bot.github.router import GitHubDoor

        api = GitHubApi(pipeline.settings, pipeline.redactor)
        self.door, self.dispatch = GitHubDoor(pipeline, api), dispatch
        self.syncers = {
            "github": GitHubReporter(api).sync,
            "github_reply": GitHubReplies(api).sync,
            "github_deployment": GitHubDeployments(api).sync,
        }

    def handle(self, event: Event) -> str:
        return self.dispatch(event, self.door)


def mount(front: Front) -> None:
    from bot.github.front import mount

    mount(front)


PLUGIN = DoorPlugin(
    name="github", channels=("github", "github_reply", "github_deployment"), start=StartedGitHub, mount=mount
)
