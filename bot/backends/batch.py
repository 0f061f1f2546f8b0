"""The AWS Batch backend: the experiment runs as a Batch job, on the tier's queue with the tier's hardware,
its code and outputs through the artifact store's bucket (`bot.backends.remote`).

One run is one job, named after the instance and the run (`tierbot-<instance>-run-<id>`; a new attempt
of the run first stops the job an earlier one left) and tagged with both (`tierbot:run`,
`tierbot:instance`) for the reaper (`bot.backends.batch_reaper`). Its image is the tier's `image`, or the
repository's Dockerfile built by the docker backend (`bot.backends.docker_image`) on the bot's engine and
pushed to the tier's ECR repository (`bot.backends.ecr`), or whatever the tier's own job definition
names. Its command is always tierbot's entrypoint, which fetches the code, runs `run.command` with the
run's variables and sends the outputs back; vCPUs, memory and GPUs are the tier's, as overrides, whatever
the job definition says.

Deadlines are Batch's and ours: the job's timeout is the tier's max_runtime, and tierbot stops it itself
(TerminateJob) a minute after that, or when the run is cancelled, or when it waited for hardware longer
than `max_queue`. State and log come from `bot.backends.batch_status`, polled within AWS's limits.
"""

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Literal

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bot.aws_options import client
from bot.backends import Job, Outcome, OutcomeState, Watcher
from bot.backends.batch_options import (
    SERVICE,
    BatchOptions,
    BatchOptionsInvalid,
    options_of,
    resources,
    timeout,
)
from bot.backends.batch_status import TERMINAL, LogTail, active_jobs, board
from bot.backends.docker_options import instance_of
from bot.backends.ecr import ecr_image
from bot.backends.local import judge as judge_locally
from bot.backends.process import POLL_SECONDS, Ending, LogSink
from bot.backends.remote import (
    BOOTSTRAP,
    TAG_INSTANCE,
    TAG_RUN,
    Bundles,
    Cancelled,
    OutputsLost,
    Shipment,
    attempt,
    failure_of,
)
from bot.errors import OutputsRejected
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import format_duration, format_size

MARGIN_SECONDS = 60.0  # after Batch's own timeout, tierbot stops the job itself
STOP_WAIT_SECONDS = 120.0  # for a job told to stop to end; then the reaper sees to it
Stopped = Literal["cancel", "timeout", "queue"]
_registering = threading.Lock()
_STOP_REASONS = {
    "cancel": "cancelled in tierbot",
    "timeout": "tierbot: past the tier's max_runtime",
    "queue": "tierbot: waited for hardware longer than max_queue",
}


@dataclass
class _Ending:
    described: dict  # the job's last description ({} if it never had one)
    stopped: Stopped | None  # tierbot stopped it, and why
    seconds: float  # from Batch's start to its stop, else as tierbot saw it
    billed: float | None  # Batch's start to stop, when it gave both


