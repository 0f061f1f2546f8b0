"""Which of the GitHub door's handlers answer which events: the routers of each feature module,
composed here, in one place."""

from bot.events import Event
from bot.github import checks, comments, deployments, pull_requests
from bot.github.router import GitHubDoor, Router

ROUTERS: list[Router] = [pull_requests.router, comments.router, checks.router, deployments.router]


def handles(event: str, action: str | None) -> bool:
    return any(router.handles(event, action) for router in ROUTERS)


def dispatch(event: Event, door: GitHubDoor) -> str:
    outcomes = [
        router.dispatch(event, door) for router in ROUTERS if router.handles(event.name, event.action)
    ]
    return "; ".join(outcomes)
