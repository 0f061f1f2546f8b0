"""Doors as plugins: all the worker knows of GitHub, Slack or any door to come.

A door plugs into the core with a `DoorPlugin`: its name (the `source` of its recorded deliveries), the
outbox channels it delivers (`Report.outbox`), how to start it in a worker, its routes on the HTTP server,
and what it subscribes to. A started door handles its deliveries and syncs its outbox channels; it makes
its API clients when it starts, so a worker that never meets a door never imports its SDK. The
composition root (`bot.wiring`) lists the doors.
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.events import Event

if TYPE_CHECKING:
    from bot.pipeline import Pipeline
    from bot.request import RunRequest
    from bot.settings import Settings
    from bot.store import Report
    from bot.store.deliveries import Item
    from bot.targets import Target
    from bot.tiers import Requester

Syncer = Callable[["Pipeline", "Report"], dict]  # brings a door's view up to date; the memo to keep


class StartedDoor(Protocol):
    syncers: dict[str, Syncer]  # outbox channel → its syncer

    def handle(self, event: Event) -> str:
        """Handle one recorded delivery; the outcome for its record."""


class CodeHost(Protocol):
    """What one door may ask of the door where code is hosted (GitHub), without knowing it: who may
    do what to a repository, and which pull request a branch has."""

    @property
    def configured(self) -> bool:
        """Whether it can be asked at all (credentials are set)."""

    def role(self, repository: str, login: str) -> str | None:
        """The login's role on the repository (read … admin), None for an outsider."""

    def teams(self, repository: str, login: str, teams: set[str]) -> tuple[str, ...]:
        """Which of these teams ("org/slug") the login is in."""

    def pull_request_run(
        self, repository: str, branch: str, requester: "Requester", tier: str | None, base: str | None
    ) -> "RunRequest | None":
        """The request that runs the branch's open pull request and reports to it, or None without one."""


class Front(Protocol):
    """What the HTTP server (`bot.server`) offers one door's routes: every answer is given at once, so a
    route records its delivery and leaves the work to the workers."""

    pipeline: "Pipeline"

    def route(
        self, path: str, endpoint: Callable[..., Awaitable], methods: tuple[str, ...] = ("POST",)
    ) -> None:
        """Serve `endpoint` (a plain Starlette endpoint: it reads its own signed body) at `path`."""

    def record(self, delivery: "Item") -> Awaitable[bool]:
        """Record a delivery, answered once it is committed: whether it is new (False: a redelivery)."""

    def timed(self) -> AbstractContextManager:
        """Around each answer: the door's answer latency on `/metrics`."""

    def count(self, result: str) -> None:
        """One answer of this result (queued, duplicate, refused...) on `/metrics`."""

    def connect(self, open_link: Callable[[], Callable[[], None] | None]) -> None:
        """A link the door opens when the server starts (a blocking call, run off the event loop) and
        closes with what `open_link` returned when it stops: Slack's Socket Mode websocket."""


@dataclass(frozen=True)
class DoorPlugin:
    name: str  # the source of its deliveries
    channels: tuple[str, ...]  # the outbox channels it delivers
    start: Callable[["Pipeline"], StartedDoor]
    mount: Callable[[Front], None] | None = None  # its routes (and links) on the HTTP server
    # More report targets for a request made at another door (Slack shows a repository's pull requests
    # in its channel): the core asks every door before it queues or refuses anything.
    subscribe: Callable[["Settings", "RunRequest"], list["Target"]] | None = None


class UnknownDoor(LookupError):
    """A delivery or outbox entry of a door this installation does not plug in."""


class Doors:
    """One worker's doors, each started on first use."""

    def __init__(self, pipeline: "Pipeline", plugins: tuple[DoorPlugin, ...]):
        self.pipeline, self.plugins = pipeline, plugins
        self._started: dict[str, StartedDoor] = {}

    def handle(self, source: str, event: Event) -> str:
        return self._door(self._plugin(lambda p: p.name == source, source)).handle(event)

    def syncer(self, channel: str) -> Syncer:
        return self._door(self._plugin(lambda p: channel in p.channels, channel)).syncers[channel]

    def _plugin(self, wanted: Callable[[DoorPlugin], bool], what: str) -> DoorPlugin:
        found = next((plugin for plugin in self.plugins if wanted(plugin)), None)
        if found is None:
            raise UnknownDoor(f"no door plugged in here handles {what!r}")
        return found

    def _door(self, plugin: DoorPlugin) -> StartedDoor:
        if plugin.name not in self._started:
            self._started[plugin.name] = plugin.start(self.pipeline)
        return self._started[plugin.name]
