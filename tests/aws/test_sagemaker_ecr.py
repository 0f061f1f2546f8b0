"""A repository's Dockerfile on a SageMaker tier: built on the machine's Docker Engine, pushed to moto's
ECR (whose images go to the local registry of tests/fakes/registry.py) once per image hash, and pulled
from there by the training job (tests/fakes/moto_sagemaker.py); the tier's ECR repository checked at
start; and what SageMaker would refuse of a job (its name, its hyperparameters) failing the run in words
before anything is built or created."""

import contextlib
import dataclasses
import re

import docker
import pytest

from bot.backends import availability
from bot.backends.sagemaker import SageMakerBackend, over_limits
from tests.fakes.local_backend import RecordingWatcher

from .conftest import batch_job, checkout, sagemaker_tier

pytestmark = [pytest.mark.aws, pytest.mark.docker]

SHOW = "print(open('/built.txt').read().strip())\n"


def _created(aws, mark: int) -> list[dict]:
    return [c.params for c in aws.wire.since(mark) if c.operation == "createtrainingjob"]


def _run(aws, settings, job) -> tuple:
    """(the outcome, the run's log lines, the CreateTrainingJob requests) of one run of the job."""
    watcher = RecordingWatcher()
    mark = aws.wire.mark()
    outcome = SageMakerBackend(settings).run(job, watcher)
    return outcome, watcher.lines, _created(aws, mark)


def _refused(aws, settings, job) -> str:
    """Why the run failed before any training job was created."""
    outcome, _lines, created = _run(aws, settings, job)
    assert (outcome.state, outcome.exit_code, created) == ("failed", None, []), outcome.log_tail
    return outcome.reason


def _starting(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def test_a_dockerfile_runs_on_a_sagemaker_tier_built_once_and_pushed_once(aws, ecr, batch_settings, tmp_path):
    dockerfile = f"FROM {aws.image}\nRUN echo built for SageMaker > /built.txt\n"
    work = checkout(tmp_path, {"Dockerfile": dockerfile, "show.py": SHOW})
    tier = sagemaker_tier(aws, image=None, build_network="host", ecr_repository=ecr.repository)
    engine = docker.from_env(timeout=120)
    uri = ""
    try:
        first = batch_job(work, "python3 show.py", tier, dockerfile=work / "Dockerfile")
        outcome, lines, created = _run(aws, batch_settings, first)
        assert outcome.state == "succeeded", outcome.log_tail
        assert "built for SageMaker" in lines
        [asked] = created
        uri = asked["AlgorithmSpecification"]["TrainingImage"]
        digest = uri.rsplit(":", 1)[1]
        assert uri == f"{ecr.registry.host}/{ecr.repository}:{digest}"
        assert ecr.registry.manifest(ecr.repository, digest) is not None  # in the registry itself
        assert len(_starting(lines, "[tierbot: building the environment image tierbot-env:")) == 1
        assert _starting(lines, "[tierbot: pushing the environment image") == [
            f"[tierbot: pushing the environment image to {uri}]"
        ]
        assert "TIERBOT_REQUIREMENTS" not in asked["HyperParameters"]  # the Dockerfile is the environment

        # The engine forgets the pushed tag: the second job runs only if it pulls the image from ECR.
        engine.images.remove(uri)
        second = batch_job(work, "python3 show.py", tier, dockerfile=work / "Dockerfile")
        outcome, lines, created = _run(aws, batch_settings, second)
        assert outcome.state == "succeeded", outcome.log_tail
        assert "built for SageMaker" in lines
        assert [c["AlgorithmSpecification"]["TrainingImage"] for c in created] == [uri]
        assert _starting(lines, "[tierbot: building the environment image") == []
        assert _starting(lines, "[tierbot: pushing") == []
        assert f"[tierbot: the environment image is in ECR already: {uri}]" in lines
        assert engine.images.get(uri).id == engine.images.get(f"tierbot-env:{digest}").id  # pulled back
    finally:
        for tag in (uri, f"tierbot-env:{uri.rsplit(':', 1)[-1]}") if uri else ():
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(tag, force=True)
        engine.close()


def test_a_dockerfile_on_a_sagemaker_tier_without_a_repository_is_refused_in_words(
    aws, batch_settings, tmp_path
):
    work = checkout(tmp_path, {"Dockerfile": f"FROM {aws.image}\n", "show.py": "print('never')\n"})
    job = batch_job(work, "python3 show.py", sagemaker_tier(aws), dockerfile=work / "Dockerfile")
    assert _refused(aws, batch_settings, job) == (
        "tier 'sm' has no ECR repository to push the repository's Dockerfile (environment.dockerfile) to "
        "once built, and SageMaker pulls a job's image from a registry: set backend_options.ecr_repository"
    )
    assert "[tierbot: building" not in job.log_path.read_text()


def test_a_sagemaker_tiers_ecr_repository_is_checked_at_start(aws, ecr, batch_settings):
    dockerfiles_only = sagemaker_tier(aws, image=None, ecr_repository=ecr.repository)
    assert availability(dockerfiles_only, batch_settings) is None
    unknown = sagemaker_tier(aws, ecr_repository="nobody-made-it")
    assert availability(unknown, batch_settings) == (
        "the ECR repository nobody-made-it (backend_options.ecr_repository) is not in SageMaker in "
        f"us-east-1 at {aws.endpoint}"
    )
    assert availability(sagemaker_tier(aws, name="bare", image=None), batch_settings) == (
        "tier 'bare' has no image to run: give backend_options image (for repositories without a "
        "Dockerfile), ecr_repository (for those with one, built and pushed there), or both"
    )


def test_a_tier_for_dockerfiles_only_refuses_a_repository_without_one(aws, ecr, batch_settings, tmp_path):
    work = checkout(tmp_path, {"show.py": "print('never')\n"})
    tier = sagemaker_tier(aws, image=None, ecr_repository=ecr.repository)
    assert _refused(aws, batch_settings, batch_job(work, "python3 show.py", tier)) == (
        "tier 'sm' has no image (backend_options.image) for repositories without a Dockerfile, and this "
        "one names none (environment.dockerfile in tierbot.yaml)"
    )


def test_a_run_command_past_sagemakers_limit_fails_in_words(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"show.py": "print('never')\n"})
    command = "python3 show.py " + "--flag " * 360  # 2,536 characters
    assert _refused(aws, batch_settings, batch_job(work, command, sagemaker_tier(aws))) == (
        f"run.command is {len(command):,} characters, and SageMaker takes at most 2,500 in the "
        "hyperparameter that carries it to the job: put the command in a script in the repository, and "
        "run that (run.command: sh run.sh)"
    )


