"""error_type holds an ErrorType value

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:00:00

Before FailRequest.error_type was an ErrorType, a runner could report any string. Rows
with such a type keep it, moved into the message, and become runner_error; the schema
does not change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: later ErrorType members must not change what this migration did.
KNOWN = (
    "provision_failed",
    "benchmark_failed",
    "timeout",
    "upload_failed",
    "runner_error",
    "cancelled",
)


def upgrade() -> None:
    tasks = sa.table(
        "tasks", sa.column("error_type", sa.String), sa.column("error_message", sa.Text)
    )
    op.execute(
        tasks.update()
        .where(tasks.c.error_type.is_not(None), tasks.c.error_type.not_in(KNOWN))
        .values(
            error_message=sa.literal("reported error_type: ")
            + tasks.c.error_type
            + sa.literal("\n")
            + sa.func.coalesce(tasks.c.error_message, ""),
            error_type="runner_error",
        )
    )


def downgrade() -> None:
    pass  # data only: the original types survive in the messages
