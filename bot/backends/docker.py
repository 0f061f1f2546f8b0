"""The docker backend: the experiment runs in a container on a Docker Engine, the tier's hardware as
the container's limits, and the container as the sandbox for code from outside the repository.

One run is one container, named after the instance and the run (a restarted attempt removes the one
its predecessor left) and labelled with both (`tierbot.run`, `tierbot.instance`) for the reaper
(`bot.backends.docker_reaper`). It starts from the run's environment image (`bot.backends.docker_image`)
and is confined whatever the image says:
- the nobody user (65534:65534), all capabilities dropped, no-new-privileges, a read-only root
  filesystem, a pids limit, and the tier's network (`none` unless the operator says otherwise); no
  Docker socket or host path is mounted;
- cpus → a CPU quota (nano_cpus), memory → a memory limit with swap equal to it (no swap), gpus → a GPU
  device request, and /tmp and /dev/shm as sized tmpfs (counted in the memory limit);
- docker-init as PID 1, which forwards SIGTERM to the command's whole process group (as the local
  backend signals its group) and reaps what the command leaves behind.

Why the workdir is an anonymous volume at /tierbot (the code in /tierbot/work): with a read-only root
the engine refuses to extract an archive anywhere but into a mount, and a tmpfs does not exist until
the container runs and is gone when it stops, while a volume is a directory of the engine's that takes
the code before the start and gives the outputs back after the exit. It goes with the container.

The deadline is ours, not docker-py's (its wait timeout is only an HTTP timeout): the container's exit
is awaited in a thread while the run polls cancellation and the clock, and a timeout or a cancel stops
it as the local backend stops a process group (SIGTERM, a grace period, SIGKILL). Out of memory comes
from the container's state (`OOMKilled`), not from guessing at signals.
"""

import contextlib
import tarfile
import threading
import time
from typing import Literal

import docker
from docker.types import DeviceRequest, Mount

from bot.backends import Job, Outcome, OutcomeState, Watcher
from bot.backends.docker_archive import TOP, ExtractLimits, code_archive, extract_workdir
from bot.backends.docker_image import NOBODY, EnvironmentCancelled, EnvironmentFailed, environment_image
from bot.backends.docker_options import (
    LABEL_INSTANCE,
    LABEL_RUN,
    DockerOptions,
    EngineUnreachable,
    engine,
    instance_of,
    options_of,
    untrusted,
)
from bot.backends.docker_stream import Interruptible, Lines
from bot.backends.local import judge as judge_locally
from bot.backends.process import POLL_SECONDS, READER_JOIN_SECONDS, Ending, LogSink
from bot.errors import OutputsRejected
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import format_size

WORKSPACE = "/tierbot"  # the anonymous volume (see the module docstring)
WORKDIR = f"{WORKSPACE}/{TOP}"
GRACE_SECONDS = 5.0
ENGINE_SECONDS = 60.0  # one engine request; the engine's stop call also waits the grace period
EXIT_WAIT_SECONDS = 30.0  # after a stop: the engine has SIGKILLed by then


