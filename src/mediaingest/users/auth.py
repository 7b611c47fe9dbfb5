"""Authenticating API requests: our own bearer tokens, or JWTs minted by the main product.

A JWT is accepted only when `JWT_SECRET` (HS*) or `JWT_JWKS_URL` (RS*/ES*) is configured. Its `sub`
is the user id and its `plan` claim the plan; the user row is created on first sight so quotas and
ownership work the same for both kinds of credentials. The two kinds of users live apart
(`User.identity_source`): a JWT whose subject names an API-token user is refused, and a plan claim
only ever changes a JWT user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.config import Settings
from mediaingest.db import utcnow
from mediaingest.exceptions import AuthenticationError
from mediaingest.models import ApiToken, User
from mediaingest.models.enums import IdentitySource, Plan
from mediaingest.users.service import TOKEN_PREFIX, hash_token

# A subject is stored as the user's id (64 characters) and shows up in storage keys and logs:
# printable ASCII without spaces (Auth0's "auth0|abc", Google's digits, e-mail-like ids all fit).
_SUBJECT = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True)
class Principal:
    """Who is calling. Every asset query is scoped by `user_id`: that is the tenant boundary."""

    user_id: str
    plan: Plan


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def _jwks_client(self) -> jwt.PyJWKClient | None:
        if not self.settings.jwt_jwks_url:
            return None
        return jwt.PyJWKClient(self.settings.jwt_jwks_url, cache_keys=True, lifespan=300)

    @property
    def jwt_enabled(self) -> bool:
        return self.settings.jwt_secret is not None or self.settings.jwt_jwks_url is not None

    def may_write(self, credentials: str | None) -> bool:
        """Whether authenticating these credentials may write: a JWT's user is created on first sight
        and its plan follows the main product's claim; an API token is only read."""
        return bool(credentials) and not credentials.startswith(TOKEN_PREFIX)  # type: ignore[union-attr]

    def authenticate(self, session: Session, credentials: str | None) -> Principal:
        if not credentials:
            raise AuthenticationError("missing bearer token")
        if credentials.startswith(TOKEN_PREFIX):
            return self._from_api_token(session, credentials)
        if self.jwt_enabled and credentials.count(".") == 2:
            return self._from_jwt(session, credentials)
        raise AuthenticationError("invalid bearer token")

    def _from_api_token(self, session: Session, token: str) -> Principal:
        row = session.execute(
            sa.select(ApiToken, User.plan)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token))
        ).first()
        if row is None:
            raise AuthenticationError("invalid bearer token")
        record, plan = row
        now = utcnow()
        if record.revoked_at is not None:
            raise AuthenticationError("token revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationError("token expired")
        return Principal(user_id=record.user_id, plan=plan)

    def _from_jwt(self, session: Session, token: str) -> Principal:
        subject, plan = _identity(self._verified_claims(token))
        user = session.get(User, subject)
        if user is None:
            user = User(id=subject, plan=plan, identity_source=IdentitySource.JWT)
            session.add(user)
            session.flush()
        elif user.identity_source != IdentitySource.JWT:
            # Its id is an API-token user's: a JWT can never act as that user, nor set its plan.
            raise AuthenticationError("token subject is not a user of the main product")
        elif user.plan != plan:
            user.plan = plan  # the main product is the source of truth for its users' plans
        return Principal(user_id=subject, plan=plan)

    def _verification_key(self, token: str) -> tuple[object, bool]:
        """The key that verifies `token`, and whether it is an HMAC secret (else a JWKS public key)."""
        if self._jwks_client is not None:
            return self._jwks_client.get_signing_key_from_jwt(token).key, False
        assert self.settings.jwt_secret is not None
        return self.settings.jwt_secret.get_secret_value(), True

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            key, is_secret = self._verification_key(token)
            # Only the algorithm family the key is for: an HMAC secret never verifies RS/ES tokens and a
            # JWKS public key never verifies HS tokens (the classic algorithm-confusion attack).
            algorithms = [name for name in self.settings.jwt_algorithms if name.startswith("HS") == is_secret]
            return jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["sub", "exp"], "verify_aud": self.settings.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthenticationError("invalid bearer token") from exc


def _identity(claims: dict[str, Any]) -> tuple[str, Plan]:
    """The user a verified JWT names (`sub`) and the plan it carries (`plan`, USER when absent)."""
    try:
        plan = Plan(str(claims.get("plan", Plan.USER.value)).upper())
    except ValueError as exc:
        raise AuthenticationError("token carries an unknown plan") from exc
    subject = claims["sub"]
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise AuthenticationError("token subject must be 1 to 64 printable characters without spaces")
    return subject, plan
