"""Completion webhooks: each user's signing secret, and the outbox of deliveries to their URL.

The URL itself lives on `User.webhook_url`. A delivery row is written in the same transaction that
makes an asset READY or FAILED (the outbox pattern), so an event is never lost and never announced
for a change that rolled back; the worker's delivery loop sends it afterwards, at least once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaingest.db import Base, JSONType, UTCDateTime, new_id, utcnow
from mediaingest.models.task import Task, TaskStatus


class WebhookDeliveryStatus(StrEnum):
    """A delivery's status on the wire: its task's, in the words of webhooks."""

    PENDING = "PENDING"  # waiting for its next attempt (next_attempt_at)
    SENDING = "SENDING"  # an attempt is under way (its task is leased; a dead runner's task is reaped)
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    FAILED = "FAILED"  # every attempt failed
    CANCELLED = "CANCELLED"  # the user removed their webhook before it could be delivered


_DELIVERY_STATUS = {
    TaskStatus.QUEUED: WebhookDeliveryStatus.PENDING,
    TaskStatus.RUNNING: WebhookDeliveryStatus.SENDING,
    TaskStatus.SUCCEEDED: WebhookDeliveryStatus.DELIVERED,
    TaskStatus.FAILED: WebhookDeliveryStatus.FAILED,
    TaskStatus.CANCELLED: WebhookDeliveryStatus.CANCELLED,
}


class WebhookSecret(Base):
    """The HMAC key a user's deliveries are signed with.

    Stored as plaintext, unlike API tokens (which are hashed): HMAC is symmetric, so every worker
    that signs needs the key itself. Encrypting it with a key held in the same environment as the
    database credentials would protect little. It authenticates our messages to the user's endpoint
    and grants nothing on this API; it is returned once, when set, never logged, and replaced by
    setting the webhook again.
    """

    __tablename__ = "webhook_secrets"

    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """What users see of one announcement: the event, its payload and each attempt's answer. Sending it is
    its task's business: status, attempts, the next attempt and the last error are read from the task."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_user_created", "user_id", "created_at"),)

    # Also the delivery id receivers deduplicate on (X-MediaIngest-Delivery): it is stable across retries.
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    # No foreign key: the announcement of an asset's completion outlives the asset's deletion.
    asset_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    event: Mapped[str] = mapped_column(sa.String(64))  # asset.ready | asset.failed
    url: Mapped[str] = mapped_column(sa.String(2048))  # the user's URL when the event happened
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The task that sends it. A finished task is kept while its delivery is (the queue's pruning skips it).
    task_id: Mapped[str] = mapped_column(sa.ForeignKey("tasks.id", ondelete="RESTRICT"), unique=True)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    # One {"at", "attempt", "statusCode", "error", "durationMs"} entry per attempt.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)

    # --- read from the task: the API's field names, one owner -----------------------------------------
    @property
    def status(self) -> WebhookDeliveryStatus:
        return _DELIVERY_STATUS[self.task.status]

    @property
    def attempts(self) -> int:
        return self.task.attempts

    @property
    def max_attempts(self) -> int:
        return self.task.max_attempts

    @property
    def next_attempt_at(self) -> datetime:
        return self.task.run_after

    @property
    def last_error(self) -> str | None:
        return self.task.last_error

    @property
    def delivered_at(self) -> datetime | None:
        return self.task.finished_at if self.task.status == TaskStatus.SUCCEEDED else None
