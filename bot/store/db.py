"""Engine, sessions and migrations. Opening a database always brings its schema up to date."""

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from bot.store.columns import declare_for_postgresql
from bot.store.models import Base

_MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision: migration files are named NNNN_what.py and revision ids are their NNNN.
HEAD = max(path.name[:4] for path in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
# Any constant: serializes migrations of several replicas starting at once on PostgreSQL.
_MIGRATION_LOCK = 7_413_001
# The first half of the two-key advisory locks that say a run's worker, or a process, is alive
# (`Database.hold`); the single-key locks above have 0 there, so they never meet.
RUNS, PROCESSES = 7413, 7414
BUDGETS = 7415  # of `serialize`: the checks of requests against budgets


def serialize(session: Session, space: int, key: int = 0) -> None:
    """The session's transaction runs after every other one that took this lock and before the next:
    on PostgreSQL a transaction-level advisory lock, released at its end; SQLite's writers take turns
    already (`BEGIN IMMEDIATE`, see `_make_engine`)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": space, "key": key})


class Database:
    def __init__(self, url: str, migrate: bool = True):
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._holds: Engine | None = None  # connections that hold runs' advisory locks (`hold`)
        self._me: int | None = None
        self._me_held: Callable[[], None] | None = None
        self._me_lock = threading.Lock()
        if migrate and self.revision() != HEAD:
            self.migrate()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def revision(self) -> str | None:
        """The schema's Alembic revision; None for an empty database."""
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except DBAPIError:
                return None

    def migrate(self, revision: str = "head") -> None:
        from alembic import command  # Alembic takes a quarter of a second to import; most starts skip it
        from alembic.config import Config

        with self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def exclusive(self) -> Iterator[Session]:
        """A transaction that no other writer runs beside (for claiming queued runs).

        SQLite transactions are all exclusive among writers (see `_make_engine`); on PostgreSQL a
        transaction-level advisory lock serializes claims, so per-tier concurrency counts stay exact.
        """
        with self.session() as session:
            if not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK + 1})
            yield session

    def hold(self, key: int, space: int = RUNS) -> Callable[[], None]:
        """Say "I am alive" for `key` (a run: its worker is) for as long as this process lives, until the
        returned function is called: on PostgreSQL a session-level advisory lock on a connection of its
        own, which the server releases the moment the process dies (its connection closes), so another
        replica sees it in seconds rather than after a lease (`alive`). SQLite has only the leases."""
        if self.is_sqlite:
            return lambda: None
        if self._holds is None:  # outside the pool: a long run must not keep a pooled connection
            self._holds = create_engine(self.url, poolclass=NullPool)
        connection = self._holds.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("SELECT pg_advisory_lock(:space, :key)"), {"space": space, "key": key})
        return connection.close  # closing the session releases its locks

    def alive(self, session: Session, key: int, space: int = RUNS) -> bool:
        """Whether some process holds `key` (`hold`); always True on SQLite, which cannot tell."""
        if self.is_sqlite:
            return True
        lock = {"space": space, "key": key}
        if not session.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"), lock):
            return True
        session.execute(text("SELECT pg_advisory_unlock(:space, :key)"), lock)  # ours only for this look
        return False

    def me(self) -> int:
        """This process's key, held (`hold`) from its first claim of a delivery or a report until it
        exits: what such a claim records, so that a claim of a dead process is taken over at once."""
        with self._me_lock:
            if self._me is None:
                key = secrets.randbits(31)
                self._me_held = self.hold(key, PROCESSES)  # kept: its connection holds the lock
                self._me = key
            return self._me

    def dead(self, session: Session, keys: Iterable[int | None]) -> list[int]:
        """Which of these processes (`me`) are gone."""
        return [k for k in set(keys) if k is not None and not self.alive(session, k, PROCESSES)]

    def dispose(self) -> None:
        if self._me_held is not None:
            self._me_held()
            self._me, self._me_held = None, None
        self.engine.dispose()
        if self._holds is not None:
            self._holds.dispose()


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        declare_for_postgresql(Base.metadata)
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (so they can be IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # IMMEDIATE takes the write lock up front. A deferred transaction that reads and then writes
        # fails at once with "database is locked" when another writer committed in between, instead
        # of waiting out busy_timeout. Sessions are short, so serializing them costs nothing here.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
