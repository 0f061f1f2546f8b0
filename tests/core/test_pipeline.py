"""The pipeline end to end on real temporary git repositories: submit → run → collect → compare."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.errors import RefNotFound, SpecInvalid, TierbotError, TierUnknown
from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.settings import Settings
from bot.store import Run, RunState
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.local_backend import alive


def drain(pipeline: Pipeline) -> None:
    worker = Worker(pipeline)
    while worker.run_once():
        pass


def compare(pipeline: Pipeline, repo: GitRepo, branch: str):
    submission = pipeline.submit(RunRequest(repository=str(repo), ref=branch, base="main"))
    drain(pipeline)
    return submission, pipeline.comparison(submission.comparison.id)


def test_compare_end_to_end(settings, simple_repo):
    pipeline = Pipeline(settings)
    submission, comparison = compare(pipeline, simple_repo, "better")
    assert comparison.state == "done", comparison.reason
    assert comparison.verdict == "changed"
    metric = next(m for m in comparison.result["metrics"] if m["name"] == "accuracy")
    assert (metric["base"], metric["head"], metric["assessment"]) == (0.9, 0.95, "better")
    assert Path(comparison.report_path).read_text().count("accuracy") >= 1
    head = pipeline.run(submission.head.id)
    assert (head.state, head.exit_code, head.role) == (RunState.succeeded, 0, "head")
    assert "done, accuracy 0.95" in Path(head.log_path).read_text()
    assert {o.path for o in pipeline.outputs(head.id)} == {"metrics.json", "notes.txt"}
    assert not (settings.worktrees_dir / f"run-{head.id}").exists()  # worktrees are cleaned up


def test_regression_beyond_threshold_fails(settings, simple_repo):
    _, comparison = compare(Pipeline(settings), simple_repo, "worse")
    assert comparison.verdict == "fail"
    assert any("accuracy" in reason for reason in comparison.result["reasons"])


def test_baseline_is_reused_not_rerun(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    assert not first.baseline_reused
    second, comparison = compare(pipeline, simple_repo, "worse")
    assert second.baseline_reused and second.base.id == first.base.id
    assert comparison.verdict == "fail" and comparison.baseline_reused
    with pipeline.db.session() as s:
        assert s.scalar(select(func.count()).where(Run.role == "baseline")) == 1
        assert s.scalar(select(func.count()).select_from(Run)) == 3


def test_crashing_experiment_reports_exit_code_and_log_tail(settings, simple_repo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "print('loading data')\nprint('boom happens now')\nraise SystemExit(3)\n"})
    pipeline = Pipeline(settings)
    submission, comparison = compare(pipeline, simple_repo, "crash")
    head = pipeline.run(submission.head.id)
    assert (head.state, head.exit_code, head.reason) == (RunState.failed, 3, "exit code 3")
    assert "boom happens now" in head.log_tail
    assert comparison.state == "failed"
    assert f"the branch run {head.id} failed: exit code 3" in comparison.reason


def test_timeout_kills_the_run(settings, simple_repo, tmp_path):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("tiers:\n  - name: tiny\n    max_runtime: 1s\n")
    simple_repo.branch("slow")
    simple_repo.commit({"make.py": "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"})
    pipeline = Pipeline(settings.model_copy(update={"tiers_file": tiers}))
    started = time.monotonic()
    submission = pipeline.submit(RunRequest(repository=str(simple_repo), ref="slow"))
    drain(pipeline)
    run = pipeline.run(submission.head.id)
    assert run.state == RunState.timed_out
    assert "max_runtime" in run.reason
    assert time.monotonic() - started < 20


def test_cancel_queued_and_running(settings, simple_repo):
    simple_repo.branch("slow")
    simple_repo.commit({"make.py": "import time\nprint('working', flush=True)\ntime.sleep(60)\n"})
    pipeline = Pipeline(settings)
    running = pipeline.submit(RunRequest(repository=str(simple_repo), ref="slow")).head
    queued = pipeline.submit(RunRequest(repository=str(simple_repo), ref="slow")).head
    assert pipeline.queue.cancel(queued.id).state == RunState.cancelled
    worker = Worker(pipeline)
    claimed = pipeline.queue.claim(worker.name)
    assert claimed.id == running.id

    def cancel_soon():
        time.sleep(1.0)
        pipeline.queue.cancel(running.id)

    import threading

    threading.Thread(target=cancel_soon).start()
    started = time.monotonic()
    worker.execute(claimed)
    assert pipeline.run(running.id).state == RunState.cancelled
    assert time.monotonic() - started < 15


def test_killed_worker_is_recovered_by_a_new_one(settings, simple_repo, tmp_path):
    marker = tmp_path / "child.pid"
    script = (
        "import os, pathlib, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "first = not p.exists()\n"
        "p.write_text(str(os.getpid()))\n"
        "print('started', flush=True)\n"
        "if first: time.sleep(120)\n"
        "pathlib.Path('out').mkdir(); pathlib.Path('out/metrics.json').write_text('{\"accuracy\": 1}')\n"
    )
    simple_repo.branch("recover")
    simple_repo.commit({"make.py": script})
    env = {
        **os.environ,
        "TIERBOT_DATA_DIR": str(settings.data_dir),
        "TIERBOT_LEASE_SECONDS": "1",
        "TIERBOT_POLL_SECONDS": "0.1",
    }
    env.pop("TIERBOT_TIERS_FILE", None)
    pipeline = Pipeline(Settings(data_dir=settings.data_dir, lease_seconds=1, poll_seconds=0.1))
    run_id = pipeline.submit(RunRequest(repository=str(simple_repo), ref="recover")).head.id
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env)
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and pipeline.run(run_id).pgid):
            assert time.monotonic() < deadline, "the first worker never started the run"
            time.sleep(0.1)
        orphan = int(marker.read_text())
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert pipeline.run(run_id).state == RunState.running  # nobody has noticed yet
        time.sleep(1.5)  # let the lease expire
        drain(pipeline)  # a new worker: recovers, kills the orphan, reruns
    finally:
        if worker.poll() is None:
            worker.kill()
    run = pipeline.run(run_id)
    assert (run.state, run.attempts) == (RunState.succeeded, 2), run.reason
    time.sleep(0.2)
    assert not alive(orphan)


def test_outputs_symlink_out_of_the_workspace_is_skipped_and_listed(settings, simple_repo):
    simple_repo.branch("leak")
    simple_repo.commit({"make.py": "import os\nos.makedirs('out')\nos.symlink('/etc', 'out/etc')\n"})
    pipeline = Pipeline(settings)
    submission, comparison = compare(pipeline, simple_repo, "leak")
    run = pipeline.run(submission.head.id)
    assert run.state == RunState.succeeded and run.reason == "0 output files; 1 other entry not read"
    assert pipeline.outputs(run.id) == []
    assert comparison.state == "done", comparison.reason
    skipped = [p for p in comparison.result["problems"] if p["skipped"]]
    assert skipped == [
        {
            "path": "etc",
            "message": "skipped on the branch: a symlink to /etc, outside the workspace: not read",
            "blocking": False,
            "skipped": True,
        }
    ]


def test_outputs_path_escaping_the_repository_is_refused_at_submit(settings, simple_repo):
    simple_repo.branch("escape")
    simple_repo.commit({"tierbot.yaml": "run:\n  command: python make.py\n  outputs: ../../etc\n"})
    with pytest.raises(SpecInvalid, match=r"tierbot.yaml \(escape @ \w+\):3: run.outputs"):
        Pipeline(settings).submit(RunRequest(repository=str(simple_repo), ref="escape"))


def test_bad_requests_are_refused_before_anything_is_queued(settings, simple_repo):
    pipeline = Pipeline(settings)
    with pytest.raises(RefNotFound, match="better"):
        pipeline.submit(RunRequest(repository=str(simple_repo), ref="beter"))
    with pytest.raises(TierUnknown, match="There is no tier 'gpu'"):
        pipeline.submit(RunRequest(repository=str(simple_repo), ref="main", tier="gpu"))
    simple_repo.branch("nospec")
    simple_repo.git("rm", "-q", "tierbot.yaml")
    simple_repo.git("commit", "-q", "-m", "drop spec")
    with pytest.raises(TierbotError, match="has no tierbot.yaml"):
        pipeline.submit(RunRequest(repository=str(simple_repo), ref="nospec"))
    with pytest.raises(RefNotFound, match="nosuch"):  # the head is fine; nothing of it is queued either
        pipeline.submit(RunRequest(repository=str(simple_repo), ref="better", base="nosuch"))
    assert pipeline.recent_runs() == []
