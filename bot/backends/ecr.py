"""A repository's environment image in Amazon ECR, where a remote job's hardware can pull it: the tier's
options that say where (`EcrImage`), and the build and push every remote backend shares (`ecr_image`).

The docker backend's build (`bot.backends.docker_image`) names an image by the hash of everything that
goes into it (`tierbot-env:<hash>`) and labels it with the run that built it and the instance. A remote
tier runs it from the tier's ECR repository (`backend_options.ecr_repository`) under the same hash as
its tag: `<registry>/<repository>:<hash>`. The registry and its password come from
`ecr.get_authorization_token` (through `bot.aws`'s client: the bot's credentials, never the job's); the
engine logs in with them, tags and pushes.

Pushes are cached by that hash: an image this process pushed (or found) is not asked about again, and
before a push the registry is asked for the tag (the engine's distribution inspect, one manifest HEAD):
an image another replica or an earlier process pushed is not pushed again. A tag names one build recipe,
so whoever pushed it pushed the same environment.

Nothing here imports the docker SDK or boto3 at module level: the options are checked at start for every
tier, in installations that may have neither extra.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field

from bot.aws_options import AwsPlace, client
from bot.errors import TierbotError

if TYPE_CHECKING:
    import docker
    from botocore.client import BaseClient

    from bot.backends import Job, Watcher
    from bot.backends.process import LogSink
    from bot.settings import Settings

ENGINE_SECONDS = 60.0
_REPOSITORY_NAME = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"
_pushed: set[str] = set()  # image URIs the registry has: pushed or found by this process
_pushed_lock = threading.Lock()


class PushFailed(TierbotError):
    """The image could not reach the registry: the login, the check or the push failed."""


class EcrImage(AwsPlace):
    """`backend_options` of a remote tier (AWS Batch, SageMaker) that a repository's Dockerfile may run
    on: the ECR repository its image goes to, and the network it is built on."""

    ecr_repository: str | None = Field(
        None,
        pattern=_REPOSITORY_NAME,
        description="The ECR repository (its name, in the tier's region) a repository's Dockerfile, built "
        "on the bot's Docker Engine, is pushed to for the job to pull; unset: such repositories cannot run.",
    )
    build_network: Literal["none", "bridge", "host"] = Field(
        "bridge",
        description="The network a repository's Dockerfile is built on (on the bot's Docker Engine).",
    )


def ecr_image(
    settings: Settings, options: EcrImage, job: Job, instance: str, sink: LogSink, watcher: Watcher
) -> str:
    """The repository's Dockerfile built by the docker backend on the bot's engine (DOCKER_HOST), and
    pushed to the tier's ECR repository: its URI there. TierbotError when the tier has no repository, or
    the build or the push fails; `Cancelled` when the run is cancelled meanwhile."""
    if options.ecr_repository is None:
        raise TierbotError(
            f"tier {job.tier.name!r} has no ECR repository to push the repository's Dockerfile "
            f"(environment.dockerfile) to once built, and {options.service} pulls a job's image from a "
            "registry: set backend_options.ecr_repository"
        )
    try:
        from bot.backends.docker_image import EnvironmentCancelled, EnvironmentFailed, environment_image
        from bot.backends.docker_options import LABEL_INSTANCE, LABEL_RUN, DockerOptions, engine
        from bot.backends.remote import Cancelled
    except ImportError:
        raise TierbotError(
            "the repository's Dockerfile is built with Docker: install tierbot[docker]"
        ) from None
    docker_options = DockerOptions(build_network=options.build_network)
    engine_client = engine(docker_options, ENGINE_SECONDS)
    labels = {LABEL_RUN: str(job.run_id), LABEL_INSTANCE: instance}
    try:
        local = environment_image(engine_client, job, docker_options, labels, sink, watcher)
        if watcher.cancelled():
            raise Cancelled
        ecr = client(settings, options, "ecr")
        return pushed_image(engine_client, ecr, options.ecr_repository, local, sink)
    except EnvironmentCancelled:
        raise Cancelled from None
    except EnvironmentFailed as exc:
        raise TierbotError(f"environment build failed: {exc}") from None
    finally:
        engine_client.close()


def repository_lacks(settings: Settings, options: EcrImage) -> str | None:
    """Why the tier's ECR repository cannot take images (it does not exist), or None (or no repository)."""
    from botocore.exceptions import ClientError

    if options.ecr_repository is None:
        return None
    try:
        ecr = client(settings, options, "ecr", quick=True)
        ecr.describe_repositories(repositoryNames=[options.ecr_repository])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
            return (
                f"the ECR repository {options.ecr_repository} (backend_options.ecr_repository) is not in "
                f"{options.where}"
            )
        raise
    return None


