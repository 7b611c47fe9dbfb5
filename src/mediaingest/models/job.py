"""Ingestion jobs: one row per (asset, stage), leased by workers or mirrored from Kubernetes Jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from mediaingest.db import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow
from mediaingest.models.enums import IngestionJobStatus, IngestionJobType, JobPriority


class IngestionJob(Base):
    __tablename__ = "ingestion_jobs"
    __table_args__ = (
        # One row per stage of an asset: re-dispatching is idempotent, re-running replaces in place.
        sa.UniqueConstraint("asset_id", "type"),
        # The lease query: claimable rows by priority, then age.
        sa.Index("ix_ingestion_jobs_claim", "status", "available_at", "priority_rank"),
        sa.Index("ix_ingestion_jobs_lease_expiry", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    asset_id: Mapped[str] = mapped_column(sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True)
    type: Mapped[IngestionJobType] = mapped_column(sa.String(32))  # a registered stage's job type
    status: Mapped[IngestionJobStatus] = mapped_column(
        enum_column(IngestionJobStatus), default=IngestionJobStatus.PENDING
    )
    priority: Mapped[JobPriority] = mapped_column(enum_column(JobPriority), default=JobPriority.NORMAL)
    priority_rank: Mapped[int] = mapped_column(sa.Integer, default=1)
    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)  # percent, 0–100
    message: Mapped[str | None] = mapped_column(sa.String(1024))
    # Append-only list of {"at", "level", "event", ...} entries: what happened to this job, attempt by attempt.
    logs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    retries: Mapped[int] = mapped_column(sa.Integer, default=0)  # attempts that failed and were retried
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)  # attempts started
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=5)
    error: Mapped[str | None] = mapped_column(sa.Text)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
