"""SageMaker training jobs that really run, in moto's server (loaded by tests/fakes/moto_aws.py's `aws`).

moto's CreateTrainingJob records a job that is Completed at once and runs nothing, and it has no
StopTrainingJob. `install` extends moto in the server's process (boto3 is never stubbed): each new job is
played by a `_Player` thread that runs the job's image on the machine's Docker Engine as SageMaker runs
a training container, with the job's ContainerEntrypoint and ContainerArguments, on the host's network
(as moto_aws.py runs Batch jobs: 127.0.0.1 is this server), and SageMaker's /opt/ml layout copied in
before it starts: input/config/hyperparameters.json, resourceconfig.json, model/, output/ and, with a
CheckpointConfig, checkpoints/. As it goes the job shows what SageMaker shows: TrainingJobStatus
InProgress → Completed, Failed or Stopped, SecondaryStatus (Starting, Downloading, Training, Uploading,
Stopping, …) with its transitions, FailureReason from /opt/ml/output/failure (else "AlgorithmError: ,
exit code: N"), TrainingTimeInSeconds and BillableTimeInSeconds (a spot job's is SPOT_BILLED of its
training time), and the container's output in CloudWatch Logs (`/aws/sagemaker/TrainingJobs`,
`<job>/algo-1-<epoch>`) line by line as it prints. StopTrainingJob stops the container; MaxRuntime is
enforced (Stopped, MaxRuntimeExceeded). A training image in a registry (`<host>/<repository>:<tag>`, as
an ECR URI; in the tests the local registry of tests/fakes/registry.py that moto_aws.py's `ecr` fixture
puts behind moto's ECR) is pulled from it with the account's ECR token as moto's ECR hands it out, as
SageMaker pulls from ECR: a job runs what was pushed, not a local tag that happens to have the same
name, and an image that never reached the registry fails the job. A local tag (the session's job image,
in no registry) runs as it is. A test interrupts a spot job with `interrupt(name)`: its
instances are taken back and no capacity returns (Stopped, Interrupted). Only the first host of a job
is played, whatever its InstanceCount.
"""

import contextlib
import io
import json
import math
import tarfile
import threading
import time
from collections.abc import Callable

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SPOT_BILLED = 0.3  # what share of a spot job's training time is billed, here
LABEL = "tierbot-test-sagemaker"  # on each job's container: the job's name
_players: dict[str, "_Player"] = {}
_lock = threading.Lock()


def install() -> Callable[[], None]:
    """moto's SageMaker made to play training jobs; returns what undoes it."""
    from moto.core.responses import EmptyResult
    from moto.sagemaker import models, responses

    backend, response = models.SageMakerModelBackend, responses.SageMakerResponse
    create = backend.create_training_job

    def create_and_play(self, **kwargs):
        job = create(self, **kwargs)
        player = _Player(job)
        with _lock:
            _players[job.training_job_name] = player
        player.start()
        return job

    def stop_training_job(self) -> object:
        name = self._get_param("TrainingJobName")
        self.sagemaker_backend.describe_training_job(name)  # moto's ValidationError for an unknown job
        with _lock:
            player = _players.get(name)
        if player is None or not player.stop("Stopped"):
            raise models.ValidationError(message=f"The training job {name} is not in progress.")
        return EmptyResult()

    backend.create_training_job = create_and_play
    response.stop_training_job = stop_training_job

    def undo() -> None:
        end_all()
        backend.create_training_job = create
        del response.stop_training_job

    return undo


def interrupt(name: str) -> None:
    """The spot instances of the job taken back, for good: it ends Stopped, Interrupted."""
    with _lock:
        player = _players[name]
    assert player.job.enable_managed_spot_training, f"{name} is not a spot job"
    player.stop("Interrupted")


def end_all() -> None:
    """Every job still playing stopped, and its container removed."""
    with _lock:
        players = list(_players.values())
        _players.clear()
    for player in players:
        player.stop("Stopped")
        player.join(60)


