"""An AWS Batch tier's own options (`backend_options` in the tiers file), its AWS clients, and whether it
can run here.

A batch tier names its region and job queue (the operator's: a queue needs a compute environment, which
is a decision about money and networks, not tierbot's), and either a job definition to run or nothing, in
which case tierbot registers one from the tier: the image, vCPUs, memory and GPUs of the tier, and its
max_runtime as the job's timeout. The image is the tier's `image`, or the repository's Dockerfile built
on the bot's Docker Engine and pushed to the tier's ECR repository (`ecr_repository`, the operator's:
`bot.backends.ecr`). The job's AWS credentials are the role the tier names (`job_role_arn`), never the
bot's.

Nothing here imports boto3 at module level: `missing` runs at start for every tier, in installations that
may not have the `tierbot[aws]` extra, and answers in a few seconds either way (a few API calls: the
queue, the job definition, the ECR repository, the role).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, field_validator

from bot.aws_options import ROLE_ARN, client, role_lacks, unavailable
from bot.backends.ecr import EcrImage, repository_lacks
from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import positive_duration

if TYPE_CHECKING:
    from botocore.client import BaseClient

SERVICE = "AWS Batch"
MIN_TIMEOUT_SECONDS = 60  # AWS Batch's least attemptDurationSeconds


class BatchOptionsInvalid(TierbotError):
    pass


class BatchOptions(EcrImage):
    """`backend_options` of a batch tier."""

    service: ClassVar[str] = SERVICE

    job_queue: str = Field(min_length=1, description="The job queue (name or ARN) runs are submitted to.")
    job_definition: str | None = Field(
        None,
        description="A job definition (name, name:revision or ARN) whose image has python3; unset: tierbot "
        "registers one from the tier and `image`.",
    )
    image: str | None = Field(
        None, description="The image (with python3) for repositories without a Dockerfile, e.g. an ECR URI."
    )
    job_role_arn: str | None = Field(
        None,
        pattern=ROLE_ARN,
        description="The IAM role the job runs with, its only AWS credentials; unset: the job has none.",
    )
    max_queue: float | str = Field(
        "1h", validate_default=True, description="How long a job may wait for hardware before it is stopped."
    )
    endpoint_url: str | None = Field(
        None, description="AWS Batch, CloudWatch Logs, ECR and IAM at another address (a test server)."
    )

    @field_validator("max_queue")
    @classmethod
    def _max_queue(cls, value: float | str) -> float:
        return positive_duration(value, "max_queue")

    @property
    def max_queue_seconds(self) -> float:
        return float(self.max_queue)


def options_of(tier: Tier) -> BatchOptions:
    """The tier's batch options, or BatchOptionsInvalid naming each bad option; with what AWS Batch needs
    of the tier itself (memory, whole vCPUs)."""
    options = tier.options_as(BatchOptions, BatchOptionsInvalid)
    if options.image is not None and options.job_definition is not None:
        raise BatchOptionsInvalid(
            f"tier {tier.name!r}: give backend_options image or job_definition, not both (a job definition "
            "names its own image)"
        )
    if tier.memory_bytes is None:
        raise BatchOptionsInvalid(f"tier {tier.name!r} gives no memory: AWS Batch reserves it (memory: 4GiB)")
    if tier.cpus != int(tier.cpus):
        raise BatchOptionsInvalid(
            f"tier {tier.name!r} asks for {tier.cpus:g} CPUs: AWS Batch on EC2 takes whole vCPUs"
        )
    return options


def resources(tier: Tier) -> list[dict[str, str]]:
    """The tier's hardware as a job's resourceRequirements: vCPUs, memory in MiB, GPUs."""
    wanted = [
        {"type": "VCPU", "value": str(int(tier.cpus))},
        {"type": "MEMORY", "value": str(math.ceil((tier.memory_bytes or 0) / 1024**2))},
    ]
    if tier.gpus:
        wanted.append({"type": "GPU", "value": str(tier.gpus)})
    return wanted


def timeout(tier: Tier) -> dict[str, int]:
    """The job's own timeout: the tier's max_runtime (tierbot's deadline comes a little after it)."""
    return {"attemptDurationSeconds": max(MIN_TIMEOUT_SECONDS, math.ceil(tier.runtime_seconds))}


def missing(tier: Tier, settings: Settings) -> str | None:
    """Why this installation cannot run the batch tier, or None: boto3, the options, the artifact store,
    and the queue, job definition and role the tier names."""
    return unavailable(
        settings, SERVICE, lambda: options_of(tier), lambda options: _aws_lacks(settings, options)
    )


def _aws_lacks(settings: Settings, options: BatchOptions) -> str | None:
    batch = client(settings, options, "batch", quick=True)
    queues = batch.describe_job_queues(jobQueues=[options.job_queue])["jobQueues"]
    if not queues:
        return f"the job queue {options.job_queue} (backend_options.job_queue) is not in {options.where}"
    queue = queues[0]
    if queue.get("state") != "ENABLED" or queue.get("status") == "INVALID":
        why = queue.get("statusReason") or f"{queue.get('state')}, {queue.get('status')}"
        return f"the job queue {options.job_queue} (backend_options.job_queue) cannot take jobs: {why}"
    if options.job_definition is not None and not _definition_exists(batch, options.job_definition):
        return (
            f"the job definition {options.job_definition} (backend_options.job_definition) is not "
            f"active in {options.where}"
        )
    lacks = repository_lacks(settings, options)
    if lacks is not None:
        return lacks
    if options.job_role_arn is not None:
        return role_lacks(
            settings, options, options.job_role_arn, "the job role", "backend_options.job_role_arn"
        )
    return None


def _definition_exists(batch: BaseClient, definition: str) -> bool:
    """Whether the name (its latest revision), name:revision or ARN is an active job definition."""
    if ":" in definition:  # name:revision or an ARN
        found = batch.describe_job_definitions(jobDefinitions=[definition], status="ACTIVE")
    else:
        found = batch.describe_job_definitions(jobDefinitionName=definition, status="ACTIVE")
    return bool(found["jobDefinitions"])
