"""A small router: handlers registered per (event, action), called by workers with a recorded delivery."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.events import Event

if TYPE_CHECKING:  # PyGithub is imported only by workers that talk to GitHub
    from bot.github.client import GitHubApi
    from bot.pipeline import Pipeline

Handler = Callable[..., str]


@dataclass
class GitHubDoor:
    """What a handler works with: the pipeline, and GitHub's API for reads."""

    pipeline: "Pipeline"
    api: "GitHubApi"


@dataclass
class Router:
    _handlers: dict[tuple[str, str | None], list[Handler]] = field(default_factory=dict)

    def register(self, event: str, actions: Iterable[str | None] = (None,)) -> Callable[[Handler], Handler]:
        """Register for some actions of an event; `None` means every action."""

        def decorate(handler: Handler) -> Handler:
            for action in actions:
                self._handlers.setdefault((event, action), []).append(handler)
            return handler

        return decorate

    def handlers(self, event: str, action: str | None) -> list[Handler]:
        every = self._handlers.get((event, None), [])  # an event without actions (`push`) has only these
        return every if action is None else self._handlers.get((event, action), []) + every

    def handles(self, event: str, action: str | None) -> bool:
        return bool(self.handlers(event, action))

    def dispatch(self, event: Event, door: GitHubDoor) -> str:
        """Run every handler for the event; their outcomes joined, for the delivery's record."""
        return "; ".join(handler(event, door) for handler in self.handlers(event.name, event.action))
