"""What every place in AWS an operator names has in common (a Batch tier, a SageMaker tier, a SageMaker
deploy target): a region and an endpoint, a role, an instance type, each checked in the operator's words;
clients made one way (`bot.aws`); and whether AWS answers there, said as a reason a tier is unavailable.

Nothing here imports boto3 at module level: the checks run at start for every tier, in installations
that may not have the `tierbot[aws]` extra.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier

if TYPE_CHECKING:
    from botocore.client import BaseClient

NOT_INSTALLED = "boto3 is not installed (pip install 'tierbot[aws]')"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]+$"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


class AwsPlace(BaseModel):
    """Options that name a place in AWS: a region, and another address for its services (a test server,
    a VPC endpoint). `service` says what is there, for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    service: ClassVar[str] = "AWS"

    region: str = Field(description="The AWS region, e.g. eu-west-1.")
    endpoint_url: str | None = Field(
        None, description="The AWS services at another address (a VPC endpoint, a test server)."
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region (e.g. us-east-1)")
        return value

    @property
    def where(self) -> str:
        """How people know this place: the service and region (and the endpoint, when not AWS's)."""
        return f"{self.service} in {self.region}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


@functools.cache
def sdk_choices(service: str, shape: str) -> tuple[str, ...]:
    """An enumeration of the installed SDK's service model (it grows with each botocore release), such
    as SageMaker's training instance types: checked here rather than refused by AWS once a run waits."""
    import botocore.session

    return tuple(botocore.session.get_session().get_service_model(service).shape_for(shape).enum)


def one_of(value: str, choices: tuple[str, ...], what: str, example: str) -> str:
    """`value` when it is among `choices`; else ValueError with the closest ones."""
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else f" (e.g. {example})"
        raise ValueError(f"{value!r} is not {what}{hint}")
    return value


def not_s3(service: str) -> str:
    return (
        f"{service} tiers send the code and the outputs through the artifact store: set "
        "TIERBOT_ARTIFACT_STORE to s3://bucket/prefix"
    )


def client(settings: Settings, place: AwsPlace, service: str, quick: bool = False) -> BaseClient:
    """A client of `service` in the place's region, with the bot's credentials (from Settings: hardening
    has removed them from the environment), botocore's standard retries (throttling included) and,
    `quick`, short timeouts for the checks at start."""
    from bot.aws import aws_client

    return aws_client(
        settings,
        service,
        region=place.region,
        endpoint_url=place.endpoint_url,
        attempts=2 if quick else 8,
        connect_timeout=3 if quick else 10,
        read_timeout=5 if quick else 60,
    )


def unavailable(
    settings: Settings, service: str, place: Callable[[], AwsPlace], lacks: Callable[[AwsPlace], str | None]
) -> str | None:
    """Why an AWS tier cannot run here, or None: boto3 missing, its options (`place` raises TierbotError
    naming each bad one), the artifact store not in S3, or what `lacks` finds missing in AWS."""
    try:
        import boto3  # noqa: F401 (only whether it imports)
    except ImportError:
        return NOT_INSTALLED
    try:
        options = place()
    except TierbotError as exc:
        return str(exc)
    if not (settings.artifact_store or "").startswith("s3://"):
        return not_s3(service)
    return answers(options, lambda: lacks(options))


def answers(place: AwsPlace, check: Callable[[], str | None]) -> str | None:
    """What `check` finds missing in AWS, or why AWS could not be asked (no credentials, refused,
    unreachable); None when all is there."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return check()
    except NoCredentialsError:
        return f"{place.where}: tierbot has no AWS credentials (AWS_ACCESS_KEY_ID, or an instance role)"
    except ClientError as exc:
        return f"{place.where} refused: {short(exc)}"
    except BotoCoreError as exc:
        return f"{place.where} cannot be reached: {short(exc)}"


def role_lacks(settings: Settings, place: AwsPlace, arn: str, what: str, option: str) -> str | None:
    """Whether the role exists (`what` it is, and the `option` that names it, for people). A bot that
    may not read roles (no iam:GetRole) does not know, and does not refuse for it."""
    from botocore.exceptions import ClientError

    try:
        client(settings, place, "iam", quick=True).get_role(RoleName=arn.rsplit("/", 1)[-1])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "NoSuchEntity":
            return f"{what} {arn} ({option}) does not exist"
        if code not in _ACCESS_DENIED:
            raise
    return None


def untrusted(tier: Tier, service: str) -> str:
    """A remote job is no sandbox for a fork's code: it has the network, and the tier's role."""
    return (
        f"code from outside the repository (a fork's) does not run on {service} tiers: tier {tier.name!r} "
        "gives the job the network and its role's AWS access"
    )


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
