"""Where the Slack door shows a run (one message, kept up to date), a run's deployments (one message
each, kept up to date), and delivers private replies and account links (`bot.targets`)."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from bot.targets import PullRequestRef, Target


class MessageTarget(Target):
    outbox: ClassVar[str] = "slack"

    channel: str
    pull_request: str | None = None  # "owner/name#12" when the run is a pull request's
    pull_url: str | None = None

    @classmethod
    def of_pull_request(cls, channel: str, pull: PullRequestRef) -> "MessageTarget":
        return cls(channel=channel, pull_request=str(pull), pull_url=pull.url)


class DeployMessageTarget(Target):
    """A channel that shows the deployments of a run (its own, and rollbacks to its release): one message
    each, updated in place (`bot.slack.deploys`)."""

    outbox: ClassVar[str] = "slack_deployment"

    channel: str


class Person(BaseModel):
    """Someone to answer privately: through the command's `response_url`, else as an ephemeral message
    to the user in the channel."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    response_url: str | None = None
    channel: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, to: dict) -> "Person":
        """From a command's or click's payload (or another Person's fields)."""
        return cls(**{key: to.get(key) for key in ("response_url", "channel", "user")})

    def person(self) -> "Person":
        return Person.of(self.model_dump())


class ReplyTarget(Person, Target):
    outbox: ClassVar[str] = "slack_reply"

    text: str
    response_type: str = "ephemeral"  # or in_channel


class LinkTarget(Person, Target):
    """A pending account link: GitHub is polled until the person confirms the code, or it expires."""

    outbox: ClassVar[str] = "slack_link"

    device_code: str
    interval: int
    expires_at: float  # seconds since the epoch
