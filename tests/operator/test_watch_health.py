"""Telling a stalled watch from a quiet one (operator.watch_health), on a clock the test moves."""

from __future__ import annotations

from mediaingest.operator.watch_health import WatchHealth


def test_checks_are_spaced_out() -> None:
    health = WatchHealth(check_interval=60)
    assert health.due(0.0) and not health.due(30.0) and health.due(61.0)


def test_a_stream_that_catches_up_is_healthy() -> None:
    health = WatchHealth(stall_after=120)
    health.compared(name="a", watched_version="1", served_version="1", now=0.0)
    assert health.stalled_for(500.0) is None
    health.compared(name="a", watched_version="1", served_version="2", now=600.0)  # our own patch, in flight
    health.delivered(name="a", watched_version="2", now=605.0)
    assert health.stalled_for(900.0) is None


def test_a_version_never_delivered_is_a_stalled_stream() -> None:
    health = WatchHealth(stall_after=120, forget_after=30)
    health.compared(name="a", watched_version="1", served_version="2", now=0.0)
    for moment in range(5, 200, 5):  # the timer keeps running on the stale body
        health.delivered(name="a", watched_version="1", now=float(moment))
        if moment < 120:
            assert health.stalled_for(float(moment)) is None
    assert health.stalled_for(200.0) == 200.0


def test_a_suspect_whose_timer_stopped_is_forgotten() -> None:
    """Its timer stops only because the stream said it finished or was deleted: the stream is alive."""
    health = WatchHealth(stall_after=120, forget_after=30)
    health.compared(name="a", watched_version="1", served_version="2", now=0.0)
    health.delivered(name="a", watched_version="1", now=5.0)
    assert health.stalled_for(300.0) is None
    # Gone from the server: nothing to compare.
    health.compared(name="b", watched_version="1", served_version=None, now=400.0)
    assert health.stalled_for(900.0) is None
