"""Recording webhook deliveries: once per id, on real SQLite and real PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from bot.store import Delivery
from bot.store.db import Database
from bot.store.deliveries import CHECKPOINT_PAGES, Deliveries


def item(delivery_id: str, payload: dict) -> tuple:
    return delivery_id, "github", "pull_request", payload.get("action"), json.dumps(payload)


def test_each_id_is_recorded_once_and_read_back_as_sent(db):
    deliveries = Deliveries(db, lease_seconds=30)
    first = {"action": "opened", "number": 7, "pull_request": {"title": "Ünïcode ✓", "draft": False}}
    before = datetime.now(UTC)
    answers = deliveries.record_many([item("a", first), item("b", {}), item("a", {"action": "other"})])
    assert answers == [True, True, False]  # the same id twice in one batch: the second is a duplicate
    assert deliveries.record_many([item("b", {}), item("c", {})]) == [False, True]  # a redelivery
    stored = deliveries.get("a")
    assert stored.payload == first and stored.action == "opened" and stored.state == "pending"
    assert stored.attempts == 0 and before <= stored.received_at <= datetime.now(UTC) + timedelta(seconds=1)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 3
    assert deliveries.claim().id in {"a", "b"}  # recorded in one transaction: the same time


def test_a_failed_batch_stores_nothing_and_leaves_transactions_working(db):
    deliveries = Deliveries(db, lease_seconds=30)
    broken = ("y", None, "pull_request", "opened", "{}")  # no source: the NOT NULL column refuses it
    with pytest.raises(db.engine.dialect.dbapi.IntegrityError):  # the driver's own (sqlite3, psycopg)
        deliveries.record_many([item("x", {}), broken])
    assert deliveries.get("x") is None  # one statement: all of the batch or none of it
    assert deliveries.record_many([item("x", {})]) == [True]
    # The insert's connection went back to the pool as it was lent: a transaction there still rolls back.
    with db.engine.connect() as connection:
        connection.execute(insert(Delivery).values(id="z", source="github", event="e", payload={}))
        connection.rollback()
    assert deliveries.get("z") is None


def test_sqlite_inserts_leave_wal_checkpoints_to_other_commits(tmp_path):
    """A checkpoint on the webhook's answer path stalls every request in flight; other writers do it."""
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    deliveries = Deliveries(db, lease_seconds=30)
    large = {"action": "opened", "blob": "x" * 100_000}  # about 25 pages of WAL each
    for n in range(60):  # about 1,500 pages, past SQLite's usual checkpoint at 1,000
        deliveries.record_many([item(f"d{n}", large)])
    page = 4096 + 24  # a WAL frame: one page and its header
    assert (tmp_path / "q.db-wal").stat().st_size > CHECKPOINT_PAGES * page  # never checkpointed
    deliveries.finish("d0", "done", "handled")  # a worker's commit checkpoints the whole WAL…
    deliveries.record_many([item("after", {})])  # … so the next write starts it over
    connection = db.engine.raw_connection()  # (outside a transaction, which a checkpoint cannot be in)
    _busy, frames, _done = connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    connection.close()
    assert frames < 100
    db.dispose()
