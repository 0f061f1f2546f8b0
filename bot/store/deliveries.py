"""Inbound webhooks as a queue. Recording is idempotent on the delivery id: a redelivery is a no-op."""

import json
from datetime import timedelta

from sqlalchemy import or_, select, update

from bot.retry import backoff
from bot.store.db import Database
from bot.store.models import Delivery, utcnow

MAX_ATTEMPTS = 3
CHECKPOINT_PAGES = 1000  # SQLite's default WAL auto-checkpoint
_COLUMNS = ("id", "source", "event", "action", "payload", "state", "attempts", "received_at")
Item = tuple[str, str, str, str | None, str]  # id, source, event, action, payload (JSON text)


class Deliveries:
    def __init__(self, db: Database, lease_seconds: float):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self._inserts: dict[int, str] = {}  # the insert's text by row count
        # How the driver wants a time: the column type's own conversion (SQLite stores text).
        self._bind_time = Delivery.received_at.type.bind_processor(db.engine.dialect) or (lambda value: value)

    def record(self, delivery_id: str, source: str, event: str, action: str | None, payload: dict) -> bool:
        """Store one delivery; False when this id was recorded before (a redelivery)."""
        return self.record_many([(delivery_id, source, event, action, json.dumps(payload))])[0]

    def record_many(self, items: list[Item]) -> list[bool]:
        """Store deliveries (id, source, event, action, payload as the body's JSON text) in one transaction;
        for each, whether it is new. A redelivery, or the same id twice in the batch, is not; another
        replica recording the same id at the same moment is not either (conflicts are skipped, not errors).

        This is the one write on a webhook's answer path, so it talks to the driver directly: one
        multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id` (SQLite ≥ 3.35 and PostgreSQL alike) on
        a pooled connection, with the body stored as it came rather than parsed and dumped again. Through
        SQLAlchemy Core the same insert cost about three times as much CPU, most of an answer's."""
        now, rows, seen = self._bind_time(utcnow()), [], set()
        for delivery_id, source, event, action, payload in items:
            if delivery_id not in seen:
                seen.add(delivery_id)
                rows += [delivery_id, source, event, action, payload, "pending", 0, now]
        connection = self.db.engine.raw_connection()
        try:
            insert = _insert_sqlite if self.db.is_sqlite else _insert_postgres
            inserted = insert(connection.driver_connection, self._statement(len(seen)), rows)
        finally:
            connection.close()  # back to the pool
        answers = []
        for delivery_id, *_ in items:
            answers.append(delivery_id in inserted)
            inserted.discard(delivery_id)  # a second one in the batch is a duplicate
        return answers

    def _statement(self, count: int) -> str:
        """The insert of `count` rows, with sqlite3's `?` marks or PostgreSQL's `$1, $2, …`."""
        if count not in self._inserts:
            width = len(_COLUMNS)
            places = range(count * width)
            marks = ["?" for _ in places] if self.db.is_sqlite else [f"${n + 1}" for n in places]
            rows = ", ".join("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(count))
            self._inserts[count] = (
                f"INSERT INTO {Delivery.__tablename__} ({', '.join(_COLUMNS)}) "
                f"VALUES {rows} ON CONFLICT (id) DO NOTHING RETURNING id"
            )
        return self._inserts[count]

    def claim(self) -> Delivery | None:
        """The oldest pending delivery, or one whose handler died (its process is gone, or its lease
        expired) with attempts left."""
        now, me = utcnow(), self.db.me()
        with self.db.exclusive() as s:
            handling = (Delivery.state == "processing") & (Delivery.lease_expires_at >= now)
            dead = self.db.dead(s, s.scalars(select(Delivery.claimed_by).where(handling).distinct()))
            delivery = s.scalars(
                select(Delivery)
                .where(
                    or_(
                        Delivery.state == "pending",
                        (Delivery.state == "processing") & (Delivery.lease_expires_at < now),
                        handling & Delivery.claimed_by.in_(dead),  # a killed replica's: at once
                    )
                )
                .order_by(Delivery.received_at)
                .limit(1)
            ).first()
            if delivery is None:
                return None
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.state, delivery.outcome = "failed", f"gave up after {delivery.attempts} attempts"
                delivery.processed_at = now
                return None
            delivery.state, delivery.lease_expires_at = "processing", now + self.lease
            delivery.attempts, delivery.claimed_by = delivery.attempts + 1, me
            return delivery

    def finish(self, delivery_id: str, state: str, outcome: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(state=state, outcome=outcome[:4000], processed_at=utcnow(), lease_expires_at=None)
            )

    def retry_later(self, delivery_id: str, outcome: str, retry_after: float | None = None) -> float:
        """Handle it again after `bot.retry.backoff` (never sooner than the API asked: `retry_after` s),
        as if its handler had died, until attempts run out; the delay."""
        with self.db.session() as s:
            delivery = s.get(Delivery, delivery_id)
            delay = backoff(delivery.attempts, retry_after)
            delivery.outcome, delivery.lease_expires_at = outcome[:4000], utcnow() + timedelta(seconds=delay)
        return delay

    def get(self, delivery_id: str) -> Delivery | None:
        with self.db.session() as s:
            return s.get(Delivery, delivery_id)


def _insert_sqlite(driver, statement: str, rows: list) -> set[str]:
    """Run the insert (a transaction of its own: the connection is in autocommit mode, see `bot.store.db`);
    the ids it inserted.

    A checkpoint (copying the WAL into the database, two fsyncs) takes milliseconds that every request in
    flight would wait for: it was all of the answers' worst stalls (`benchmarks/webhook_ack.py`). So this
    insert leaves checkpoints to the other commits (workers', at SQLite's usual 1,000 pages), unless the
    WAL grows ten times past that because nothing else writes."""
    cursor = driver.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint = {10 * CHECKPOINT_PAGES}")
    try:
        cursor.execute(statement, rows)
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")


def _insert_postgres(driver, statement: str, rows: list) -> set[str]:
    """Run the insert as a transaction of its own; the ids it inserted.

    In autocommit the statement is one round trip, where a transaction takes three (BEGIN, INSERT,
    COMMIT) with the event loop waiting on each. A raw cursor takes PostgreSQL's own `$n` marks, where
    psycopg rewrites `%s` with a regular expression on every call once a statement has over 50 parameters
    (a batch of 9 deliveries has 72), which costs more CPU than the insert itself."""
    from psycopg import RawCursor

    driver.autocommit = True
    try:
        cursor = RawCursor(driver)
        cursor.execute(statement, rows)
        return {row[0] for row in cursor.fetchall()}
    finally:
        if not driver.closed:  # (a broken connection is left to the pool to discard)
            driver.autocommit = False
