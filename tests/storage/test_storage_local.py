"""LocalStorage through its Python interface: layout, keys that must not escape, crash leftovers."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from mediaingest.exceptions import ObjectNotFoundError, StorageError
from mediaingest.storage import CompletedPart, InvalidKeyError, LocalStorage

SECRET = b"local-tests-secret"
BUCKET = "incoming"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "storage", secret=SECRET, public_url="http://svc.example/")
    store.ensure_buckets([BUCKET, "processed"])
    return store


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(10_000))
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_objects_and_sidecars_on_disk(storage: LocalStorage, source: Path, tmp_path: Path) -> None:
    data = source.read_bytes()
    info = storage.upload_file(BUCKET, "assets/u/a/thumb.jpg", source, content_type="image/jpeg")

    assert (info.size, info.etag, info.sha256) == (len(data), md5(data), hashlib.sha256(data).hexdigest())
    assert (storage.root / BUCKET / "assets/u/a/thumb.jpg").read_bytes() == data
    sidecar = json.loads((storage.root / ".meta" / BUCKET / "assets/u/a/thumb.jpg.json").read_text())
    assert sidecar["etag"] == md5(data) and sidecar["content_type"] == "image/jpeg"
    assert storage.head(BUCKET, "assets/u/a/thumb.jpg") == info
    assert storage.read_range(BUCKET, "assets/u/a/thumb.jpg", 9_990, 100) == data[-10:]
    assert storage.read_range(BUCKET, "assets/u/a/thumb.jpg", 20_000, 100) == b""
    destination = tmp_path / "out.jpg"
    storage.download_file(BUCKET, "assets/u/a/thumb.jpg", destination)
    assert destination.read_bytes() == data
    assert os.listdir(storage.root / ".tmp") == []


def test_list_delete_and_delete_prefix(storage: LocalStorage, source: Path) -> None:
    for key in ("assets/u/a/p/1.jpg", "assets/u/a/p/2.jpg", "assets/u/a/z.json", "assets/u/ab/x.jpg", "b.jpg"):
        storage.upload_file("processed", key, source, content_type="image/jpeg")

    assert storage.list_keys("processed", "assets/u/a/") == [
        "assets/u/a/p/1.jpg",
        "assets/u/a/p/2.jpg",
        "assets/u/a/z.json",
    ]
    assert storage.list_keys("processed", "assets/u/a") == [
        "assets/u/a/p/1.jpg", "assets/u/a/p/2.jpg", "assets/u/a/z.json", "assets/u/ab/x.jpg",
    ]  # fmt: skip
    assert storage.list_keys("processed", "nothing/") == []

    storage.delete("processed", "b.jpg")
    storage.delete("processed", "b.jpg")  # idempotent
    storage.delete("processed", "assets")  # a prefix, not an object: nothing happens
    assert storage.delete_prefix("processed", "assets/u/a/") == 3
    assert storage.list_keys("processed", "") == ["assets/u/ab/x.jpg"]
    # Emptied folders go with their objects, in both trees.
    assert not (storage.root / "processed" / "assets/u/a").exists()
    assert not (storage.root / ".meta" / "processed" / "assets/u/a").exists()
    with pytest.raises(ValueError):
        storage.delete_prefix("processed", "")


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "a/..", "/etc/passwd", "a//b", "a/./b", "a/", "", "a\x00b", "a\nb", "a\\b", "k" * 1025],
)
def test_keys_that_could_escape_or_alias_are_refused(storage: LocalStorage, source: Path, key: str) -> None:
    for call in (
        lambda: storage.presign_put(BUCKET, key, size=1, content_type="video/mp4", metadata={}, expires_in=60),
        lambda: storage.presign_get(BUCKET, key, expires_in=60),
        lambda: storage.upload_file(BUCKET, key, source, content_type="video/mp4"),
        lambda: storage.head(BUCKET, key),
        lambda: storage.delete(BUCKET, key),
        lambda: storage.create_multipart_upload(BUCKET, key, content_type="video/mp4", metadata={}),
    ):
        with pytest.raises(InvalidKeyError):
            call()
    assert sorted(p.name for p in storage.root.parent.iterdir()) == ["source.bin", "storage"]


@pytest.mark.parametrize("bucket", ["..", ".meta", "Incoming", "a", "a/b", "x" * 64])
def test_bad_bucket_names_are_refused(storage: LocalStorage, bucket: str) -> None:
    with pytest.raises(InvalidKeyError):
        storage.head(bucket, "k")
    with pytest.raises(InvalidKeyError):
        storage.ensure_buckets([bucket])


def test_symlinks_cannot_lead_out_of_the_bucket(storage: LocalStorage, source: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / BUCKET / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKeyError):
        storage.upload_file(BUCKET, "link/x.mp4", source, content_type="video/mp4")
    with pytest.raises(InvalidKeyError):
        storage.head(BUCKET, "link/x.mp4")
    assert list(outside.iterdir()) == []


def test_missing_buckets_and_objects(storage: LocalStorage, source: Path, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        storage.head(BUCKET, "missing")
    with pytest.raises(ObjectNotFoundError):
        storage.read_range(BUCKET, "missing", 0, 1)
    with pytest.raises(ObjectNotFoundError):
        storage.download_file(BUCKET, "missing", tmp_path / "x")
    with pytest.raises(ObjectNotFoundError):
        storage.upload_file("proxies", "k", source, content_type="video/mp4")  # bucket never created
    with pytest.raises(ObjectNotFoundError):
        storage.list_keys("proxies", "")
    storage.check_ready([BUCKET, "processed"])
    with pytest.raises(StorageError):
        storage.check_ready([BUCKET, "proxies"])
    with pytest.raises(StorageError) as caught:
        storage.upload_file(BUCKET, "k", tmp_path / "no-such-source", content_type="video/mp4")
    assert str(tmp_path) not in caught.value.message


def test_a_key_cannot_be_both_object_and_prefix(storage: LocalStorage, source: Path) -> None:
    storage.upload_file(BUCKET, "a/b", source, content_type="video/mp4")
    with pytest.raises(StorageError):
        storage.upload_file(BUCKET, "a", source, content_type="video/mp4")
    with pytest.raises(StorageError):
        storage.upload_file(BUCKET, "a/b/c", source, content_type="video/mp4")
    with pytest.raises(ObjectNotFoundError):
        storage.head(BUCKET, "a")
    assert storage.list_keys(BUCKET, "") == ["a/b"]
    assert os.listdir(storage.root / ".tmp") == []


def test_torn_writes_read_as_absent(storage: LocalStorage, source: Path) -> None:
    """A crash between the sidecar and object renames, or before either, never shows a wrong object."""
    storage.upload_file(BUCKET, "torn.mp4", source, content_type="video/mp4")
    sidecar_path = storage.root / ".meta" / BUCKET / "torn.mp4.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar_path.write_text(json.dumps({**sidecar, "size": 123}))  # the next write's sidecar, old bytes
    with pytest.raises(ObjectNotFoundError):
        storage.head(BUCKET, "torn.mp4")
    sidecar_path.unlink()  # bytes without a sidecar
    with pytest.raises(ObjectNotFoundError):
        storage.head(BUCKET, "torn.mp4")
    # Healed by the next write.
    storage.upload_file(BUCKET, "torn.mp4", source, content_type="video/mp4")
    assert storage.head(BUCKET, "torn.mp4").size == source.stat().st_size


def test_stale_temp_files_are_removed_at_start(storage: LocalStorage) -> None:
    stale = storage.root / ".tmp" / "incoming-crashed"
    fresh = storage.root / ".tmp" / "incoming-in-flight"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"another process is writing this")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))

    LocalStorage(storage.root, secret=SECRET, public_url="http://svc.example")

    assert sorted(os.listdir(storage.root / ".tmp")) == ["incoming-in-flight"]


def test_writer_discards_on_error(storage: LocalStorage) -> None:
    with pytest.raises(RuntimeError), storage.new_writer() as writer:
        writer.write(b"partial")
        raise RuntimeError("client went away")
    assert os.listdir(storage.root / ".tmp") == []


def write_parts(storage: LocalStorage, key: str, upload_id: str, chunks: list[bytes]) -> list[CompletedPart]:
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        with storage.new_writer() as writer:
            writer.write(chunk)
            parts.append(
                CompletedPart(number, storage.commit_part(writer, BUCKET, key, upload_id=upload_id, part_number=number))
            )
    return parts


def test_concurrent_completes_assemble_once(storage: LocalStorage) -> None:
    chunks = [os.urandom(300_000) for _ in range(4)]
    upload_id = storage.create_multipart_upload(BUCKET, "race.mp4", content_type="video/mp4", metadata={})
    parts = write_parts(storage, "race.mp4", upload_id, chunks)
    outcomes: list[object] = []

    def complete() -> None:
        try:
            outcomes.append(storage.complete_multipart_upload(BUCKET, "race.mp4", upload_id=upload_id, parts=parts))
        except ObjectNotFoundError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=complete) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 4
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert (storage.root / BUCKET / "race.mp4").read_bytes() == b"".join(chunks)
    assert os.listdir(storage.root / ".uploads") == []


def test_abort_is_idempotent_and_scoped_to_its_key(storage: LocalStorage) -> None:
    upload_id = storage.create_multipart_upload(BUCKET, "mine.mp4", content_type="video/mp4", metadata={"a": "b"})
    write_parts(storage, "mine.mp4", upload_id, [b"abc"])
    storage.abort_multipart_upload(BUCKET, "other.mp4", upload_id=upload_id)  # not that key's upload
    assert (storage.root / ".uploads" / upload_id).is_dir()
    storage.abort_multipart_upload(BUCKET, "mine.mp4", upload_id=upload_id)
    storage.abort_multipart_upload(BUCKET, "mine.mp4", upload_id=upload_id)
    storage.abort_multipart_upload(BUCKET, "mine.mp4", upload_id="../../etc")  # never issued: no-op
    assert os.listdir(storage.root / ".uploads") == []
    with pytest.raises(ObjectNotFoundError):
        storage.complete_multipart_upload(
            BUCKET, "mine.mp4", upload_id=upload_id, parts=[CompletedPart(1, md5(b"abc"))]
        )


def test_signed_urls_point_at_the_service(storage: LocalStorage) -> None:
    presigned = storage.presign_put(
        BUCKET, "uploads/u/1 a#b?.mp4", size=5, content_type="video/mp4", metadata={}, expires_in=3600
    )
    assert presigned.url.startswith("http://svc.example/storage/incoming/uploads/u/1%20a%23b%3F.mp4?")
    assert "X-Mi-Expires=" in presigned.url and "X-Mi-Size=5" in presigned.url
    assert presigned.expires_at.timestamp() == pytest.approx(time.time() + 3600, abs=2)
    with pytest.raises(ValueError):
        storage.presign_put(BUCKET, "k", size=5, content_type="video/mp4", metadata={}, expires_in=0)
    with pytest.raises(ValueError):
        storage.presign_put(BUCKET, "k", size=5, content_type="video/mp4", metadata={}, expires_in=60, sha256="abc")
