"""Names follow the verified type, and downloads can never be rendered as something else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.uploads import put_bytes, request_upload

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\0" * 200 + b"\xff\xd9"
POLYGLOT = JPEG + b"<html><script>alert(document.cookie)</script></html>"


@pytest.mark.parametrize(
    ("raw", "mime", "expected"),
    [
        ("a.php", "image/jpeg", "a.jpg"),
        ("x.html", "image/jpeg", "x.jpg"),
        ("photo.JPEG", "image/jpeg", "photo.jpeg"),
        ("clip.MOV", "video/quicktime", "clip.mov"),
        ("clip.mov", "video/mp4", "clip.mp4"),
        ("song.exe", "audio/mpeg", "song.mp3"),
        ("archive.tar.gz", "video/webm", "archive.tar.webm"),
    ],
)
def test_the_extension_follows_the_declared_type(
    client: TestClient, users: Users, raw: str, mime: str, expected: str
) -> None:
    _, headers = users.create()
    ticket = request_upload(client, headers, file_name=raw, size=100, mime_type=mime).json()["data"]
    assert ticket["fileName"] == expected
    assert ticket["storageKey"].endswith("." + expected.rsplit(".", 1)[1])


def test_a_polyglot_downloads_as_the_verified_type_never_sniffed(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    ticket = request_upload(client, headers, file_name="x.html", size=len(POLYGLOT), mime_type="image/jpeg")
    ticket_data = ticket.json()["data"]
    confirm = put_bytes(client, ticket_data, POLYGLOT)
    confirmed = client.post("/api/assets/confirm-upload", json=confirm, headers=headers)
    assert confirmed.status_code == 200, confirmed.text

    detail = client.get(f"/api/assets/{ticket_data['assetId']}", headers=headers).json()["data"]
    assert detail["name"] == "x.jpg" and detail["originalName"] == "x.html"
    download = client.get(detail["downloadUrl"])
    assert download.status_code == 200
    assert download.content == POLYGLOT
    assert download.headers["content-type"] == "image/jpeg"
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="x.jpg"' in disposition and "html" not in disposition
