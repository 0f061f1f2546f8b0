"""A repository's environment image pushed to ECR: moto's ECR hands out the token, the machine's Docker
Engine logs in with it and pushes to a real registry on loopback (tests/fakes/registry.py), once per
image hash. And an AWS Batch tier runs the pushed image."""

import contextlib

import docker
import pytest

from bot.backends import ecr as ecr_module
from bot.backends.batch import BatchBackend
from bot.backends.docker_image import environment_image
from bot.backends.docker_options import LABEL_INSTANCE, LABEL_RUN, DockerOptions
from bot.backends.ecr import PushFailed, pushed_image, registry_of
from bot.backends.process import LogSink
from tests.fakes.local_backend import RecordingWatcher

from .conftest import batch_job, checkout

pytestmark = [pytest.mark.aws, pytest.mark.docker]


@pytest.fixture
def engine():
    client = docker.from_env(timeout=120)
    yield client
    client.close()


def _built(engine, aws, tmp_path, line: str):
    """A repository's Dockerfile built by the docker backend: (its job, its local tag)."""
    work = checkout(tmp_path, {"Dockerfile": f"FROM {aws.image}\nRUN echo {line} > /built.txt\n"})
    job = batch_job(work, "true", aws.tier(image=None), dockerfile=work / "Dockerfile")
    labels = {LABEL_RUN: str(job.run_id), LABEL_INSTANCE: "test-ecr"}
    with LogSink(job.log_path, job.max_log_bytes, lambda _line: None) as sink:
        local = environment_image(
            engine, job, DockerOptions(build_network="host"), labels, sink, RecordingWatcher()
        )
    return job, local


def _push(engine, aws, ecr, job, local) -> tuple[str, list[str]]:
    watcher = RecordingWatcher()
    with LogSink(job.log_path, job.max_log_bytes, watcher.log) as sink:
        uri = pushed_image(engine, aws.client("ecr"), ecr.repository, local, sink)
    return uri, watcher.lines


def _removed(engine, *tags: str) -> None:
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)


def test_an_image_is_pushed_once_by_its_hash(aws, ecr, engine, tmp_path):
    job, local = _built(engine, aws, tmp_path, "pushed-once")
    digest = local.split(":")[1]
    mark = aws.wire.mark()
    try:
        uri, said = _push(engine, aws, ecr, job, local)
        assert uri == f"{ecr.registry.host}/{ecr.repository}:{digest}"
        assert f"[tierbot: pushing the environment image to {uri}]" in said
        assert any(line.startswith(f"[tierbot: pushed {uri} (sha256:") for line in said)
        assert ecr.registry.manifest(ecr.repository, digest) is not None  # in the registry itself
        labels = engine.images.get(uri).labels  # the image carries the run that built it
        assert labels[LABEL_RUN] == str(job.run_id) and labels[LABEL_INSTANCE] == "test-ecr"
        asked = [c.operation for c in aws.wire.since(mark) if c.service == "ecr"]
        assert asked == ["getauthorizationtoken"]

        again, said = _push(engine, aws, ecr, job, local)  # the same process remembers it
        assert again == uri and said == [f"[tierbot: the environment image is in ECR already: {uri}]"]

        ecr_module._pushed.clear()  # as a bot restarted: the registry is asked, and has it
        engine.images.remove(uri)
        again, said = _push(engine, aws, ecr, job, local)
        assert again == uri and said == [f"[tierbot: the environment image is in ECR already: {uri}]"]
    finally:
        _removed(engine, local, f"{ecr.registry.host}/{ecr.repository}:{digest}")


def test_the_token_is_what_logs_the_engine_in(aws, ecr, engine):
    registry = registry_of(aws.client("ecr"))
    assert registry.endpoint == ecr.registry.endpoint and registry.username == "AWS"
    with pytest.raises(docker.errors.APIError, match="401|unauthorized"):
        engine.login("AWS", "not-the-token", registry=registry.endpoint, reauth=True)


def test_a_push_to_a_repository_that_refuses_fails_in_words(aws, ecr, engine, tmp_path):
    job, local = _built(engine, aws, tmp_path, "refused")
    try:
        with pytest.raises(PushFailed, match=r"^could not ask 127\.0\.0\.1:\d+ for .*NOT-A-NAME"):
            _push(engine, aws, ecr.__class__(ecr.registry, "NOT-A-NAME"), job, local)
    finally:
        _removed(engine, local)


def test_a_batch_tier_runs_the_repositorys_image_from_ecr(aws, ecr, batch_settings, engine, tmp_path):
    dockerfile = f"FROM {aws.image}\nRUN echo built for ECR > /built.txt\n"
    work = checkout(tmp_path, {"Dockerfile": dockerfile, "make.py": "print(open('/built.txt').read())\n"})
    tier = aws.tier(image=None, build_network="host", ecr_repository=ecr.repository)
    mark = aws.wire.mark()
    job = batch_job(work, "python3 make.py", tier, dockerfile=work / "Dockerfile")
    outcome = BatchBackend(batch_settings).run(job, RecordingWatcher())
    registered = next(c.params for c in aws.wire.since(mark) if c.operation == "registerjobdefinition")
    image = registered["containerProperties"]["image"]
    try:
        assert outcome.state == "succeeded", outcome.log_tail
        assert "built for ECR" in outcome.log_tail
        assert image.startswith(f"{ecr.registry.host}/{ecr.repository}:")
        assert ecr.registry.manifest(ecr.repository, image.rsplit(":", 1)[1]) is not None
        assert registered["tags"] == {
            "tierbot:instance": batch_settings.docker_instance,
            "tierbot:run": str(job.run_id),
        }
    finally:
        _removed(engine, image, f"tierbot-env:{image.rsplit(':', 1)[1]}")


def test_a_dockerfile_on_a_batch_tier_without_a_repository_is_refused_in_words(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"Dockerfile": f"FROM {aws.image}\n", "make.py": "print('never')\n"})
    job = batch_job(work, "python3 make.py", aws.tier(image=None), dockerfile=work / "Dockerfile")
    outcome = BatchBackend(batch_settings).run(job, RecordingWatcher())
    assert (outcome.state, outcome.reason) == (
        "failed",
        "tier 'aws' has no ECR repository to push the repository's Dockerfile (environment.dockerfile) "
        "to once built, and AWS Batch pulls a job's image from a registry: set "
        "backend_options.ecr_repository",
    )
