"""FakeGitHub's deployments: create and list deployments, create and list their statuses.

Validated as GitHub documents: a deployment needs a `ref` (a branch or commit of the repository), its
environment defaults to `production`; a status's `state` is one of GitHub's seven, its description at
most 140 characters. `auto_inactive` (default true) marks the earlier deployments of the environment
`inactive` when a status is `success`, as GitHub does for non-transient, non-production deployments
only. Lists are newest first. State lives on the world (`World.deployments`), each deployment with its
statuses, oldest first.
"""

from dataclasses import dataclass, field
from datetime import datetime

from .fakegithub_api import (
    Call,
    Refusal,
    Reply,
    invalid,
    owned,
    paginate,
    repo_of,
    require_write,
    resolve_ref,
    route,
)
from .fakegithub_json import iso
from .fakegithub_state import Repo, User, World, now

STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
MAX_DESCRIPTION = 140


@dataclass
class DeploymentStatus:
    id: int
    state: str
    creator: User
    description: str = ""
    environment_url: str = ""
    log_url: str = ""
    created_at: datetime = field(default_factory=now)


@dataclass
class Deployment:
    id: int
    repo: Repo
    sha: str
    ref: str
    task: str
    environment: str
    payload: dict
    description: str | None
    creator: User
    production_environment: bool
    transient_environment: bool
    created_at: datetime = field(default_factory=now)
    statuses: list[DeploymentStatus] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        """Its latest status's state (None before any)."""
        return self.statuses[-1].state if self.statuses else None


def deployment_json(world: World, d: Deployment) -> dict:
    url = f"{world.url}/repos/{d.repo.full_name}/deployments/{d.id}"
    return {
        "url": url,
        "id": d.id,
        "node_id": f"DE_{d.id}",
        "sha": d.sha,
        "ref": d.ref,
        "task": d.task,
        "payload": d.payload,
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.description,
        "creator": world.user_json(d.creator),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.created_at),
        "statuses_url": f"{url}/statuses",
        "repository_url": f"{world.url}/repos/{d.repo.full_name}",
        "transient_environment": d.transient_environment,
        "production_environment": d.production_environment,
    }


def status_json(world: World, d: Deployment, status: DeploymentStatus) -> dict:
    url = f"{world.url}/repos/{d.repo.full_name}/deployments/{d.id}"
    return {
        "url": f"{url}/statuses/{status.id}",
        "id": status.id,
        "node_id": f"DES_{status.id}",
        "state": status.state,
        "creator": world.user_json(status.creator),
        "description": status.description,
        "environment": d.environment,
        "target_url": status.log_url,
        "log_url": status.log_url,
        "environment_url": status.environment_url,
        "created_at": iso(status.created_at),
        "updated_at": iso(status.created_at),
        "deployment_url": url,
        "repository_url": f"{world.url}/repos/{d.repo.full_name}",
    }


def deployment_of(world: World, call: Call) -> Deployment:
    return owned(world, call, world.deployments)


@route("POST", "/repos/{owner}/{repo}/deployments")
def create_deployment(world: World, call: Call) -> Reply:
    repo = repo_of(world, call)
    require_write(call, "deployments")
    body = call.body if isinstance(call.body, dict) else {}
    ref = body.get("ref")
    if not isinstance(ref, str) or not ref:
        raise Refusal(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
    environment = body.get("environment", "production")
    deployment = Deployment(
        id=world.next_id(),
        repo=repo,
        sha=resolve_ref(repo, ref),
        ref=ref,
        task=body.get("task", "deploy"),
        environment=environment,
        payload=body.get("payload") or {},
        description=body.get("description"),
        creator=call.token.user,
        production_environment=body.get("production_environment", environment == "production"),
        transient_environment=bool(body.get("transient_environment", False)),
    )
    world.deployments[deployment.id] = deployment
    return Reply(201, deployment_json(world, deployment))


@route("GET", "/repos/{owner}/{repo}/deployments")
def list_deployments(world: World, call: Call) -> Reply:
    repo = repo_of(world, call)
    found = [d for d in world.deployments.values() if d.repo is repo]
    for name in ("sha", "ref", "task", "environment"):
        if name in call.query:
            found = [d for d in found if getattr(d, name) == call.query[name]]
    found.sort(key=lambda d: -d.id)
    return paginate(world, call, [deployment_json(world, d) for d in found])


@route("GET", "/repos/{owner}/{repo}/deployments/{id:int}")
def get_deployment(world: World, call: Call) -> Reply:
    return Reply(200, deployment_json(world, deployment_of(world, call)))


@route("POST", "/repos/{owner}/{repo}/deployments/{id:int}/statuses")
def create_status(world: World, call: Call) -> Reply:
    deployment = deployment_of(world, call)
    require_write(call, "deployments")
    body = call.body if isinstance(call.body, dict) else {}
    state = body.get("state")
    if state not in STATES:
        raise Refusal(
            422, f"Invalid request.\n\nFor 'properties/state', {state!r} is not a valid enum value."
        )
    description = body.get("description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise invalid(
            "DeploymentStatus", "description", f"description is too long (maximum is {MAX_DESCRIPTION})"
        )
    status = DeploymentStatus(
        id=world.next_id(),
        state=state,
        creator=call.token.user,
        description=description,
        environment_url=body.get("environment_url") or "",
        log_url=body.get("log_url") or body.get("target_url") or "",
    )
    deployment.statuses.append(status)
    if state == "success" and body.get("auto_inactive", True):
        _inactivate_earlier(world, deployment, call.token.user)
    return Reply(201, status_json(world, deployment, status))


def _inactivate_earlier(world: World, deployment: Deployment, user: User) -> None:
    for earlier in world.deployments.values():
        same = earlier.repo is deployment.repo and earlier.environment == deployment.environment
        kept = earlier.transient_environment or earlier.production_environment  # GitHub leaves these be
        if same and earlier.id < deployment.id and not kept and earlier.state not in (None, "inactive"):
            earlier.statuses.append(DeploymentStatus(world.next_id(), "inactive", user))


@route("GET", "/repos/{owner}/{repo}/deployments/{id:int}/statuses")
def list_statuses(world: World, call: Call) -> Reply:
    deployment = deployment_of(world, call)
    newest_first = [status_json(world, deployment, s) for s in reversed(deployment.statuses)]
    return paginate(world, call, newest_first)
