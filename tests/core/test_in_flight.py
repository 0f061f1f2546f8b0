"""One run per key in flight, one run per automatic request (`bot.reuse.enter`, `RunRequest.once`), on
real git repositories, real SQLite and PostgreSQL and a real worker: a second request of a tree that is
queued or running joins that run and ends as it ends; two replicas racing to queue the same key are
settled by the database; an event delivered again starts nothing."""

import threading
import time

import pytest
from sqlalchemy import func, select

from bot.pipeline import AlreadyRequested, Pipeline
from bot.render.run_states import queued
from bot.request import RunRequest
from bot.reuse import JOINED, enter
from bot.store import Database, Run, RunState
from bot.worker import Worker


@pytest.fixture(params=["sqlite", "postgres"])
def pipeline(request, settings) -> Pipeline:
    if request.param == "postgres":
        settings = settings.model_copy(update={"database_url": request.getfixturevalue("postgres_url")})
    return Pipeline(settings)


def executed(pipeline: Pipeline, worker: Worker | None = None) -> int:
    """Work until nothing is left; how many runs were executed meanwhile."""
    worker = worker or Worker(pipeline)
    while worker.run_once():
        pass
    with pipeline.db.session() as s:
        return s.scalar(select(func.count()).where(Run.attempts > 0))


def compare(pipeline: Pipeline, repo, branch: str = "better", **request):
    return pipeline.submit(RunRequest(repository=str(repo), ref=branch, base="main", **request))


def test_a_second_request_of_a_key_in_flight_joins_it_and_ends_as_it_ends(pipeline, simple_repo):
    first = compare(pipeline, simple_repo)
    second = compare(pipeline, simple_repo, fresh=True)  # even an explicit rerun: the first is new too
    head = pipeline.run(second.head.id)
    assert (head.state, head.phase, head.reused_run_id) == (RunState.queued, JOINED, first.head.id)
    assert queued(head, 0) == f"Waiting for run {first.head.id} (same tree, spec, environment and tier)"
    assert second.baseline_joined and second.base.id == first.base.id
    assert (pipeline.queue.position(first.head.id), pipeline.queue.position(head.id)) == (1, 0)

    assert executed(pipeline) == 2  # the head and the baseline, once each
    head, original = pipeline.run(second.head.id), pipeline.run(first.head.id)
    assert (head.state, head.reused_run_id, head.exit_code) == (RunState.succeeded, original.id, 0)
    assert head.reason.startswith(f"reused run {original.id} (same tree, spec, environment and tier)")
    theirs = [(o.path, o.hash) for o in pipeline.outputs(original.id)]
    assert [(o.path, o.hash) for o in pipeline.outputs(head.id)] == theirs and theirs
    for submission in (first, second):
        record = pipeline.comparison(submission.comparison.id)
        assert (record.state, record.verdict) == ("done", "changed")


def test_a_baseline_joins_a_run_of_its_key_whatever_its_role(pipeline, simple_repo):
    plain = pipeline.submit(RunRequest(repository=str(simple_repo), ref="main"))
    submission = compare(pipeline, simple_repo)
    base = pipeline.run(submission.base.id)
    assert (base.role, base.reused_run_id, base.state) == ("baseline", plain.head.id, RunState.queued)
    assert executed(pipeline) == 2
    assert pipeline.comparison(submission.comparison.id).verdict == "changed"


def test_a_cancelled_run_hands_over_to_those_that_joined_it(pipeline, simple_repo):
    runs = [pipeline.submit(RunRequest(repository=str(simple_repo), ref="better")).head for _ in range(3)]
    assert [pipeline.run(r.id).reused_run_id for r in runs] == [None, runs[0].id, runs[0].id]
    pipeline.queue.cancel(runs[0].id)
    second, third = pipeline.run(runs[1].id), pipeline.run(runs[2].id)
    assert (second.state, second.reused_run_id, third.reused_run_id) == (RunState.queued, None, second.id)
    assert executed(pipeline) == 1
    assert pipeline.run(runs[2].id).state == RunState.succeeded
    assert pipeline.run(runs[2].id).reused_run_id == second.id


def test_a_failed_run_fails_those_that_joined_it_with_its_reason(pipeline, simple_repo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "raise SystemExit(3)\n"})
    first, second = compare(pipeline, simple_repo, "crash"), compare(pipeline, simple_repo, "crash")
    assert executed(pipeline) == 2
    head = pipeline.run(second.head.id)
    assert head.state == RunState.failed and head.exit_code == 3
    assert head.reason.startswith(f"run {first.head.id}, which it joined (same tree, spec, environment")
    assert pipeline.comparison(second.comparison.id).state == "failed"


def test_a_command_line_worker_executes_the_run_its_own_joined(pipeline, simple_repo):
    """`tierbot compare` works only on its own runs (`only`); a run they joined is theirs too, or a
    command killed before its run started would leave the next one waiting forever."""
    first = compare(pipeline, simple_repo)
    second = compare(pipeline, simple_repo)
    assert executed(pipeline, Worker(pipeline, only=second.run_ids)) == 2
    assert pipeline.run(first.head.id).state == RunState.succeeded
    assert pipeline.comparison(second.comparison.id).state == "done"


def test_an_automatic_request_starts_one_run_whatever_brings_it_again(pipeline, simple_repo):
    once = {"once": "github:acme/models#7@abc", "subject": "github:acme/models#7"}
    first = compare(pipeline, simple_repo, **once)
    with pytest.raises(AlreadyRequested) as again:
        compare(pipeline, simple_repo, **once)
    assert again.value.run.id == first.head.id
    assert compare(pipeline, simple_repo, subject=once["subject"]).head  # an explicit rerun still runs
    pipeline.queue.cancel_subject(once["subject"])  # closed; reopened: the same commit runs again
    assert compare(pipeline, simple_repo, **once).head.id > first.head.id


def _run(key: str) -> Run:
    return Run(
        repository="r", ref="main", sha="a" * 40, tree_sha="b" * 40, experiment="e", tier="local",
        role="head", cache_key=key, spec={}, requested_by={}, report_to=[], trusted=True,
        state=RunState.queued,
    )  # fmt: skip


@pytest.mark.postgres
def test_two_replicas_queueing_one_key_at_once_the_database_keeps_one(postgres_url):
    """Neither transaction sees the other's run before it commits: the unique index makes the second
    wait, then fail, and the second joins the first."""
    db, other = Database(postgres_url), Database(postgres_url)
    outcome = {}

    def second() -> None:
        with other.session() as s:
            run = _run("k")
            outcome["joined"] = enter(s, run)
            outcome["run"] = (run.id, run.reused_run_id, run.phase)

    with db.session() as s:
        first = _run("k")
        assert enter(s, first) is None
        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(0.5)
        assert racer.is_alive()  # waiting on the index for the first to commit
    racer.join(10)
    assert outcome["joined"].id == first.id and outcome["run"][1:] == (first.id, JOINED)
    db.dispose()
    other.dispose()
