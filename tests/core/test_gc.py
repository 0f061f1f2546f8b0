"""`bot.gc` on a real data dir: runs made by the real pipeline on a temporary repository, aged in the
database, then planned and collected."""

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from bot import gc
from bot.backends.venv import READY
from bot.outputs import BlobStore
from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.store import Run
from bot.store.models import ComparisonRecord, Output, utcnow

from .test_pipeline import compare


def age(pipeline: Pipeline, run_id: int, days: float) -> None:
    when = utcnow() - timedelta(days=days)
    with pipeline.db.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(finished_at=when, created_at=when))
        s.commit()


def make_plan(pipeline: Pipeline, older_than_days: float = 30, max_size=None, needed=frozenset()):
    policy = gc.Policy(older_than=timedelta(days=older_than_days), now=utcnow(), max_size=max_size)
    with pipeline.db.session() as s:
        return gc.plan(s, pipeline.settings, policy, None if needed is None else set(needed))


def collect(pipeline: Pipeline, plan: gc.Plan) -> int:
    with pipeline.db.session() as s:
        freed = gc.apply(s, plan)
        s.commit()
    return freed


def blob_paths(pipeline: Pipeline, run_id: int) -> list[Path]:
    store = BlobStore(pipeline.settings.blobs_dir)
    return [store.path_of(o.hash) for o in pipeline.outputs(run_id)]


def test_old_runs_lose_their_files_but_keep_their_rows(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    second, _ = compare(pipeline, simple_repo, "worse")
    base, old_head, new_head = first.base.id, first.head.id, second.head.id
    for run_id in (base, old_head):
        age(pipeline, run_id, days=60)
    old_log = Path(pipeline.run(old_head).log_path)
    old_blobs, kept_blobs = blob_paths(pipeline, old_head), blob_paths(pipeline, base)
    kept_blobs += blob_paths(pipeline, new_head)
    old_report = Path(pipeline.comparison(first.comparison.id).report_path)

    plan = make_plan(pipeline)
    assert plan.collected_runs == {old_head}  # the baseline is old too, but the newest of its key
    assert {i.kind for i in plan.items} == {"outputs", "log", "report"}
    assert old_log.exists() and old_report.exists()  # a plan removes nothing
    assert collect(pipeline, plan) == plan.size > 0

    assert not old_log.exists() and not old_report.exists()
    assert not any(p.exists() for p in old_blobs) and all(p.exists() for p in kept_blobs)
    assert Path(pipeline.run(new_head).log_path).exists()
    run = pipeline.run(old_head)  # the row stays, with what the metric history reads
    assert (run.state, run.exit_code, run.log_path) == ("succeeded", 0, None)
    assert run.cache_key.startswith(gc.COLLECTED) and pipeline.outputs(old_head) == []
    comparison = pipeline.comparison(first.comparison.id)
    assert comparison.report_path is None and comparison.result["metrics"]
    assert make_plan(pipeline).items == []  # nothing more to do

    again = pipeline.submit(RunRequest(repository=str(simple_repo), ref="better", base="main"))
    assert not again.head_reused  # a collected run's outcome is never handed to a new run


def test_a_kept_reuse_keeps_the_blobs_and_log_it_shares(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    second, _ = compare(pipeline, simple_repo, "better")
    assert second.head_reused and second.head.reused_run_id == first.head.id
    age(pipeline, first.head.id, days=60)

    plan = make_plan(pipeline)
    assert plan.collected_runs == {first.head.id}
    assert [i.kind for i in plan.items] == ["report"]  # the outputs and log are the reuse's too
    collect(pipeline, plan)
    reuse = pipeline.run(second.head.id)
    assert reuse.reused_run_id == first.head.id  # the original's row stays: nothing dangles
    assert Path(reuse.log_path).exists() and all(p.exists() for p in blob_paths(pipeline, reuse.id))


def test_what_an_unfinished_run_needs_stays_even_over_max_size(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    second, _ = compare(pipeline, simple_repo, "worse")
    for run_id in (first.base.id, first.head.id, second.head.id):
        age(pipeline, run_id, days=60)
    with pipeline.db.session() as s:  # as if a worker had taken it again
        s.execute(update(Run).where(Run.id == second.head.id).values(state="running"))
        s.commit()
    worktrees = settings.worktrees_dir
    for name in (f"run-{first.head.id}", f"run-{second.head.id}", "run-999", "fresh"):
        (worktrees / name).mkdir(parents=True)
        (worktrees / name / "train.py").write_text("print(1)\n")
    old = (utcnow() - timedelta(days=60)).timestamp()
    os.utime(worktrees / "run-999", (old, old))
    running_blobs = blob_paths(pipeline, second.head.id)

    plan = make_plan(pipeline, max_size=0)
    assert plan.collected_runs == {first.base.id, first.head.id}
    left_behind = {i.paths[0].name for i in plan.items if i.kind == "worktree"}
    assert left_behind == {f"run-{first.head.id}", "run-999"}
    collect(pipeline, plan)
    assert (worktrees / f"run-{second.head.id}").exists() and (worktrees / "fresh").exists()
    assert Path(pipeline.run(second.head.id).log_path).exists()
    assert all(p.exists() for p in running_blobs)


def test_max_size_removes_the_oldest_first(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    second, _ = compare(pipeline, simple_repo, "worse")
    for run_id, days in ((first.head.id, 10), (first.base.id, 5), (second.head.id, 1)):
        age(pipeline, run_id, days)
    assert make_plan(pipeline).items == []  # all within 30 days

    just_over = make_plan(pipeline, max_size=make_plan(pipeline).data_size - 1)
    assert just_over.collected_runs == {first.head.id}
    everything = make_plan(pipeline, max_size=0)
    order = list(dict.fromkeys(i.run_id for i in everything.items))
    assert order == [first.head.id, first.base.id, second.head.id]
    assert all("over --max-size" in i.why for i in everything.items)


def test_environments_go_when_unused_and_unneeded(settings):
    pipeline = Pipeline(settings)
    old = (utcnow() - timedelta(days=60)).timestamp()
    for key, used in (("unused", old), ("recent", None), ("needed", old)):
        env = settings.envs_dir / key
        (env / "bin").mkdir(parents=True)
        (env / READY).write_text("requirements.txt\n")
        if used:
            for path in (env / READY, env):
                os.utime(path, (used, used))
    (settings.envs_dir / "unused.lock").touch()

    plan = make_plan(pipeline, needed={"needed"})
    (item,) = plan.items
    assert [p.name for p in item.paths] == ["unused", "unused.lock"] and "unused for 60 days" in item.why
    assert make_plan(pipeline, needed=None).items == []  # unknown needs: every environment stays
    everything = make_plan(pipeline, max_size=0, needed={"needed"})
    assert {i.paths[0].name for i in everything.items} == {"unused", "recent"}
    collect(pipeline, everything)
    assert sorted(p.name for p in settings.envs_dir.iterdir()) == ["needed"]


def test_outputs_rows_of_collected_runs_are_deleted(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    for run_id in (first.head.id, first.base.id):
        age(pipeline, run_id, days=60)
    collect(pipeline, make_plan(pipeline, max_size=0))
    with pipeline.db.session() as s:
        assert s.scalars(select(Output)).all() == []
        assert s.scalars(select(ComparisonRecord)).one().result is not None
