"""The retry policy is a value: permanent errors never retry, transient ones back off exponentially."""

from __future__ import annotations

import pytest

from mediaingest.exceptions import MediaUnreadableError, StorageError, TransientProcessingError
from mediaingest.retry import RetryPolicy


def test_permanent_failures_are_not_retried() -> None:
    decision = RetryPolicy().decide(MediaUnreadableError("moov atom not found"), attempts=1)
    assert (decision.retry, decision.reason) == (False, "permanent")


@pytest.mark.parametrize(
    "error", [StorageError("S3 unreachable"), TransientProcessingError("ffmpeg killed"), OSError()]
)
def test_transient_failures_retry_until_attempts_run_out(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1.0, jitter=0.0)
    first, second, third = (policy.decide(error, attempts=n) for n in (1, 2, 3))
    assert (first.retry, first.delay_seconds, first.reason) == (True, 1.0, "transient")
    assert (second.retry, second.delay_seconds) == (True, 2.0)
    assert (third.retry, third.reason) == (False, "exhausted")


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=30.0, jitter=0.25)
    delays = [policy.backoff(10) for _ in range(200)]
    assert all(22.5 <= delay <= 37.5 for delay in delays)
    assert len({round(delay, 6) for delay in delays}) > 100  # not in lockstep
    assert RetryPolicy(jitter=0.0).backoff(1) == 2.0


def test_job_row_max_attempts_overrides_the_default() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert policy.decide(StorageError("x"), attempts=2, max_attempts=2).retry is False
