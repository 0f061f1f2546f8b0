"""The SageMaker backend: the experiment runs as a SageMaker training job on the tier's instances, its
code and outputs through the artifact store's bucket (`bot.backends.remote`), as on AWS Batch. Its image is
the tier's `image`, or the repository's Dockerfile built on the bot's Docker Engine and pushed to the
tier's ECR repository, as on AWS Batch (`bot.backends.ecr`).

A training job's container is started with tierbot's bootstrap as its entrypoint; SageMaker limits each
of its strings to 256 characters and each Environment value to 512 (a presigned URL made with session
credentials is longer), so the job's variables travel as its hyperparameters (2,500 characters each),
which SageMaker writes to /opt/ml/input/config/hyperparameters.json, and a small prelude moves them into
the environment before the shared bootstrap runs (`ENTRYPOINT`, `ARGUMENTS`). On every host but the
first, the prelude points the outputs' URL at nothing: one host's outputs come back, not the last one's.

Each attempt is a new job (SageMaker never reuses a name): `tierbot-<instance>-run-<id>-<nonce>`, tagged
with the run and the instance (`tierbot:run`, `tierbot:instance`) for the reaper
(`bot.backends.sagemaker_reaper`); a new attempt of the run first stops what an earlier one left. A spot
job that is interrupted and gets no capacity back within max_wait runs once more on demand when the tier
says `retry_on_demand`. Deadlines are SageMaker's (MaxRuntimeInSeconds, MaxWaitTimeInSeconds) and ours: a
minute after them, or on cancel, tierbot stops the job itself (StopTrainingJob). What the run cost is
what SageMaker bills: BillableTimeInSeconds (less than the training time for spot), over its attempts.

What SageMaker would refuse of a job (a name over 63 characters, over 100 hyperparameters, a value over
2,500 characters: a very long run.command) fails the run before an image is built or a job created, in
words that say what to change (`over_limits`), rather than as AWS's ValidationException.
"""

import re
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bot.aws_options import client
from bot.backends import Job, Outcome, OutcomeState, Watcher
from bot.backends.docker_options import instance_of
from bot.backends.ecr import ecr_image
from bot.backends.process import POLL_SECONDS, LogSink
from bot.backends.remote import (
    BOOTSTRAP_SOURCE,
    TAG_INSTANCE,
    TAG_RUN,
    Bundles,
    Cancelled,
    OutputsLost,
    attempt,
    failure_of,
)
from bot.backends.sagemaker_options import (
    SERVICE,
    SageMakerOptions,
    SageMakerOptionsInvalid,
    options_of,
    stopping_condition,
)
from bot.backends.sagemaker_status import TERMINAL, JobLog, JobState, active_jobs
from bot.errors import OutputsRejected, TierbotError
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import format_duration

MARGIN_SECONDS = 60.0  # after SageMaker's own limits, tierbot stops the job itself
STOP_WAIT_SECONDS = 120.0  # for a job told to stop to end; then the reaper sees to it
MOST_CHARS = 256  # of each string of a training job's entrypoint and arguments
MOST_NAME_CHARS = 63  # of a training job's name
MOST_HYPERPARAMETERS = 100
MOST_VALUE_CHARS = 2_500  # of each hyperparameter's value
INTERRUPTED = ("Interrupted", "MaxWaitTimeExceeded")
PRELUDE = (
    "import json,os\n"
    "c='/opt/ml/input/config/'\n"
    "os.environ.update(json.load(open(c+'hyperparameters.json')))\n"
    "h=json.load(open(c+'resourceconfig.json'))\n"
    "if h['current_host']!=h['hosts'][0]:os.environ['TIERBOT_OUTPUTS_URL']='file:///dev/null'\n"
)
ENTRYPOINT = ["python3", "-c", "import sys;exec(''.join(sys.argv[1:]))"]
_PROGRAM = PRELUDE + BOOTSTRAP_SOURCE
ARGUMENTS = [_PROGRAM[i : i + MOST_CHARS] for i in range(0, len(_PROGRAM), MOST_CHARS)]
_EXIT_CODE = re.compile(r"exit code:? (\d+)", re.IGNORECASE)
Stopped = Literal["cancel", "timeout"]


