"""The docker target: each version is a container from the run's own image, running the same generic
model server as the local target (`bot.deploy.model_server`, the commit's `predict`, the run's artifact),
behind the environment's proxy (`bot.deploy.stable_url`: the stable URL, the switch, the releases).

The image. A run records its tier, and a docker run's image is named by a hash of its recipe
(`bot.backends.docker_image`): asking the run's tier for the environment image of the commit's checkout
gives back the very image the run ran in, and builds nothing. A run on another tier (local) is served
from the first docker tier's base image with the run's requirements, built as the Docker backend builds
environments: the image a docker run of that commit would have had. A kept release whose image the
reaper removed since is built again from its checkout when it is rolled back to.

Why the host's network: this installation's engine may run with `--bridge=none --iptables=false`, as
hardened hosts do, and then no port can be published; a container in the host's network namespace
listens on the loopback port tierbot chose for it, where the proxy forwards. So the engine must be this
machine's (the release directory is bind-mounted too). Otherwise the container is confined as the
Docker backend confines a run: the nobody user, no capabilities, no-new-privileges, a read-only root, a
pids limit, the tier's CPUs and memory; it gets no variable of the bot's (no token, no deploy
credential), and the release (code, artifact, version.json) is mounted read-only.

Restart policy: none while it starts, so that a `predict` that cannot be imported ends the start with
its exit code and its log; once it answers, `unless-stopped`: a crashed model server (killed, out of
memory) comes back on its port, after an engine restart too, while tierbot's own stop stays stopped.

Labels name the deployment whose release it serves (`tierbot.deployment`), the environment and this
installation (`tierbot.deploy.instance`), for `remove_strays`. The image's `tierbot.instance` and
`tierbot.run` are blanked on the container: the runs' reaper would take it for a stray run's.
"""

import contextlib
import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
from docker.types import Mount

from bot.backends import Job
from bot.backends.docker_image import NOBODY, EnvironmentFailed, environment_image
from bot.backends.docker_options import LABEL_INSTANCE, LABEL_RUN, engine, instance_of, options_of
from bot.backends.process import LogSink
from bot.checkout import CodeCache
from bot.deploy import DeployFailed, Log, Release, Version, model_server
from bot.deploy.local_options import StableAddress, stable_address
from bot.deploy.processes import last_lines, read_json
from bot.deploy.stable_url import HOST, BuildWatcher, StableUrl, artifact_of
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.spec import Spec
from bot.store.models import Deployment
from bot.tiers import Tier, TierSet

