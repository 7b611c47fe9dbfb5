"""Drop ix_tasks_claim: no query reads it since the claim reads the queued tasks' partial indexes

The claim (tasks.queue.claim) reads `ix_tasks_queued` (no tenant cap) or `ix_tasks_queued_by_tenant`
(migration d3b8e1f4a6c2), the running tasks per tenant come from `ix_tasks_tenant_running`, whose
(status, queue) prefix also serves any other status-and-queue lookup. `ix_tasks_claim` (status, queue,
run_after, priority) was still written on every insert and every status change of a table that holds a
million finished tasks, and read by nothing.

Revision ID: f2c6b8d0a4e1
Revises: e5a9c3d7f1b8
Create Date: 2026-12-07 19:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f2c6b8d0a4e1"
down_revision: str | None = "e5a9c3d7f1b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_tasks_claim", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_claim", "tasks", ["status", "queue", "run_after", "priority"])