class OverLimits(TierbotError):
    """The job would be refused by SageMaker: its name or hyperparameters past SageMaker's limits."""


@dataclass
class Ending:
    described: dict  # the job's last description ({} if it never had one)
    stopped: Stopped | None  # tierbot stopped it, and why
    seconds: float  # SageMaker's training time, else as tierbot saw it
    billed: float | None  # BillableTimeInSeconds, when SageMaker gave it


class SageMakerBackend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.instance = instance_of(settings)

    def run(self, job: Job, watcher: Watcher) -> Outcome:
        return attempt(job, watcher, SERVICE, lambda sink: self._run(job, watcher, sink))

    def _run(self, job: Job, watcher: Watcher, sink: LogSink) -> Outcome:
        options = options_of(job.tier)
        watcher.phase("building")
        sagemaker = client(self.settings, options, "sagemaker")
        bundles = Bundles(self.settings, self.instance)
        waits = stopping_condition(job.tier, options, options.spot)
        url_seconds = 2 * (waits.get("MaxWaitTimeInSeconds", waits["MaxRuntimeInSeconds"]) + MARGIN_SECONDS)
        shipment = bundles.ship(job, sink, url_seconds)
        try:
            refused = over_limits(self._name(job.run_id), shipment.env)
            if refused is not None:  # before an image is built for a job SageMaker would refuse
                raise OverLimits(refused)
            image = self._image(job, options, sink, watcher)
            self._stop_earlier(sagemaker, job.run_id)
            spot, billed = options.spot, 0.0
            while True:
                if watcher.cancelled():
                    raise Cancelled
                name = self._create(sagemaker, job, options, image, shipment.env, spot)
                sink.line(f"[tierbot: created SageMaker training job {name} ({_kind(spot)})]")
                watcher.phase("starting")
                ending = self._supervise(sagemaker, name, job, options, spot, watcher, sink)
                billed += ending.billed or 0.0
                if not (spot and options.retry_on_demand and interrupted(ending)):
                    break
                sink.line("[tierbot: the spot job was interrupted: running it once more on demand]")
                spot = False
            state, reason, code = judge(ending, job.tier, sink.tail_lines())
            outcome = Outcome(state, code, ending.seconds, reason, sink.tail(), billed_seconds=billed)
            if state == "succeeded":
                try:
                    outcome.workspace = bundles.receive(shipment, job.run_id, sink)
                except (OutputsLost, OutputsRejected, OSError, BotoCoreError, ClientError) as exc:
                    outcome.state, outcome.reason = "failed", f"outputs not received from the job: {exc}"
            return outcome
        finally:
            bundles.discard(shipment)

    def _image(self, job: Job, options: SageMakerOptions, sink: LogSink, watcher: Watcher) -> str:
        """The training image: the repository's Dockerfile built and pushed to ECR (`bot.backends.ecr`),
        else the tier's image."""
        if job.dockerfile is not None:
            return ecr_image(self.settings, options, job, self.instance, sink, watcher)
        if options.image is None:
            raise SageMakerOptionsInvalid(
                f"tier {job.tier.name!r} has no image (backend_options.image) for repositories without a "
                "Dockerfile, and this one names none (environment.dockerfile in tierbot.yaml)"
            )
        return options.image

    def _name(self, run_id: int) -> str:
        """A new training job's name: SageMaker never reuses one, so each attempt has its own nonce."""
        return f"{job_prefix(self.instance)}{run_id}-{uuid.uuid4().hex[:8]}"

    def _stop_earlier(self, sagemaker: BaseClient, run_id: int) -> None:
        """What an earlier attempt of the run (a dead worker's) left running, stopped."""
        for name, _run in active_jobs(sagemaker, f"{job_prefix(self.instance)}{run_id}-", self.instance):
            sagemaker.stop_training_job(TrainingJobName=name)

    def _create(
        self,
        sagemaker: BaseClient,
        job: Job,
        options: SageMakerOptions,
        image: str,
        env: dict[str, str],
        spot: bool,
    ) -> str:
        name = self._name(job.run_id)
        asked: dict = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ENTRYPOINT,
                "ContainerArguments": ARGUMENTS,
            },
            "RoleArn": options.role_arn,
            "HyperParameters": env,
            # Where SageMaker uploads /opt/ml/model: with the bundles, deleted past their retention.
            "OutputDataConfig": {"S3OutputPath": f"s3://{_store_key(self.settings, 'sagemaker')}"},
            "ResourceConfig": {
                "InstanceType": options.instance_type,
                "InstanceCount": options.instance_count,
                "VolumeSizeInGB": options.volume_size_gb,
            },
            "StoppingCondition": stopping_condition(job.tier, options, spot),
            "EnableManagedSpotTraining": spot,
            "Tags": [
                {"Key": TAG_RUN, "Value": str(job.run_id)},
                {"Key": TAG_INSTANCE, "Value": self.instance},
            ],
        }
        if spot and options.checkpoint_s3_uri is not None:
            asked["CheckpointConfig"] = {"S3Uri": options.checkpoint_s3_uri}
        sagemaker.create_training_job(**asked)
        return name

    def _supervise(
        self,
        sagemaker: BaseClient,
        name: str,
        job: Job,
        options: SageMakerOptions,
        spot: bool,
        watcher: Watcher,
        sink: LogSink,
    ) -> Ending:
        """Follow the job to its end: its state and its log; stop it on cancel or past the deadline."""
        first = self.settings.remote_poll_seconds
        state = JobState(sagemaker, name, first)
        logs = JobLog(client(self.settings, options, "logs"), sink, name, first)
        limits = stopping_condition(job.tier, options, spot)
        began, started, stopped, stop_by = time.monotonic(), None, None, None
        while True:
            described = state.poll()
            logs.poll()
            if started is None and _trained(described):
                started = time.monotonic()
                watcher.phase("running")
            if described.get("TrainingJobStatus") in TERMINAL:
                break
            if stopped is None:
                stopped = _why_stop(watcher, began, started, limits)
                if stopped is not None:
                    sagemaker.stop_training_job(TrainingJobName=name)
                    stop_by = time.monotonic() + STOP_WAIT_SECONDS
                    state = JobState(sagemaker, name, first)  # asked at once, then backing off again
            elif stop_by is not None and time.monotonic() > stop_by:
                sink.line(f"[tierbot: the job {name} did not stop in time; the reaper will see to it]")
                break
            time.sleep(POLL_SECONDS)
        logs.poll(now=True)  # the last lines, and those CloudWatch took a moment to take in
        time.sleep(min(2.0, first))
        logs.poll(now=True)
        return _ending(described, stopped, time.monotonic() - (started or began))


