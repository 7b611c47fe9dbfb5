"""Signing webhook bodies, and the check receivers run (usable as-is by Python receivers).

The signed message is `{timestamp}.{body}`: the timestamp is inside the MAC, so an intercepted
delivery cannot be replayed later with a fresh timestamp, and receivers refuse old ones.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-MediaIngest-Signature"
EVENT_HEADER = "X-MediaIngest-Event"
DELIVERY_HEADER = "X-MediaIngest-Delivery"
ATTEMPT_HEADER = "X-MediaIngest-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureMismatchError(ValueError):
    """The signature header is missing, malformed, too old, or does not match the body."""


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={compute(secret, stamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Returns the signed timestamp; raises SignatureMismatchError. Accepts any of several v1 values
    (a sender may sign with more than one secret while rotating)."""
    if not header:
        raise SignatureMismatchError("missing signature header")
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureMismatchError("signature timestamp outside the tolerance")
    expected = compute(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureMismatchError("signature does not match")
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    """`t=<unix time>,v1=<hex>[,v1=<hex>…]` → the timestamp and the v1 values."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        match item.strip().partition("="):
            case ("t", _, stamp) if stamp.isdigit():
                timestamp = int(stamp)
            case ("v1", _, signature) if signature:
                candidates.append(signature)
    if timestamp is None or not candidates:
        raise SignatureMismatchError("malformed signature header")
    return timestamp, candidates
