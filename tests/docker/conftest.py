"""A real Docker Engine for the docker backend's tests, and what they share.

The engine is the machine's (DOCKER_HOST or /var/run/docker.sock) with the base image that
`.ci/docker-engine.sh` imports (`tierbot-base:bookworm`: Debian with python3, made without any
registry). Without them the engine's tests skip with the reason, except where TIERBOT_REQUIRE_DOCKER is
set (CI), where they fail. Every container and image the tests make carries one instance label for the
whole session, and the reaper removes them all at the end.
"""

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backends import Job
from bot.settings import Settings
from bot.tiers import Tier

BASE_IMAGE = os.environ.get("TIERBOT_TEST_DOCKER_IMAGE", "tierbot-base:bookworm")
_run_ids = itertools.count(9000)


def _unavailable(reason: str) -> None:
    if os.environ.get("TIERBOT_REQUIRE_DOCKER"):
        pytest.fail(f"{reason}; CI requires a Docker Engine (.ci/docker-engine.sh starts one)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    """The docker SDK's client of the machine's engine, which has the base image."""
    try:
        import docker
    except ImportError:
        _unavailable("the docker Python package is not installed (pip install -e '.[test]')")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"no Docker Engine answers: {exc}")
    try:
        client.api.inspect_image(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(f"the Docker Engine has no {BASE_IMAGE} (.ci/docker-engine.sh imports it)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def instance(engine) -> Iterator[str]:
    """This session's `tierbot.instance`; what is left of it is reaped at the end."""
    from bot.backends.docker_reaper import reap

    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    reap(engine, name, lambda _run: False, image_budget=0, young_seconds=0)


@pytest.fixture
def docker_settings(settings: Settings, instance: str) -> Settings:
    return settings.model_copy(update={"docker_instance": instance})


def docker_tier(
    *, runtime: str = "60s", memory: str | None = None, gpus: int = 0, name: str = "box", **options
) -> Tier:
    return Tier(
        name=name,
        backend="docker",
        max_runtime=runtime,
        memory=memory,
        gpus=gpus,
        backend_options={"image": BASE_IMAGE} | options,
    )


def docker_job(
    workdir: Path,
    command: str,
    tier: Tier,
    *,
    requirements: Path | None = None,
    dockerfile: Path | None = None,
    trusted: bool = True,
) -> Job:
    """A job with a run id of its own: its container's name and labels are then this test's alone."""
    run_id = next(_run_ids)
    return Job(
        run_id=run_id,
        workdir=workdir,
        command=command,
        tier=tier,
        requirements=requirements,
        env={"TIERBOT_RUN_ID": str(run_id)},
        log_path=workdir.parent / "logs" / f"run-{run_id}.log",
        max_log_bytes=1024**2,
        trusted=trusted,
        dockerfile=dockerfile,
    )


def containers_of(engine, run_id: int) -> list[dict]:
    """Every container (running or not) labelled with the run."""
    return engine.api.containers(all=True, filters={"label": f"tierbot.run={run_id}"})
