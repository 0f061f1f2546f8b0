"""The GitHub door: verified webhooks in, RunRequests out (reporting back arrives in a later slice).

The routers of each feature module are composed here, in one place.
"""

from bot.github import pull_requests
from bot.github.router import Event, Router

ROUTERS: list[Router] = [pull_requests.router]


def handles(event: str, action: str | None) -> bool:
    return any(router.handles(event, action) for router in ROUTERS)


def dispatch(event: Event, *context: object) -> str:
    outcomes = [
        router.dispatch(event, *context) for router in ROUTERS if router.handles(event.name, event.action)
    ]
    return "; ".join(outcomes)