@dataclass(frozen=True)
class Registry:
    """Where an account's ECR images go, and the engine's credentials for it (twelve hours, AWS says)."""

    endpoint: str  # https://<account>.dkr.ecr.<region>.amazonaws.com
    username: str
    password: str

    @property
    def host(self) -> str:
        """The registry as an image name starts: <account>.dkr.ecr.<region>.amazonaws.com."""
        return urlsplit(self.endpoint).netloc or self.endpoint

    @property
    def auth(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def registry_of(ecr: BaseClient) -> Registry:
    """The account's registry and a password for it: the token is base64 of `AWS:<password>`."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return Registry(endpoint=data["proxyEndpoint"], username=username, password=password)


def pushed_image(
    engine: docker.DockerClient, ecr: BaseClient, repository: str, local: str, sink: LogSink
) -> str:
    """The URI in the ECR repository of the local environment image `local` (`tierbot-env:<hash>`),
    pushed unless the registry has it already."""
    import docker

    from bot.backends.docker_image import REPOSITORY

    name, _, tag = local.partition(":")
    if name != REPOSITORY or not tag:
        raise PushFailed(f"{local} is not an environment image of tierbot's ({REPOSITORY}:<hash>)")
    registry = registry_of(ecr)
    target = f"{registry.host}/{repository}"
    uri = f"{target}:{tag}"
    with _pushed_lock:
        known = uri in _pushed
    if known:
        sink.line(f"[tierbot: the environment image is in ECR already: {uri}]")
        return uri
    try:
        engine.login(registry.username, registry.password, registry=registry.endpoint, reauth=True)
    except docker.errors.APIError as exc:
        raise PushFailed(f"the Docker Engine could not log in to {registry.host}: {_said(exc)}") from None
    if _in_registry(engine, uri, registry):
        sink.line(f"[tierbot: the environment image is in ECR already: {uri}]")
    else:
        sink.line(f"[tierbot: pushing the environment image to {uri}]")
        engine.api.tag(local, target, tag)
        _push(engine, target, tag, registry, sink)
    with _pushed_lock:
        _pushed.add(uri)
    return uri


def _in_registry(engine: docker.DockerClient, uri: str, registry: Registry) -> bool:
    import docker

    try:
        engine.api.inspect_distribution(uri, auth_config=registry.auth)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise PushFailed(f"could not ask {registry.host} for {uri}: {_said(exc)}") from None
    return True


def _push(engine: docker.DockerClient, target: str, tag: str, registry: Registry, sink: LogSink) -> None:
    """Push, saying each layer once it is done (not every progress tick); PushFailed with the engine's
    last error."""
    import docker

    try:
        pushing = engine.api.push(target, tag, auth_config=registry.auth, stream=True, decode=True)
        for item in pushing:
            _progress(item, target, tag, registry, sink)
    except docker.errors.APIError as exc:
        raise PushFailed(f"pushing to {registry.host} failed: {_said(exc)}") from None


def _progress(item: dict, target: str, tag: str, registry: Registry, sink: LogSink) -> None:
    """One message of the push into the log; PushFailed on an error."""
    if item.get("error"):
        raise PushFailed(f"pushing to {registry.host} failed: {' '.join(str(item['error']).split())[:500]}")
    if item.get("status") in ("Pushed", "Layer already exists"):
        sink.line(f"{item.get('id', '')}: {item['status']}")
    digest = (item.get("aux") or {}).get("Digest")
    if digest:
        sink.line(f"[tierbot: pushed {target}:{tag} ({digest})]")


def _said(exc: docker.errors.APIError) -> str:
    text = " ".join(str(exc.explanation or exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
