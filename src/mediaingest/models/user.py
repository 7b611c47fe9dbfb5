"""Tenants (users with a plan) and their API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaingest.db import Base, UTCDateTime, enum_column, new_id, utcnow
from mediaingest.models.enums import IdentitySource, Plan


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    # JWT-provisioned users may have no e-mail; the main product owns identity.
    email: Mapped[str | None] = mapped_column(sa.String(320), unique=True)
    plan: Mapped[Plan] = mapped_column(enum_column(Plan), default=Plan.USER)
    identity_source: Mapped[IdentitySource] = mapped_column(
        enum_column(IdentitySource), default=IdentitySource.API_TOKEN, server_default=IdentitySource.API_TOKEN.value
    )
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="default")
    # SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough and lookups stay indexed.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(sa.String(16))  # shown in listings to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")