class _Player(threading.Thread):
    """Plays one training job: its container, its statuses, its log."""

    def __init__(self, job):
        super().__init__(daemon=True, name=f"sagemaker-{job.training_job_name}")
        self.job = job
        _, _, _, self.region, self.account, _ = job.arn.split(":", 5)
        self.stopping: str | None = None  # why it is being stopped: Stopped, Interrupted, MaxRuntimeExceeded
        self.container = None
        job.training_job_status, job.secondary_status = "InProgress", "Starting"
        job.training_start_time = job.training_end_time = None
        job.failure_reason = job.billable_time_in_seconds = job.training_time_in_seconds = None
        job.secondary_status_transitions = []
        self._transition("Starting", "Preparing the instances for training")

    def stop(self, why: str) -> bool:
        """Told to stop (why: Stopped, Interrupted); False when it has ended already."""
        if self.job.training_job_status != "InProgress":
            return False
        self.stopping = why
        self.job.training_job_status = "Stopping" if why == "Stopped" else "InProgress"
        self._transition("Stopping" if why == "Stopped" else "Interrupted", f"{why} by request")
        return True

    def run(self) -> None:
        import docker

        engine = docker.from_env()
        try:
            self._play(engine)
        except Exception as exc:  # the image is missing, the engine failed: SageMaker's own failure
            self._end("Failed", "Failed", f"ClientError: the training container could not start: {exc}")
        finally:
            if self.container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    self.container.remove(force=True)
            engine.close()

    def _play(self, engine) -> None:
        job = self.job
        spec = job.algorithm_specification
        self._transition("Downloading", "Downloading the training image")
        _pull(engine, spec["TrainingImage"], self.account)
        self.container = engine.containers.create(
            spec["TrainingImage"],
            entrypoint=spec.get("ContainerEntrypoint"),
            command=spec.get("ContainerArguments") or ["train"],
            environment={"TRAINING_JOB_NAME": job.training_job_name, "TRAINING_JOB_ARN": job.arn},
            network_mode="host",
            labels={LABEL: job.training_job_name},
            name=f"sagemaker-{job.training_job_name}",
        )
        self.container.put_archive("/opt", _opt_ml(job))
        if self.stopping is not None:  # stopped before it started
            self._end("Stopped", self._stopped_status(), None)
            return
        self.container.start()
        began = time.time()
        job.training_start_time = _now()
        self._transition("Training", "Training image download completed. Training in progress.")
        logs = threading.Thread(target=self._stream, args=(began,), daemon=True)
        logs.start()
        code = self._wait(began)
        logs.join(30)
        self._finish(code, time.time() - began)

    def _wait(self, began: float) -> int:
        """The container's exit code, once it has exited; stopped on request or past MaxRuntime."""
        runtime = (self.job.stopping_condition or {}).get("MaxRuntimeInSeconds")
        asked = False
        while True:
            self.container.reload()
            if self.container.status == "exited":
                return self.container.attrs["State"]["ExitCode"]
            if self.stopping is None and runtime and time.time() > began + runtime:
                self.stopping = "MaxRuntimeExceeded"
                self._transition("Stopping", "Stopping: MaxRuntimeInSeconds exceeded")
            if self.stopping is not None and not asked:
                asked = True
                self.container.stop(timeout=2)  # SIGTERM, then SIGKILL: as SageMaker stops a job
            time.sleep(0.1)

    def _finish(self, code: int, seconds: float) -> None:
        job = self.job
        job.training_time_in_seconds = max(1, round(seconds))
        share = SPOT_BILLED if job.enable_managed_spot_training else 1.0
        job.billable_time_in_seconds = max(1, math.ceil(job.training_time_in_seconds * share))
        if self.stopping is not None:
            self._end("Stopped", self._stopped_status(), None)
        elif code == 0:
            self._transition("Uploading", "Uploading generated training model")
            self._end("Completed", "Completed", None)
        else:
            why = _read(self.container, "/opt/ml/output/failure") or f"AlgorithmError: , exit code: {code}"
            self._end("Failed", "Failed", why.strip())

    def _stopped_status(self) -> str:
        return "Stopped" if self.stopping in (None, "Stopped") else self.stopping

    def _end(self, status: str, secondary: str, reason: str | None) -> None:
        job = self.job
        job.training_end_time = _now()
        job.failure_reason = reason
        self._transition(secondary, reason or f"Training job {status.lower()}")
        job.training_job_status = status

    def _transition(self, status: str, message: str) -> None:
        job, now = self.job, _now()
        if job.secondary_status_transitions:
            job.secondary_status_transitions[-1]["EndTime"] = now
        job.secondary_status_transitions.append(
            {"Status": status, "StartTime": now, "StatusMessage": message}
        )
        job.secondary_status, job.last_modified_time = status, now

    def _stream(self, began: float) -> None:
        """The container's output into its CloudWatch log stream, line by line as it prints."""
        from moto.logs.models import logs_backends

        logs = logs_backends[self.account][self.region]
        stream = f"{self.job.training_job_name}/algo-1-{int(began)}"
        logs.ensure_log_group(LOG_GROUP)
        logs.ensure_log_stream(LOG_GROUP, stream)
        pending = b""
        for chunk in self.container.logs(stream=True, follow=True):
            *lines, pending = (pending + chunk).split(b"\n")
            _put(logs, stream, lines)
        _put(logs, stream, [pending])


def _pull(engine, image: str, account: str) -> None:
    """A registry's image (its name starts with a host: a dot, a port or localhost) pulled with the
    account's ECR token (moto's: AWS:<account>-auth-token); a local tag left as it is."""
    host, _, rest = image.partition("/")
    if rest and ("." in host or ":" in host or host == "localhost"):
        engine.images.pull(image, auth_config={"username": "AWS", "password": f"{account}-auth-token"})


def _put(logs, stream: str, lines: list[bytes]) -> None:
    now = int(time.time() * 1000)
    texts = [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
    events = [{"timestamp": now, "message": text} for text in texts if text]
    if events:
        logs.put_log_events(LOG_GROUP, stream, events)


def _opt_ml(job) -> bytes:
    """SageMaker's /opt/ml for the job, as a tar to copy into /opt."""
    files = {
        "ml/input/config/hyperparameters.json": json.dumps(job.hyper_parameters or {}),
        "ml/input/config/resourceconfig.json": json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
        ),
        "ml/input/config/inputdataconfig.json": json.dumps({}),
    }
    dirs = ["ml", "ml/input", "ml/input/config", "ml/input/data", "ml/model", "ml/output", "ml/output/data"]
    if job.checkpoint_config:
        dirs.append("ml/checkpoints")
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return packed.getvalue()


def _read(container, path: str) -> str | None:
    """A file of the (exited) container, or None when it has none."""
    import docker

    try:
        chunks, _stat = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        found = tar.extractfile(member) if member is not None else None
        return found.read().decode("utf-8", "replace") if found is not None else None


def _now():
    from moto.core.utils import utcnow

    return utcnow()