class DockerBackend:
    def __init__(self, settings: Settings, grace_seconds: float = GRACE_SECONDS):
        self.settings = settings
        self.instance = instance_of(settings)
        self.outputs_dir = settings.data_dir / "containers"
        self.grace_seconds = grace_seconds

    def run(self, job: Job, watcher: Watcher) -> Outcome:
        with LogSink(job.log_path, job.max_log_bytes, watcher.log, job.redact) as sink:
            options = options_of(job.tier)
            refused = None if job.trusted else untrusted(job.tier, self.settings)
            if refused is not None:
                return Outcome("failed", None, 0.0, f"not run: {refused}", sink.tail())
            try:
                client = engine(options, ENGINE_SECONDS + self.grace_seconds)
            except EngineUnreachable as exc:
                return Outcome("failed", None, 0.0, str(exc), sink.tail())
            try:
                return self._run(client, job, options, watcher, sink)
            except docker.errors.DockerException as exc:  # the engine refused or went away
                reason = f"{options.engine_name} failed: {' '.join(str(exc).split())[:500]}"
                return Outcome("failed", None, 0.0, reason, sink.tail())
            finally:
                client.close()

    def _run(
        self, client: docker.DockerClient, job: Job, options: DockerOptions, watcher: Watcher, sink: LogSink
    ) -> Outcome:
        watcher.phase("building")
        labels = {LABEL_RUN: str(job.run_id), LABEL_INSTANCE: self.instance}
        try:
            image = environment_image(client, job, options, labels, sink, watcher)
        except EnvironmentCancelled:
            return Outcome("cancelled", None, 0.0, "cancelled", sink.tail())
        except EnvironmentFailed as exc:
            return Outcome("failed", None, 0.0, f"environment build failed: {exc}", sink.tail())
        container = self._create(client, job, options, image, labels)
        try:
            code = code_archive(job.workdir)
            with code.file:
                client.api.put_archive(container, WORKSPACE, code.file)
            watcher.phase("running")
            ending = self._supervise(client, container, job, watcher, sink)
            exited = client.api.inspect_container(container)["State"]
            ending.returncode = exited.get("ExitCode")
            state, reason = judge(ending, bool(exited.get("OOMKilled")), job.tier, sink.tail_lines())
            exit_code = None if ending.stopped else ending.returncode
            outcome = Outcome(state, exit_code, ending.seconds, reason, sink.tail())
            if state == "succeeded":
                limits = ExtractLimits(
                    max_files=self.settings.max_output_files + code.files,
                    max_bytes=self.settings.max_output_bytes + code.bytes,
                )
                outcome = self._copy_out(client, container, job, limits, outcome, sink)
            return outcome
        finally:
            _remove(client, container)

    def _create(
        self,
        client: docker.DockerClient,
        job: Job,
        options: DockerOptions,
        image: str,
        labels: dict[str, str],
    ) -> str:
        """The run's container, created (not started): the confinement of the module docstring."""
        name = f"tierbot-{self.instance}-run-{job.run_id}"
        _remove(client, name)  # an earlier attempt's, left by a worker that died
        tier = job.tier
        host_config = client.api.create_host_config(
            read_only=True,
            mounts=[Mount(WORKSPACE, None, type="volume")],
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={options.tmp_size}"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            init=True,
            network_mode=options.network,
            pids_limit=options.pids_limit,
            nano_cpus=int(tier.cpus * 1e9),
            mem_limit=tier.memory_bytes,
            memswap_limit=tier.memory_bytes,  # equal: no swap on top of the limit
            shm_size=options.shm_size,
            device_requests=[DeviceRequest(count=tier.gpus, capabilities=[["gpu"]])] if tier.gpus else None,
        )
        environment = {
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "PYTHONUNBUFFERED": "1",  # through the engine's log pipe Python buffers; progress wants lines
            "TINI_KILL_PROCESS_GROUP": "1",  # docker-init signals the command's group, not just the shell
        } | job.env
        created = client.api.create_container(
            image,
            entrypoint=["/bin/sh", "-c"],  # whatever the image's, as a local run's shell
            command=[job.command],
            name=name,
            user=NOBODY,
            working_dir=WORKDIR,
            environment=environment,
            labels=labels,
            host_config=host_config,
        )
        return created["Id"]

    def _supervise(
        self, client: docker.DockerClient, container: str, job: Job, watcher: Watcher, sink: LogSink
    ) -> Ending:
        """Start the container, stream its log, and stop it on timeout or cancel."""
        lines = Lines(sink)
        client.api.start(container)
        started = time.monotonic()
        logs = Interruptible(
            client.api, lambda: client.api.logs(container, stream=True, follow=True), lines.feed
        ).run()
        exited = _Exit(client, container)
        stopped = _wait(exited, watcher, started + job.tier.runtime_seconds)
        if stopped is not None:
            client.api.stop(container, timeout=max(1, round(self.grace_seconds)))
            exited.done.wait(EXIT_WAIT_SECONDS)
        seconds = time.monotonic() - started
        if not logs.join(READER_JOIN_SECONDS):  # the stream ends with the container; don't hang on it
            logs.abort()
        lines.close()
        return Ending(None, stopped, seconds)

    def _copy_out(
        self,
        client: docker.DockerClient,
        container: str,
        job: Job,
        limits: ExtractLimits,
        outcome: Outcome,
        sink: LogSink,
    ) -> Outcome:
        """The succeeded run's workdir, out of the container, as the outcome's workspace."""
        chunks, _ = client.api.get_archive(container, WORKDIR)
        try:
            outcome.workspace = extract_workdir(chunks, self.outputs_dir, job.run_id, limits, sink)
        except (OutputsRejected, tarfile.TarError, OSError) as exc:  # the experiment's files, its fault
            outcome.state, outcome.reason = "failed", f"outputs not copied out of the container: {exc}"
        return outcome


class _Exit:
    """The container's exit, awaited in a thread: the engine answers the wait when it exits (the exit
    code is read from the container's state afterwards, with OOMKilled)."""

    def __init__(self, client: docker.DockerClient, container: str):
        self.done = threading.Event()
        self._client, self._container = client, container
        threading.Thread(target=self._wait, daemon=True, name=f"wait-{container[:12]}").start()

    def _wait(self) -> None:
        try:
            self._client.api.wait(self._container, timeout=None)
        except Exception:  # the engine went away: the run's next request says so
            pass
        finally:
            self.done.set()


def _wait(exited: _Exit, watcher: Watcher, deadline: float) -> Literal["timeout", "cancel"] | None:
    while not exited.done.wait(max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))):
        if watcher.cancelled():
            return "cancel"
        if time.monotonic() >= deadline:
            return "timeout"
    return None


def judge(ending: Ending, oom_killed: bool, tier: Tier, tail: list[str]) -> tuple[OutcomeState, str]:
    """In the local backend's words; out of memory is known from the container, not guessed."""
    if oom_killed and ending.stopped is None:
        limit = f" (limit {format_size(tier.memory_bytes)})" if tier.memory_bytes is not None else ""
        return "failed", f"out of memory{limit}"
    # Without a memory limit the local judge does not guess at one from signals and messages.
    return judge_locally(ending, tier.model_copy(update={"memory": None}), tail)


def _remove(client: docker.DockerClient, container: str) -> None:
    """The container and its volume, whatever state it is in."""
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(container, v=True, force=True)
