"""Inbound webhooks as a queue. Recording is idempotent on the delivery id: a redelivery is a no-op."""

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store.db import Database
from bot.store.models import Delivery, utcnow

MAX_ATTEMPTS = 3


class Deliveries:
    def __init__(self, db: Database, lease_seconds: float):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)

    def record(self, delivery_id: str, source: str, event: str, action: str | None, payload: dict) -> bool:
        """Store a delivery; False when this id was recorded before (a redelivery)."""
        return self.record_many([(delivery_id, source, event, action, payload)])[0]

    def record_many(self, items: list[tuple[str, str, str, str | None, dict]]) -> list[bool]:
        """Store deliveries (id, source, event, action, payload) in one transaction; for each, whether it
        is new. A redelivery, or the same id twice in the batch, is not; another replica recording the
        same id at the same moment is not either (the insert skips conflicts rather than failing)."""
        now, rows, seen = utcnow(), [], set()
        for delivery_id, source, event, action, payload in items:
            if delivery_id not in seen:
                seen.add(delivery_id)
                rows.append(
                    {
                        "id": delivery_id,
                        "source": source,
                        "event": event,
                        "action": action,
                        "payload": payload,
                        "state": "pending",
                        "attempts": 0,
                        "received_at": now,
                    }
                )
        table = Delivery.__table__
        dialect_insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        # One statement executed for many rows: SQLAlchemy caches its compiled form and sends the rows as
        # multi-row VALUES ("insertmanyvalues"), so a batch costs one round trip and no new compile.
        statement = dialect_insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        with self.db.engine.begin() as connection:  # Core: no ORM session to set up for a bare insert
            inserted = set(connection.execute(statement, rows).scalars())
        answers = []
        for delivery_id, *_ in items:
            answers.append(delivery_id in inserted)
            inserted.discard(delivery_id)  # a second one in the batch is a duplicate
        return answers

    def claim(self) -> Delivery | None:
        """The oldest pending delivery, or one whose handler died (lease expired) with attempts left."""
        now = utcnow()
        with self.db.exclusive() as s:
            delivery = s.scalars(
                select(Delivery)
                .where(
                    or_(
                        Delivery.state == "pending",
                        (Delivery.state == "processing") & (Delivery.lease_expires_at < now),
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
            delivery.attempts += 1
            return delivery

    def finish(self, delivery_id: str, state: str, outcome: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(state=state, outcome=outcome[:4000], processed_at=utcnow(), lease_expires_at=None)
            )

    def retry_later(self, delivery_id: str, outcome: str, delay: float) -> None:
        """Handle it again after `delay` seconds (as if its handler had died), until attempts run out."""
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(outcome=outcome[:4000], lease_expires_at=utcnow() + timedelta(seconds=delay))
            )

    def get(self, delivery_id: str) -> Delivery | None:
        with self.db.session() as s:
            return s.get(Delivery, delivery_id)
