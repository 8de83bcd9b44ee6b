"""runs and tasks

Revision ID: 0001
Revises:
Create Date: 2026-11-27 11:11:19.670571
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Partial indexes: only the rows the claim and the sweeper look at.
PENDING = sa.text("status = 'pending'")
ACTIVE = sa.text("status IN ('claimed', 'running')")


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.BigInteger(), nullable=False),
        sa.Column("ruby_version", sa.String(length=64), nullable=False),
        sa.Column("tasks_per_instance_type", sa.Integer(), nullable=False),
        sa.Column("instances_per_instance_type", sa.Integer(), nullable=False),
        sa.Column("benchmarks", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("removed_tasks", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archive_state", sa.String(length=16), nullable=False),
        sa.Column("archive_key", sa.String(length=1024), nullable=True),
        sa.Column("archive_error", sa.Text(), nullable=True),
        sa.Column("archive_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_status", ["status"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("instance_type", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runner_id", sa.String(length=200), nullable=True),
        sa.Column("lease", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_status", sa.String(length=16), nullable=True),
        sa.Column("current_benchmark", sa.String(length=200), nullable=True),
        sa.Column("progress_pct", sa.Float(), nullable=True),
        sa.Column("heartbeat_message", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result_key", sa.String(length=1024), nullable=True),
        sa.Column("error_key", sa.String(length=1024), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "provider", "instance_type", "alias", "run_number"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_active_heartbeat",
            ["heartbeat_at"],
            unique=False,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        )
        batch_op.create_index(
            "ix_tasks_pending",
            ["provider", "instance_type", "id"],
            unique=False,
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
        batch_op.create_index("ix_tasks_run_status", ["run_id", "status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_run_status")
        batch_op.drop_index("ix_tasks_pending", postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.drop_index(
            "ix_tasks_active_heartbeat", postgresql_where=ACTIVE, sqlite_where=ACTIVE
        )

    op.drop_table("tasks")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")

    op.drop_table("runs")
