"""The caller's completion webhook: set (which issues the signing secret), read, clear; recent deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mediaingest.dependencies import AppSettings, Db
from mediaingest.schemas import UNAUTHENTICATED, Envelope, ErrorEnvelope
from mediaingest.users.deps import CurrentPrincipal
from mediaingest.webhooks import repository, service
from mediaingest.webhooks.schemas import WebhookDeliveryOut, WebhookIn, WebhookOut, WebhookSetOut

router = APIRouter(
    prefix="/api/webhook",
    tags=["webhooks"],
    responses=UNAUTHENTICATED,
)


def _out(state: service.WebhookState) -> WebhookOut:
    return WebhookOut(
        url=state.url, has_secret=state.secret_created_at is not None, secret_created_at=state.secret_created_at
    )


@router.get("", response_model=Envelope[WebhookOut])
def get_webhook(db: Db, principal: CurrentPrincipal) -> Envelope[WebhookOut]:
    """The URL that receives completion events (the secret is never shown again)."""
    with db.read() as session:
        return Envelope(data=_out(service.get_webhook(session, user_id=principal.user_id)))


@router.put(
    "",
    response_model=Envelope[WebhookSetOut],
    responses={
        422: {"model": ErrorEnvelope, "description": "Invalid request, not an http(s) URL, or not a public destination"}
    },
)
def set_webhook(body: WebhookIn, db: Db, principal: CurrentPrincipal, settings: AppSettings) -> Envelope[WebhookSetOut]:
    """Sets the URL and returns a new signing secret, once. Setting it again rotates the secret.

    Refused with 422 when the host is not a public address (loopback, private, link-local)."""
    with db.write() as session:
        state = service.set_webhook(
            session, user_id=principal.user_id, url=body.url, allow_private=settings.webhook_allow_private_networks
        )
    assert state.secret is not None
    return Envelope(data=WebhookSetOut(**_out(state).model_dump(), secret=state.secret))


@router.delete("", response_model=Envelope[WebhookOut])
def clear_webhook(db: Db, principal: CurrentPrincipal) -> Envelope[WebhookOut]:
    """Removes the URL and its secret; deliveries not yet sent are cancelled."""
    with db.write() as session:
        service.clear_webhook(session, user_id=principal.user_id)
    return Envelope(data=WebhookOut(url=None, has_secret=False))


@router.get("/deliveries", response_model=Envelope[list[WebhookDeliveryOut]])
def list_deliveries(
    db: Db, principal: CurrentPrincipal, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Envelope[list[WebhookDeliveryOut]]:
    """The most recent deliveries, newest first: status, attempts and the last answer."""
    with db.read() as session:
        rows = repository.recent_of(session, user_id=principal.user_id, limit=limit)
        return Envelope(data=[WebhookDeliveryOut.model_validate(row) for row in rows])
