"""The whole pipeline on an AWS Batch tier (moto's, on loopback): submit → worker → bundle → job →
outputs → compare; a job that fails; tiers whose options cannot work; the reaper after a crash."""

import json
import time
from pathlib import Path

import pytest

from bot.backends import reap
from bot.errors import TierUnavailable
from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.settings import Settings
from bot.store import RunState
from bot.worker import Worker
from tests.conftest import GitRepo, better_against_main

from .conftest import bundle_keys, store_of

pytestmark = [pytest.mark.aws, pytest.mark.docker]


def with_tiers(settings: Settings, tmp_path: Path, *tiers: dict) -> Settings:
    """The settings with a tiers file of these tiers (the first is the default). JSON is YAML."""
    listed = [tiers[0] | {"default": True}, *tiers[1:]]
    (tmp_path / "tiers.yaml").write_text(json.dumps({"tiers": listed}))
    return settings.model_copy(update={"tiers_file": tmp_path / "tiers.yaml"})


def batch_tier(aws, name: str = "aws", **options) -> dict:
    tier = aws.tier(name=name, **options)
    return {"name": name, "backend": "batch", "memory": "512MiB", "max_runtime": "2m",
            "backend_options": tier.backend_options}  # fmt: skip


def work_off(pipeline: Pipeline) -> None:
    worker = Worker(pipeline)
    while worker.run_once():
        pass


def test_a_comparison_on_a_batch_tier_end_to_end(aws, batch_settings, simple_repo, tmp_path):
    settings = with_tiers(batch_settings, tmp_path, batch_tier(aws))
    pipeline = Pipeline(settings)
    assert pipeline.tiers.get("aws").unavailable is None
    comparison, head = better_against_main(pipeline, simple_repo)
    assert (head.state, head.exit_code, head.tier, head.reason) == (
        RunState.succeeded,
        0,
        "aws",
        "2 output files",
    )
    assert {o.path for o in pipeline.outputs(head.id)} == {"metrics.json", "notes.txt"}
    log = pipeline.artifacts.read_text(head.log_path)
    assert "done, accuracy 0.95" in log and "[tierbot: submitted AWS Batch job" in log
    assert list((settings.data_dir / "remote").iterdir()) == []  # the received outputs are removed
    keys = bundle_keys(aws, settings)
    assert sum(key.startswith("code/") for key in keys) == 2  # main's tree and the branch's
    assert [key for key in keys if key.startswith("outputs/")] == []
    jobs = aws.client("batch").list_jobs(
        jobQueue=aws.queue,
        filters=[{"name": "JOB_NAME", "values": [f"tierbot-{settings.docker_instance}-run-*"]}],
    )["jobSummaryList"]
    assert sorted(job["status"] for job in jobs) == ["SUCCEEDED", "SUCCEEDED"]


FAILING = {
    "tierbot.yaml": "name: failing\nrun:\n  command: python fail.py\n  outputs: out\n",
    "fail.py": "import sys\nprint('loading data')\nprint('about to fail', flush=True)\nsys.exit(3)\n",
}


def test_a_failing_job_reports_its_exit_code_and_last_lines(aws, batch_settings, tmp_path):
    repo = GitRepo(tmp_path / "failing")
    repo.commit(FAILING, "fails")
    pipeline = Pipeline(with_tiers(batch_settings, tmp_path, batch_tier(aws)))
    run = pipeline.submit(RunRequest(repository=str(repo.path), ref="main")).head
    work_off(pipeline)
    run = pipeline.run(run.id)
    assert (run.state, run.exit_code, run.reason) == (RunState.failed, 3, "exit code 3")
    assert run.log_tail.splitlines()[-2:] == ["loading data", "about to fail"]
    assert "about to fail" in pipeline.artifacts.read_text(run.log_path)


