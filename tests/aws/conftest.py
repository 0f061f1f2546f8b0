"""What the AWS Batch tests share: jobs in real git checkouts, and a look into the bucket.

The server, its queue, the job image and the settings are the `aws` and `batch_settings` fixtures of
tests/fakes/moto_aws.py; every test here also needs the Docker Engine moto's Batch runs containers on.
"""

import dataclasses
from pathlib import Path

from bot.backends import Job
from bot.tiers import Tier
from tests.conftest import GitRepo
from tests.docker.conftest import docker_job
from tests.fakes.local_backend import RecordingWatcher


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    """A committed checkout with these files, as the worker's (a git clone: its tree names the bundle)."""
    repo = GitRepo(tmp_path / "checkout")
    repo.commit(files, "the experiment")
    return repo.path


def batch_job(workdir: Path, command: str, tier: Tier, outputs: str | None = None, **fields) -> Job:
    """The docker tests' job (a run id of its own: its Batch job's name and tags are this test's alone),
    with the outputs directory a remote job sends back."""
    return dataclasses.replace(docker_job(workdir, command, tier, **fields), outputs=outputs)


class CancelsOn(RecordingWatcher):
    """A watcher whose run is cancelled once the job has printed `line`: the job is then surely running."""

    def __init__(self, line: str):
        super().__init__()
        self.line = line

    def cancelled(self) -> bool:
        return self.line in self.lines


def job_id_of(lines: list[str]) -> str:
    """The Batch job's id, from the line the backend logs when it submits it."""
    line = next(line for line in lines if line.startswith("[tierbot: submitted AWS Batch job "))
    return line.split()[5]


def store_of(settings) -> tuple[str, str]:
    """(bucket, prefix) of the settings' artifact store."""
    bucket, _, prefix = settings.artifact_store.removeprefix("s3://").partition("/")
    return bucket, prefix


def bundle_keys(aws, settings) -> set[str]:
    """Every key under the store's bundles/, relative to it: `code/<tree>.v1.tar.gz`, `entrypoint/…`."""
    bucket, prefix = store_of(settings)
    pages = (
        aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/bundles/")
    )
    return {
        item["Key"].removeprefix(f"{prefix}/bundles/") for page in pages for item in page.get("Contents", [])
    }


def tags_of(aws, settings, relative: str) -> dict[str, str]:
    bucket, prefix = store_of(settings)
    found = aws.client("s3").get_object_tagging(Bucket=bucket, Key=f"{prefix}/bundles/{relative}")["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in found}


def sagemaker_tier(aws, name: str = "sm", runtime: str = "2m", **options) -> Tier:
    """A sagemaker tier on the session's server, with its job image and role unless `options` say not."""
    from tests.fakes.moto_aws import REGION

    base = {
        "region": REGION, "role_arn": aws.job_role, "image": aws.image, "instance_type": "ml.m5.large",
        "endpoint_url": aws.endpoint,
    }  # fmt: skip
    chosen = {k: v for k, v in (base | options).items() if v is not None}
    return Tier(name=name, backend="sagemaker", max_runtime=runtime, backend_options=chosen)


def training_job_of(lines: list[str]) -> str:
    """The last training job's name, from the line the backend logs when it creates one."""
    line = [line for line in lines if line.startswith("[tierbot: created SageMaker training job ")][-1]
    return line.split()[5]
