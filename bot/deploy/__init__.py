"""Merge to deploy: a merged commit's model, served by the experiment's own `predict` with the very
artifact its run made and the comparison saw, switched in blue/green behind a stable URL, with rollback.

The parts: `plan` (which commit deploys, and the run that holds its artifact), `queue` (deployments as
rows: one per commit and environment, one environment deploying at a time, leases), `machine` (the
steps, resumable after a crash), `checks` (health, smoke, the prediction diff), `report` (what people
read), and the targets, each a port of this module's `Target` shape: `local` (a model server process on
this machine, behind its `proxy`), `docker_target` (a container of the run's image, behind the same proxy:
`stable_url`) and `sagemaker_target` (SageMaker endpoints, blue/green by UpdateEndpoint).

This module stays light: the proxy (`python -m bot.deploy.proxy`) imports it on start.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.errors import TierbotError

Log = Callable[[str], None]  # a line for the deployment's report


class DeployFailed(TierbotError):
    """A step failed: the version that was live keeps serving; the message says why, for people."""


@dataclass(frozen=True)
class Release:
    """What one deployment serves: a commit's `predict` with its run's artifact."""

    deployment_id: int
    repository: str
    environment: str
    sha: str
    run_id: int
    predict: str  # `serve.py:predict`
    artifact: Path  # the artifact's bytes here (the artifact store's blob)
    artifact_name: str  # `deploy.artifact` as the spec names it
    artifact_hash: str
    requirements: str | None  # the spec's requirements file: the experiment's environment
    deployed_at: str  # ISO 8601, for `/version`

    def version(self) -> dict:
        """What the model server answers at `/version`."""
        return {
            "commit": self.sha,
            "run_id": self.run_id,
            "artifact": self.artifact_name,
            "artifact_hash": self.artifact_hash,
            "predict": self.predict,
            "environment": self.environment,
            "deployment": self.deployment_id,
            "deployed_at": self.deployed_at,
        }


@dataclass(frozen=True)
class Version:
    """A version running on a target: where it answers directly (beside the stable URL), and the
    target's handle to find it again after a restart (kept in `Deployment.instance`)."""

    url: str
    handle: dict


class Target(Protocol):
    """Where an environment's versions run. A target never touches the database: the machine records
    the handles it returns, and gives them back to resume, switch, stop or roll back."""

    def url(self) -> str:
        """The environment's stable URL (started if need be: the local target's proxy)."""

    def start(self, release: Release, log: Log) -> Version:
        """Stage the release (kept for rollback) and start it beside whatever serves now."""

    def restart(self, handle: dict, log: Log) -> Version:
        """A kept release (a handle an earlier `start` returned) started again: a rollback."""

    def problem(self, handle: dict) -> str | None:
        """Why this version cannot answer (its process is gone), or None while it runs."""

    def routed(self) -> dict | None:
        """The handle traffic goes to now, or None before the first switch."""

    def switch(self, version: Version) -> None:
        """Send all new traffic to `version`, atomically; requests in flight finish where they are."""

    def stop(self, handle: dict) -> None:
        """Drain the version (its requests in flight end) and stop it; its release stays. Idempotent."""

    def captured(self) -> list[str]:
        """Recent request bodies the live version answered (bounded), for the prediction diff."""
