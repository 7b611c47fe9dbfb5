"""`mediaingest clip ASSET --in … --out …` (a subprocess) against a live server with a worker: positions as
timecodes or seconds, and the errors a person gets."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from client.test_cli import _token, run_cli
from fixtures.live_server import LiveServer
from mediaingest.client.cli import position_seconds
from mediaingest.pipeline.smartcut import timecode_frames


def test_positions_are_seconds_or_timecodes_from_the_start() -> None:
    assert position_seconds("12.2", None) == 12.2
    assert position_seconds("00:00:12:05", "25/1") == 12.2
    assert timecode_frames("00:01:00;02", Fraction(30000, 1001)) == 1800
    with pytest.raises(ValueError, match=r"not a timecode at 25\.000 fps"):
        position_seconds("00:00:12:25", "25/1")
    with pytest.raises(ValueError, match="frame rate is not known"):
        position_seconds("00:00:12:05", None)


@pytest.mark.slow
def test_a_clip_from_the_command_line(live_server: LiveServer, small_video: Path) -> None:
    _, headers = live_server.create_user()
    token = _token(headers)
    uploaded = run_cli(live_server, token, "upload", str(small_video), "--wait", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    asset_id = json.loads(uploaded.stdout)[0]["asset"]["id"]

    made = run_cli(live_server, token, "clip", asset_id[:8], "--in", "00:00:00:05", "--out", "1.5", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    # The 15 fps source is counted at its timeline rate, 23.976: frame 5 in, up to the frame at 1.5 s.
    assert (created["inFrame"], created["outFrame"], created["frameRate"]) == (5, 35, "24000/1001")
    assert created["parentId"] == asset_id

    text = run_cli(live_server, token, "clip", asset_id, "--in", "0.5", "--out", "1")
    assert text.returncode == 0, text.stderr
    assert "frames 11–22 (12 at 24000/1001)" in text.stdout and "plays now: http" in text.stdout

    late = run_cli(live_server, token, "clip", asset_id, "--in", "1", "--out", "00:00:09:00")
    assert late.returncode == 1 and "start and end must be seconds" in late.stderr
    bad = run_cli(live_server, token, "clip", asset_id, "--in", "00:00:00:99", "--out", "1")
    assert bad.returncode == 2 and "not a timecode" in bad.stderr
