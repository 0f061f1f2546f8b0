"""Merge to deploy on GitHub: a merged pull request and a push to the default branch each ask for the
deployment of their commit (`bot.deploy`: once per commit and environment, whichever event comes first,
or comes again). The deployment reports to a `DeploymentTarget`, which `bot.github.deployment_statuses`
syncs to GitHub's Deployments API and the merged pull request. No PyGithub here: the webhook's triage
imports the handlers.
"""

from typing import ClassVar

from bot.deploy.plan import NothingToDeploy, request_deploy
from bot.errors import TierbotError
from bot.events import Event
from bot.github.pull_requests import installation_of
from bot.github.router import GitHubDoor, Router
from bot.targets import Target
from bot.tiers import Requester

router = Router()
NO_COMMIT = "0" * 40


class DeploymentTarget(Target):
    """Where a deployment is shown: the repository's GitHub deployments, and the merged PR if any."""

    outbox: ClassVar[str] = "github_deployment"

    repository: str
    installation: int | None = None
    pull_request: int | None = None


# -- the events ---------------------------------------------------------------------------------------


@router.register("pull_request", actions=("closed",))
def on_merged(event: Event, door: GitHubDoor) -> str:
    pull, repository = event.payload["pull_request"], event.payload["repository"]
    if not pull.get("merged"):
        return "closed without merging: nothing to deploy"
    default = repository.get("default_branch")
    if pull["base"]["ref"] != default:
        return f"merged into {pull['base']['ref']}, not {default}: nothing to deploy"
    sha = pull.get("merge_commit_sha")
    if not sha:
        return "the payload names no merge commit: nothing to deploy"
    login = (pull.get("merged_by") or event.payload.get("sender") or {}).get("login")
    target = DeploymentTarget(
        repository=repository["full_name"], installation=installation_of(event), pull_request=pull["number"]
    )
    return _deploy(door, target, sha, login)


@router.register("push")
def on_push(event: Event, door: GitHubDoor) -> str:
    payload, repository = event.payload, event.payload["repository"]
    default = repository.get("default_branch")
    if payload.get("ref") != f"refs/heads/{default}":
        return f"a push to {payload.get('ref')}: only the default branch ({default}) deploys"
    sha = payload.get("after")
    if payload.get("deleted") or not sha or sha == NO_COMMIT:
        return "the default branch was deleted: nothing to deploy"
    login = (payload.get("sender") or {}).get("login") or (payload.get("pusher") or {}).get("name")
    target = DeploymentTarget(repository=repository["full_name"], installation=installation_of(event))
    return _deploy(door, target, sha, login)


def _deploy(door: GitHubDoor, target: DeploymentTarget, sha: str, login: str | None) -> str:
    requester = Requester(name=login or "github", github_login=login)
    try:
        deployment, new = request_deploy(door.pipeline, target.repository, sha, requester, [target])
    except NothingToDeploy as exc:
        return str(exc)
    except TierbotError as exc:  # a broken tierbot.yaml: its pull request said so already
        return f"not deployed: {exc}"
    if not new:
        return f"nothing new: {sha[:7]} is deployment {deployment.id} ({deployment.state})"
    return f"deployment {deployment.id} of {sha[:7]} to {deployment.environment} queued"
