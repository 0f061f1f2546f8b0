"""The deployments table as a queue, on SQLite and PostgreSQL: a commit is recorded once per
environment, an environment deploys one deployment at a time (the claim, and the database's index
behind it), the newest waiting deployment supersedes older ones, and a dead worker's is claimed again."""

import time

import pytest
from sqlalchemy.exc import IntegrityError

from bot.deploy.deployments import Deployments, State
from bot.store.models import Deployment, Run


def record(queue: Deployments, sha: str, environment: str = "production", report_to=None):
    return queue.record("acme/models", environment, sha, "local", {"name": "test"}, report_to or [])


def test_a_commit_is_recorded_once_per_environment_and_gains_the_targets_said_later(db):
    queue = Deployments(db, lease_seconds=30, max_attempts=2)
    pushed = [{"github_deployment": {"repository": "acme/models", "installation": 1}}]
    merged = [{"github_deployment": {"repository": "acme/models", "installation": 1, "pull_request": 7}}]
    first, new = record(queue, "a" * 40, report_to=pushed)
    again, again_new = record(queue, "a" * 40, report_to=merged)
    staging, staging_new = record(queue, "a" * 40, environment="staging")
    assert (new, again_new, staging_new) == (True, False, True)
    assert again.id == first.id and staging.id != first.id
    assert queue.get(first.id).report_to == merged  # it says all the push said, and more


def test_one_deployment_of_an_environment_at_a_time(db):
    queue = Deployments(db, lease_seconds=30, max_attempts=2)
    first, _ = record(queue, "a" * 40)
    elsewhere, _ = record(queue, "c" * 40, environment="staging")
    assert queue.claim().deployment.id == first.id
    second, _ = record(queue, "b" * 40)

    assert queue.claim().deployment.id == elsewhere.id  # another environment is free
    assert queue.claim().deployment is None  # production's second waits for the first
    with pytest.raises(IntegrityError), db.session() as s:  # and the database refuses it anyway
        s.get(Deployment, second.id).state = State.deploying

    queue.end(first.id, State.live, "live")
    assert queue.claim().deployment.id == second.id


def test_the_newest_waiting_deployment_supersedes_the_older(db):
    queue = Deployments(db, lease_seconds=30, max_attempts=2)
    older, _ = record(queue, "a" * 40)
    newer, _ = record(queue, "b" * 40)
    claim = queue.claim()
    assert claim.deployment.id == newer.id
    assert [d.id for d in claim.skipped] == [older.id]
    skipped = queue.get(older.id)
    assert (skipped.state, skipped.reason) == (
        "skipped",
        f"superseded by deployment {newer.id} (bbbbbbb) before it started",
    )


def test_a_deployment_waits_for_its_run_then_is_claimed_again(db):
    queue = Deployments(db, lease_seconds=30, max_attempts=2)
    deployment, _ = record(queue, "a" * 40)
    assert queue.claim().deployment.step == "planning"
    with db.session() as s:
        run = Run(
            repository="acme/models", ref="main", sha="a" * 40, tree_sha="t", experiment="e", tier="local",
            role="run", cache_key="k", spec={}, requested_by={}, state="running",
        )  # fmt: skip
        s.add(run)
    queue.wait_for_run(deployment.id, run.id)
    assert queue.claim().deployment is None  # its run is still running
    with db.session() as s:
        s.get(Run, run.id).state = "succeeded"
    claimed = queue.claim().deployment
    assert (claimed.id, claimed.step, claimed.attempts) == (deployment.id, "starting", 1)


def test_a_dead_workers_deployment_is_claimed_again_once_its_lease_expired(db):
    queue = Deployments(db, lease_seconds=0.5, max_attempts=2)
    deployment, _ = record(queue, "a" * 40)
    queue.claim()
    queue.save(deployment.id, step="checking")
    assert queue.claim().deployment is None  # its lease is fresh
    time.sleep(0.6)
    resumed = queue.claim().deployment
    assert (resumed.id, resumed.step, resumed.attempts) == (deployment.id, "checking", 2)