def job_prefix(instance: str) -> str:
    """What the names of this instance's training jobs start with: letters, digits and -, 63 in all."""
    safe = re.sub(r"[^A-Za-z0-9]+", "-", instance).strip("-")[:24].strip("-")
    return f"tierbot-{safe}-run-"


def over_limits(name: str, hyperparameters: dict[str, str]) -> str | None:
    """What SageMaker would refuse of the training job (its name, its hyperparameters: the job's
    variables), said as what to change; None when it takes it all."""
    if len(name) > MOST_NAME_CHARS:
        return (
            f"the training job's name {name} would be {len(name)} characters, and SageMaker takes at most "
            f"{MOST_NAME_CHARS}: set a shorter TIERBOT_DOCKER_INSTANCE (which names the job)"
        )
    if len(hyperparameters) > MOST_HYPERPARAMETERS:
        return (
            f"the job has {len(hyperparameters)} variables, and SageMaker takes at most "
            f"{MOST_HYPERPARAMETERS} hyperparameters, which carry them to the job: give it fewer variables"
        )
    for key, value in hyperparameters.items():
        if len(value) > MOST_VALUE_CHARS:
            return f"{_value_too_long(key, len(value))}: {_shorter(key)}"
    return None


def _value_too_long(key: str, chars: int) -> str:
    what = "run.command" if key == "TIERBOT_COMMAND" else f"the job's variable {key}"
    return (
        f"{what} is {chars:,} characters, and SageMaker takes at most {MOST_VALUE_CHARS:,} in the "
        "hyperparameter that carries it to the job"
    )


