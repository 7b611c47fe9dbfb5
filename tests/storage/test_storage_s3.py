"""S3Storage against moto's S3 server over real HTTP, plus the URLs boto3 signs.

moto checks no presigned signature, expiry, content type or checksum, so what S3 would enforce is
asserted on the generated URLs (signed headers, expiry, algorithm); the rest runs for real.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fixtures.s3 import MotoS3Server
from mediaingest.config import Settings
from mediaingest.exceptions import IntegrityCheckError, ObjectNotFoundError, StorageError
from mediaingest.storage import CompletedPart, LocalStorage, build_storage
from mediaingest.storage.errors import InvalidPartError
from mediaingest.storage.s3 import S3Storage

MIB = 1024 * 1024
METADATA = {"asset-id": "asset-1", "user-id": "user-1", "original-name": "Café déjà vu.mp4"}


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --- what the presigned URLs make S3 enforce ----------------------------------------------------


def test_presigned_put_signs_every_header_the_client_must_send(s3_storage: S3Storage) -> None:
    data = b"payload"
    digest = hashlib.sha256(data).hexdigest()
    before = datetime.now(UTC)
    presigned = s3_storage.presign_put(
        "incoming", "uploads/u/1-a.mp4", size=7, content_type="video/mp4", metadata=METADATA,
        expires_in=3600, sha256=digest,
    )  # fmt: skip

    params = query(presigned.url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "3600"
    assert params["X-Amz-Credential"].endswith("/us-east-1/s3/aws4_request")
    signed = set(params["X-Amz-SignedHeaders"].split(";"))
    assert signed == {
        "host",
        "content-type",
        "content-length",
        "if-none-match",  # single-write: the URL can create the object, never replace it
        "x-amz-checksum-sha256",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-meta-asset-id",
        "x-amz-meta-user-id",
        "x-amz-meta-original-name",
    }
    # The client gets every signed header (host aside) with the value that was signed.
    assert {name.lower() for name in presigned.headers} == signed - {"host"}
    assert presigned.method == "PUT"
    assert presigned.headers["Content-Type"] == "video/mp4"
    assert presigned.headers["Content-Length"] == "7"
    assert presigned.headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    # Non-ASCII metadata travels as an RFC 2047 encoded word; header values stay ASCII.
    encoded_name = presigned.headers["x-amz-meta-original-name"]
    assert encoded_name == "=?UTF-8?B?" + base64.b64encode(METADATA["original-name"].encode()).decode() + "?="
    assert all(value.isascii() for value in presigned.headers.values())
    assert before + timedelta(seconds=3599) <= presigned.expires_at <= datetime.now(UTC) + timedelta(seconds=3601)
    assert "moto-test-secret-key" not in presigned.url


def test_presigned_put_without_checksum_signs_no_checksum_header(s3_storage: S3Storage) -> None:
    presigned = s3_storage.presign_put(
        "incoming", "k.mp4", size=1, content_type="video/mp4", metadata={}, expires_in=900
    )
    params = query(presigned.url)
    assert params["X-Amz-Expires"] == "900"
    assert set(params["X-Amz-SignedHeaders"].split(";")) == {"host", "content-type", "content-length", "if-none-match"}
    assert set(presigned.headers) == {"Content-Type", "Content-Length", "If-None-Match"}


def test_presigned_part_and_get_urls(s3_storage: S3Storage) -> None:
    part = s3_storage.presign_upload_part(
        "incoming", "k.mp4", upload_id="upload-xyz", part_number=3, size=5 * MIB, expires_in=3600
    )
    params = query(part.url)
    assert (params["uploadId"], params["partNumber"], params["X-Amz-Expires"]) == ("upload-xyz", "3", "3600")
    assert set(params["X-Amz-SignedHeaders"].split(";")) == {"content-length", "host"}
    assert part.headers == {"Content-Length": str(5 * MIB)}

    url = s3_storage.presign_get("incoming", "k.mp4", expires_in=600, download_name="clip été.mp4")
    params = query(url)
    assert params["X-Amz-Expires"] == "600"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert params["response-content-disposition"] == (
        "attachment; filename=\"clip _t_.mp4\"; filename*=UTF-8''clip%20%C3%A9t%C3%A9.mp4"
    )

    with pytest.raises(ValueError):
        s3_storage.presign_get("incoming", "k.mp4", expires_in=8 * 24 * 3600)


# --- real round trips against moto ------------------------------------------------------------


def test_single_put_head_reads_and_downloads(
    s3_storage: S3Storage, s3_bucket: str, wire: httpx.Client, tmp_path: Path
) -> None:
    data = os.urandom(256 * 1024)
    key = "uploads/user-1/1700000000000-asset-1.mp4"
    presigned = s3_storage.presign_put(
        s3_bucket, key, size=len(data), content_type="video/mp4", metadata=METADATA, expires_in=3600,
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    response = wire.put(presigned.url, content=data, headers=presigned.headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{md5(data)}"'

    info = s3_storage.head(s3_bucket, key)
    assert (info.bucket, info.key, info.size, info.etag) == (s3_bucket, key, len(data), md5(data))
    assert info.content_type == "video/mp4"
    assert info.sha256 == hashlib.sha256(data).hexdigest()  # S3's stored checksum, read back
    assert info.metadata == METADATA  # decoded back to the original text

    assert s3_storage.read_range(s3_bucket, key, 0, 16) == data[:16]
    assert s3_storage.read_range(s3_bucket, key, 1000, 500) == data[1000:1500]
    assert s3_storage.read_range(s3_bucket, key, len(data) - 10, 100) == data[-10:]
    assert s3_storage.read_range(s3_bucket, key, len(data), 100) == b""
    assert s3_storage.read_range(s3_bucket, key, 5, 0) == b""

    destination = tmp_path / "downloaded.mp4"
    s3_storage.download_file(s3_bucket, key, destination)
    assert destination.read_bytes() == data

    url = s3_storage.presign_get(s3_bucket, key, expires_in=600, download_name="Café.mp4")
    full = wire.get(url)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["content-disposition"].startswith("attachment;")
    ranged = wire.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]

    assert s3_storage.list_keys(s3_bucket, "uploads/user-1/") == [key]
    s3_storage.delete(s3_bucket, key)
    with pytest.raises(ObjectNotFoundError):
        s3_storage.head(s3_bucket, key)
    s3_storage.delete(s3_bucket, key)  # idempotent


def upload_parts(
    s3_storage: S3Storage, wire: httpx.Client, bucket: str, key: str, upload_id: str, chunks: list[bytes]
) -> list[CompletedPart]:
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        presigned = s3_storage.presign_upload_part(
            bucket, key, upload_id=upload_id, part_number=number, size=len(chunk), expires_in=3600
        )
        response = wire.put(presigned.url, content=chunk, headers=presigned.headers)
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{md5(chunk)}"'
        parts.append(CompletedPart(number, response.headers["etag"]))
    return parts


def test_multipart_upload_completes_with_s3_etag(
    s3_storage: S3Storage, s3_bucket: str, wire: httpx.Client, tmp_path: Path
) -> None:
    # moto enforces S3's 5 MiB minimum for every part but the last.
    chunks = [os.urandom(5 * MIB), os.urandom(300 * 1024)]
    key = "uploads/user-1/big.mov"
    upload_id = s3_storage.create_multipart_upload(s3_bucket, key, content_type="video/quicktime", metadata=METADATA)
    parts = upload_parts(s3_storage, wire, s3_bucket, key, upload_id, chunks)

    info = s3_storage.complete_multipart_upload(s3_bucket, key, upload_id=upload_id, parts=parts)

    expected_etag = md5(b"".join(hashlib.md5(c, usedforsecurity=False).digest() for c in chunks)) + "-2"
    assert info.etag == expected_etag
    assert info.size == sum(len(c) for c in chunks)
    assert info.content_type == "video/quicktime"
    assert info.metadata == METADATA
    # AWS reports a multipart object's SHA256 as a checksum of part checksums ("…-2"), which must never
    # pass for the file's own; moto computes the whole object's. Either way sha256_of gives the file's.
    whole = hashlib.sha256(b"".join(chunks)).hexdigest()
    assert info.sha256 in (None, whole)
    assert s3_storage.sha256_of(s3_bucket, key, etag=info.etag) == whole
    destination = tmp_path / "big.mov"
    s3_storage.download_file(s3_bucket, key, destination)
    assert destination.read_bytes() == b"".join(chunks)
    assert s3_storage.read_range(s3_bucket, key, 5 * MIB - 4, 8) == chunks[0][-4:] + chunks[1][:4]


def test_complete_refuses_bad_part_lists_and_keeps_the_upload_open(
    s3_storage: S3Storage, s3_bucket: str, wire: httpx.Client
) -> None:
    key = "uploads/user-1/parts.mp4"
    chunks = [os.urandom(5 * MIB), b"tail"]
    upload_id = s3_storage.create_multipart_upload(s3_bucket, key, content_type="video/mp4", metadata={})
    parts = upload_parts(s3_storage, wire, s3_bucket, key, upload_id, chunks)

    wrong = [parts[0], CompletedPart(2, md5(b"other"))]
    with pytest.raises(InvalidPartError) as caught:
        s3_storage.complete_multipart_upload(s3_bucket, key, upload_id=upload_id, parts=wrong)
    assert isinstance(caught.value, IntegrityCheckError) and isinstance(caught.value, StorageError)
    with pytest.raises(ObjectNotFoundError):
        s3_storage.head(s3_bucket, key)

    info = s3_storage.complete_multipart_upload(s3_bucket, key, upload_id=upload_id, parts=parts)
    assert info.size == 5 * MIB + 4


def test_too_small_parts_are_refused(s3_storage: S3Storage, s3_bucket: str, wire: httpx.Client) -> None:
    key = "uploads/user-1/small.mp4"
    upload_id = s3_storage.create_multipart_upload(s3_bucket, key, content_type="video/mp4", metadata={})
    parts = upload_parts(s3_storage, wire, s3_bucket, key, upload_id, [b"a" * 1000, b"b" * 10])
    with pytest.raises(InvalidPartError) as caught:
        s3_storage.complete_multipart_upload(s3_bucket, key, upload_id=upload_id, parts=parts)
    assert caught.value.details["s3_code"] == "EntityTooSmall"


def test_abort_is_idempotent(s3_storage: S3Storage, s3_bucket: str, wire: httpx.Client) -> None:
    key = "uploads/user-1/aborted.mp4"
    upload_id = s3_storage.create_multipart_upload(s3_bucket, key, content_type="video/mp4", metadata={})
    parts = upload_parts(s3_storage, wire, s3_bucket, key, upload_id, [os.urandom(1024)])
    s3_storage.abort_multipart_upload(s3_bucket, key, upload_id=upload_id)
    s3_storage.abort_multipart_upload(s3_bucket, key, upload_id=upload_id)
    s3_storage.abort_multipart_upload(s3_bucket, key, upload_id="never-issued")
    # (moto answers a complete of an aborted upload with a 500 where S3 says NoSuchUpload, so the
    # listing is what shows the upload gone.)
    assert parts
    assert "Uploads" not in s3_storage.client.list_multipart_uploads(Bucket=s3_bucket)


def test_absent_objects_and_buckets_raise_object_not_found(
    s3_storage: S3Storage, s3_bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(ObjectNotFoundError):
        s3_storage.head(s3_bucket, "missing")
    with pytest.raises(ObjectNotFoundError):
        s3_storage.read_range(s3_bucket, "missing", 0, 10)
    with pytest.raises(ObjectNotFoundError):
        s3_storage.download_file(s3_bucket, "missing", tmp_path / "x")
    with pytest.raises(ObjectNotFoundError):
        s3_storage.list_keys("no-such-bucket-here", "")
    with pytest.raises(ObjectNotFoundError):
        s3_storage.check_ready([s3_bucket, "no-such-bucket-here"])
    s3_storage.delete(s3_bucket, "missing")
    s3_storage.check_ready([s3_bucket])


def test_upload_file_list_and_delete_prefix_in_batches(s3_storage: S3Storage, s3_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "thumb.jpg"
    source.write_bytes(b"\xff\xd8\xff" + os.urandom(2000))
    prefix = "assets/user-1/asset-1/"
    keys = [f"{prefix}thumbnails/{index:02d}.jpg" for index in range(7)]
    for key in keys:
        info = s3_storage.upload_file(s3_bucket, key, source, content_type="image/jpeg")
        assert (info.size, info.etag, info.content_type) == (2003, md5(source.read_bytes()), "image/jpeg")
    s3_storage.upload_file(s3_bucket, "assets/user-1/asset-10/keep.jpg", source, content_type="image/jpeg")

    assert s3_storage.list_keys(s3_bucket, prefix) == keys
    s3_storage.delete_batch_size = 3  # 7 keys: three DeleteObjects calls
    assert s3_storage.delete_prefix(s3_bucket, prefix) == 7
    assert s3_storage.list_keys(s3_bucket, "assets/") == ["assets/user-1/asset-10/keep.jpg"]
    assert s3_storage.delete_prefix(s3_bucket, prefix) == 0
    with pytest.raises(ValueError):
        s3_storage.delete_prefix(s3_bucket, "")


def test_ensure_buckets_is_idempotent(s3_storage: S3Storage, moto_s3_server: MotoS3Server) -> None:
    bucket = "ensure-" + os.urandom(6).hex()
    s3_storage.ensure_buckets([bucket])
    s3_storage.ensure_buckets([bucket])
    s3_storage.check_ready([bucket])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_store_raises_storage_error_without_secrets() -> None:
    storage = S3Storage(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="very-secret-key",
        force_path_style=True,
        connect_timeout=1,
        max_attempts=1,
    )
    with pytest.raises(StorageError) as caught:
        storage.check_ready(["incoming"])
    assert not isinstance(caught.value, ObjectNotFoundError)
    with pytest.raises(StorageError) as head_error:
        storage.head("incoming", "k")
    for error in (caught.value, head_error.value):
        assert "very-secret-key" not in error.message
        assert "AKIAEXAMPLE" not in error.message
        assert "EndpointConnectionError" in error.message


def test_build_storage_picks_the_backend_without_network(tmp_path: Path) -> None:
    s3 = build_storage(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            storage_backend="s3",
            s3_endpoint_url=f"http://127.0.0.1:{closed_port()}",
            s3_force_path_style=True,
            aws_region="eu-west-3",
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
    )
    assert isinstance(s3, S3Storage)
    config = s3.client.meta.config
    assert (config.region_name, config.signature_version) == ("eu-west-3", "s3v4")
    assert config.s3["addressing_style"] == "path"
    assert config.retries["mode"] == "standard"
    assert (config.connect_timeout, config.read_timeout) == (5.0, 60.0)

    local = build_storage(
        Settings(_env_file=None, data_dir=tmp_path / "var", local_storage_secret="s")  # type: ignore[call-arg]
    )
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "var" / "storage").resolve()