class BatchBackend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.instance = instance_of(settings)

    def run(self, job: Job, watcher: Watcher) -> Outcome:
        return attempt(job, watcher, SERVICE, lambda sink: self._run(job, watcher, sink))

    def _run(self, job: Job, watcher: Watcher, sink: LogSink) -> Outcome:
        options = options_of(job.tier)
        watcher.phase("building")
        image = self._image(job, options, sink, watcher)
        batch = client(self.settings, options, "batch")
        definition = options.job_definition or self._definition(batch, job, options, image or "")
        bundles = Bundles(self.settings, self.instance)
        url_seconds = options.max_queue_seconds + job.tier.runtime_seconds + 2 * MARGIN_SECONDS
        shipment = bundles.ship(job, sink, url_seconds)
        try:
            if watcher.cancelled():
                raise Cancelled
            job_id = self._submit(batch, job, options, definition, shipment)
            sink.line(f"[tierbot: submitted AWS Batch job {job_id} to the queue {options.job_queue}]")
            watcher.phase("starting")
            ending = self._supervise(batch, job_id, job, options, watcher, sink)
            state, reason = judge(ending, job.tier, options, sink.tail_lines())
            code = (ending.described.get("container") or {}).get("exitCode")
            outcome = Outcome(state, None if ending.stopped else code, ending.seconds, reason, sink.tail())
            outcome.billed_seconds = ending.billed
            if state == "succeeded":
                outcome = self._receive(bundles, shipment, job, outcome, sink)
            return outcome
        finally:
            bundles.discard(shipment)

    def _image(self, job: Job, options: BatchOptions, sink: LogSink, watcher: Watcher) -> str | None:
        """The job's image: the repository's Dockerfile built and pushed to ECR (`bot.backends.ecr`), the
        tier's image, or None when the tier's job definition names it."""
        if job.dockerfile is not None:
            if options.job_definition is not None:
                raise BatchOptionsInvalid(
                    f"tier {job.tier.name!r} runs the job definition {options.job_definition}, whose image "
                    "is its own: the repository's Dockerfile (environment.dockerfile) cannot run there; use "
                    "a tier with backend_options.image"
                )
            return ecr_image(self.settings, options, job, self.instance, sink, watcher)
        if options.job_definition is None and options.image is None:
            raise BatchOptionsInvalid(
                f"tier {job.tier.name!r} has no image (backend_options.image) and the repository names no "
                "Dockerfile (environment.dockerfile in tierbot.yaml)"
            )
        return options.image

    def _definition(self, batch: BaseClient, job: Job, options: BatchOptions, image: str) -> str:
        """The job definition of this image on this tier's hardware: registered once, then found by name;
        tagged with the run that uses it last, which the reaper spares while it runs."""
        tier = job.tier
        properties: dict = {"image": image, "command": BOOTSTRAP, "resourceRequirements": resources(tier)}
        if options.job_role_arn is not None:
            properties["jobRoleArn"] = options.job_role_arn
        shape = json.dumps([properties, timeout(tier)], sort_keys=True).encode()
        name = f"{definition_prefix(self.instance)}{tier.name}-{hashlib.sha256(shape).hexdigest()[:16]}"
        used = {TAG_RUN: str(job.run_id)}
        with _registering:  # runs of one tier starting together register it once, not once each
            found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
            if found:
                arn = max(found, key=lambda d: d["revision"])["jobDefinitionArn"]
                batch.tag_resource(resourceArn=arn, tags=used)
                return arn
            return batch.register_job_definition(
                jobDefinitionName=name,
                type="container",
                containerProperties=properties,
                timeout=timeout(tier),
                retryStrategy={"attempts": 1},
                propagateTags=True,
                tags={TAG_INSTANCE: self.instance} | used,
            )["jobDefinitionArn"]

    def _submit(
        self, batch: BaseClient, job: Job, options: BatchOptions, definition: str, shipment: Shipment
    ) -> str:
        name = job_name(self.instance, job.run_id)
        for earlier in active_jobs(batch, options.job_queue, name):  # a dead worker's attempt
            batch.terminate_job(jobId=earlier["jobId"], reason=f"tierbot: a new attempt of run {job.run_id}")
        return batch.submit_job(
            jobName=name,
            jobQueue=options.job_queue,
            jobDefinition=definition,
            containerOverrides={
                "command": BOOTSTRAP,
                "environment": [{"name": k, "value": v} for k, v in sorted(shipment.env.items())],
                "resourceRequirements": resources(job.tier),
            },
            timeout=timeout(job.tier),
            retryStrategy={"attempts": 1},
            propagateTags=True,
            tags={TAG_RUN: str(job.run_id), TAG_INSTANCE: self.instance},
        )["jobId"]

    def _supervise(
        self, batch: BaseClient, job_id: str, job: Job, options: BatchOptions, watcher: Watcher, sink: LogSink
    ) -> _Ending:
        """Follow the job to its end: its state from the board, its log into the sink; stop it on cancel,
        past the deadline, or after too long a wait for hardware."""
        first = self.settings.remote_poll_seconds
        credential = self.settings.aws_access_key_id
        key = (options.region, options.endpoint_url, credential.get_secret_value() if credential else None)
        jobs = board(key, batch, first)
        logs = LogTail(client(self.settings, options, "logs"), sink, first)
        jobs.follow(job_id)
        began, started, stopped, stop_by = time.monotonic(), None, None, None
        described: dict = {}
        try:
            while True:
                described = jobs.latest(job_id) or described
                stream = (described.get("container") or {}).get("logStreamName")
                if stream:
                    logs.poll(stream)
                if described.get("status") in TERMINAL:
                    break
                if started is None and described.get("status") == "RUNNING":
                    started = time.monotonic()
                    watcher.phase("running")
                if stopped is None:
                    stopped = _why_stop(watcher, began, started, job.tier, options)
                    if stopped is not None:
                        batch.terminate_job(jobId=job_id, reason=_STOP_REASONS[stopped])
                        stop_by = time.monotonic() + STOP_WAIT_SECONDS
                elif stop_by is not None and time.monotonic() > stop_by:
                    sink.line(f"[tierbot: the job {job_id} did not stop in time; the reaper will see to it]")
                    break
                time.sleep(POLL_SECONDS)
        finally:
            jobs.forget(job_id)
        if stream:  # the last lines, and those CloudWatch took a moment to take in
            logs.poll(stream, now=True)
            time.sleep(min(2.0, first))
            logs.poll(stream, now=True)
        return _ending(described, stopped, time.monotonic() - (started or began))

    def _receive(
        self, bundles: Bundles, shipment: Shipment, job: Job, outcome: Outcome, sink: LogSink
    ) -> Outcome:
        """The succeeded job's outputs, as the outcome's workspace."""
        try:
            outcome.workspace = bundles.receive(shipment, job.run_id, sink)
        except (OutputsLost, OutputsRejected, OSError, BotoCoreError, ClientError) as exc:
            outcome.state, outcome.reason = "failed", f"outputs not received from the job: {exc}"
        return outcome


