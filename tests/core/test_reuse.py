"""Reuse of an earlier run for what a request runs itself (`bot.reuse`), end to end on real git
repositories, a real database and a real worker: a head of the same tree, spec, environment and tier
as a run that succeeded takes its outcome and never executes; a fresh request, another tier, another
tree, a failure or untrusted code runs."""

import pytest
from sqlalchemy import func, select

from bot.compare import Comparison
from bot.pipeline import Pipeline, Submission
from bot.render.markdown import render_markdown
from bot.request import RunRequest
from bot.store import Run, RunState
from bot.worker import Worker

from ..conftest import GitRepo

TWO_TIERS = "tiers:\n  - name: local\n    default: true\n  - name: other\n"


def claimed(pipeline: Pipeline) -> int:
    """Runs a worker has claimed (a reused run never is: it has no attempt)."""
    with pipeline.db.session() as s:
        return s.scalar(select(func.count()).where(Run.attempts > 0))


def drain(pipeline: Pipeline) -> int:
    """Work until nothing is left; how many runs were executed meanwhile."""
    before, worker = claimed(pipeline), Worker(pipeline)
    while worker.run_once():
        pass
    return claimed(pipeline) - before


def compare(pipeline: Pipeline, repo: GitRepo, branch: str, **request) -> tuple[Submission, int]:
    submission = pipeline.submit(RunRequest(repository=str(repo), ref=branch, base="main", **request))
    return submission, drain(pipeline)


def outputs(pipeline: Pipeline, run_id: int) -> list[tuple[str, int, str]]:
    return [(o.path, o.size, o.hash) for o in pipeline.outputs(run_id)]


def runs(pipeline: Pipeline) -> int:
    with pipeline.db.session() as s:
        return s.scalar(select(func.count()).select_from(Run))


@pytest.fixture(params=["sqlite", "postgres"])
def any_database(request, settings):
    """The settings, on SQLite and on PostgreSQL (where several replicas share the runs)."""
    if request.param == "sqlite":
        return settings
    return settings.model_copy(update={"database_url": request.getfixturevalue("postgres_url")})


def test_a_second_compare_of_the_same_tree_reuses_the_head_without_running_it(any_database, simple_repo):
    pipeline = Pipeline(any_database)
    first, executed = compare(pipeline, simple_repo, "better")
    assert executed == 2 and not first.head_reused
    original = pipeline.run(first.head.id)

    second = pipeline.submit(RunRequest(repository=str(simple_repo), ref="better", base="main"))
    # Settled within submit: the head took run 1's outcome and the baseline was reused.
    assert second.head_reused and second.baseline_reused
    assert pipeline.queue.claim("nobody") is None  # nothing was queued
    head = pipeline.run(second.head.id)
    assert (head.state, head.role, head.reused_run_id, head.sha) == (
        RunState.succeeded,
        "head",
        original.id,
        original.sha,
    )
    assert head.id != original.id and head.tree_sha == original.tree_sha
    assert (head.exit_code, head.command_seconds, head.log_path) == (
        original.exit_code,
        original.command_seconds,
        original.log_path,
    )
    assert head.reason == f"reused run {original.id} (same tree, spec, environment and tier): 2 output files"
    assert outputs(pipeline, head.id) == outputs(pipeline, original.id)
    comparison = pipeline.comparison(second.comparison.id)
    first_verdict = pipeline.comparison(first.comparison.id).verdict
    assert (comparison.state, comparison.verdict) == ("done", first_verdict)
    context = pipeline.report_context(comparison)
    notes = [f"baseline reused (run {first.base.id})", f"branch: reused run {original.id}"]
    assert context.run_notes() == notes
    markdown = render_markdown(Comparison.model_validate(comparison.result), context)
    assert f"branch: reused run {original.id}" in markdown
    assert drain(pipeline) == 0 and runs(pipeline) == 3

    third, executed = compare(pipeline, simple_repo, "better")  # a reuse names the run that really ran
    assert executed == 0 and pipeline.run(third.head.id).reused_run_id == original.id


