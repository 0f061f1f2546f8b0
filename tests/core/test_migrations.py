"""Schema migrations: they match the models, and an upgrade keeps every row (SQLite and PostgreSQL)."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot.store import Database, Run
from bot.store.models import Base


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_match_the_models(url):
    db = Database(url)
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    db.dispose()


def test_upgrade_from_the_first_schema_keeps_runs(url):
    old = Database(url, migrate=False)
    old.migrate("0001")
    with old.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO runs (repository, ref, sha, tree_sha, experiment, tier, role, cache_key, spec, "
                "requested_by, report_to, state, phase, cancel_requested, attempts, created_at) VALUES "
                "('r', 'main', 'a', 'b', 'e', 'local', 'run', 'k', '{}', '{}', '[]', 'succeeded', "
                "'succeeded', "
                "false, 1, CURRENT_TIMESTAMP)"
            )
        )
    old.dispose()
    new = Database(url)
    with new.session() as s:
        run = s.get(Run, 1)
        assert (run.repository, run.state, run.subject) == ("r", "succeeded", None)
    new.dispose()


def test_the_head_revision_is_known_without_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store.db import _MIGRATIONS, HEAD

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_upgrade_to_reused_runs_keeps_runs_and_what_refers_to_them(url):
    """0009 adds runs.reused_run_id, a foreign key to runs: no run, and no row that refers to one
    (outputs, comparisons), is lost on the way (rebuilding `runs` on SQLite would lose or refuse them)."""
    old = Database(url, migrate=False)
    old.migrate("0008")
    with old.engine.begin() as c:
        for sha in ("a", "b"):
            c.execute(
                text(
                    "INSERT INTO runs (repository, ref, sha, tree_sha, experiment, tier, role, cache_key, "
                    "spec, requested_by, report_to, state, phase, cancel_requested, attempts, created_at) "
                    f"VALUES ('r', 'main', '{sha}', 't', 'e', 'local', 'run', 'k', '{{}}', '{{}}', '[]', "
                    "'succeeded', 'succeeded', false, 1, CURRENT_TIMESTAMP)"
                )
            )
        c.execute(text("INSERT INTO outputs (run_id, path, size, hash) VALUES (1, 'm.json', 3, 'h')"))
        c.execute(
            text(
                "INSERT INTO comparisons (head_run_id, base_run_id, head_label, base_label, baseline_reused, "
                "state, created_at) VALUES (2, 1, 'b', 'a', false, 'done', CURRENT_TIMESTAMP)"
            )
        )
    old.dispose()
    new = Database(url)
    with new.session() as s:
        first, second = s.get(Run, 1), s.get(Run, 2)
        assert (first.sha, second.sha, second.reused_run_id) == ("a", "b", None)
        assert [o.path for o in first.outputs] == ["m.json"]
        assert s.scalar(text("SELECT count(*) FROM comparisons")) == 1
        second.reused_run_id = first.id
    with new.session() as s:
        assert s.get(Run, 2).reused_run_id == 1
    new.dispose()