def job_prefix(instance: str) -> str:
    """What the names of this instance's jobs start with: Batch takes letters, digits, - and _."""
    return f"tierbot-{instance.replace('.', '_')}-run-"


def definition_prefix(instance: str) -> str:
    """What the names of the job definitions this instance registers start with."""
    return f"tierbot-{instance.replace('.', '_')}-"


def job_name(instance: str, run_id: int) -> str:
    return f"{job_prefix(instance)}{run_id}"


def _why_stop(
    watcher: Watcher, began: float, started: float | None, tier: Tier, options: BatchOptions
) -> Stopped | None:
    if watcher.cancelled():
        return "cancel"
    now = time.monotonic()
    if started is None and now > began + options.max_queue_seconds:
        return "queue"
    if started is not None and now > started + max(tier.runtime_seconds, 60.0) + MARGIN_SECONDS:
        return "timeout"
    return None


def _ending(described: dict, stopped: Stopped | None, seen: float) -> _Ending:
    began, ended = described.get("startedAt"), described.get("stoppedAt")
    billed = (ended - began) / 1000 if began and ended and ended >= began else None
    return _Ending(described, stopped, seen if billed is None else billed, billed)


def judge(ending: _Ending, tier: Tier, options: BatchOptions, tail: list[str]) -> tuple[OutcomeState, str]:
    """The outcome in the local backend's words, from Batch's account of the job."""
    runtime = format_duration(tier.runtime_seconds)
    if ending.stopped == "cancel":
        return "cancelled", "cancelled"
    if ending.stopped == "timeout":
        return "timed_out", f"killed after {runtime}: the tier's max_runtime"
    if ending.stopped == "queue":
        waited = format_duration(options.max_queue_seconds)
        return "failed", (
            f"not started within {waited} (backend_options.max_queue): the job queue {options.job_queue} "
            "found no hardware for it"
        )
    described = ending.described
    if described.get("status") == "SUCCEEDED":
        return "succeeded", "exit code 0"
    own = failure_of(tail)
    if own is not None:
        return "failed", own
    container = described.get("container") or {}
    why = described.get("statusReason") or container.get("reason") or ""
    if "attempt duration exceeded timeout" in why.lower():
        return "timed_out", f"killed after {runtime}: the tier's max_runtime"
    if "OutOfMemoryError" in (container.get("reason") or ""):
        return "failed", f"out of memory (limit {format_size(tier.memory_bytes or 0)})"
    code = container.get("exitCode")
    if code is not None:
        # Without a memory limit the local judge does not guess at one from signals and messages.
        return judge_locally(
            Ending(code, None, ending.seconds), tier.model_copy(update={"memory": None}), tail
        )
    return "failed", f"the AWS Batch job failed: {why or 'Batch gave no reason'}"
