"""The whole pipeline on a SageMaker tier (moto's, on loopback, its jobs played on the Docker Engine):
submit → worker → bundle → training job → outputs → compare; tiers whose options cannot work; the reaper
after a crash."""

import time

import pytest

from bot.backends import reap
from bot.backends.sagemaker import ARGUMENTS, ENTRYPOINT
from bot.pipeline import Pipeline
from bot.store import RunState
from bot.worker import Worker

from ..conftest import better_against_main
from .conftest import sagemaker_tier
from .test_batch_pipeline import with_tiers

pytestmark = [pytest.mark.aws, pytest.mark.docker]


def tier_of(aws, name: str = "sm", **options) -> dict:
    tier = sagemaker_tier(aws, name=name, **options)
    return {"name": name, "backend": "sagemaker", "max_runtime": "2m", "cost_per_hour": 3.6,
            "backend_options": tier.backend_options}  # fmt: skip


def test_a_comparison_on_a_sagemaker_tier_end_to_end(aws, batch_settings, simple_repo, tmp_path):
    pipeline = Pipeline(with_tiers(batch_settings, tmp_path, tier_of(aws)))
    assert pipeline.tiers.get("sm").unavailable is None
    comparison, head = better_against_main(pipeline, simple_repo)
    assert (head.state, head.exit_code, head.tier) == (RunState.succeeded, 0, "sm")
    assert {o.path for o in pipeline.outputs(head.id)} == {"metrics.json", "notes.txt"}
    log = pipeline.artifacts.read_text(head.log_path)
    assert "done, accuracy 0.95" in log and "[tierbot: created SageMaker training job" in log
    name = next(line.split()[5] for line in log.splitlines() if "created SageMaker training job" in line)
    billed = aws.client("sagemaker").describe_training_job(TrainingJobName=name)["BillableTimeInSeconds"]
    assert head.actual_cost == pytest.approx(billed / 3600 * 3.6)  # what SageMaker bills, at the tier's price


def test_tiers_whose_options_cannot_work_are_unavailable_with_the_reason(aws, batch_settings, tmp_path):
    tiers = [
        tier_of(aws, "fine"),
        tier_of(aws, "typo", instance_type="ml.m5.xlarg"),
        tier_of(aws, "no-role", role_arn=None),
        tier_of(aws, "unknown-role", role_arn="arn:aws:iam::123456789012:role/nobody-made-it"),
        tier_of(aws, "short-wait", spot=True, max_wait="1m"),
    ]
    pipeline = Pipeline(with_tiers(batch_settings, tmp_path, *tiers))
    reasons = {tier.name: tier.unavailable for tier in pipeline.tiers.tiers}
    assert reasons == {
        "fine": None,
        "typo": "tier 'typo' has invalid backend_options: instance_type: 'ml.m5.xlarg' is not a SageMaker "
        "training instance type; did you mean ml.m5.xlarge or ml.m5.4xlarge or ml.m5.2xlarge?",
        "no-role": "tier 'no-role' has invalid backend_options: role_arn: required, but missing",
        "unknown-role": "the role arn:aws:iam::123456789012:role/nobody-made-it (backend_options.role_arn) "
        "does not exist",
        "short-wait": "tier 'short-wait': backend_options.max_wait must be at least the tier's max_runtime "
        "(a spot job's wait includes its run)",
    }


def test_the_reaper_stops_the_training_jobs_of_runs_that_are_not_running(aws, batch_settings, tmp_path):
    settings = with_tiers(batch_settings, tmp_path, tier_of(aws))
    pipeline = Pipeline(settings)
    sagemaker, instance = aws.client("sagemaker"), settings.docker_instance

    def create(run_id: int) -> str:  # as a bot that crashed left it
        name = f"tierbot-{instance}-run-{run_id}-0123abcd"
        sagemaker.create_training_job(
            TrainingJobName=name, RoleArn=aws.job_role,
            AlgorithmSpecification={
                "TrainingImage": aws.image, "TrainingInputMode": "File",
                "ContainerEntrypoint": ["sleep"], "ContainerArguments": ["300"],
            },
            OutputDataConfig={"S3OutputPath": "s3://nowhere/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 600},
            Tags=[
                {"Key": "tierbot:run", "Value": str(run_id)}, {"Key": "tierbot:instance", "Value": instance}
            ],
        )  # fmt: skip
        return name

    orphan, alive = create(777), create(778)
    done = reap(pipeline.tiers, settings, is_running=lambda run: run == 778)
    assert done[f"SageMaker in us-east-1 at {aws.endpoint}"] == [orphan]
    assert _ended(sagemaker, orphan) == ("Stopped", "Stopped")
    assert sagemaker.describe_training_job(TrainingJobName=alive)["TrainingJobStatus"] == "InProgress"
    Worker(pipeline).run_once()  # at start, as after a restart: run 778 is not running either
    assert _ended(sagemaker, alive) == ("Stopped", "Stopped")


def _ended(sagemaker, name: str) -> tuple[str, str]:
    for _ in range(100):
        described = sagemaker.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described["TrainingJobStatus"], described["SecondaryStatus"]
        time.sleep(0.2)
    raise AssertionError(f"the training job {name} did not end: {described['TrainingJobStatus']}")


def test_the_bootstrap_fits_sagemakers_limits():
    assert all(len(part) <= 256 for part in ENTRYPOINT + ARGUMENTS) and len(ARGUMENTS) <= 100
