"""boto3 clients, made one way for every part of tierbot that speaks to AWS (the S3 artifact store, the
Batch backend): the bot's credentials from Settings (`harden` has removed them from the environment by
then), botocore's standard retry mode (throttling and 5xx, with backoff and jitter), and a session of
their own (boto3's default session is not safe to share between threads). boto3 is `tierbot[aws]`:
import this module only where AWS is used."""

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from bot.settings import Settings


def aws_client(
    settings: Settings,
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    attempts: int = 5,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    **config,
) -> BaseClient:
    secret = lambda value: value.get_secret_value() if value else None  # noqa: E731
    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=secret(settings.aws_access_key_id),
        aws_secret_access_key=secret(settings.aws_secret_access_key),
        aws_session_token=secret(settings.aws_session_token),
        config=Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            **config,
        ),
    )
