"""The runs table as a queue, on real SQLite and real PostgreSQL."""

import itertools
import threading
import time

import pytest

from bot.errors import TierbotError
from bot.store import Database, Run, RunState
from bot.store.queue import LeaseLost, Queue
from bot.tiers import Tier, TierSet

_KEYS = itertools.count()
TIERS = TierSet(tiers=[Tier(name="cpu", concurrency=2, default=True), Tier(name="gpu", concurrency=1)])


def add_run(db: Database, tier: str = "cpu", key: str | None = None) -> int:
    """A queued run; each of its own key unless `key` is given (one run per key executes at a time)."""
    with db.session() as s:
        run = Run(
            repository="r",
            ref="main",
            sha="a" * 40,
            tree_sha="b" * 40,
            experiment="e",
            tier=tier,
            role="run",
            cache_key=key or f"k{next(_KEYS)}",
            spec={},
            requested_by={},
            report_to=[],
        )
        s.add(run)
        s.flush()
        return run.id


def queue(db: Database, lease: float = 30, attempts: int = 2) -> Queue:
    return Queue(db, TIERS, lease_seconds=lease, max_attempts=attempts)


def test_claim_in_order_within_tier_concurrency(db):
    q = queue(db)
    ids = [add_run(db, "cpu") for _ in range(3)] + [add_run(db, "gpu"), add_run(db, "gpu")]
    claimed = [q.claim("w") for _ in range(5)]
    assert [r.id if r else None for r in claimed] == [ids[0], ids[1], ids[3], None, None]
    assert q.position(ids[2]) == 1 and q.position(ids[4]) == 1
    q.finish(ids[0], "w", RunState.succeeded, "ok")
    assert q.claim("w").id == ids[2]


def test_only_claims_the_requested_runs(db):
    q = queue(db)
    first, second = add_run(db), add_run(db)
    assert q.claim("w", only={second}).id == second
    assert q.claim("w", only={second}) is None
    assert q.position(first) == 1


def test_concurrent_claimers_never_share_a_run(db):
    q = Queue(db, TierSet(tiers=[Tier(name="cpu", concurrency=100, default=True)]), 30, 2)
    ids = {add_run(db) for _ in range(40)}
    got: list[int] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while (run := q.claim(f"w{n}")) is not None:
            with lock:
                got.append(run.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)


def test_concurrency_limit_holds_under_concurrent_claims(db):
    q = queue(db)
    for _ in range(10):
        add_run(db, "gpu")
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(q.claim(f"w{n}"))) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1


def test_expired_lease_is_requeued_then_failed(db):
    q = queue(db, lease=0.2, attempts=2)
    run_id = add_run(db)
    killed: list[int] = []
    assert q.claim("dead-worker").id == run_id
    time.sleep(0.3)
    with pytest.raises(LeaseLost):
        q.finish(run_id, "other-worker", RunState.succeeded, "not mine")
    assert [r.id for r in q.recover(kill=lambda r: killed.append(r.id))] == [run_id]
    with db.session() as s:
        run = s.get(Run, run_id)
        assert (run.state, run.worker) == (RunState.queued, None)
        assert "requeued: the worker dead-worker stopped responding" in run.reason
    with pytest.raises(LeaseLost):
        q.heartbeat(run_id, "dead-worker")
    assert q.claim("second").attempts == 2
    time.sleep(0.3)
    q.recover(kill=lambda r: killed.append(r.id))
    with db.session() as s:
        run = s.get(Run, run_id)
        assert run.state == RunState.failed
        assert run.reason == "the worker second stopped responding; gave up after 2 attempts"
    assert killed == [run_id, run_id]


def test_heartbeat_keeps_the_lease(db):
    q = queue(db, lease=0.3)
    run_id = add_run(db)
    q.claim("w")
    for _ in range(4):
        time.sleep(0.1)
        assert q.heartbeat(run_id, "w") is False
    assert q.recover(kill=lambda r: None) == []


def test_cancel(db):
    q = queue(db)
    queued, running = add_run(db), add_run(db)
    q.claim("w", only={running})
    assert q.cancel(queued).state == RunState.cancelled
    assert q.cancel(running).cancel_requested
    assert q.heartbeat(running, "w") is True
    with pytest.raises(TierbotError, match="already ended"):
        q.cancel(queued)
    with pytest.raises(TierbotError, match="There is no run 999"):
        q.cancel(999)


def test_unknown_tier_fails_with_reason(db):
    run_id = add_run(db, "vanished")
    assert queue(db).claim("w") is None
    with db.session() as s:
        assert s.get(Run, run_id).reason == "tier 'vanished' no longer exists in the tiers file"


def test_reopening_migrates_without_losing_data(db):
    run_id = add_run(db)
    again = Database(db.url)
    with again.session() as s:
        assert s.get(Run, run_id).repository == "r"
    again.dispose()
