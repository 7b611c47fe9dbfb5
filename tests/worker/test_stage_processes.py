"""Warm stage processes: one runs attempt after attempt, each attempt's memory its own, and one that may be
unlike a fresh process (a cancellation, a crash) is retired rather than given the next attempt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import SettingsFactory
from mediaingest.config import Settings
from mediaingest.models import TaskStatus
from mediaingest.models.enums import Stage
from mediaingest.worker import isolation
from mediaingest.worker.jobs import IngestionJobHandle

MIB = 2**20


@pytest.fixture
def stage_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


def _attempt_on_a_deleted_asset(settings: Settings, cancel: threading.Event | None = None) -> isolation.AttemptReport:
    """A real attempt, end to end through a stage process, that finds its asset gone: the cheapest one."""
    handle = IngestionJobHandle(job_id="gone", task_id="gone", attempt=1, worker_id="test-worker")
    return isolation.run_attempt(settings, handle=handle, asset_id="no-such-asset", stage=Stage("probe"),
                                 cancel=cancel or threading.Event())  # fmt: skip


def _alive(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_stage_process_runs_attempt_after_attempt_until_its_worker_retires_it(stage_settings: Settings) -> None:
    first = _attempt_on_a_deleted_asset(stage_settings)
    assert (first.ended, first.message, first.reusable) == (TaskStatus.CANCELLED, "asset deleted", True)
    second = _attempt_on_a_deleted_asset(stage_settings)
    assert second.pid == first.pid and second.pid != os.getpid()
    # Each attempt's peak is measured from its start, which is reported beside it (what earlier attempts
    # left resident is in both).
    assert 0 < second.start_rss_bytes <= second.peak_rss_bytes
    isolation.retire_idle(stage_settings)
    deadline = time.monotonic() + 10
    while _alive(first.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(first.pid)


def test_other_settings_never_get_a_process_made_with_these(
    stage_settings: Settings, make_settings: SettingsFactory
) -> None:
    """A warm process holds its settings' database and storage: another worker's settings get their own."""
    first = _attempt_on_a_deleted_asset(stage_settings)
    other = make_settings(worker_concurrency=2)
    assert _attempt_on_a_deleted_asset(other).pid != first.pid
    for settings in (stage_settings, other):
        isolation.retire_idle(settings)


def test_a_cancelled_attempt_retires_its_stage_process(stage_settings: Settings) -> None:
    """SIGTERM reached the process (and may have reached it after its report): the next attempt gets a
    fresh one."""
    cancel = threading.Event()
    cancel.set()
    cancelled = _attempt_on_a_deleted_asset(stage_settings, cancel)
    assert cancelled.ended == TaskStatus.CANCELLED
    after = _attempt_on_a_deleted_asset(stage_settings)
    assert after.pid != cancelled.pid
    isolation.retire_idle(stage_settings)


def test_an_idle_stage_process_leaves_on_sigterm_and_the_next_attempt_runs_elsewhere(
    stage_settings: Settings,
) -> None:
    """SIGTERM while idle (the forkserver or the machine stopping) ends the process at once, so no stale
    signal cancels a later attempt; an attempt sent to it as it goes is run by another process instead of
    failing as a death."""
    for _ in range(3):  # the signal lands before, or just after, the next attempt is sent
        idle = _attempt_on_a_deleted_asset(stage_settings)
        os.kill(idle.pid or 0, signal.SIGTERM)
        after = _attempt_on_a_deleted_asset(stage_settings)
        assert (after.ended, after.message) == (TaskStatus.CANCELLED, "asset deleted")
        assert after.pid != idle.pid
    deadline = time.monotonic() + 10
    while _alive(idle.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(idle.pid)
    isolation.retire_idle(stage_settings)


def test_a_process_with_idle_stage_processes_exits_without_retiring_them(stage_settings: Settings) -> None:
    """Nothing retired them (a worker that never ran, an exception): the interpreter's exit still does,
    instead of waiting for ever on a daemon child that never sees its pipe close."""
    script = f"""
import threading
from mediaingest.config import Settings
from mediaingest.models.enums import Stage
from mediaingest.worker import isolation
from mediaingest.worker.jobs import IngestionJobHandle
settings = Settings(_env_file=None, database_url={stage_settings.database_url!r},
                    data_dir={str(stage_settings.data_dir)!r}, local_storage_secret="test", storage_backend="local")
handle = IngestionJobHandle(job_id="gone", task_id="gone", attempt=1, worker_id="test-worker")
report = isolation.run_attempt(settings, handle=handle, asset_id="no-such-asset", stage=Stage("probe"),
                               cancel=threading.Event())
assert report.reusable, report
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_an_unexpected_error_retires_its_stage_process(stage_settings: Settings, tmp_path: Path) -> None:
    """A failure of the code (not of the media) may leave the process in any state: it is not reused."""
    broken = stage_settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/no-tables.db"})
    failed = _attempt_on_a_deleted_asset(broken)
    assert failed.ended == TaskStatus.FAILED and not failed.permanent and not failed.reusable
    assert "no such table" in failed.message
    assert _attempt_on_a_deleted_asset(broken).pid != failed.pid


def test_the_tools_peak_is_each_runs_own(tmp_path: Path) -> None:
    """What a stage process's tools took is counted from the attempt's start: a large ffmpeg run before does
    not show in a small one's figure (the kernel's RUSAGE_CHILDREN keeps only the lifetime's largest).

    Linux counts a child's peak from its parent's high-water mark at the fork, which a stage process resets
    at each attempt's start; so does this check, in a fresh interpreter (this test process's own mark is
    whatever the suite took so far)."""
    small = tmp_path / "small.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.1", str(small)], check=True)
    script = f"""
from pathlib import Path
from mediaingest.pipeline.ffmpeg import TOOLS_PEAK, ffprobe_json, run_ffmpeg
large = ["ffmpeg", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=6", "-vf", "reverse",
         "-f", "null", "-"]  # reverse holds every frame: 150 of 3 MB
run_ffmpeg(large, duration_seconds=None, on_progress=None)
print(TOOLS_PEAK.bytes)
TOOLS_PEAK.reset()
Path("/proc/self/clear_refs").write_text("5")
assert ffprobe_json(Path({str(small)!r}))["streams"][0]["codec_type"] == "audio"
print(TOOLS_PEAK.bytes)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=120)
    large_peak, small_peak = map(int, done.stdout.split())
    assert large_peak > 400 * MIB
    assert 0 < small_peak < 150 * MIB  # ffprobe's own figure, not the large run's
