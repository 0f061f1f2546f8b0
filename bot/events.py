"""What every door hands to a worker: one recorded delivery (a webhook, a slash command, a click)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str  # what happened, in its door's terms: a GitHub event (`pull_request`), Slack's `command`
    delivery: str  # the delivery's id, unique per door
    payload: dict[str, Any]

    @property
    def action(self) -> str | None:
        return self.payload.get("action")
