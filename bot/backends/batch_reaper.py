"""Nothing of tierbot's outlives its run on AWS: the reaper of AWS Batch jobs and code bundles.

A worker stops its run's job when the run ends, however it ends; a bot that crashed leaves its jobs
running (and billing) with nobody waiting for them. So, at start and then every `reap_seconds`, for each
job queue the batch tiers name, the reaper lists this instance's jobs that have not ended (by name,
`tierbot-<instance>-run-*`, one ListJobs a queue), reads their tags (DescribeJobs, 100 a call) and stops
(TerminateJob) those whose run (`tierbot:run`) is not running. Whether it is, is the caller's to say
(`is_running`, from the database). The job definitions this instance registered (`tierbot-<instance>-*`,
tagged with the instance and with the run that used each last) are deregistered when that run is not
running: no run needs them, and the next run of that image registers its definition again (a job already
submitted runs on, whatever becomes of its definition). Then the bundles in the artifact store past
their retention whose run is not running are deleted (`bot.backends.remote.Bundles.reap`).
"""

from collections.abc import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws_options import client, short
from bot.backends.batch import definition_prefix, job_prefix
from bot.backends.batch_options import BatchOptions, options_of
from bot.backends.batch_status import active_jobs, describe
from bot.backends.docker_options import instance_of
from bot.backends.remote import TAG_INSTANCE, TAG_RUN, Bundles
from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier

IsRunning = Callable[[int], bool]


def reap_batch(tiers: Iterable[Tier], settings: Settings, is_running: IsRunning) -> dict[str, object]:
    """The jobs stopped on each queue (names), and the bundles deleted (keys); or why it could not."""
    instance = instance_of(settings)
    done: dict[str, object] = {}
    queues = _queues(tiers)
    for options in queues:
        where = f"{options.where}, queue {options.job_queue}"
        try:
            done[where] = reap_queue(client(settings, options, "batch"), options, instance, is_running)
        except (BotoCoreError, ClientError) as exc:
            done[where] = f"not reaped: {short(exc)}"
    for options in {(o.region, o.endpoint_url): o for o in queues}.values():
        where = f"job definitions in {options.where}"
        try:
            done[where] = reap_definitions(client(settings, options, "batch"), instance, is_running)
        except (BotoCoreError, ClientError) as exc:
            done[where] = f"not reaped: {short(exc)}"
    return done | reap_bundles(settings, instance, is_running)


def reap_bundles(settings: Settings, instance: str, is_running: IsRunning) -> dict[str, object]:
    """The bundles in the artifact store past their retention whose run is not running, deleted (keys);
    every remote backend's reaper ends with it."""
    if not (settings.artifact_store or "").startswith("s3://"):
        return {}
    where = f"bundles in {settings.artifact_store}"
    try:
        return {where: Bundles(settings, instance).reap(is_running, settings.bundle_retention_seconds)}
    except (BotoCoreError, ClientError) as exc:
        return {where: f"not reaped: {short(exc)}"}


def reap_queue(batch, options: BatchOptions, instance: str, is_running: IsRunning) -> list[str]:
    """Stop this instance's jobs on the queue whose run is not running; their names."""
    ids = [job["jobId"] for job in active_jobs(batch, options.job_queue, job_prefix(instance) + "*")]
    stopped = []
    for job in describe(batch, ids):
        tags = job.get("tags") or {}
        if tags.get(TAG_INSTANCE) != instance:
            continue  # a name alike, but not ours
        run = tags.get(TAG_RUN, "")
        if run.isdigit() and is_running(int(run)):
            continue
        batch.terminate_job(jobId=job["jobId"], reason=f"tierbot: run {run or '?'} is not running")
        stopped.append(job["jobName"])
    return stopped


def reap_definitions(batch, instance: str, is_running: IsRunning) -> list[str]:
    """Deregister this instance's job definitions whose last run is not running; their name:revision."""
    pages = batch.get_paginator("describe_job_definitions").paginate(status="ACTIVE")
    deregistered = []
    for definition in (d for page in pages for d in page["jobDefinitions"]):
        tags = definition.get("tags") or {}
        if not definition["jobDefinitionName"].startswith(definition_prefix(instance)):
            continue
        if tags.get(TAG_INSTANCE) != instance:
            continue  # a name alike, but not ours
        run = tags.get(TAG_RUN, "")
        if run.isdigit() and is_running(int(run)):
            continue
        batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
        deregistered.append(f"{definition['jobDefinitionName']}:{definition['revision']}")
    return deregistered


def _queues(tiers: Iterable[Tier]) -> list[BatchOptions]:
    """One batch tier's options per queue (the same queue in the same region, at the same endpoint)."""
    seen: dict[tuple, BatchOptions] = {}
    for tier in tiers:
        if tier.backend != "batch":
            continue
        try:
            options = options_of(tier)
        except TierbotError:
            continue  # unavailable, with the reason, where tiers are shown
        seen.setdefault((options.region, options.endpoint_url, options.job_queue), options)
    return list(seen.values())
