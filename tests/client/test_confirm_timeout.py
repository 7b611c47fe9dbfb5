"""The client waits for a confirm that takes longer than its ordinary request timeout.

Confirming completes a multipart upload on the server (the local backend reads and writes every byte),
which for a big file outlasts any timeout fit for the other requests; the server's real completion is
only held back here, by a second, so a one-second client timeout would have expired.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.live_server import LiveServerFactory
from mediaingest.client.api import MediaIngestClient

HELD_SECONDS = 2.0


def test_a_confirm_slower_than_the_client_timeout_still_succeeds(
    live_server_factory: LiveServerFactory, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=1024, multipart_part_size=64 * 1024)
    original = server.storage.complete_multipart_upload

    def slow_completion(*args: Any, **kwargs: Any) -> Any:
        time.sleep(HELD_SECONDS)
        return original(*args, **kwargs)

    monkeypatch.setattr(server.storage, "complete_multipart_upload", slow_completion)
    _, headers = server.create_user()
    token = headers["Authorization"].removeprefix("Bearer ")

    with MediaIngestClient(server.url, token, timeout=HELD_SECONDS / 2) as client:
        started = time.monotonic()
        result = client.upload(small_video)

    assert time.monotonic() - started >= HELD_SECONDS
    assert result.plan.multipart
    assert result.confirmed.upload_status == "UPLOADED"
