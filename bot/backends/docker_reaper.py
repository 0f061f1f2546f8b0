"""Nothing of tierbot's outlives its run on a Docker Engine: the reaper.

A worker removes its run's container when the run ends, however it ends. What it cannot remove is what
a crashed bot left: containers still running an experiment nobody waits for, holding the engine's CPUs
and memory. And every environment built stays as an image until someone removes it. So, at start and
then periodically, the reaper looks at each engine of the docker tiers and removes:

- containers labelled with this installation (`tierbot.instance`) whose run (`tierbot.run`) is not
  running any more. Whether it is, is the caller's to say (`is_running`, from the database), so that
  this module stays an edge that never touches it;
- environment images of this installation past the size budget (`docker_image_budget`), oldest first,
  counting each image's own layers (not the base it shares), and the untagged ones a failed build left,
  but never one a container uses, nor one made in the last minutes (a run may be about to start from
  it). Only images labelled with the instance are seen: all of a base-image recipe's layers are; of a
  repository's Dockerfile only the finished image is (its steps are the repository's).
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import docker

from bot.backends.docker_options import (
    LABEL_INSTANCE,
    LABEL_RUN,
    DockerOptions,
    engine,
    instance_of,
    options_of,
)
from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier

IsRunning = Callable[[int], bool]
ENGINE_SECONDS = 60.0
YOUNG_SECONDS = 600.0  # an image this recent may be the one a run is about to start from


@dataclass
class Reaped:
    containers: list[str] = field(default_factory=list)  # names of the containers removed
    images: list[str] = field(default_factory=list)  # tags (or ids) of the images removed
    freed: int = 0  # bytes of image layers freed


def reap(
    client: docker.DockerClient,
    instance: str,
    is_running: IsRunning,
    image_budget: int,
    young_seconds: float = YOUNG_SECONDS,
) -> Reaped:
    """Remove this instance's containers of runs that are not running and its images past the budget."""
    reaped = Reaped()
    _reap_containers(client, instance, is_running, reaped)
    _reap_images(client, instance, image_budget, young_seconds, reaped)
    return reaped


def _reap_containers(
    client: docker.DockerClient, instance: str, is_running: IsRunning, reaped: Reaped
) -> None:
    mine = client.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    for container in mine:
        run = (container.get("Labels") or {}).get(LABEL_RUN, "")
        if run.isdigit() and is_running(int(run)):
            continue
        try:
            client.api.remove_container(container["Id"], v=True, force=True)
        except docker.errors.NotFound:
            continue  # its worker removed it meanwhile
        reaped.containers.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))


def _reap_images(
    client: docker.DockerClient, instance: str, budget: int, young_seconds: float, reaped: Reaped
) -> None:
    every = client.df().get("Images") or []
    images = [i for i in every if (i.get("Labels") or {}).get(LABEL_INSTANCE) == instance]
    total = sum(_own_size(image) for image in images)
    young = time.time() - young_seconds
    for image in sorted(images, key=lambda i: i.get("Created", 0)):
        dangling = not _tags(image)  # what a failed build left: cache of nothing that will run
        if total <= budget and not dangling:
            continue
        if image.get("Containers", 0) > 0 or image.get("Created", 0) > young:
            continue
        if _remove_image(client, image):
            total -= _own_size(image)
            reaped.freed += _own_size(image)
            reaped.images.append((_tags(image) or [image["Id"]])[0])


def _tags(image: dict) -> list[str]:
    return [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]


def _remove_image(client: docker.DockerClient, image: dict) -> bool:
    """Every tag of it (the engine refuses to remove by id an image with several), or the id of an
    untagged one. False when the engine keeps it: in use after all (a container just created), or gone."""
    try:
        for name in _tags(image) or [image["Id"]]:
            client.api.remove_image(name)
    except docker.errors.APIError:
        return False
    return True


def _own_size(image: dict) -> int:
    """The bytes removing the image frees: its size less the layers it shares (the base image's)."""
    shared = image.get("SharedSize", -1)
    return image.get("Size", 0) - (shared if shared > 0 else 0)


def reap_engines(tiers: Iterable[Tier], settings: Settings, is_running: IsRunning) -> dict[str, Reaped | str]:
    """The reaper on every engine the docker tiers name, once each: what it removed, by engine, or why
    the engine could not be reaped. What the worker calls at start and periodically."""
    instance = instance_of(settings)
    results: dict[str, Reaped | str] = {}
    for options in _engines(tiers):
        try:
            client = engine(options, ENGINE_SECONDS)
        except TierbotError as exc:
            results[options.engine_name] = str(exc)
            continue
        try:
            results[options.engine_name] = reap(client, instance, is_running, settings.docker_image_budget)
        except docker.errors.DockerException as exc:
            results[options.engine_name] = f"{options.engine_name} failed: {exc}"
        finally:
            client.close()
    return results


def _engines(tiers: Iterable[Tier]) -> list[DockerOptions]:
    """One docker tier's options per engine (the same host with the same TLS)."""
    seen: dict[tuple, DockerOptions] = {}
    for tier in tiers:
        if tier.backend != "docker":
            continue
        try:
            options = options_of(tier)
        except TierbotError:
            continue  # unavailable, with the reason, where tiers are shown
        key = (options.docker_host, options.tls_ca_cert, options.tls_client_cert, options.tls_client_key)
        seen.setdefault(key, options)
    return list(seen.values())
