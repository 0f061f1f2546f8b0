"""A SageMaker tier's own options (`backend_options` in the tiers file), its AWS clients, and whether it
can run here.

A sagemaker tier names the training instances (type, count, volume), the IAM role the job runs with (its
only AWS credentials, never the bot's: SageMaker requires one), the region, and the image (with python3)
for repositories without a Dockerfile, or the ECR repository a repository's Dockerfile is pushed to once
built on the bot's Docker Engine (`ecr_repository`, the operator's: `bot.backends.ecr`), or both;
`spot: true` asks for managed spot training, waiting for capacity at most `max_wait`, with an optional
checkpoint S3 URI, and `retry_on_demand: true` runs an interrupted spot job once more on demand. The
tier's max_runtime is the job's MaxRuntimeInSeconds.

Instance types are checked against the SDK's own list of SageMaker training instance types (botocore's
service model, which grows with each release), so a typo is a tier unavailable with a "did you mean"
rather than a job that AWS refuses once a run has been queued. Nothing here imports boto3 at module
level: `missing` runs at start for every tier, in installations that may not have `tierbot[aws]`.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, field_validator

from bot.aws_options import ROLE_ARN, client, one_of, role_lacks, sdk_choices, unavailable
from bot.backends.ecr import EcrImage, repository_lacks
from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import positive_duration

SERVICE = "SageMaker"


class SageMakerOptionsInvalid(TierbotError):
    pass


class SageMakerOptions(EcrImage):
    """`backend_options` of a sagemaker tier."""

    service: ClassVar[str] = SERVICE

    role_arn: str = Field(
        pattern=ROLE_ARN, description="The IAM role the training job runs with, its only AWS credentials."
    )
    image: str | None = Field(
        None,
        min_length=1,
        description="The training image's URI (with python3) for repositories without a Dockerfile, e.g. "
        "in ECR.",
    )
    instance_type: str = Field(description="A SageMaker training instance type, e.g. ml.m5.xlarge.")
    instance_count: int = Field(1, ge=1, description="Instances of the job; the first one's outputs return.")
    volume_size_gb: int = Field(30, ge=1, description="The storage volume of each instance, in GB.")
    spot: bool = Field(False, description="Managed spot training: cheaper, and may be interrupted.")
    max_wait: float | str | None = Field(
        None,
        description="How long a spot job may wait for capacity and run in all; unset: twice max_runtime.",
    )
    checkpoint_s3_uri: str | None = Field(
        None,
        pattern=r"^s3://[^/]+/?.*$",
        description="Where /opt/ml/checkpoints is kept across interruptions.",
    )
    retry_on_demand: bool = Field(False, description="An interrupted spot job runs once more on demand.")
    endpoint_url: str | None = Field(
        None, description="SageMaker, CloudWatch Logs, ECR and IAM at another address (a test server)."
    )

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        training = sdk_choices("sagemaker", "TrainingInstanceType")
        return one_of(value, training, "a SageMaker training instance type", "ml.m5.xlarge")

    @field_validator("max_wait")
    @classmethod
    def _max_wait(cls, value: float | str | None) -> float | None:
        return None if value is None else positive_duration(value, "max_wait")


def options_of(tier: Tier) -> SageMakerOptions:
    """The tier's sagemaker options, or SageMakerOptionsInvalid naming each bad option in words."""
    options = tier.options_as(SageMakerOptions, SageMakerOptionsInvalid)
    if options.image is None and options.ecr_repository is None:
        raise SageMakerOptionsInvalid(
            f"tier {tier.name!r} has no image to run: give backend_options image (for repositories without "
            "a Dockerfile), ecr_repository (for those with one, built and pushed there), or both"
        )
    if options.spot and options.max_wait is not None and float(options.max_wait) < tier.runtime_seconds:
        raise SageMakerOptionsInvalid(
            f"tier {tier.name!r}: backend_options.max_wait must be at least the tier's max_runtime (a spot "
            "job's wait includes its run)"
        )
    return options


def stopping_condition(tier: Tier, options: SageMakerOptions, spot: bool) -> dict[str, int]:
    """The job's own limits: max_runtime, and for a spot job how long it may wait in all."""
    runtime = max(1, math.ceil(tier.runtime_seconds))
    if not spot:
        return {"MaxRuntimeInSeconds": runtime}
    wait = 2 * runtime if options.max_wait is None else math.ceil(float(options.max_wait))
    return {"MaxRuntimeInSeconds": runtime, "MaxWaitTimeInSeconds": max(runtime, wait)}


def missing(tier: Tier, settings: Settings) -> str | None:
    """Why this installation cannot run the sagemaker tier, or None: boto3, the options, the artifact
    store, SageMaker answering, and the ECR repository and role the tier names."""
    return unavailable(
        settings, SERVICE, lambda: options_of(tier), lambda options: _aws_lacks(settings, options)
    )


def _aws_lacks(settings: Settings, options: SageMakerOptions) -> str | None:
    client(settings, options, "sagemaker", quick=True).list_training_jobs(MaxResults=1)
    return repository_lacks(settings, options) or role_lacks(
        settings, options, options.role_arn, "the role", "backend_options.role_arn"
    )
