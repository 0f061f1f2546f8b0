"""Who asked the Slack door for something: the Slack user, where they asked, what they may do (in
GitHub's terms, `bot.slack.access`), which repository they mean, and how to answer them privately."""

from dataclasses import dataclass

from slack_sdk import WebClient
from sqlalchemy import select

from bot.doors import CodeHost
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.slack.access import SlackAccess
from bot.slack.reporter import post_reply
from bot.slack.targets import Person
from bot.store import Run
from bot.store.models import SlackChannel
from bot.tiers import Requester


@dataclass
class SlackDoor:
    pipeline: Pipeline
    client: WebClient
    github: CodeHost | None = None  # who may do what, and a branch's pull request (when configured)


class Asker:
    """Who asked, where, what they may do, and how to answer them."""

    def __init__(self, door: SlackDoor, body: dict):
        self.door, self.pipeline, self.body = door, door.pipeline, body
        user = body.get("user") or {}
        self.user = body.get("user_id") or user.get("id")
        self.name = body.get("user_name") or user.get("username") or user.get("name") or self.user
        self.channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
        self.access = SlackAccess(door.pipeline, door.github, self.user)
        self.to = Person(response_url=body.get("response_url"), channel=self.channel, user=self.user)

    def requester(self, repository: str) -> Requester:
        """Slack user groups are checked only for the groups the tiers name; GitHub teams likewise."""
        groups = tuple(
            group
            for group in sorted(self.pipeline.tiers.slack_groups())
            if self.user in self.door.client.usergroups_users_list(usergroup=group).get("users", [])
        )
        login, github, teams = self.access.login, self.door.github, self.pipeline.tiers.github_teams()
        mine = ()
        if login and teams and github is not None and github.configured:
            mine = github.teams(repository, login, teams)
        return Requester(
            name=self.name,
            slack_user=self.user,
            slack_groups=groups,
            github_login=login,
            github_teams=mine,
            github_role=self.access.role(repository),
        )

    def repository(self, named: str | None) -> str:
        """The repository the command names (`in OWNER/REPO`), else the channel's."""
        repository = named or channel_repository(self.pipeline, self.channel)
        if repository is None:
            raise TierbotError(
                "Which repository? Add `in OWNER/REPO`, or set this channel's with `/run use OWNER/REPO`."
            )
        return repository

    def reply(self, text: str, public: bool = False) -> str:
        return post_reply(self.pipeline, self.to, text, public)

    def run(self, run_id: int, need: str, doing: str) -> Run:
        """The run, once the asker is known to have `need` access to its repository."""
        run = self.pipeline.run(run_id)
        self.access.require(run.repository, need, doing)
        return run


def channel_repository(pipeline: Pipeline, channel: str | None) -> str | None:
    with pipeline.db.session() as s:
        found = s.scalars(select(SlackChannel.repository).where(SlackChannel.channel == channel)).first()
    return found or pipeline.settings.slack_default_repository
