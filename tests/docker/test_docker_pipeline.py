"""The whole pipeline on a docker tier: submit → worker → container → outputs copied out → compare."""

from pathlib import Path

import pytest

from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.store import RunState
from bot.worker import Worker

from ..conftest import better_against_main
from .conftest import BASE_IMAGE

pytestmark = pytest.mark.docker

TIERS = f"""\
tiers:
  - name: box
    backend: docker
    memory: 512MiB
    max_runtime: 2m
    default: true
    backend_options: {{image: "{BASE_IMAGE}"}}
"""


def test_a_comparison_on_a_docker_tier_end_to_end(engine, docker_settings, simple_repo, tmp_path):
    (tmp_path / "tiers.yaml").write_text(TIERS)
    settings = docker_settings.model_copy(update={"tiers_file": tmp_path / "tiers.yaml"})
    pipeline = Pipeline(settings)
    comparison, head = better_against_main(pipeline, simple_repo)
    assert (head.state, head.exit_code, head.tier) == (RunState.succeeded, 0, "box")
    assert head.reason == "2 output files"
    assert {o.path for o in pipeline.outputs(head.id)} == {"metrics.json", "notes.txt"}
    log = Path(head.log_path).read_text()
    assert "done, accuracy 0.95" in log and "[tierbot: " in log and "environment image tierbot-env:" in log
    assert list((settings.data_dir / "containers").iterdir()) == []  # the copied-out workdirs are removed
    for run_id in (comparison.head_run_id, comparison.base_run_id):
        labels = [f"tierbot.run={run_id}", f"tierbot.instance={settings.docker_instance}"]
        assert engine.api.containers(all=True, filters={"label": labels}) == []


SANDBOXED = f"""\
tiers:
  - name: cpu
    default: true
  - name: box
    backend: docker
    memory: 512MiB
    max_runtime: 2m
    backend_options: {{image: "{BASE_IMAGE}"}}
"""


def test_a_forks_approved_commit_and_its_baseline_run_in_the_sandbox_tier(
    engine, docker_settings, simple_repo, tmp_path
):
    (tmp_path / "tiers.yaml").write_text(SANDBOXED)
    update = {"tiers_file": tmp_path / "tiers.yaml", "sandbox_tier": "box"}
    pipeline = Pipeline(docker_settings.model_copy(update=update))
    fork = RunRequest(
        repository=str(simple_repo.path), ref="better", base="main", tier="cpu", trusted=False, subject="pr-9"
    )
    submission = pipeline.submit(fork)
    head, base = pipeline.run(submission.head.id), pipeline.run(submission.base.id)
    assert (head.state, head.tier, head.trusted) == (RunState.waiting, "box", False)  # asked: cpu, local
    assert (base.tier, base.trusted) == ("box", True)  # alike on both sides, so they compare
    pipeline.approvals.approve("pr-9", head.sha, by="maintainer")
    worker = Worker(pipeline)
    while worker.run_once():
        pass
    comparison = pipeline.comparison(submission.comparison.id)
    assert comparison.state == "done", comparison.reason
    assert pipeline.run(head.id).state == RunState.succeeded
    labels = [f"tierbot.instance={docker_settings.docker_instance}"]
    assert engine.api.containers(all=True, filters={"label": labels}) == []


def test_a_worker_removes_at_start_the_containers_of_runs_that_are_not_running(
    engine, docker_settings, tmp_path
):
    (tmp_path / "tiers.yaml").write_text(TIERS)
    pipeline = Pipeline(docker_settings.model_copy(update={"tiers_file": tmp_path / "tiers.yaml"}))
    labels = {"tierbot.run": "777", "tierbot.instance": docker_settings.docker_instance}
    orphan = engine.api.create_container(BASE_IMAGE, command=["sleep", "300"], labels=labels)["Id"]
    engine.api.start(orphan)
    try:
        Worker(pipeline).run_once()  # run 777 is not running: a crashed bot's
        assert engine.api.containers(all=True, filters={"id": orphan}) == []
    finally:
        if engine.api.containers(all=True, filters={"id": orphan}):
            engine.api.remove_container(orphan, force=True, v=True)
