"""The client side of the upload protocol (as README.md describes it), over httpx, timing each step.

Bodies stream from the file in 1 MiB reads with an explicit Content-Length, so a 200 MB upload never
sits in the client's memory, and 50 clients at once cost the bench process little.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

_READ = 1024 * 1024


class BenchHttpError(Exception):
    def __init__(self, step: str, response: httpx.Response) -> None:
        super().__init__(f"{step}: HTTP {response.status_code} {response.text[:300]}")
        self.step = step
        self.status_code = response.status_code


def _file_range(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_READ, remaining))
            if not chunk:
                raise OSError(f"{path} ended {remaining} bytes early")
            remaining -= len(chunk)
            yield chunk


@dataclass
class Upload:
    asset_id: str
    size: int
    multipart: bool
    upload_url_seconds: float
    put_seconds: float
    confirm_seconds: float
    requests: int  # HTTP requests made: upload-url, every PUT, confirm
    started_at: float  # time.monotonic() when the upload-url request was sent
    confirmed_at: float  # time.monotonic() when the confirm request was sent
    confirmed_wall: float  # time.time() at the same moment (database timestamps are wall clock)


class ApiClient:
    def __init__(self, base_url: str, token: str, *, http: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = http

    def _post(self, step: str, path: str, body: dict[str, Any], expected: int) -> dict[str, Any]:
        response = self.http.post(f"{self.base_url}{path}", json=body, headers=self.headers)
        if response.status_code != expected:
            raise BenchHttpError(step, response)
        return response.json()["data"]

    def request_upload(self, path: Path, mime_type: str) -> dict[str, Any]:
        body = {"fileName": path.name, "fileSize": path.stat().st_size, "mimeType": mime_type, "projectId": "bench"}
        return self._post("upload-url", "/api/assets/upload-url", body, 201)

    def put(self, ticket: dict[str, Any], path: Path) -> tuple[dict[str, Any], int]:
        """PUTs the file (each part in turn when multipart); returns the confirm body and the request count."""
        if ticket.get("multipart"):
            multipart = ticket["multipart"]
            parts = []
            for part in multipart["parts"]:
                start = (part["partNumber"] - 1) * multipart["partSize"]
                etag = self._put_range(part["url"], part["headers"], path, start, part["size"])
                parts.append({"partNumber": part["partNumber"], "etag": etag})
            return {"assetId": ticket["assetId"], "parts": parts}, len(parts)
        etag = self._put_range(ticket["uploadUrl"], ticket["headers"], path, 0, path.stat().st_size)
        return {"assetId": ticket["assetId"], "etag": etag}, 1

    def _put_range(self, url: str, headers: dict[str, str], path: Path, start: int, length: int) -> str:
        response = self.http.put(
            url, content=_file_range(path, start, length), headers={**headers, "Content-Length": str(length)}
        )
        if response.status_code != 200:
            raise BenchHttpError("put", response)
        return response.headers["etag"]

    def confirm(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("confirm", "/api/assets/confirm-upload", body, 200)

    def delete(self, asset_id: str) -> None:
        response = self.http.delete(f"{self.base_url}/api/assets/{asset_id}", headers=self.headers)
        if response.status_code != 200:
            raise BenchHttpError("delete", response)

    def upload(self, path: Path, mime_type: str, *, confirm: bool = True) -> tuple[Upload, dict[str, Any]]:
        """The whole flow with each step timed; with confirm=False, stops before confirming."""
        started = time.monotonic()
        ticket = self.request_upload(path, mime_type)
        requested = time.monotonic()
        body, puts = self.put(ticket, path)
        uploaded, confirmed_wall = time.monotonic(), time.time()
        if confirm:
            self.confirm(body)
        done = time.monotonic()
        upload = Upload(
            asset_id=ticket["assetId"],
            size=path.stat().st_size,
            multipart=bool(ticket.get("multipart")),
            upload_url_seconds=requested - started,
            put_seconds=uploaded - requested,
            confirm_seconds=done - uploaded if confirm else 0.0,
            requests=puts + (2 if confirm else 1),
            started_at=started,
            confirmed_at=uploaded,
            confirmed_wall=confirmed_wall,
        )
        return upload, body
