"""The bot's own image, from the repository's Dockerfile, on a real engine: it builds on the Debian base
without any image registry, `tierbot serve` in it answers `/healthz` to its own HEALTHCHECK and to the
host, as uid 10001, with git at hand and nothing of the build left in it.

pip inside the build reaches no index here (the host's TLS proxy signs with a CA the base does not
trust, and the host's wheels and local indexes are not in the build), so the wheels come from the host:
`pip download` with the host's own pip configuration into the context's wheelhouse/, which the
Dockerfile installs from with --no-index. apt-get (for git) uses the host's network during the build.
"""

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backends.docker_options import LABEL_INSTANCE

from .conftest import BASE_IMAGE

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]  # a build takes about a minute here

REPO = Path(__file__).resolve().parents[2]
UID = "10001"
HEALTHY_WITHIN = 60.0  # seconds from start; the checks run every second here (see `serving`)


def dockerignore(root: Path) -> list[str]:
    """The patterns of root/.dockerignore, read as the docker SDK and CLI read them."""
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's build context as the engine would get it (its .dockerignore applied), plus a
    wheelhouse of every wheel the build installs, hatchling (tierbot's build backend) included."""
    from docker.utils.build import exclude_paths

    root = tmp_path_factory.mktemp("bot-image")
    for name in exclude_paths(str(REPO), dockerignore(REPO)):  # the paths the patterns keep
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    assert (root / "bot").is_dir() and not (root / "tests").exists() and not (root / ".git").exists()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        + ["--dest", str(root / "wheelhouse"), f"{REPO}[postgres,docker]", "hatchling"],
        check=True,
        timeout=300,
    )
    return root


def remove_steps(engine, log: list[dict]) -> None:
    """Remove the images a build's steps made (` ---> 3f2a…` in its log), newest first, but not the base
    they start from: the build stage's are untagged and carry no label, so only the log names them."""
    from docker.errors import APIError

    base = engine.images.get(BASE_IMAGE).id.removeprefix("sha256:")
    steps = re.findall(r"^ ---> ([0-9a-f]{12})$", "".join(part.get("stream", "") for part in log), re.M)
    for step in reversed(steps):
        if not base.startswith(step):
            with contextlib.suppress(APIError):  # gone with its child already, or another build's too
                engine.images.remove(step)


@pytest.fixture(scope="module")
def image(engine, instance: str, context: Path) -> Iterator:
    """The image, built on the Debian base with the host's network (the engine has no bridge), and
    removed at the end with every step of both stages; the base it was built on stays."""
    from docker.errors import BuildError, ImageNotFound

    tag = f"tierbot-bot-test:{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    try:
        built, log = engine.images.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE": BASE_IMAGE},
            network_mode="host",
            labels={LABEL_INSTANCE: instance},  # the session's reaper removes it should this fixture not
            rm=True,
            forcerm=True,
            timeout=900,
        )
    except BuildError as failed:
        remove_steps(engine, list(failed.build_log))
        raise
    log = list(log)
    print(f"\nbuilt {tag} in {time.monotonic() - started:.0f} s, {built.attrs['Size'] / 1e6:.0f} MB")
    yield built
    engine.images.remove(built.id, force=True)
    remove_steps(engine, log)
    with pytest.raises(ImageNotFound):
        engine.images.get(tag)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(container) -> str:
    container.reload()
    if container.status != "running":
        pytest.fail(f"the bot's container stopped:\n{container.logs().decode(errors='replace')}")
    return container.attrs["State"].get("Health", {}).get("Status", "none")


@pytest.fixture(scope="module")
def serving(engine, instance: str, image) -> Iterator[tuple]:
    """The image's default command on a free port of the host, healthy by its own HEALTHCHECK (run every
    second instead of every 30: the daemon keeps the image's check command when only the interval is
    given); the container and its /data volume removed at the end."""
    port = free_port()
    container = engine.containers.run(
        image.id,
        command=["serve", "--host", "0.0.0.0", "--port", str(port)],
        detach=True,
        network_mode="host",
        environment={
            "TIERBOT_GITHUB_WEBHOOK_SECRET": uuid.uuid4().hex,
            "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz",
        },
        healthcheck={"interval": 1_000_000_000},
        labels={LABEL_INSTANCE: instance},
    )
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN
        while (status := health(container)) != "healthy":
            assert status in ("starting", "none"), container.attrs["State"]["Health"]
            assert time.monotonic() < deadline, f"not healthy in {HEALTHY_WITHIN:.0f} s: {status}"
            time.sleep(0.5)
        yield container, port
    finally:
        container.stop(timeout=10)
        container.remove(v=True)


def test_healthz_answers_the_healthcheck_and_the_host(serving, image) -> None:
    container, port = serving
    assert container.attrs["Config"]["Healthcheck"]["Test"] == image.attrs["Config"]["Healthcheck"]["Test"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        assert response.status == 200
        body = json.load(response)
    assert body["status"] == "ok" and body["version"]
    assert image.attrs["Config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert "TIERBOT_DATA_DIR=/data" in image.attrs["Config"]["Env"]


def test_serve_runs_as_uid_10001(serving) -> None:
    container, _ = serving
    processes = container.top(ps_args="-o pid,uid,args")  # the engine needs the pid column
    assert {row[1] for row in processes["Processes"]} == {UID}, processes
    assert any("tierbot serve" in row[2] for row in processes["Processes"]), processes
    assert container.exec_run(["id", "-u"]).output.decode().strip() == UID


def test_git_is_there_and_the_build_is_not(serving) -> None:
    container, _ = serving
    git = container.exec_run(["git", "--version"])
    assert git.exit_code == 0, git.output
    leftovers = container.exec_run(["sh", "-c", "ls -d /src /opt/tierbot/wheelhouse ~/.cache/pip 2>&1"])
    assert leftovers.exit_code != 0, leftovers.output  # none of them exists
    assert container.exec_run(["stat", "-c", "%u %a", "/data"]).output.decode().split() == [UID, "700"]
