"""deployments: merge to deploy's queue and record (`bot.deploy`)

One row per deployment of a commit to an environment (or a rollback to a release kept). Two partial
unique indexes are the safety promises: one deployment of an environment at a time (`deploying`), one
deploy of a commit to an environment ever (rollbacks aside).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Snapshots of `bot.store.models.DEPLOYING` and `DEPLOY_ONCE`, as migrations are.
DEPLOYING = "state = 'deploying'"
DEPLOY_ONCE = "kind = 'deploy'"


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("comparison_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("instance", sa.JSON(), nullable=False),
        sa.Column("artifact_hash", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.JSON(), nullable=False),
        sa.Column("report_to", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["source_id"], ["deployments.id"]),
        sa.ForeignKeyConstraint(["previous_id"], ["deployments.id"]),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparisons.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_deployments_environment", "deployments", ["repository", "environment", "state"], unique=False
    )
    deploying, once = sa.text(DEPLOYING), sa.text(DEPLOY_ONCE)
    op.create_index(
        "ux_deployments_deploying",
        "deployments",
        ["repository", "environment"],
        unique=True,
        sqlite_where=deploying,
        postgresql_where=deploying,
    )
    op.create_index(
        "ux_deployments_once",
        "deployments",
        ["repository", "environment", "sha"],
        unique=True,
        sqlite_where=once,
        postgresql_where=once,
    )


def downgrade() -> None:
    op.drop_index("ux_deployments_once", table_name="deployments")
    op.drop_index("ux_deployments_deploying", table_name="deployments")
    op.drop_index("ix_deployments_environment", table_name="deployments")
    op.drop_table("deployments")
