"""Every query on webhook deliveries. Claiming and retrying are the task queue's (`delivery`)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.models import Task, User, WebhookDelivery, WebhookSecret
from mediaingest.models.task import TaskStatus


def has_delivery(session: Session, *, asset_id: str, event: str) -> bool:
    return (
        session.scalar(
            sa.select(WebhookDelivery.id).where(WebhookDelivery.asset_id == asset_id, WebhookDelivery.event == event)
        )
        is not None
    )


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


def unsent_of(session: Session, *, user_id: str) -> list[str]:
    """The ids of the user's deliveries still waiting or being sent (their tasks are not finished)."""
    return list(
        session.scalars(
            sa.select(WebhookDelivery.id)
            .join(Task, Task.id == WebhookDelivery.task_id)
            .where(WebhookDelivery.user_id == user_id, Task.status.in_([TaskStatus.QUEUED, TaskStatus.RUNNING]))
        )
    )


def recent_of(session: Session, *, user_id: str, limit: int) -> Sequence[WebhookDelivery]:
    return session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.user_id == user_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    ).all()
