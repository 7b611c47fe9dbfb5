"""Request and response bodies of the webhook endpoints, and the payload receivers get."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from mediaingest.models.webhook import WebhookDeliveryStatus
from mediaingest.schemas import ApiModel, RequestModel


class WebhookIn(RequestModel):
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL that receives the signed POSTs.")


class WebhookOut(ApiModel):
    url: str | None
    has_secret: bool
    secret_created_at: datetime | None = None


class WebhookSetOut(WebhookOut):
    secret: str = Field(description="The signing secret. Shown only in this answer: store it now.")


class WebhookDeliveryOut(ApiModel):
    id: str
    asset_id: str
    event: str
    url: str
    status: WebhookDeliveryStatus
    attempts: int
    max_attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime


class WebhookEvent(ApiModel):
    """The JSON body of a delivery."""

    id: str = Field(description="The delivery id, also sent as X-MediaIngest-Delivery; stable across retries.")
    type: str = Field(description="asset.ready or asset.failed")
    created_at: datetime
    data: dict[str, Any]
