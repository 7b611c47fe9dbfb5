"""tasks.tenant: whose work a task is, for the claim's per-tenant fairness

Revision ID: 3f6a2b8c1d47
Revises: e91b7a3c5d20
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a2b8c1d47"
down_revision: str | None = "e91b7a3c5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=255), nullable=True))
        batch.create_index("ix_tasks_tenant_running", ["status", "queue", "tenant"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_tenant_running")
        batch.drop_column("tenant")
