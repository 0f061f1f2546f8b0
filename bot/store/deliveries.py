"""Inbound webhooks as a queue. Recording is idempotent on the delivery id: a redelivery is a no-op."""

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store.db import Database
from bot.store.models import Delivery, utcnow

MAX_ATTEMPTS = 3


class Deliveries:
    def __init__(self, db: Database, lease_seconds: float):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)

    def record(self, delivery_id: str, source: str, event: str, action: str | None, payload: dict) -> bool:
        """Store a delivery; False when this id was recorded before (a redelivery)."""
        try:
            with self.db.session() as s:
                if s.get(Delivery, delivery_id) is not None:
                    return False
                s.add(Delivery(id=delivery_id, source=source, event=event, action=action, payload=payload))
        except IntegrityError:  # recorded at the same moment by another replica
            return False
        return True

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

    def get(self, delivery_id: str) -> Delivery | None:
        with self.db.session() as s:
            return s.get(Delivery, delivery_id)
