"""Recording webhook deliveries: once per id, on real SQLite and real PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.store import Delivery
from bot.store.deliveries import Deliveries


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
