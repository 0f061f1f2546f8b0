"""one run per key in flight, one run per automatic request, claims by process (for fast takeover)

Two replicas submitting the same head or baseline at once both looked for an in-flight run of the key,
found none, and queued one each. The index makes the second insert fail, and the pipeline joins the run
that won (`bot.reuse`). Likewise a pull request event delivered twice under two ids (a proxy's retry, a
replay) on two replicas: `runs.once` names the request, and the second insert finds the first run.
Deliveries and reports record the process that claimed them (`claimed_by`), whose advisory lock says
whether it is alive: a killed replica's claims are taken over at once, not after their lease.
Only runs that would execute count for the key: reuses and joiners (`reused_run_id` set), untrusted code
(never shared) and refusals (no key) are outside it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Snapshots of `bot.store.models.ONCE_LIVE` and `IN_FLIGHT`, as migrations are.
ONCE_LIVE = "once IS NOT NULL AND state <> 'cancelled'"
IN_FLIGHT = "state IN ('queued', 'running') AND reused_run_id IS NULL AND trusted AND cache_key <> ''"


def upgrade() -> None:
    # Duplicates already in flight (queued before this index) run on; all but the newest of a key are
    # taken out of the index's sight by a suffix on their key, so they are not used for reuse later.
    op.execute(
        f"UPDATE runs SET cache_key = cache_key || '-dup' WHERE ({IN_FLIGHT}) AND id NOT IN "
        f"(SELECT max(id) FROM runs WHERE ({IN_FLIGHT}) GROUP BY cache_key)"
    )
    where = sa.text(IN_FLIGHT)
    op.create_index(
        "ux_runs_key_in_flight",
        "runs",
        ["cache_key"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )

    op.add_column("runs", sa.Column("once", sa.String(length=400), nullable=True))
    live = sa.text(ONCE_LIVE)
    op.create_index("ux_runs_once", "runs", ["once"], unique=True, sqlite_where=live, postgresql_where=live)
    for table in ("deliveries", "reports"):
        op.add_column(table, sa.Column("claimed_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ("deliveries", "reports"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("claimed_by")
    op.drop_index("ux_runs_once", table_name="runs")
    op.drop_index("ux_runs_key_in_flight", table_name="runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("once")
