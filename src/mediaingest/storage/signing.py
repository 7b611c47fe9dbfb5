"""Signed URLs of the local backend: the canonical string, the HMAC-SHA256 signature, its check.

A signature grants exactly one kind of request, like an S3 presigned URL. It covers the method,
bucket, key and expiry; for a PUT also the size, the Content-Type, the `x-amz-meta-*` headers, the
`x-amz-checksum-sha256` header and `If-None-Match: *` (so the client must send those exact headers);
for a part the upload id, part number and (when declared) its `x-amz-checksum-sha256`; for a GET the
Content-Disposition the response will carry.
What travels in the query string (expiry, size, upload id, part number, disposition) is covered too,
so editing any of it, or
replaying the URL for another key or method, fails verification.

The canonical string is a JSON array: every field has its own slot and JSON escaping keeps a `/`, a
newline or a quote in one field from imitating another field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mediaingest.exceptions import SignatureError

SCHEME = "MI1-HMAC-SHA256"

# Query parameters of signed URLs. `uploadId`, `partNumber` and `response-content-disposition` keep
# their S3 names; the others are namespaced the way S3 namespaces its own (X-Amz-*).
EXPIRES_PARAM = "X-Mi-Expires"
SIZE_PARAM = "X-Mi-Size"
SIGNATURE_PARAM = "X-Mi-Signature"
UPLOAD_ID_PARAM = "uploadId"
PART_NUMBER_PARAM = "partNumber"
DISPOSITION_PARAM = "response-content-disposition"


@dataclass(frozen=True)
class SignedRequest:
    """Everything one signature vouches for."""

    method: str
    bucket: str
    key: str
    expires: int | None  # unix seconds; None only when a request carried no (parsable) expiry
    size: int | None = None
    content_type: str | None = None
    checksum_sha256: str | None = None  # base64, as in the x-amz-checksum-sha256 header
    metadata: Mapping[str, str] = field(default_factory=dict)  # header-encoded values, names unprefixed
    upload_id: str | None = None
    part_number: int | None = None
    content_disposition: str | None = None
    if_none_match: str | None = None  # "*" on a single PUT: it may only create the object


def put_headers(request: SignedRequest) -> dict[str, str]:
    """The headers a client must send with a signed PUT (object or part): those the signature covers,
    named as S3 names them."""
    covered = {
        "Content-Type": request.content_type,
        "Content-Length": str(request.size),
        "If-None-Match": request.if_none_match,
        "x-amz-checksum-sha256": request.checksum_sha256,
    }
    headers = {name: value for name, value in covered.items() if value is not None}
    return headers | {f"x-amz-meta-{name}": value for name, value in request.metadata.items()}


def canonical_string(request: SignedRequest) -> bytes:
    fields = [
        SCHEME,
        request.method.upper(),
        request.bucket,
        request.key,
        request.expires,
        request.size,
        request.content_type,
        request.checksum_sha256,
        sorted((name.lower(), value) for name, value in request.metadata.items()),
        request.upload_id,
        request.part_number,
        request.content_disposition,
        request.if_none_match,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign(secret: bytes, request: SignedRequest) -> str:
    return hmac.new(secret, canonical_string(request), hashlib.sha256).hexdigest()


def verify(secret: bytes, request: SignedRequest, signature: str, *, now: float | None = None) -> None:
    """Raises SignatureError unless `signature` is this request's and it has not expired.

    The signature is checked before the expiry, so an edited expiry reports a mismatch, not "expired".
    """
    expected = sign(secret, request).encode("ascii")
    given = signature.encode("utf-8", errors="replace")
    if not hmac.compare_digest(expected, given) or request.expires is None:
        raise SignatureError("The request signature does not match the signed URL.", details={"reason": "mismatch"})
    if (time.time() if now is None else now) > request.expires:
        raise SignatureError("The signed URL has expired.", details={"reason": "expired"})
