"""One record per job: an ingestion job reads its status, attempts, error and lease from its task

`ingestion_jobs.task_id` names the stage's task (backfilled from the tasks' payloads; a job whose task was
pruned gets a finished task that says what the row said), and the columns the task owns are dropped, with
the old queue's indexes.

Revision ID: b5d1e7c3a902
Revises: 3f6a2b8c1d47
Create Date: 2026-12-07 08:20:00
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "b5d1e7c3a902"
down_revision: str | None = "3f6a2b8c1d47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TASK_STATUS = {
    "PENDING": "QUEUED",
    "RETRYING": "QUEUED",
    "RUNNING": "QUEUED",  # its runner is gone with the old code: run it again
    "COMPLETED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}
_JOB_STATUS = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "CANCELLED", "RUNNING": "RUNNING"}
_OWNED_BY_THE_TASK = ("status", "priority_rank", "retries", "attempts", "max_attempts", "error", "available_at",
                      "lease_owner", "lease_expires_at", "heartbeat_at", "finished_at")  # fmt: skip


# The stage of each job type at this revision (the registry may change later; a migration must not follow it).
_STAGE_OF_JOB_TYPE = {
    "METADATA_EXTRACTION": "probe",
    "PROXY_GENERATION": "proxies",
    "THUMBNAIL_GENERATION": "thumbnails",
    "AUDIO_ANALYSIS": "audio_visuals",
}


def _payload(value: object) -> dict[str, object]:
    # JSONB on PostgreSQL comes back decoded; SQLite's JSON type too, but be lenient with hand-written rows.
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.add_column(sa.Column("task_id", sa.String(length=36), nullable=True))
    tasks = sa.table("tasks", sa.column("payload", sa.JSON), *(sa.column(name) for name in (
        "id", "name", "queue", "dedupe_key", "priority", "tenant", "status", "run_after", "attempts",
        "max_attempts", "last_error", "created_at", "updated_at", "finished_at")))  # fmt: skip
    jobs = sa.table("ingestion_jobs", *(sa.column(name) for name in (
        "id", "asset_id", "type", "task_id", "status", "attempts", "max_attempts", "error", "created_at",
        "finished_at", "priority_rank")))  # fmt: skip
    assets = sa.table("media_assets", sa.column("id"), sa.column("owner_id"))
    task_of_job = {
        str(payload["jobId"]): row.id
        for row in bind.execute(sa.select(tasks.c.id, tasks.c.payload).where(tasks.c.name == "stages.run"))
        if "jobId" in (payload := _payload(row.payload))
    }
    owners = {row.id: row.owner_id for row in bind.execute(sa.select(assets.c.id, assets.c.owner_id))}
    now = datetime.now(UTC)
    for job in bind.execute(sa.select(jobs)).all():
        task_id = task_of_job.get(job.id)
        if task_id is None:  # pruned (it finished over a week ago), or never made: a task that says the same
            task_id = str(uuid.uuid4())
            status = _TASK_STATUS.get(job.status, "QUEUED")
            stage = _STAGE_OF_JOB_TYPE.get(job.type, job.type.lower())
            bind.execute(tasks.insert().values(
                id=task_id, name="stages.run", queue="stages",
                payload={"assetId": job.asset_id, "stage": stage},
                dedupe_key=f"legacy-job:{job.id}", priority=job.priority_rank or 0, tenant=owners.get(job.asset_id),
                status=status, run_after=now, attempts=job.attempts or 0, max_attempts=job.max_attempts or 5,
                last_error=job.error, created_at=job.created_at or now, updated_at=now,
                finished_at=(job.finished_at or now) if status in ("SUCCEEDED", "FAILED", "CANCELLED") else None,
            ))  # fmt: skip
        bind.execute(jobs.update().where(jobs.c.id == job.id).values(task_id=task_id))
    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.drop_index("ix_ingestion_jobs_claim")
        batch.drop_index("ix_ingestion_jobs_lease_expiry")
        for column in _OWNED_BY_THE_TASK:
            batch.drop_column(column)
        batch.alter_column("task_id", existing_type=sa.String(length=36), nullable=False)
        batch.create_unique_constraint(batch.f("uq_ingestion_jobs_task_id"), ["task_id"])
        batch.create_foreign_key(
            batch.f("fk_ingestion_jobs_task_id_tasks"), "tasks", ["task_id"], ["id"], ondelete="RESTRICT"
        )


def downgrade() -> None:
    bind = op.get_bind()
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
    tasks = sa.table("tasks", *(sa.column(name) for name in (
        "id", "status", "attempts", "max_attempts", "last_error", "finished_at", "run_after", "priority")))  # fmt: skip
    jobs = sa.table("ingestion_jobs", *(sa.column(name) for name in (
        "id", "task_id", "status", "priority_rank", "retries", "attempts", "max_attempts", "error", "available_at",
        "finished_at")))  # fmt: skip
    rows = bind.execute(sa.select(jobs.c.id.label("job_id"), tasks).join(tasks, tasks.c.id == jobs.c.task_id)).all()
    for task in rows:
        status = "RETRYING" if task.status == "QUEUED" and task.attempts else _JOB_STATUS.get(task.status, "PENDING")
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
