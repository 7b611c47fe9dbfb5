"""The local backend through a real HTTP server (uvicorn on loopback): the S3-like upload protocol,
every way a signed URL can be misused, Range downloads, and a large upload streamed in bounded memory."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from fixtures.storage import LOCAL_SECRET, LocalServer
from mediaingest.exceptions import ObjectNotFoundError
from mediaingest.storage import CompletedPart, PresignedRequest, signing
from mediaingest.storage.errors import InvalidPartError

METADATA = {"asset-id": "asset-1", "user-id": "user-1", "original-name": "Café déjà vu.mp4"}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update(changes)
    return urlunsplit(parts._replace(query=urlencode(params)))


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/xml")
    body = response.text
    return body.split("<Code>")[1].split("</Code>")[0]


def tmp_entries(local: LocalServer) -> list[str]:
    return sorted(os.listdir(local.root / ".tmp"))


def assert_nothing_stored(local: LocalServer, bucket: str, key: str) -> None:
    with pytest.raises(ObjectNotFoundError):
        local.storage.head(bucket, key)
    assert not (local.root / bucket / key).exists()
    assert tmp_entries(local) == []


# --- single PUT ---------------------------------------------------------------------------------


def test_single_put_answers_md5_etag_and_records_sha256(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    data = os.urandom(300_000)
    key = "uploads/user-1/1700000000000-asset-1.mp4"
    presigned = local.storage.presign_put(
        local_bucket, key, size=len(data), content_type="video/mp4", metadata=METADATA, expires_in=3600,
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    assert presigned.url.startswith(f"{local.url}/storage/{local_bucket}/uploads/user-1/")
    assert presigned.headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    response = wire.put(presigned.url, content=data, headers=presigned.headers)

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{md5(data)}"'
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]
    info = local.storage.head(local_bucket, key)
    assert (info.size, info.etag, info.content_type) == (len(data), md5(data), "video/mp4")
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.metadata == METADATA
    assert (local.root / local_bucket / key).read_bytes() == data
    assert tmp_entries(local) == []


def test_put_without_declared_checksum_still_records_sha256(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + os.urandom(1000)
    presigned = local.storage.presign_put(
        local_bucket, "a.mp4", size=len(data), content_type="video/mp4", metadata={}, expires_in=60
    )
    assert "x-amz-checksum-sha256" not in presigned.headers
    assert wire.put(presigned.url, content=data, headers=presigned.headers).status_code == 200
    assert local.storage.head(local_bucket, "a.mp4").sha256 == hashlib.sha256(data).hexdigest()


def test_checksum_mismatch_is_bad_digest_and_stores_nothing(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    data = os.urandom(5000)
    presigned = local.storage.presign_put(
        local_bucket, "x.mp4", size=len(data), content_type="video/mp4", metadata={}, expires_in=60,
        sha256=hashlib.sha256(b"something else").hexdigest(),
    )  # fmt: skip
    response = wire.put(presigned.url, content=data, headers=presigned.headers)
    assert response.status_code == 400
    assert error_code(response) == "BadDigest"
    assert_nothing_stored(local, local_bucket, "x.mp4")


# --- misuse of signed URLs: 403, nothing stored -------------------------------------------------

KEY = "uploads/user-1/victim.mp4"
DATA = b"0123456789" * 100


def _misuses() -> dict[str, Callable[[PresignedRequest, LocalServer], tuple[str, str, dict[str, str]]]]:
    """Each builds (method, url, headers) from a valid presigned PUT for KEY."""

    def same(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, dict(p.headers)

    def tampered_signature(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        signature = dict(parse_qsl(urlsplit(p.url).query))[signing.SIGNATURE_PARAM]
        flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        return "PUT", with_query(p.url, **{signing.SIGNATURE_PARAM: flipped}), dict(p.headers)

    def no_signature(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        parts = urlsplit(p.url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != signing.SIGNATURE_PARAM]
        return "PUT", urlunsplit(parts._replace(query=urlencode(query))), dict(p.headers)

    def longer_expiry(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        expires = int(dict(parse_qsl(urlsplit(p.url).query))[signing.EXPIRES_PARAM]) + 86400
        return "PUT", with_query(p.url, **{signing.EXPIRES_PARAM: str(expires)}), dict(p.headers)

    def bigger_size(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        url = with_query(p.url, **{signing.SIZE_PARAM: str(len(DATA) + 1)})
        return "PUT", url, {**p.headers, "Content-Length": str(len(DATA) + 1)}

    def other_key(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        path = urlsplit(p.url).path.replace("victim.mp4", "other.mp4")
        return "PUT", with_path(p.url, path), dict(p.headers)

    def other_user_prefix(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        path = urlsplit(p.url).path.replace("/user-1/", "/user-2/")
        return "PUT", with_path(p.url, path), dict(p.headers)

    def wrong_content_type(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {**p.headers, "Content-Type": "text/html"}

    def missing_content_type(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {k: v for k, v in p.headers.items() if k != "Content-Type"}

    def changed_metadata(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {**p.headers, "x-amz-meta-user-id": "user-2"}

    def extra_metadata(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {**p.headers, "x-amz-meta-admin": "true"}

    def missing_metadata(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {k: v for k, v in p.headers.items() if k != "x-amz-meta-asset-id"}

    def missing_checksum(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "PUT", p.url, {k: v for k, v in p.headers.items() if k != "x-amz-checksum-sha256"}

    def get_with_put_url(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        return "GET", p.url, {}

    def as_a_part(p: PresignedRequest, _: LocalServer) -> tuple[str, str, dict[str, str]]:
        url = with_query(p.url, uploadId="0" * 32, partNumber="1")
        return "PUT", url, {"Content-Length": str(len(DATA))}

    def put_with_get_url(p: PresignedRequest, local: LocalServer) -> tuple[str, str, dict[str, str]]:
        bucket = urlsplit(p.url).path.split("/")[2]
        return "PUT", local.storage.presign_get(bucket, KEY, expires_in=60), dict(p.headers)

    return {f.__name__: f for f in (
        tampered_signature, no_signature, longer_expiry, bigger_size, other_key, other_user_prefix,
        wrong_content_type, missing_content_type, changed_metadata, extra_metadata, missing_metadata,
        missing_checksum, get_with_put_url, as_a_part, put_with_get_url,
    )} | {"control_same": same}  # fmt: skip


MISUSES = _misuses()


@pytest.mark.parametrize("misuse", sorted(MISUSES))
def test_misused_put_urls_are_refused_with_403(
    misuse: str, local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    presigned = local.storage.presign_put(
        local_bucket, KEY, size=len(DATA), content_type="video/mp4", metadata=METADATA, expires_in=3600,
        sha256=hashlib.sha256(DATA).hexdigest(),
    )  # fmt: skip
    method, url, headers = MISUSES[misuse](presigned, local)
    content = DATA + b"x" if misuse == "bigger_size" else DATA
    response = wire.request(method, url, content=content if method == "PUT" else None, headers=headers)

    if misuse == "control_same":  # the unmodified request works, so each refusal is the misuse's doing
        assert response.status_code == 200
        return
    assert response.status_code == 403, response.text
    assert error_code(response) == "SignatureDoesNotMatch"
    signature = dict(parse_qsl(urlsplit(presigned.url).query))[signing.SIGNATURE_PARAM]
    assert signature not in response.text and LOCAL_SECRET.decode() not in response.text
    assert "Traceback" not in response.text
    for key in (KEY, "uploads/user-1/other.mp4", "uploads/user-2/victim.mp4"):
        assert_nothing_stored(local, local_bucket, key)


def test_expired_url_is_refused(local: LocalServer, local_bucket: str, wire: httpx.Client) -> None:
    presigned = local.storage.presign_put(
        local_bucket, "late.mp4", size=3, content_type="video/mp4", metadata={}, expires_in=3600
    )
    local.clock.offset = 3601
    response = wire.put(presigned.url, content=b"abc", headers=presigned.headers)
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert "expired" in response.text
    assert_nothing_stored(local, local_bucket, "late.mp4")
    local.clock.offset = 3590  # (expiry is whole seconds: leave a margin)
    assert wire.put(presigned.url, content=b"abc", headers=presigned.headers).status_code == 200


# --- body size ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [-1, +1])
def test_body_size_other_than_signed_is_refused_with_400(
    delta: int, local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    presigned = local.storage.presign_put(
        local_bucket, "sized.mp4", size=1000, content_type="video/mp4", metadata={}, expires_in=60
    )
    body = os.urandom(1000 + delta)
    headers = {**presigned.headers, "Content-Length": str(len(body))}
    response = wire.put(presigned.url, content=body, headers=headers)
    assert response.status_code == 400
    assert error_code(response) == "IncompleteBody"
    assert_nothing_stored(local, local_bucket, "sized.mp4")


def test_chunked_body_without_content_length_is_refused(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    presigned = local.storage.presign_put(
        local_bucket, "chunked.mp4", size=6, content_type="video/mp4", metadata={}, expires_in=60
    )
    headers = {k: v for k, v in presigned.headers.items() if k != "Content-Length"}
    response = wire.put(presigned.url, content=iter([b"abc", b"def"]), headers=headers)
    assert response.status_code == 411
    assert error_code(response) == "MissingContentLength"
    assert_nothing_stored(local, local_bucket, "chunked.mp4")


@pytest.mark.parametrize(("body", "code"), [(b"x" * 999, "IncompleteBody"), (b"x" * 1001, "EntityTooLarge")])
def test_body_that_disagrees_with_its_content_length_is_refused(
    body: bytes, code: str, local: LocalServer, local_bucket: str
) -> None:
    """h11 never lets that through, but other ASGI servers might: the endpoint counts for itself."""
    presigned = local.storage.presign_put(
        local_bucket, "lying.mp4", size=1000, content_type="video/mp4", metadata={}, expires_in=60
    )
    parts = urlsplit(presigned.url)
    with TestClient(local.app) as client:
        response = client.put(f"{parts.path}?{parts.query}", content=body, headers=presigned.headers)
    assert response.status_code == 400
    assert error_code(response) == code
    assert_nothing_stored(local, local_bucket, "lying.mp4")


def test_client_vanishing_mid_body_leaves_nothing(local: LocalServer, local_bucket: str) -> None:
    presigned = local.storage.presign_put(
        local_bucket, "vanished.mp4", size=100_000, content_type="video/mp4", metadata={}, expires_in=60
    )
    parts = urlsplit(presigned.url)
    head = "".join(f"{name}: {value}\r\n" for name, value in presigned.headers.items())
    request = f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n"
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(request.encode() + os.urandom(40_000))
        time.sleep(0.2)  # the server is now mid-body
    deadline = time.monotonic() + 5
    while tmp_entries(local) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_nothing_stored(local, local_bucket, "vanished.mp4")


# --- multipart ----------------------------------------------------------------------------------


def put_part(
    local: LocalServer, wire: httpx.Client, bucket: str, key: str, upload_id: str, number: int, data: bytes
) -> httpx.Response:
    presigned = local.storage.presign_upload_part(
        bucket, key, upload_id=upload_id, part_number=number, size=len(data), expires_in=3600
    )
    assert set(presigned.headers) == {"Content-Length"}
    return wire.put(presigned.url, content=data, headers=presigned.headers)


def test_multipart_upload_gets_s3_style_etag_and_whole_sha256(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    key = "uploads/user-1/big.mov"
    chunks = [os.urandom(70_000), os.urandom(70_000), os.urandom(12_345)]
    upload_id = local.storage.create_multipart_upload(
        local_bucket, key, content_type="video/quicktime", metadata=METADATA
    )
    etags = {}
    for number in (3, 1, 2):  # parts may arrive in any order
        response = put_part(local, wire, local_bucket, key, upload_id, number, chunks[number - 1])
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{md5(chunks[number - 1])}"'
        etags[number] = response.headers["etag"]
    with pytest.raises(ObjectNotFoundError):  # nothing visible before completion
        local.storage.head(local_bucket, key)

    info = local.storage.complete_multipart_upload(
        local_bucket, key, upload_id=upload_id, parts=[CompletedPart(n, etags[n]) for n in (1, 2, 3)]
    )

    whole = b"".join(chunks)
    expected = hashlib.md5(
        b"".join(hashlib.md5(c, usedforsecurity=False).digest() for c in chunks), usedforsecurity=False
    )
    assert info.etag == f"{expected.hexdigest()}-3"
    assert info.sha256 == hashlib.sha256(whole).hexdigest()
    assert (info.size, info.content_type, info.metadata) == (len(whole), "video/quicktime", METADATA)
    assert local.storage.head(local_bucket, key) == info
    assert (local.root / local_bucket / key).read_bytes() == whole
    assert not (local.root / ".uploads" / upload_id).exists()
    assert not (local.root / ".uploads" / f"{upload_id}.completing").exists()
    # Completed: the upload id is spent.
    assert put_part(local, wire, local_bucket, key, upload_id, 1, chunks[0]).status_code == 404


def test_bad_part_lists_are_refused_and_the_upload_stays_open(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    key = "uploads/user-1/retry.mov"
    chunks = [b"a" * 1000, b"b" * 1000]
    upload_id = local.storage.create_multipart_upload(local_bucket, key, content_type="video/mp4", metadata={})
    assert put_part(local, wire, local_bucket, key, upload_id, 1, b"first attempt").status_code == 200
    etags = [
        put_part(local, wire, local_bucket, key, upload_id, n, c).headers["etag"]
        for n, c in [(1, chunks[0]), (2, chunks[1])]
    ]
    good = [CompletedPart(1, etags[0]), CompletedPart(2, etags[1])]

    for bad in (
        [CompletedPart(1, md5(b"first attempt")), good[1]],  # the replaced part's ETag
        [good[1], good[0]],  # out of order
        [good[0], good[0]],  # repeated
        [good[0], CompletedPart(3, etags[1])],  # never uploaded
        [],
    ):
        with pytest.raises(InvalidPartError):
            local.storage.complete_multipart_upload(local_bucket, key, upload_id=upload_id, parts=bad)
        with pytest.raises(ObjectNotFoundError):
            local.storage.head(local_bucket, key)

    info = local.storage.complete_multipart_upload(local_bucket, key, upload_id=upload_id, parts=good)
    assert (local.root / local_bucket / key).read_bytes() == b"".join(chunks)
    assert info.etag.endswith("-2")
    assert tmp_entries(local) == []


def test_part_urls_are_bound_to_their_upload_and_number(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    key = "uploads/user-1/bound.mov"
    upload_id = local.storage.create_multipart_upload(local_bucket, key, content_type="video/mp4", metadata={})
    other_upload = local.storage.create_multipart_upload(local_bucket, key, content_type="video/mp4", metadata={})
    presigned = local.storage.presign_upload_part(
        local_bucket, key, upload_id=upload_id, part_number=1, size=4, expires_in=60
    )
    for url in (
        with_query(presigned.url, partNumber="2"),
        with_query(presigned.url, uploadId=other_upload),
    ):
        response = wire.put(url, content=b"abcd", headers=presigned.headers)
        assert response.status_code == 403
        assert error_code(response) == "SignatureDoesNotMatch"
    assert os.listdir(local.root / ".uploads" / upload_id) == ["upload.json"]
    assert os.listdir(local.root / ".uploads" / other_upload) == ["upload.json"]

    local.storage.abort_multipart_upload(local_bucket, key, upload_id=upload_id)
    response = wire.put(presigned.url, content=b"abcd", headers=presigned.headers)
    assert response.status_code == 404
    assert error_code(response) == "NoSuchUpload"
    assert tmp_entries(local) == []
    local.storage.abort_multipart_upload(local_bucket, key, upload_id=other_upload)


# --- downloads ----------------------------------------------------------------------------------


@pytest.fixture
def stored(local: LocalServer, local_bucket: str, tmp_path: Path) -> tuple[str, bytes]:
    data = os.urandom(50_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    local.storage.upload_file(local_bucket, "assets/user-1/asset-1/proxies/720p.mp4", source, content_type="video/mp4")
    return "assets/user-1/asset-1/proxies/720p.mp4", data


def test_signed_get_with_range_and_head(
    local: LocalServer, local_bucket: str, wire: httpx.Client, stored: tuple[str, bytes]
) -> None:
    key, data = stored
    url = local.storage.presign_get(local_bucket, key, expires_in=600)

    full = wire.get(url)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["etag"] == f'"{md5(data)}"'
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"

    ranged = wire.get(url, headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206
    assert ranged.content == data[1000:2000]
    assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    suffix = wire.get(url, headers={"Range": "bytes=-10"})
    assert (suffix.status_code, suffix.content) == (206, data[-10:])
    assert wire.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416

    head = wire.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == f'"{md5(data)}"'
    assert head.content == b""


def test_signed_get_with_download_name(
    local: LocalServer, local_bucket: str, wire: httpx.Client, stored: tuple[str, bytes]
) -> None:
    key, _ = stored
    url = local.storage.presign_get(local_bucket, key, expires_in=600, download_name="Café 720p.mp4")
    response = wire.get(url)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Caf_ 720p.mp4\"; filename*=UTF-8''Caf%C3%A9%20720p.mp4"
    )
    forged = with_query(url, **{signing.DISPOSITION_PARAM: 'inline; filename="x.html"'})
    assert wire.get(forged).status_code == 403


def test_signed_get_refusals(
    local: LocalServer, local_bucket: str, wire: httpx.Client, stored: tuple[str, bytes]
) -> None:
    key, _ = stored
    url = local.storage.presign_get(local_bucket, key, expires_in=600)
    other = with_path(url, urlsplit(url).path.replace("720p", "1080p"))
    assert error_code(wire.get(other)) == "SignatureDoesNotMatch"
    assert wire.get(other).status_code == 403

    missing = local.storage.presign_get(local_bucket, "assets/user-1/nothing.mp4", expires_in=600)
    response = wire.get(missing)
    assert (response.status_code, error_code(response)) == (404, "NoSuchKey")

    local.clock.offset = 601
    response = wire.get(url)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")


def test_cors_preflight(local: LocalServer, local_bucket: str, wire: httpx.Client) -> None:
    response = wire.options(
        f"{local.url}/storage/{local_bucket}/uploads/u/x.mp4",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type,x-amz-meta-asset-id,x-amz-checksum-sha256",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type,x-amz-meta-asset-id,x-amz-checksum-sha256"
    assert "ETag" in response.headers["access-control-expose-headers"]


# --- keys that would escape the bucket ----------------------------------------------------------


def test_traversal_is_refused_even_with_a_valid_signature(
    local: LocalServer, local_bucket: str, wire: httpx.Client
) -> None:
    """Defence in depth: presign refuses such keys, but were one ever signed, the store still would."""
    key = "../escaped.txt"
    expires = int(time.time()) + 60
    request = signing.SignedRequest(
        method="PUT", bucket=local_bucket, key=key, expires=expires, size=3, content_type="text/plain"
    )
    signature = signing.sign(LOCAL_SECRET, request)
    query = urlencode({signing.EXPIRES_PARAM: expires, signing.SIZE_PARAM: 3, signing.SIGNATURE_PARAM: signature})
    url = f"{local.url}/storage/{local_bucket}/%2E%2E/escaped.txt?{query}"
    response = wire.put(url, content=b"abc", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert error_code(response) == "InvalidArgument"
    assert not (local.root / "escaped.txt").exists()
    assert not any(local.root.rglob("escaped.txt"))
    assert tmp_entries(local) == []


# --- memory -------------------------------------------------------------------------------------


def test_large_upload_streams_in_bounded_memory(local: LocalServer, local_bucket: str, wire: httpx.Client) -> None:
    size = 64 * 1024 * 1024
    chunk = os.urandom(1024 * 1024)
    md5_expected = hashlib.md5(usedforsecurity=False)
    sha_expected = hashlib.sha256()
    for _ in range(size // len(chunk)):
        md5_expected.update(chunk)
        sha_expected.update(chunk)
    presigned = local.storage.presign_put(
        local_bucket, "uploads/user-1/large.bin", size=size, content_type="video/mp4", metadata={}, expires_in=600
    )

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        response = wire.put(presigned.url, content=body(), headers=presigned.headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{md5_expected.hexdigest()}"'
    info = local.storage.head(local_bucket, "uploads/user-1/large.bin")
    assert (info.size, info.sha256) == (size, sha_expected.hexdigest())
    # Client and server share this process: both together stay far below the 64 MiB body.
    assert peak < 12 * 1024 * 1024, f"peak traced memory {peak / 1024 / 1024:.1f} MiB"
    local.storage.delete(local_bucket, "uploads/user-1/large.bin")
