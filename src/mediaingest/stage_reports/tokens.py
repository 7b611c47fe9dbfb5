"""Job-scoped stage tokens: what one attempt of one stage of one asset may report, and until when.

An HS256 JWT under a key derived from URL_SIGNING_SECRET, which the API replicas and the operator
already share, so no new secret is needed and a token is useless for anything else: its audience is
the stage report endpoints only, and a user JWT (other key, other audience) is refused there.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import jwt

from mediaingest.exceptions import AuthenticationError
from mediaingest.models.enums import Stage
from mediaingest.pipeline.registry import stage_named

AUDIENCE = "mediaingest:stage-report"
_ALGORITHM = "HS256"
_KEY_CONTEXT = b"mediaingest stage-report token v1"


def signing_key(url_signing_secret: bytes) -> bytes:
    """The token key, derived so a token and a signed URL can never stand in for each other."""
    return hmac.new(url_signing_secret, _KEY_CONTEXT, hashlib.sha256).digest()


@dataclass(frozen=True)
class StageClaims:
    asset_id: str
    owner_id: str
    stage: Stage
    attempt: int


def issue(url_signing_secret: bytes, claims: StageClaims, *, ttl_seconds: int, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    payload = {
        "aud": AUDIENCE,
        "sub": claims.asset_id,
        "own": claims.owner_id,
        "stg": claims.stage,
        "att": claims.attempt,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(payload, signing_key(url_signing_secret), algorithm=_ALGORITHM)


def verify(url_signing_secret: bytes, token: str) -> StageClaims:
    """The claims of a valid, unexpired token; AuthenticationError (401) otherwise, saying why."""
    try:
        payload = jwt.decode(
            token,
            signing_key(url_signing_secret),
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["aud", "sub", "own", "stg", "att", "exp"]},
        )
        return StageClaims(
            asset_id=str(payload["sub"]),
            owner_id=str(payload["own"]),
            stage=stage_named(payload["stg"]),
            attempt=int(payload["att"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the stage token has expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise AuthenticationError("not a valid stage token") from exc