def _shorter(key: str) -> str:
    """How the variable `key` gets shorter."""
    if key == "TIERBOT_COMMAND":
        return "put the command in a script in the repository, and run that (run.command: sh run.sh)"
    if key.endswith("_URL"):  # a presigned URL of the artifact store
        return (
            "it is a presigned URL of the artifact store: a shorter TIERBOT_ARTIFACT_STORE prefix, or AWS "
            "credentials without a session token, make it shorter"
        )
    return "give it a shorter value"


def _kind(spot: bool) -> str:
    return "spot" if spot else "on demand"


def _store_key(settings: Settings, *parts: str) -> str:
    """bucket/prefix/bundles/parts of the artifact store."""
    return "/".join(
        p for p in ((settings.artifact_store or "").removeprefix("s3://").strip("/"), "bundles", *parts)
    )


def _trained(described: dict) -> bool:
    """Whether the job has started training: now, or between two polls (a short job may have ended)."""
    return any(step.get("Status") == "Training" for step in described.get("SecondaryStatusTransitions") or [])


def _why_stop(
    watcher: Watcher, began: float, started: float | None, limits: dict[str, int]
) -> Stopped | None:
    if watcher.cancelled():
        return "cancel"
    now = time.monotonic()
    if started is not None and now > started + limits["MaxRuntimeInSeconds"] + MARGIN_SECONDS:
        return "timeout"
    wait = limits.get("MaxWaitTimeInSeconds")
    if wait is not None and now > began + wait + MARGIN_SECONDS:
        return "timeout"
    return None


def _ending(described: dict, stopped: Stopped | None, seen: float) -> Ending:
    trained, billed = described.get("TrainingTimeInSeconds"), described.get("BillableTimeInSeconds")
    return Ending(
        described,
        stopped,
        seen if trained is None else float(trained),
        None if billed is None else float(billed),
    )


def interrupted(ending: Ending) -> bool:
    """Whether a spot job ended because its instances were taken back (and did not come back in time)."""
    described = ending.described
    return (
        ending.stopped is None
        and described.get("TrainingJobStatus") in ("Failed", "Stopped")
        and described.get("SecondaryStatus") in INTERRUPTED
    )


def judge(ending: Ending, tier: Tier, tail: list[str]) -> tuple[OutcomeState, str, int | None]:
    """The outcome (state, reason, exit code) in the local backend's words, from SageMaker's account."""
    runtime = format_duration(tier.runtime_seconds)
    described = ending.described
    status, secondary = described.get("TrainingJobStatus"), described.get("SecondaryStatus")
    if ending.stopped == "cancel":
        return "cancelled", "cancelled", None
    if ending.stopped == "timeout" or secondary == "MaxRuntimeExceeded":
        return "timed_out", f"killed after {runtime}: the tier's max_runtime", None
    if status == "Completed":
        return "succeeded", "exit code 0", 0
    if interrupted(ending):
        return (
            "failed",
            ("the spot instances were interrupted and no capacity came back within backend_options.max_wait"),
            None,
        )
    why = described.get("FailureReason") or ""
    found = _EXIT_CODE.search(why)
    code = int(found[1]) if found else None
    own = failure_of(tail)
    if own is not None:
        return "failed", own, code
    if status == "Failed":
        return "failed", f"the SageMaker training job failed: {why or 'SageMaker gave no reason'}", code
    return "failed", f"the SageMaker training job was stopped outside this run ({secondary})", code