def test_fresh_another_tier_or_another_tree_runs_again(settings, simple_repo, tmp_path):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(TWO_TIERS)
    settings = settings.model_copy(update={"tiers_file": tiers})
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")

    fresh, executed = compare(pipeline, simple_repo, "better", fresh=True)
    assert executed == 1 and not fresh.head_reused  # the head runs; the baseline is still reused
    assert pipeline.run(fresh.head.id).reused_run_id is None

    other, executed = compare(pipeline, simple_repo, "better", tier="other")
    assert executed == 2 and not other.head_reused and not other.baseline_reused

    simple_repo.git("checkout", "-q", "better")
    simple_repo.commit({"accuracy.txt": "0.96"}, "another tree")
    simple_repo.git("checkout", "-q", "main")
    pipeline = Pipeline(settings)  # a new command: a pipeline's mirror may be 2 s behind its branches
    changed, executed = compare(pipeline, simple_repo, "better")
    assert executed == 1 and not changed.head_reused
    assert pipeline.comparison(changed.comparison.id).result["metrics"][0]["head"] == 0.96

    # After a fresh run, a reuse takes the newest run of the key that really ran.
    again, executed = compare(pipeline, simple_repo, "better~1")
    assert executed == 0 and pipeline.run(again.head.id).reused_run_id == fresh.head.id


def test_a_new_commit_of_the_same_tree_reuses_and_keeps_its_own_commit(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    simple_repo.git("checkout", "-q", "better")
    simple_repo.git("commit", "-q", "--allow-empty", "-m", "only a message: the same tree")
    new_sha = simple_repo.git("rev-parse", "HEAD")
    simple_repo.git("checkout", "-q", "main")

    pipeline = Pipeline(settings)  # a new command: a pipeline's mirror may be 2 s behind its branches
    second, executed = compare(pipeline, simple_repo, "better")
    head = pipeline.run(second.head.id)
    assert executed == 0 and head.reused_run_id == first.head.id
    assert (head.sha, head.ref) == (new_sha, "better") and head.sha != first.head.sha
    assert pipeline.comparison(second.comparison.id).head_label == f"better @ {new_sha[:7]}"


def test_any_role_is_reused_a_plain_run_too(settings, simple_repo):
    """A branch whose tree is main's reuses main's baseline run; a plain run reuses a head."""
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    simple_repo.git("branch", "same", "main")
    same, executed = compare(pipeline, simple_repo, "same")
    assert executed == 0 and pipeline.run(same.head.id).reused_run_id == first.base.id
    assert pipeline.comparison(same.comparison.id).verdict == "pass"

    plain = pipeline.submit(RunRequest(repository=str(simple_repo), ref="better"))
    run = pipeline.run(plain.head.id)
    assert (run.role, run.state, run.reused_run_id) == ("run", RunState.succeeded, first.head.id)
    assert drain(pipeline) == 0


def test_failures_are_not_reused(settings, simple_repo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "raise SystemExit(3)\n"})
    pipeline = Pipeline(settings)
    first, executed = compare(pipeline, simple_repo, "crash")
    assert executed == 2 and pipeline.run(first.head.id).state == RunState.failed
    second, executed = compare(pipeline, simple_repo, "crash")
    assert executed == 1 and not second.head_reused
    assert pipeline.run(second.head.id).state == RunState.failed


def test_untrusted_code_is_never_reused_it_waits_for_approval(settings, simple_repo):
    """A fork's commit waits for an approval even when its tree ran before as trusted code; once
    approved, it runs (in the sandbox, here the local tier as the operator allowed)."""
    pipeline = Pipeline(settings.model_copy(update={"local_forks": True}))
    first, _ = compare(pipeline, simple_repo, "better")
    fork_request = RunRequest(
        repository=str(simple_repo), ref="better", base="main", trusted=False, subject="pr-8"
    )
    fork = pipeline.submit(fork_request)
    head = pipeline.run(fork.head.id)
    assert (head.state, head.reused_run_id, fork.head_reused) == (RunState.waiting, None, False)
    sha = simple_repo.git("rev-parse", "better")
    assert pipeline.approvals.approve("pr-8", sha, "maintainer") == [head.id]
    assert drain(pipeline) == 1
    assert pipeline.run(head.id).state == RunState.succeeded
    approved_again = pipeline.submit(fork_request)  # approved already: queued, and run again
    assert pipeline.run(approved_again.head.id).state == RunState.queued
    assert drain(pipeline) == 1 and not approved_again.head_reused

    trusted, executed = compare(pipeline, simple_repo, "better")  # never reused *from* untrusted code
    assert executed == 0 and pipeline.run(trusted.head.id).reused_run_id == first.head.id
