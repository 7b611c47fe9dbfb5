"""One record per job: ingestion jobs and webhook deliveries read their status, attempts and error from their task

`ingestion_jobs.task_id` and `webhook_deliveries.task_id` name the task that runs each (backfilled from the
tasks' payloads; a row whose task was pruned gets a finished task that says what the row said), and the
columns the task owns are dropped, with the old queue's indexes.

Revision ID: b5d1e7c3a902
Revises: 3f6a2b8c1d47
Create Date: 2026-12-07 08:20:00
"""

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "b5d1e7c3a902"
down_revision: str | None = "3f6a2b8c1d47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
# The stage of each job type at this revision (the registry may change later; a migration must not follow it).
_STAGE_OF_JOB_TYPE = {
    "METADATA_EXTRACTION": "probe",
    "PROXY_GENERATION": "proxies",
    "THUMBNAIL_GENERATION": "thumbnails",
    "AUDIO_ANALYSIS": "audio_visuals",
}
_TASK_OF_JOB_STATUS = {
    "PENDING": "QUEUED",
    "RETRYING": "QUEUED",
    "RUNNING": "QUEUED",  # its runner is gone with the old code: run it again
    "COMPLETED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}
_TASK_OF_DELIVERY_STATUS = {
    "PENDING": "QUEUED",
    "SENDING": "QUEUED",
    "DELIVERED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}
_JOB_COLUMNS = ("status", "priority_rank", "retries", "attempts", "max_attempts", "error", "available_at",
                "lease_owner", "lease_expires_at", "heartbeat_at", "finished_at")  # fmt: skip
_DELIVERY_COLUMNS = ("status", "attempts", "max_attempts", "next_attempt_at", "last_error", "delivered_at")

_tasks = sa.table("tasks", sa.column("payload", sa.JSON), *(sa.column(name) for name in (
    "id", "name", "queue", "dedupe_key", "priority", "tenant", "status", "run_after", "attempts", "max_attempts",
    "last_error", "created_at", "updated_at", "finished_at")))  # fmt: skip


def _payload(value: object) -> dict[str, object]:
    # JSON comes back decoded on both databases; be lenient with rows written by hand.
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _attach_tasks(
    table: str, columns: Sequence[str], *, task_name: str, id_key: str, stand_in: Callable[[Any], dict[str, Any]]
) -> None:
    """Fills `table.task_id` from the tasks that name its rows; a row whose task is gone gets `stand_in(row)`."""
    bind = op.get_bind()
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("task_id", sa.String(length=36), nullable=True))
    rows = sa.table(table, *(sa.column(name) for name in ("id", "task_id", "created_at", "updated_at", *columns)))
    task_of = {
        str(payload[id_key]): task.id
        for task in bind.execute(sa.select(_tasks.c.id, _tasks.c.payload).where(_tasks.c.name == task_name))
        if id_key in (payload := _payload(task.payload))
    }
    now = datetime.now(UTC)
    for row in bind.execute(sa.select(rows)).all():
        task_id = task_of.get(row.id)
        if task_id is None:  # pruned (it finished over a week ago), or never made: one that says the same
            task_id = str(uuid.uuid4())
            values = {"created_at": row.created_at or now, "updated_at": now, "run_after": now, **stand_in(row)}
            finished = values["status"] in FINISHED
            values["finished_at"] = (values.get("finished_at") or now) if finished else None
            bind.execute(_tasks.insert().values(id=task_id, name=task_name, **values))
        bind.execute(rows.update().where(rows.c.id == row.id).values(task_id=task_id))


def _own_by_tasks(table: str, dropped: Sequence[str], indexes: Sequence[str] = ()) -> None:
    with op.batch_alter_table(table) as batch:
        for index in indexes:
            batch.drop_index(index)
        for column in dropped:
            batch.drop_column(column)
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=False)
        batch.create_unique_constraint(batch.f(f"uq_{table}_task_id"), ["task_id"])
        batch.create_foreign_key(
            batch.f(f"fk_{table}_task_id_tasks"), "tasks", ["task_id"], ["id"], ondelete="RESTRICT"
        )


