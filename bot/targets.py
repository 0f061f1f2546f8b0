"""Report targets: where a door shows a run (a pull request, a Slack channel) or delivers a one-off
message (a reply). One small model per kind, defined by its door and registered under the outbox channel
that delivers it; the core keeps them, stores them and hands each back to its door, without knowing any.

Stored as `{outbox: fields}` in a run's `report_to` and as the fields in a report's `target`: the same
JSON as before targets had types, so rows written then still load.
"""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError


class PullRequestRef(BaseModel):
    """The pull request a target is about, as any door may show it."""

    model_config = ConfigDict(frozen=True)

    repository: str  # owner/name
    number: int
    url: str | None = None

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"


class Target(BaseModel):
    # Stored rows of older versions may carry fields a target no longer has: ignored, not refused.
    model_config = ConfigDict(frozen=True, extra="ignore")

    outbox: ClassVar[str]  # the outbox channel that delivers it (`DoorPlugin.channels`)
    _kinds: ClassVar[dict[str, type["Target"]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.outbox:
            Target._kinds[cls.outbox] = cls

    def about(self) -> PullRequestRef | None:
        """The pull request this target shows the run on, if any: other doors subscribe to it."""
        return None

    def stored(self) -> dict:
        """As a run's `report_to` keeps it."""
        return {self.outbox: self.fields()}

    def fields(self) -> dict:
        """As a report's `target` keeps it."""
        return self.model_dump(mode="json", exclude_none=True)


class Unplugged(Target):
    """A stored target of a door this installation does not plug in (or one its door no longer reads):
    kept as it was, so a rerun still carries it and the outbox says why it is not delivered."""

    outbox: ClassVar[str] = ""
    channel: str
    address: dict

    def stored(self) -> dict:
        return {self.channel: self.address}

    def fields(self) -> dict:
        return self.address


def loaded(report_to: list[dict]) -> list[Target]:
    """A run's stored targets, typed again."""
    return [_loaded(outbox, address) for entry in report_to for outbox, address in entry.items()]


def _loaded(outbox: str, address: dict) -> Target:
    kind = Target._kinds.get(outbox)
    try:
        return kind.model_validate(address) if kind else Unplugged(channel=outbox, address=address)
    except ValidationError:  # its door's syncer says what is wrong with it, where its errors go
        return Unplugged(channel=outbox, address=address)


def stored(targets: list[Target]) -> list[dict]:
    return [target.stored() for target in targets]
