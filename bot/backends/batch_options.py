"""An AWS Batch tier's own options (`backend_options` in the tiers file), its AWS clients, and whether it
can run here.

A batch tier names its region and job queue (the operator's: a queue needs a compute environment, which
is a decision about money and networks, not tierbot's), and either a job definition to run or nothing, in
which case tierbot registers one from the tier: the image, vCPUs, memory and GPUs of the tier, and its
max_runtime as the job's timeout. The job's AWS credentials are the role the tier names
(`job_role_arn`), never the bot's.

Nothing here imports boto3 at module level: `missing` runs at start for every tier, in installations that
may not have the `tierbot[aws]` extra, and answers in a few seconds either way (a few API calls: the
queue, the job definition, the role).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import positive_duration
from bot.yaml_errors import in_words

if TYPE_CHECKING:
    from botocore.client import BaseClient

NOT_INSTALLED = "boto3 is not installed (pip install 'tierbot[aws]')"
NOT_S3 = (
    "AWS Batch tiers send the code and the outputs through the artifact store: set "
    "TIERBOT_ARTIFACT_STORE to s3://bucket/prefix"
)
MIN_TIMEOUT_SECONDS = 60  # AWS Batch's least attemptDurationSeconds
_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]+$"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


class BatchOptionsInvalid(TierbotError):
    pass


class BatchOptions(BaseModel):
    """`backend_options` of a batch tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(description="The AWS region of the queue, e.g. eu-west-1.")
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
        pattern=_ROLE_ARN,
        description="The IAM role the job runs with, its only AWS credentials; unset: the job has none.",
    )
    max_queue: float | str = Field(
        "1h", validate_default=True, description="How long a job may wait for hardware before it is stopped."
    )
    build_network: Literal["none", "bridge", "host"] = Field(
        "bridge",
        description="The network a repository's Dockerfile is built on (on the bot's Docker Engine).",
    )
    endpoint_url: str | None = Field(
        None, description="AWS Batch, CloudWatch Logs and IAM at another address (a test server)."
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region (e.g. us-east-1)")
        return value

    @field_validator("max_queue")
    @classmethod
    def _max_queue(cls, value: float | str) -> float:
        return positive_duration(value, "max_queue")

    @property
    def max_queue_seconds(self) -> float:
        return float(self.max_queue)

    @property
    def where(self) -> str:
        """How people know this tier's AWS Batch: its region (and the endpoint, when not AWS's)."""
        return f"AWS Batch in {self.region}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def options_of(tier: Tier) -> BatchOptions:
    """The tier's batch options, or BatchOptionsInvalid naming each bad option; with what AWS Batch needs
    of the tier itself (memory, whole vCPUs)."""
    try:
        options = BatchOptions.model_validate(tier.backend_options)
    except ValidationError as exc:
        problems = "; ".join(in_words(BatchOptions, tier.backend_options, exc))
        raise BatchOptionsInvalid(f"tier {tier.name!r} has invalid backend_options: {problems}") from None
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


def client(settings: Settings, options: BatchOptions, service: str, quick: bool = False) -> BaseClient:
    """A client of `service` in the tier's region, with the bot's credentials (from Settings: hardening
    has removed them from the environment), botocore's standard retries (throttling included) and,
    `quick`, short timeouts for the checks at start."""
    from bot.aws import aws_client

    return aws_client(
        settings,
        service,
        region=options.region,
        endpoint_url=options.endpoint_url,
        attempts=2 if quick else 8,
        connect_timeout=3 if quick else 10,
        read_timeout=5 if quick else 60,
    )


def missing(tier: Tier, settings: Settings) -> str | None:
    """Why this installation cannot run the batch tier, or None: boto3, the options, the artifact store,
    and the queue, job definition and role the tier names."""
    try:
        import boto3  # noqa: F401 (only whether it imports)
    except ImportError:
        return NOT_INSTALLED
    try:
        options = options_of(tier)
    except BatchOptionsInvalid as exc:
        return str(exc)
    if not (settings.artifact_store or "").startswith("s3://"):
        return NOT_S3
    return _aws_lacks(settings, options)


def _aws_lacks(settings: Settings, options: BatchOptions) -> str | None:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
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
        if options.job_role_arn is not None:
            return _role_lacks(settings, options)
    except NoCredentialsError:
        return f"{options.where}: tierbot has no AWS credentials (AWS_ACCESS_KEY_ID, or an instance role)"
    except ClientError as exc:
        return f"{options.where} refused: {short(exc)}"
    except BotoCoreError as exc:
        return f"{options.where} cannot be reached: {short(exc)}"
    return None


def _definition_exists(batch: BaseClient, definition: str) -> bool:
    """Whether the name (its latest revision), name:revision or ARN is an active job definition."""
    if ":" in definition:  # name:revision or an ARN
        found = batch.describe_job_definitions(jobDefinitions=[definition], status="ACTIVE")
    else:
        found = batch.describe_job_definitions(jobDefinitionName=definition, status="ACTIVE")
    return bool(found["jobDefinitions"])


def _role_lacks(settings: Settings, options: BatchOptions) -> str | None:
    """Whether the job role exists; a bot that may not read roles (no iam:GetRole) does not know, and
    does not refuse the tier for it."""
    from botocore.exceptions import ClientError

    arn = options.job_role_arn or ""
    try:
        client(settings, options, "iam", quick=True).get_role(RoleName=arn.rsplit("/", 1)[-1])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "NoSuchEntity":
            return f"the job role {arn} (backend_options.job_role_arn) does not exist"
        if code not in _ACCESS_DENIED:
            raise
    return None


def untrusted(tier: Tier, _settings: Settings) -> str:
    """AWS Batch is no sandbox for a fork's code: the job has the network, and the tier's role."""
    return (
        f"code from outside the repository (a fork's) does not run on AWS Batch tiers: tier {tier.name!r} "
        "gives the job the network and its role's AWS access"
    )


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
