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
from sqlalchemy.orm import Mapped, mapped_column

from mediaingest.db import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow


class WebhookDeliveryStatus(StrEnum):
    PENDING = "PENDING"  # waiting for its next attempt (next_attempt_at)
    SENDING = "SENDING"  # an attempt is under way (its task is leased; a dead runner's task is reaped)
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    FAILED = "FAILED"  # every attempt failed
    CANCELLED = "CANCELLED"  # the user removed their webhook before it could be delivered


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
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        enum_column(WebhookDeliveryStatus), default=WebhookDeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=8)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # One {"at", "attempt", "statusCode", "error", "durationMs"} entry per attempt.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
