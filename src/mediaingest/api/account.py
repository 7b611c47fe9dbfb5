"""`GET /api/me`: who the caller is, their plan, and how much of its quota is used (the page's header)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from mediaingest.assets import repository
from mediaingest.dependencies import AppSettings, Db
from mediaingest.models import User
from mediaingest.models.enums import Plan
from mediaingest.schemas import UNAUTHENTICATED, ApiModel, Envelope
from mediaingest.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api", tags=["account"], responses=UNAUTHENTICATED)


class Quota(ApiModel):
    limit_bytes: int = Field(description="What the plan allows.")
    stored_bytes: int = Field(description="Verified uploads.")
    reserved_bytes: int = Field(description="Declared sizes of uploads still in flight.")
    available_bytes: int = Field(description="What a new upload may declare now.")


class UploadLimits(ApiModel):
    """What an uploader needs to cut files the way the server expects."""

    max_file_size: int
    multipart_threshold: int = Field(description="Files above this go up in parts.")
    part_size: int = Field(description="The default part size (larger when a file needs more than 10,000 parts).")


class Me(ApiModel):
    user_id: str
    email: str | None = Field(None, description="None for users the main product signs in with a JWT.")
    plan: Plan
    quota: Quota
    uploads: UploadLimits


@router.get("/me", response_model=Envelope[Me])
def me(db: Db, principal: CurrentPrincipal, settings: AppSettings) -> Envelope[Me]:
    """The caller, their plan and their quota: the same figures upload-url checks against."""
    limit = settings.quota_for(principal.plan)
    with db.read() as session:
        user = session.get(User, principal.user_id)
        stored, reserved = repository.bytes_used(session, owner_id=principal.user_id)
    quota = Quota(
        limit_bytes=limit,
        stored_bytes=stored,
        reserved_bytes=reserved,
        available_bytes=max(0, limit - stored - reserved),
    )
    uploads = UploadLimits(
        max_file_size=settings.max_file_size,
        multipart_threshold=settings.multipart_threshold,
        part_size=settings.multipart_part_size,
    )
    return Envelope(
        data=Me(
            user_id=principal.user_id,
            email=user.email if user else None,
            plan=principal.plan,
            quota=quota,
            uploads=uploads,
        )
    )
