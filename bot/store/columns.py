"""Column types and index forms every model uses, on SQLite and PostgreSQL alike."""

from datetime import UTC, datetime

from sqlalchemy import Index, text
from sqlalchemy.types import DateTime, TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def partial_unique(name: str, *columns: str, where: str) -> Index:
    """A unique index over the rows for which `where` holds. Its SQLite form is declared here; its
    PostgreSQL form when a PostgreSQL engine is made (`bot.store.db`): naming a dialect's option loads
    that dialect, and this module is imported by every command, most of which use SQLite."""
    return Index(name, *columns, unique=True, sqlite_where=text(where), info={"where": where})


def declare_for_postgresql(metadata) -> None:
    """The PostgreSQL form of every partial index (`partial_unique`), as the migrations create them."""
    for table in metadata.tables.values():
        for index in table.indexes:
            if "where" in index.info:
                index.dialect_options["postgresql"]["where"] = text(index.info["where"])