def test_too_many_variables_for_sagemakers_hyperparameters_fail_in_words(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"show.py": "print('never')\n"})
    job = batch_job(work, "python3 show.py", sagemaker_tier(aws))
    job.env |= {f"SETTING_{i}": "1" for i in range(100)}
    reason = _refused(aws, batch_settings, job)
    assert re.fullmatch(
        r"the job has 10\d variables, and SageMaker takes at most 100 hyperparameters, which carry them to "
        r"the job: give it fewer variables",
        reason,
    ), reason


def test_a_training_job_name_past_sagemakers_limit_fails_in_words(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"show.py": "print('never')\n"})
    job = dataclasses.replace(batch_job(work, "python3 show.py", sagemaker_tier(aws)), run_id=10**30)
    reason = _refused(aws, batch_settings, job)
    prefix = f"tierbot-{batch_settings.docker_instance}-run-{10**30}-"
    assert re.fullmatch(
        rf"the training job's name {prefix}[0-9a-f]{{8}} would be 68 characters, and SageMaker takes at "
        r"most 63: set a shorter TIERBOT_DOCKER_INSTANCE \(which names the job\)",
        reason,
    ), reason


def test_a_presigned_url_past_the_limit_says_how_to_shorten_it():
    long_url = "https://bucket.s3.amazonaws.com/" + "k" * 2_500
    assert over_limits("tierbot-a-run-1-0123abcd", {"TIERBOT_BUNDLE_URL": long_url, "A": "b"}) == (
        "the job's variable TIERBOT_BUNDLE_URL is 2,532 characters, and SageMaker takes at most 2,500 in "
        "the hyperparameter that carries it to the job: it is a presigned URL of the artifact store: a "
        "shorter TIERBOT_ARTIFACT_STORE prefix, or AWS credentials without a session token, make it shorter"
    )
    assert over_limits("tierbot-a-run-1-0123abcd", {"A": "b" * 2_500}) is None  # at the limit: taken
