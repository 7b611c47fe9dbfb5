"""Creating and deleting users; issuing, hashing and revoking their API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.db import utcnow
from mediaingest.exceptions import ConflictError, NotFoundError
from mediaingest.models import ApiToken, User
from mediaingest.models.enums import Plan

TOKEN_PREFIX = "mi_"  # noqa: S105  (a public marker, not a secret)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once; only its hash is stored
    record: ApiToken


def create_user(session: Session, *, email: str | None, plan: Plan, user_id: str | None = None) -> User:
    if email is not None and session.scalar(sa.select(User.id).where(User.email == email)):
        raise ConflictError(f"a user with e-mail {email!r} already exists")
    user = User(email=email, plan=plan)
    if user_id is not None:
        user.id = user_id
    session.add(user)
    session.flush()
    return user


def issue_token(
    session: Session, *, user: User, name: str = "default", expires_at: datetime | None = None
) -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[:10],
        expires_at=expires_at,
    )
    session.add(record)
    session.flush()
    return IssuedToken(token=token, record=record)


def get_user(session: Session, *, user_id: str | None = None, email: str | None = None) -> User:
    query = sa.select(User)
    query = query.where(User.id == user_id) if user_id else query.where(User.email == email)
    user = session.scalar(query)
    if user is None:
        raise NotFoundError("user not found")
    return user


def revoke_token(session: Session, *, token: str) -> ApiToken:
    """Revokes one token, named by its full value or by the prefix listings show; 401 from the next request.

    A prefix must name exactly one live token. Revoking a revoked token is not an error (idempotent).
    """
    if token.startswith(TOKEN_PREFIX) and len(token) > 16:
        records = session.scalars(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token))).all()
    else:
        records = session.scalars(sa.select(ApiToken).where(ApiToken.token_prefix == token)).all()
    if not records:
        raise NotFoundError("no such API token (give the whole token, or the prefix shown when it was listed)")
    if len(records) > 1:
        raise ConflictError(f"prefix {token!r} names {len(records)} tokens: give the whole token")
    record = records[0]
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.flush()
    return record


def list_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)))


class OwnedAssets(Protocol):
    """What deleting a user needs of the assets (`AssetService`): users sit below assets, which are owned."""

    def delete_all_owned_by(self, session: Session, *, owner_id: str) -> int: ...


def delete_user(session: Session, *, user: User, assets: OwnedAssets) -> int:
    """Removes the user's assets and their objects (as DELETE does for each), then the user, its tokens,
    webhook and deliveries (cascades). Quota goes with them. Returns how many assets were removed."""
    removed = assets.delete_all_owned_by(session, owner_id=user.id)
    session.delete(user)
    session.flush()
    return removed