def test_tiers_whose_options_cannot_work_are_unavailable_with_the_reason(aws, batch_settings, tmp_path):
    tiers = [
        batch_tier(aws, "fine"),
        batch_tier(aws, "no-queue", job_queue="nowhere"),
        batch_tier(aws, "no-role", job_role_arn="arn:aws:iam::123456789012:role/nobody-made-it"),
        batch_tier(aws, "no-definition", image=None, job_definition="never-registered"),
        batch_tier(aws, "typo", job_queu="x"),
        batch_tier(aws, "both", job_definition="x:1"),
        batch_tier(aws, "region", region="mars"),
        batch_tier(aws, "half-cpu") | {"cpus": 0.5},
        {k: v for k, v in batch_tier(aws, "no-memory").items() if k != "memory"},
        batch_tier(aws, "role-ok", job_role_arn=aws.job_role),
    ]
    pipeline = Pipeline(with_tiers(batch_settings, tmp_path, *tiers))
    reasons = {tier.name: tier.unavailable for tier in pipeline.tiers.tiers}
    queue = f"AWS Batch in us-east-1 at {aws.endpoint}"
    assert reasons == {
        "fine": None,
        "no-queue": f"the job queue nowhere (backend_options.job_queue) is not in {queue}",
        "no-role": "the job role arn:aws:iam::123456789012:role/nobody-made-it "
        "(backend_options.job_role_arn) does not exist",
        "no-definition": "the job definition never-registered (backend_options.job_definition) is not "
        f"active in {queue}",
        "typo": reasons["typo"],
        "both": "tier 'both': give backend_options image or job_definition, not both (a job definition names "
        "its own image)",
        "region": reasons["region"],
        "half-cpu": "tier 'half-cpu' asks for 0.5 CPUs: AWS Batch on EC2 takes whole vCPUs",
        "no-memory": "tier 'no-memory' gives no memory: AWS Batch reserves it (memory: 4GiB)",
        "role-ok": None,
    }
    assert reasons["typo"].startswith("tier 'typo' has invalid backend_options: job_queu")
    assert (
        reasons["region"]
        == "tier 'region' has invalid backend_options: region: 'mars' is not an AWS region (e.g. us-east-1)"
    )
    with pytest.raises(TierUnavailable, match="Tier 'no-queue' is unavailable: the job queue nowhere"):
        pipeline.tiers.choose("no-queue", RunRequest(repository="x", ref="main").requester)


def test_batch_tiers_need_the_artifact_store_on_s3(aws, settings, tmp_path):
    pipeline = Pipeline(with_tiers(settings, tmp_path, batch_tier(aws)))
    assert pipeline.tiers.get("aws").unavailable == (
        "AWS Batch tiers send the code and the outputs through the artifact store: set "
        "TIERBOT_ARTIFACT_STORE to s3://bucket/prefix"
    )


def test_the_reaper_stops_the_jobs_of_runs_that_are_not_running(aws, batch_settings, tmp_path):
    settings = with_tiers(batch_settings, tmp_path, batch_tier(aws)).model_copy(
        update={"bundle_retention_seconds": 0}
    )
    pipeline = Pipeline(settings)
    batch, instance = aws.client("batch"), settings.docker_instance
    definition = batch.register_job_definition(
        jobDefinitionName=f"orphans-{instance}", type="container",
        containerProperties={"image": aws.image, "vcpus": 1, "memory": 128, "command": ["sleep", "300"]},
    )["jobDefinitionArn"]  # fmt: skip

    def submit(run_id: int) -> str:  # as a bot that crashed left it
        return batch.submit_job(
            jobName=f"tierbot-{instance}-run-{run_id}", jobQueue=aws.queue, jobDefinition=definition,
            tags={"tierbot:run": str(run_id), "tierbot:instance": instance},
        )["jobId"]  # fmt: skip

    orphan, alive = submit(777), submit(778)
    bucket, prefix = store_of(settings)
    used = f"tierbot%3Ainstance={instance}&tierbot%3Aused=1"  # a while ago
    bundles = {f"{prefix}/bundles/code/{run}.v1.tar.gz": f"tierbot%3Arun={run}&{used}" for run in (777, 778)}
    bundles[f"{prefix}/bundles/outputs/{instance}-run-777-0123456789ab.tar.gz"] = ""
    bundles[f"{prefix}/bundles/code/another.v1.tar.gz"] = "tierbot%3Arun=1&tierbot%3Ainstance=another-bot"
    for key, tagging in bundles.items():
        aws.client("s3").put_object(Bucket=bucket, Key=key, Body=b"left by a crashed bot", Tagging=tagging)
    try:
        done = reap(pipeline.tiers, settings, is_running=lambda run: run == 778)
        assert done[f"AWS Batch in us-east-1 at {aws.endpoint}, queue {aws.queue}"] == [
            f"tierbot-{instance}-run-777"
        ]
        assert done[f"bundles in {settings.artifact_store}"] == [
            f"{prefix}/bundles/code/777.v1.tar.gz",
            f"{prefix}/bundles/outputs/{instance}-run-777-0123456789ab.tar.gz",
        ]  # not 778's while it runs, nor another installation's
        assert aws.job(orphan)["statusReason"] == "tierbot: run 777 is not running"
        assert aws.job(alive)["status"] in ("RUNNABLE", "STARTING", "RUNNING")
        Worker(pipeline).run_once()  # at start, as after a restart: run 778 is not running either
        assert _ended(aws, alive)["statusReason"] == "tierbot: run 778 is not running"
    finally:
        for job_id in (orphan, alive):
            batch.terminate_job(jobId=job_id, reason="the test is over")
    assert _ended(aws, orphan)["status"] == "FAILED"


def _ended(aws, job_id: str) -> dict:
    for _ in range(100):
        described = aws.job(job_id)
        if described["status"] in ("SUCCEEDED", "FAILED"):
            return described
        time.sleep(0.2)
    raise AssertionError(f"the job {job_id} did not end: {described['status']}")
