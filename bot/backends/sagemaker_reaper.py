"""Nothing of tierbot's outlives its run on SageMaker: the reaper of training jobs (and code bundles).

A worker stops its run's training job when the run ends, however it ends; a bot that crashed leaves its
jobs training (and billing) with nobody waiting for them. So, at start and then every `reap_seconds`, as
the AWS Batch reaper does for its queues, for each region (and endpoint) the sagemaker tiers name the
reaper lists this instance's training jobs that have not ended (ListTrainingJobs by name,
`tierbot-<instance>-run-`, then their tags: `bot.backends.sagemaker_status.active_jobs`) and stops
(StopTrainingJob) those whose run (`tierbot:run`) is not running, as the caller says (`is_running`, from
the database). Then the bundles past their retention (`bot.backends.batch_reaper.reap_bundles`).
"""

from collections.abc import Iterable

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bot.aws_options import client, short
from bot.backends import IsRunning
from bot.backends.batch_reaper import reap_bundles
from bot.backends.docker_options import instance_of
from bot.backends.sagemaker import job_prefix
from bot.backends.sagemaker_options import SageMakerOptions, options_of
from bot.backends.sagemaker_status import active_jobs
from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier


def reap_sagemaker(tiers: Iterable[Tier], settings: Settings, is_running: IsRunning) -> dict[str, object]:
    """The training jobs stopped in each region (names), and the bundles deleted (keys); or why not."""
    instance = instance_of(settings)
    done: dict[str, object] = {}
    for options in _regions(tiers):
        try:
            done[options.where] = reap_region(client(settings, options, "sagemaker"), instance, is_running)
        except (BotoCoreError, ClientError) as exc:
            done[options.where] = f"not reaped: {short(exc)}"
    return done | reap_bundles(settings, instance, is_running)


def reap_region(sagemaker: BaseClient, instance: str, is_running: IsRunning) -> list[str]:
    """Stop this instance's training jobs whose run is not running; their names."""
    stopped = []
    for name, run in list(active_jobs(sagemaker, job_prefix(instance), instance)):
        if run is not None and is_running(run):
            continue
        sagemaker.stop_training_job(TrainingJobName=name)
        stopped.append(name)
    return stopped


def _regions(tiers: Iterable[Tier]) -> list[SageMakerOptions]:
    """One sagemaker tier's options per region (at the same endpoint)."""
    seen: dict[tuple, SageMakerOptions] = {}
    for tier in tiers:
        if tier.backend != "sagemaker":
            continue
        try:
            options = options_of(tier)
        except TierbotError:
            continue  # unavailable, with the reason, where tiers are shown
        seen.setdefault((options.region, options.endpoint_url), options)
    return list(seen.values())
