"""SQLAlchemy models. Import from here so every table is registered on `Base.metadata`."""

from mediaingest.models.asset import AssetMetadata, AssetProxy, MediaAsset
from mediaingest.models.job import IngestionJob
from mediaingest.models.task import Task, TaskStatus
from mediaingest.models.user import ApiToken, User
from mediaingest.models.webhook import WebhookDelivery, WebhookDeliveryStatus, WebhookSecret

__all__ = [
    "ApiToken",
    "AssetMetadata",
    "AssetProxy",
    "IngestionJob",
    "MediaAsset",
    "Task",
    "TaskStatus",
    "User",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookSecret",
]
