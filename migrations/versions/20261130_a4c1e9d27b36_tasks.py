"""tasks: one queue for every background job; webhook deliveries claimed through it

Revision ID: a4c1e9d27b36
Revises: 5b2f0c1d9a7e
Create Date: 2026-11-30 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a4c1e9d27b36"
down_revision: str | None = "5b2f0c1d9a7e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TASK_STATUS = sa.Enum(
    "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="taskstatus", native_enum=False, length=32
)
# Deliveries waiting when this runs get their task, so none is lost in the upgrade.
_PENDING_DELIVERY_TASKS = """
    INSERT INTO tasks (id, name, queue, payload, dedupe_key, priority, status, run_after, attempts,
                       max_attempts, created_at, updated_at)
    SELECT id, 'webhooks.deliver', 'default', {payload}, 'webhook:' || id, 0, 'QUEUED',
           next_attempt_at, attempts, max_attempts, created_at, updated_at
    FROM webhook_deliveries WHERE status IN ('PENDING', 'SENDING')
"""
_PAYLOAD = """'{"deliveryId": "' || id || '"}'"""


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", TASK_STATUS, nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_tasks_dedupe_key")),
    )
    op.create_index("ix_tasks_claim", "tasks", ["status", "queue", "run_after", "priority"])
    op.create_index("ix_tasks_lease_expiry", "tasks", ["status", "lease_expires_at"])
    op.create_index("ix_tasks_finished", "tasks", ["status", "finished_at"])
    # Deliveries are claimed and retried as tasks now: their own lease and claim index go.
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("lease_expires_at")
    payload = f"CAST({_PAYLOAD} AS JSONB)" if op.get_bind().dialect.name == "postgresql" else _PAYLOAD
    op.execute(_PENDING_DELIVERY_TASKS.format(payload=payload))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
    op.drop_index("ix_tasks_finished", table_name="tasks")
    op.drop_index("ix_tasks_lease_expiry", table_name="tasks")
    op.drop_index("ix_tasks_claim", table_name="tasks")
    op.drop_table("tasks")
