"""dashboard: revoked sessions (logout) and failed logins (throttle); extra_args allowlisted

Stored runs keep only the `benchmarks.extra_args` the allowlist (protocol.rubybench_args)
accepts: reading or claiming a run validates its settings, and an older run holding `-e` or
`--harness` would otherwise be a 500 there, or a command for every runner.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cloudbench.protocol.rubybench_args import extra_arg_problem

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_sessions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid"),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_client", ["client", "failed_at"], unique=False)
    _allowlist_extra_args()


def _allowlist_extra_args() -> None:
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("benchmarks", sa.JSON))
    conn = op.get_bind()
    for run_pk, benchmarks in conn.execute(sa.select(runs.c.id, runs.c.benchmarks)).all():
        args = (benchmarks or {}).get("extra_args") or []
        kept = [a for a in args if isinstance(a, str) and extra_arg_problem(a) is None]
        if kept != args:
            fixed = {**benchmarks, "extra_args": kept}
            conn.execute(runs.update().where(runs.c.id == run_pk).values(benchmarks=fixed))


def downgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_client")
    op.drop_table("login_failures")
    op.drop_table("revoked_sessions")
