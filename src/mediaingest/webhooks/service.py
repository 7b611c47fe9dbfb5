"""Setting a user's webhook, and recording completion events in the outbox.

Like the asset service, nothing here commits: the request wrapper or the worker's transaction does,
which is the point of `record_asset_event` — the delivery row and its task commit or roll back
together with the status change they announce.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import structlog
from sqlalchemy.orm import Session

from mediaingest.assets.schemas import AssetSummary
from mediaingest.db import new_id, utcnow
from mediaingest.exceptions import NotFoundError, ValidationFailedError
from mediaingest.models import MediaAsset, User, WebhookDelivery, WebhookSecret
from mediaingest.models.enums import AssetProcessingStatus
from mediaingest.tasks import queue
from mediaingest.webhooks import repository
from mediaingest.webhooks.delivery import delivery_task_key, new_delivery
from mediaingest.webhooks.destinations import RefusedDestination, UnresolvedHost, resolve
from mediaingest.webhooks.schemas import WebhookEvent

log = structlog.stdlib.get_logger(__name__)

ASSET_READY = "asset.ready"
ASSET_FAILED = "asset.failed"
EVENTS = frozenset({ASSET_READY, ASSET_FAILED})
SECRET_PREFIX = "whsec_"  # noqa: S105  (a public marker, not a secret)
MAX_URL_LENGTH = 2048
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")  # \s: what str.isspace() calls whitespace


@dataclass(frozen=True)
class WebhookState:
    url: str | None
    secret_created_at: datetime | None
    secret: str | None = None  # only right after it was set


def validate_url(url: str) -> str:
    """http(s) with a host; no credentials (they would be stored and shown), no fragment, no whitespace."""
    value = url.strip()
    problem = _url_problem(value)
    if problem:
        raise ValidationFailedError(f"invalid webhook URL: {problem}", details={"url": "invalid"})
    return value


def _url_problem(value: str) -> str | None:
    if len(value) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    if _SPACE_OR_CONTROL.search(value):
        return "no whitespace or control characters"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return "not a valid URL"
    rules = (  # the first broken one is reported
        (parts.scheme in ("http", "https"), "the scheme must be http or https"),
        (bool(parts.hostname), "a host is required"),
        (parts.username is None and parts.password is None, "credentials in the URL are not accepted"),
        (not parts.fragment, "a fragment is not sent to servers; remove it"),
        (port != 0, "port 0 is not valid"),
    )
    return next((problem for holds, problem in rules if not holds), None)


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError("user not found")
    return user


def get_webhook(session: Session, *, user_id: str) -> WebhookState:
    user = _user(session, user_id)
    secret = session.get(WebhookSecret, user_id)
    return WebhookState(url=user.webhook_url, secret_created_at=secret.created_at if secret else None)


def set_webhook(session: Session, *, user_id: str, url: str, allow_private: bool = False) -> WebhookState:
    """Sets the URL and issues a new signing secret, returned once (setting again rotates it).

    A URL whose host is not a public address is refused here, at once; every delivery checks again
    (DNS may change), see `destinations`.
    """
    user = _user(session, user_id)
    value = validate_url(url)
    try:
        resolve(value, allow_private=allow_private)
    except RefusedDestination as refused:
        raise ValidationFailedError(f"invalid webhook URL: {refused}", details={"url": "refused"}) from None
    except UnresolvedHost:
        pass  # its DNS may not be live yet: each delivery resolves and checks it again
    user.webhook_url = value
    secret, now = _issue_secret(session, user_id)
    session.flush()
    log.info("webhook.set", user_id=user_id)  # neither the URL's query nor the secret is logged
    return WebhookState(url=user.webhook_url, secret_created_at=now, secret=secret)


def _issue_secret(session: Session, user_id: str) -> tuple[str, datetime]:
    """A new signing secret for the user's webhook, replacing any earlier one; and when it was made."""
    value = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    record = session.get(WebhookSecret, user_id)
    if record is None:
        session.add(WebhookSecret(user_id=user_id, secret=value, created_at=now))
    else:
        record.secret, record.created_at = value, now
    return value, now


def clear_webhook(session: Session, *, user_id: str) -> int:
    """Removes the URL and the secret; deliveries still waiting are cancelled. Returns how many."""
    user = _user(session, user_id)
    user.webhook_url = None
    record = session.get(WebhookSecret, user_id)
    if record is not None:
        session.delete(record)
    waiting = repository.unsent_of(session, user_id=user_id)
    cancelled = queue.cancel(session, dedupe_keys=[delivery_task_key(delivery_id) for delivery_id in waiting])
    session.flush()
    log.info("webhook.cleared", user_id=user_id, cancelled=cancelled)
    return cancelled


def record_asset_event(session: Session, asset: MediaAsset, event: str) -> WebhookDelivery | None:
    """Queues the announcement of `event` for the asset's owner, inside the caller's transaction.

    Nothing is queued when the owner has no webhook. Idempotent per (asset, event): paths that may
    reach READY twice (a stage re-run after a lost lease) announce it once.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    user = session.get(User, asset.owner_id)
    if user is None or not user.webhook_url:
        return None
    if repository.has_delivery(session, asset_id=asset.id, event=event):
        return None
    delivery_id = new_id()
    session.flush()  # the asset's pending changes (status, processed_at, updated_at) land in the summary
    summary = AssetSummary.model_validate(asset).model_dump(mode="json", by_alias=True)
    payload = WebhookEvent(id=delivery_id, type=event, created_at=utcnow(), data={"asset": summary})
    body = payload.model_dump(mode="json", by_alias=True)
    delivery = new_delivery(session, delivery_id=delivery_id, user_id=asset.owner_id, asset_id=asset.id,
                            event=event, url=user.webhook_url, payload=body)  # fmt: skip
    log.info("webhook.event_recorded", delivery_id=delivery_id, asset_id=asset.id, webhook_event=event)
    return delivery


def announce_finished_asset(session: Session, asset: MediaAsset) -> None:
    """The `assets.lifecycle` listener: READY and FAILED assets are announced to their owner's webhook."""
    event = ASSET_READY if asset.processing_status == AssetProcessingStatus.READY else ASSET_FAILED
    record_asset_event(session, asset, event)