LABEL_DEPLOYMENT = "tierbot.deployment"
LABEL_DEPLOY_INSTANCE = "tierbot.deploy.instance"
LABEL_ENVIRONMENT = "tierbot.deploy.environment"
RELEASE = "/srv/tierbot/release"  # the release directory, read-only
SERVER = "/srv/tierbot/model_server.py"
START_SECONDS = 120.0  # a model server's import of predict (scikit-learn takes seconds) and listen
STOP_SECONDS = int(model_server.DRAIN_SECONDS) + 5
ENGINE_SECONDS = 60.0  # one engine request; a stop's own wait is added by the SDK
BUILD_LOG_BYTES = 1024 * 1024
# A tier without a memory limit: a model server still gets one, so that a leak cannot take the machine.
SERVE_MEMORY = 2 * 1024**3
LOG_LINES = 3  # of a container that stopped, in the reason
# All the container's variables: none of the bot's. The code is read-only: no bytecode is written.
ENVIRONMENT = {"HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def serving_tier(tiers: TierSet, run_tier: str) -> Tier:
    """The tier whose engine and image serve: the run's when it ran in a container, else the first
    docker tier of the tiers file."""
    docker_tiers = [t for t in tiers.tiers if t.backend == "docker"]
    tier = next((t for t in docker_tiers if t.name == run_tier), docker_tiers[0] if docker_tiers else None)
    if tier is None:
        raise DeployFailed(
            "deploy.target: docker serves from a docker tier's engine and base image, and the tiers file "
            "has no docker tier"
        )
    return tier


def docker_target(pipeline: Pipeline, deployment: Deployment) -> "DockerTarget":
    """The target of a deployment whose run has ended: its tier and environment say what image serves."""
    run = pipeline.run(deployment.run_id)
    dockerfile = Spec.model_validate(run.spec).environment.dockerfile
    tier = serving_tier(pipeline.tiers, run.tier)
    address = stable_address(pipeline.tiers, deployment.environment, "docker")
    return DockerTarget(
        pipeline.settings,
        pipeline.code,
        deployment.repository,
        deployment.environment,
        tier,
        dockerfile,
        address,
    )


class DockerTarget(StableUrl):
    target = "docker"

    def __init__(
        self,
        settings: Settings,
        code: CodeCache,
        repository: str,
        environment: str,
        tier: Tier,
        dockerfile: str | None,
        address: StableAddress | None = None,
    ):
        super().__init__(settings, code, repository, environment, address)
        self.tier, self.dockerfile = tier, dockerfile
        self.instance = instance_of(settings)
        try:
            self.options = options_of(tier)
        except TierbotError as exc:
            raise DeployFailed(str(exc)) from None

    def _container(self, release: str) -> str:
        return f"tierbot-deploy-{self.instance}-{release}"

    @contextlib.contextmanager
    def _engine(self) -> Iterator[docker.DockerClient]:
        """A client of the tier's engine; its refusals are the deployment's failure, with the reason."""
        try:
            client = engine(self.options, ENGINE_SECONDS)
        except TierbotError as exc:
            raise DeployFailed(str(exc)) from None
        try:
            yield client
        except docker.errors.DockerException as exc:
            raise DeployFailed(
                f"{self.options.engine_name} failed: {' '.join(str(exc).split())[:500]}"
            ) from None
        finally:
            client.close()

    # -- versions -------------------------------------------------------------------------------------

    def start(self, release: Release, log: Log) -> Version:
        release_dir = self.stage(release, log)
        _readable_by_all(release_dir)
        handle = {
            "release": str(release_dir),
            "predict": release.predict,
            "run": release.run_id,
            "requirements": release.requirements,
            "dockerfile": self.dockerfile,
        }
        return self.restart(handle, log)

    def restart(self, handle: dict, log: Log) -> Version:
        release_dir = Path(handle["release"])
        if not (release_dir / "version.json").exists():
            raise DeployFailed(f"the release in {release_dir} is no longer kept")
        name = self._container(release_dir.name)
        port = _free_port()
        with self._engine() as client:
            image = self._image(client, handle, release_dir, log)
            _remove(client, name)  # what an attempt that died left
            self._create(client, name, image, handle, release_dir, port)
            log(f"starting the model server in container {name} ({image}) on port {port}")
            client.api.start(name)
            self._wait_serving(client, name, port, read_json(release_dir / "version.json"))
            client.api.update_container(name, restart_policy={"Name": "unless-stopped"})
        log(f"the model server answers on port {port}; the container restarts if it crashes")
        handle = handle | {"container": name, "image": image, "port": port}
        return Version(url=f"http://{HOST}:{port}", handle=handle)

    def _image(self, client: docker.DockerClient, handle: dict, release_dir: Path, log: Log) -> str:
        """The run's environment image, as the Docker backend made it (or makes it again)."""
        code = release_dir / "code"
        requirements, dockerfile = handle["requirements"], handle["dockerfile"]
        job = Job(
            run_id=handle["run"],
            workdir=code,
            command="",
            tier=self.tier,
            requirements=code / requirements if requirements else None,
            env={},
            log_path=release_dir / "build.log",
            max_log_bytes=BUILD_LOG_BYTES,
            dockerfile=code / dockerfile if dockerfile else None,
        )
        labels = {LABEL_RUN: str(handle["run"]), LABEL_INSTANCE: self.instance}
        with LogSink(job.log_path, BUILD_LOG_BYTES, lambda _line: None) as sink:
            try:
                image = environment_image(client, job, self.options, labels, sink, BuildWatcher())
            except EnvironmentFailed as exc:
                raise DeployFailed(f"the experiment's image could not be made: {exc}") from None
            log(last_lines(sink.tail()) or f"the experiment's image {image}")
        return image

    def _create(
        self, client: docker.DockerClient, name: str, image: str, handle: dict, release_dir: Path, port: int
    ) -> None:
        """The version's container, created (not started), confined as the module docstring says."""
        memory = self.tier.memory_bytes or SERVE_MEMORY
        host_config = client.api.create_host_config(
            network_mode="host",
            mounts=[
                Mount(RELEASE, str(release_dir), type="bind", read_only=True),
                Mount(SERVER, str(Path(model_server.__file__)), type="bind", read_only=True),
            ],
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.options.tmp_size}"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            init=True,  # docker-init forwards the stop's SIGTERM: the model server drains
            pids_limit=self.options.pids_limit,
            nano_cpus=int(self.tier.cpus * 1e9),
            mem_limit=memory,
            memswap_limit=memory,
            shm_size=self.options.shm_size,
        )
        artifact = artifact_of(release_dir).relative_to(release_dir)
        arguments = [
            *(SERVER, "--checkout", f"{RELEASE}/code", "--predict", handle["predict"]),
            *("--artifact", f"{RELEASE}/{artifact.as_posix()}", "--version-file", f"{RELEASE}/version.json"),
            *("--ready-file", "/tmp/ready.json", "--host", HOST, "--port", str(port)),
        ]
        client.api.create_container(
            image,
            # The experiment's `python` (the image's venv first on its PATH), as its command found it.
            entrypoint=["/bin/sh", "-c", 'exec "$(command -v python || command -v python3)" "$@"', "serve"],
            command=arguments,
            name=name,
            user=NOBODY,
            working_dir=f"{RELEASE}/code",
            environment={
                "HOME": "/tmp",
                "TMPDIR": "/tmp",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            labels={
                LABEL_DEPLOYMENT: release_dir.name,
                LABEL_DEPLOY_INSTANCE: self.instance,
                LABEL_ENVIRONMENT: f"{self.repository}#{self.environment}",
                LABEL_INSTANCE: "",
                LABEL_RUN: "",
            },
            host_config=host_config,
        )

    def _wait_serving(self, client: docker.DockerClient, name: str, port: int, version: dict | None) -> None:
        """Until the port answers `/version` with this release; DeployFailed (the container removed)
        when it exits first or the time runs out."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            state = client.api.inspect_container(name)["State"]
            if not state.get("Running"):
                said = _said(client, name, 1)
                _remove(client, name)
                raise DeployFailed(f"the model server exited with code {state.get('ExitCode')}: {said}")
            if _answers(port, version):
                return
            time.sleep(0.05)
        said = _said(client, name, 1)
        _remove(client, name)
        raise DeployFailed(f"the model server did not listen within {START_SECONDS:g} s: {said}")

    def problem(self, handle: dict) -> str | None:
        return self._trouble(handle)[0]

    def down(self, handle: dict) -> str | None:
        """Why the version is down for good, or None: a crashed container its engine is restarting is
        not (`unless-stopped`); one that was stopped or killed by hand, or removed, is."""
        problem, restarting = self._trouble(handle)
        return None if restarting else problem

    def _trouble(self, handle: dict) -> tuple[str | None, bool]:
        """Why the version cannot answer (None while it runs), and whether its engine is restarting it."""
        name = handle.get("container")
        if not name:
            return "it was never started", False
        try:
            with self._engine() as client:
                try:
                    state = client.api.inspect_container(name)["State"]
                except docker.errors.NotFound:
                    return f"its container {name} is gone", False
                if state.get("Running") and not state.get("Restarting"):
                    return None, False
                said = _said(client, name, LOG_LINES)
        except DeployFailed as exc:
            return str(exc), False
        code, oom = state.get("ExitCode"), " (out of memory)" if state.get("OOMKilled") else ""
        if state.get("Restarting"):
            times = state.get("RestartCount", 0)
            return (
                f"its container {name} keeps crashing{oom} (exit code {code}, {times} restarts): {said}",
                True,
            )
        return f"its container {name} exited with code {code}{oom}: {said}", False

    def stop(self, handle: dict) -> None:
        name = handle.get("container")
        if not name:
            return
        with self._engine() as client:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.stop(name, timeout=STOP_SECONDS)  # SIGTERM: it drains; SIGKILL after
            _remove(client, name)

    def prune(self, kept: set[str]) -> list[str]:
        """The releases not `kept` deleted, and any container of theirs (their stop removed it, unless a
        hand or an engine restart brought it back). Their images are the runs' too: the reaper's."""
        pruned = super().prune(kept)
        if pruned:
            with self._engine() as client:
                for name in pruned:
                    _remove(client, self._container(name))
        return pruned


def remove_strays(client: docker.DockerClient, instance: str, serving: Callable[[int], bool]) -> list[str]:
    """This installation's model server containers whose deployment is not `serving` (is not live or
    being deployed), removed; their names. With `lambda _: False`: every one (tests, an installation
    that stops serving)."""
    removed = []
    for container in client.api.containers(
        all=True, filters={"label": f"{LABEL_DEPLOY_INSTANCE}={instance}"}
    ):
        deployment = (container.get("Labels") or {}).get(LABEL_DEPLOYMENT, "")
        if deployment.isdigit() and serving(int(deployment)):
            continue
        _remove(client, container["Id"])
        removed.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))
    return removed


def _readable_by_all(release_dir: Path) -> None:
    """The staged release readable by the container's user (nobody), whatever the bot's umask (077 when
    hardened). The data dir above it stays its owner's alone (0700), so no other user of this machine
    gets to read it: only the container, whose bind mount does not pass through it."""
    for root, dirs, files in os.walk(release_dir):
        for name in dirs:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o555)
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():  # a link's target is not the release's to open up
                path.chmod(path.stat().st_mode | 0o444)
    release_dir.chmod(release_dir.stat().st_mode | 0o555)


def _free_port() -> int:
    """A loopback port free now, for the container to listen on (it cannot be published: see the module
    docstring). Another program taking it before the container does fails the start, with the reason."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _answers(port: int, version: dict | None) -> bool:
    """Whether the model server on `port` is this release's (not another program that took the port)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/version", timeout=2) as response:
            return response.status == 200 and json.loads(response.read()) == version
    except (OSError, ValueError):
        return False


def _said(client: docker.DockerClient, name: str, lines: int) -> str:
    """The container's last log lines, for a reason."""
    text = client.api.logs(name, tail=lines * 4).decode(errors="replace")
    return last_lines(text, lines) or "nothing on its log"


def _remove(client: docker.DockerClient, container: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(container, force=True)
