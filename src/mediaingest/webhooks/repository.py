"""Every query on webhook deliveries.

Claiming follows worker/leases.py: one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
RETURNING`, so two workers never take the same row (SQLite serializes writers at BEGIN IMMEDIATE
instead). A claim is a lease: a worker that dies mid-send leaves a SENDING row whose lease lapses,
and the next claim takes it again — at least once, never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.models import User, WebhookDelivery, WebhookDeliveryStatus, WebhookSecret

_OPEN = (WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.SENDING)


def has_delivery(session: Session, *, asset_id: str, event: str) -> bool:
    return (
        session.scalar(
            sa.select(WebhookDelivery.id).where(WebhookDelivery.asset_id == asset_id, WebhookDelivery.event == event)
        )
        is not None
    )


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(WebhookDelivery.status == WebhookDeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now),
        sa.and_(WebhookDelivery.status == WebhookDeliveryStatus.SENDING, WebhookDelivery.lease_expires_at < now),
    )


def claim_due(
    session: Session, *, worker_id: str, limit: int, lease_seconds: float, now: datetime
) -> Sequence[WebhookDelivery]:
    """Takes up to `limit` due deliveries (and lapsed claims) for this worker; counts the attempt."""
    if limit <= 0:
        return []
    candidates = (
        sa.select(WebhookDelivery.id)
        .where(_due(now))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # ignored by SQLite, whose writers are already serialized
        .scalar_subquery()
    )
    statement = (
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(candidates), _due(now))
        .values(
            status=WebhookDeliveryStatus.SENDING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=WebhookDelivery.attempts + 1,
            updated_at=now,
        )
        .returning(WebhookDelivery)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).all()


def endpoints_of(session: Session, user_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
    """user id → (current webhook URL, signing secret); a cleared webhook has neither."""
    if not user_ids:
        return {}
    rows = session.execute(
        sa.select(User.id, User.webhook_url, WebhookSecret.secret)
        .outerjoin(WebhookSecret, WebhookSecret.user_id == User.id)
        .where(User.id.in_(user_ids))
    ).all()
    return {user_id: (url, secret) for user_id, url, secret in rows}


def get_claimed(session: Session, *, delivery_id: str, worker_id: str) -> WebhookDelivery | None:
    """The row, if this worker still holds its claim (a lapsed claim may have passed to another)."""
    return session.scalar(
        sa.select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == WebhookDeliveryStatus.SENDING,
            WebhookDelivery.lease_owner == worker_id,
        )
    )


def cancel_pending(session: Session, *, user_id: str, now: datetime) -> int:
    result = session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.user_id == user_id, WebhookDelivery.status.in_(_OPEN))
        .values(status=WebhookDeliveryStatus.CANCELLED, lease_owner=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def recent_of(session: Session, *, user_id: str, limit: int) -> Sequence[WebhookDelivery]:
    return session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.user_id == user_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    ).all()
