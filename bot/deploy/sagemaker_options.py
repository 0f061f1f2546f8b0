"""Where an environment's SageMaker endpoint is, from the operator's tiers file, never from the
repository: `deploy_targets.<environment>.sagemaker`, beside `deploy_access`.

    deploy_targets:
      production:
        sagemaker:
          region: eu-west-1
          role_arn: arn:aws:iam::123456789012:role/tierbot-serving   # the endpoint's own role
          image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tierbot-serve:1
          instance_type: ml.m5.large
          instance_count: 1
          endpoint_name: scaler-production    # optional; tierbot-<repository>-<hash>-<environment>
          capture_percentage: 20              # of requests captured for the prediction diff; 0: none
          capture_retention: 7d               # how long captured requests stay in the bucket

A repository's tierbot.yaml only says `deploy.target: sagemaker` and the environment: the role, the
image and the account stay with the operator, and an experiment run never sees them (runs get nothing of
the tiers file but their tier). The options are checked when a deployment needs them, as a tier's
backend_options are: a mistake fails that deployment with each bad option named, the old version
serving. Nothing here imports boto3: the instance types come from botocore's service model.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import xxhash
from pydantic import Field, ValidationInfo, field_validator

from bot.aws_options import ROLE_ARN, AwsPlace, one_of, sdk_choices
from bot.deploy.target_options import target_options
from bot.units import positive_duration

if TYPE_CHECKING:
    from bot.tiers import TierSet

_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"  # SageMaker's names of endpoints, configs and models
BASE_CHARS = 50  # of a release's names: `<base>-d<deployment>` stays within SageMaker's 63


class SageMakerDeploy(AwsPlace):
    """`deploy_targets.<environment>.sagemaker` in the tiers file."""

    service: ClassVar[str] = "SageMaker"

    role_arn: str = Field(pattern=ROLE_ARN, description="The IAM role SageMaker runs the model with.")
    image: str = Field(
        min_length=1,
        description="The serving image's URI: python3, what predict imports, and tierbot's model server as "
        "its entrypoint (`python3 /opt/ml/model/model_server.py`).",
    )
    instance_type: str = Field(description="A SageMaker hosting instance type, e.g. ml.m5.large.")
    instance_count: int = Field(1, ge=1, le=100, description="Instances behind the endpoint.")
    endpoint_name: str | None = Field(
        None, pattern=_NAME, description="The environment's endpoint; unset: named after the repository."
    )
    start_timeout: float | str = Field(
        "30m",
        validate_default=True,  # seconds, as the validator makes them
        description="How long an endpoint may take to come InService (SageMaker takes minutes).",
    )
    capture_percentage: int = Field(
        20,
        ge=0,
        le=100,
        description="Requests SageMaker's Data Capture keeps (in the artifact store's bucket) for the next "
        "deployment's prediction diff, in percent; 0: none, the diff replays the smoke request only.",
    )
    capture_retention: float | str = Field(
        "7d",
        validate_default=True,
        description="How long captured requests stay in the bucket (deleted by the next deployment).",
    )
    endpoint_url: str | None = Field(
        None, description="SageMaker and its runtime at another address (a VPC endpoint, a test server)."
    )

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        hosting = sdk_choices("sagemaker", "ProductionVariantInstanceType")
        return one_of(value, hosting, "a SageMaker hosting instance type", "ml.m5.large")

    @field_validator("start_timeout", "capture_retention")
    @classmethod
    def _durations(cls, value: float | str, info: ValidationInfo) -> float:
        return positive_duration(value, info.field_name)


def deploy_options(tiers: TierSet, environment: str) -> SageMakerDeploy:
    """The environment's sagemaker options, or DeployFailed that says what to write, or what is wrong."""
    needs = "the region, role_arn, image and instance_type of the environment's endpoint"
    return target_options(tiers, environment, "sagemaker", SageMakerDeploy, missing=needs)


def endpoint_name(options: SageMakerDeploy, repository: str, environment: str) -> str:
    """The environment's stable endpoint: the operator's name, else one unique to the repository."""
    if options.endpoint_name:
        return options.endpoint_name
    name = repository.rstrip("/").rsplit("/", 1)[-1]
    digest = xxhash.xxh3_64_hexdigest(repository.encode())[:8]
    words = [_word(name)[:24], digest, _word(environment)[:20]]
    return "-".join(["tierbot", *(w for w in words if w)])


def release_name(base: str, deployment_id: int) -> str:
    """The model, endpoint config and candidate endpoint of one deployment's release."""
    return f"{base[:BASE_CHARS].rstrip('-')}-d{deployment_id}"


def _word(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
