"""S3 on loopback (a pytest plugin, see tests/conftest.py): moto's server in a thread on 127.0.0.1, and a
fresh bucket per test that boto3 reaches over HTTP as any S3-compatible endpoint, with dummy credentials.

Fixtures: `s3_endpoint` (the server's URL, one per session), `s3_bucket` (a new bucket, and a client to
look into it as an operator would).
"""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bot.settings import Settings

DUMMY = SecretStr("testing")  # moto accepts any credentials; these are never anyone's


@dataclass
class S3Bucket:
    endpoint: str
    name: str
    client: object  # a boto3 S3 client, on the same endpoint as the bot's

    def store(self, settings: Settings, prefix: str = "tierbot") -> Settings:
        """`settings` with the artifact store in this bucket, under `prefix`."""
        return settings.model_copy(
            update={
                "artifact_store": f"s3://{self.name}/{prefix}",
                "aws_endpoint_url": self.endpoint,
                "aws_access_key_id": DUMMY,
                "aws_secret_access_key": DUMMY,
            }
        )

    def keys(self, prefix: str = "") -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> S3Bucket:
    import boto3

    secret = DUMMY.get_secret_value()
    client = boto3.session.Session().client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id=secret, aws_secret_access_key=secret
    )
    name = f"tierbot-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return S3Bucket(endpoint=s3_endpoint, name=name, client=client)