def upgrade() -> None:
    bind = op.get_bind()
    assets = sa.table("media_assets", sa.column("id"), sa.column("owner_id"))
    owners = {row.id: row.owner_id for row in bind.execute(sa.select(assets.c.id, assets.c.owner_id))}

    def job_task(job: Any) -> dict[str, Any]:
        stage = _STAGE_OF_JOB_TYPE.get(job.type, job.type.lower())
        return {
            "queue": "stages",
            "payload": {"assetId": job.asset_id, "stage": stage},
            "dedupe_key": f"legacy-job:{job.id}",
            "priority": job.priority_rank or 0,
            "tenant": owners.get(job.asset_id),
            "status": _TASK_OF_JOB_STATUS.get(job.status, "QUEUED"),
            "attempts": job.attempts or 0,
            "max_attempts": job.max_attempts or 5,
            "last_error": job.error,
            "finished_at": job.finished_at or job.updated_at,
        }

    def delivery_task(delivery: Any) -> dict[str, Any]:
        return {
            "queue": "default",
            "payload": {"deliveryId": delivery.id},
            "dedupe_key": f"webhook:{delivery.id}",
            "priority": 0,
            "status": _TASK_OF_DELIVERY_STATUS.get(delivery.status, "QUEUED"),
            "attempts": delivery.attempts or 0,
            "max_attempts": delivery.max_attempts or 8,
            "last_error": delivery.last_error,
            "run_after": delivery.next_attempt_at or datetime.now(UTC),
            "finished_at": delivery.delivered_at or delivery.updated_at,
        }

    _attach_tasks("ingestion_jobs", ("asset_id", "type", "priority_rank", *_JOB_COLUMNS),
                  task_name="stages.run", id_key="jobId", stand_in=job_task)  # fmt: skip
    _own_by_tasks("ingestion_jobs", _JOB_COLUMNS, ("ix_ingestion_jobs_claim", "ix_ingestion_jobs_lease_expiry"))
    _attach_tasks("webhook_deliveries", _DELIVERY_COLUMNS,
                  task_name="webhooks.deliver", id_key="deliveryId", stand_in=delivery_task)  # fmt: skip
    _own_by_tasks("webhook_deliveries", _DELIVERY_COLUMNS)


def downgrade() -> None:
    bind = op.get_bind()
    tasks = sa.table("tasks", *(sa.column(name) for name in (
        "id", "status", "attempts", "max_attempts", "last_error", "finished_at", "run_after", "priority")))  # fmt: skip

    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    deliveries = sa.table("webhook_deliveries", *(sa.column(name) for name in ("id", "task_id", *_DELIVERY_COLUMNS)))
    delivery_status = {"QUEUED": "PENDING", "RUNNING": "SENDING", "SUCCEEDED": "DELIVERED"}
    for task in bind.execute(
        sa.select(deliveries.c.id.label("row_id"), tasks).join(tasks, tasks.c.id == deliveries.c.task_id)
    ).all():
        bind.execute(deliveries.update().where(deliveries.c.id == task.row_id).values(
            status=delivery_status.get(task.status, task.status), attempts=task.attempts,
            max_attempts=task.max_attempts, next_attempt_at=task.run_after, last_error=task.last_error,
            delivered_at=task.finished_at if task.status == "SUCCEEDED" else None))  # fmt: skip
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint(batch.f("fk_webhook_deliveries_task_id_tasks"), type_="foreignkey")
        batch.drop_constraint(batch.f("uq_webhook_deliveries_task_id"), type_="unique")
        batch.drop_column("task_id")
        for column in ("status", "attempts", "max_attempts", "next_attempt_at"):
            batch.alter_column(column, nullable=False)

    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.add_column(sa.Column("status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("priority_rank", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    jobs = sa.table("ingestion_jobs", *(sa.column(name) for name in (
        "id", "task_id", "status", "priority_rank", "retries", "attempts", "max_attempts", "error", "available_at",
        "finished_at")))  # fmt: skip
    job_status = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "CANCELLED", "RUNNING": "RUNNING"}
    for task in bind.execute(
        sa.select(jobs.c.id.label("job_id"), tasks).join(tasks, tasks.c.id == jobs.c.task_id)
    ).all():
        status = "RETRYING" if task.status == "QUEUED" and task.attempts else job_status.get(task.status, "PENDING")
        bind.execute(jobs.update().where(jobs.c.id == task.job_id).values(
            status=status, priority_rank=task.priority, retries=max((task.attempts or 0) - 1, 0),
            attempts=task.attempts, max_attempts=task.max_attempts, error=task.last_error,
            available_at=task.run_after, finished_at=task.finished_at))  # fmt: skip
    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.drop_constraint(batch.f("fk_ingestion_jobs_task_id_tasks"), type_="foreignkey")
        batch.drop_constraint(batch.f("uq_ingestion_jobs_task_id"), type_="unique")
        batch.drop_column("task_id")
        for column in ("status", "priority_rank", "retries", "attempts", "max_attempts", "available_at"):
            batch.alter_column(column, nullable=False)
        batch.create_index("ix_ingestion_jobs_claim", ["status", "available_at", "priority_rank"], unique=False)
        batch.create_index("ix_ingestion_jobs_lease_expiry", ["status", "lease_expires_at"], unique=False)
