"""The pure MediaAsset state machine: every decision's status is validated against the CRD's schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mediaingest.models.enums import MediaType, Stage
from mediaingest.operator import naming
from mediaingest.operator.handlers.reconcile import (
    AssetFinished,
    Decision,
    StageFailed,
    StageStarted,
    StageSucceeded,
    merge_patch,
    reconcile,
    status_patch,
    unsettled_failures,
)
from mediaingest.operator.model import AssetSpec, JobObservation, JobState
from mediaingest.retry import RetryPolicy

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_seconds=10, max_seconds=25, jitter=0.0)
NAME = "asset-a1"
VIDEO = AssetSpec(
    asset_id="a1",
    owner="u1",
    media_type=MediaType.VIDEO,
    bucket="b",
    key="k",
    size=1,
    priority="NORMAL",  # type: ignore[arg-type]
    stages=(Stage("probe"), Stage("proxies"), Stage("thumbnails"), Stage("audio_visuals")),
)


def job(stage: Stage, attempt: int, state: JobState, **fields: Any) -> JobObservation:
    return JobObservation(
        name=naming.job_name(NAME, stage, attempt), stage=stage, attempt=attempt, tenant="u1", state=state, **fields
    )


@pytest.fixture
def step(validate_status) -> Callable[..., Decision]:
    """One reconciliation; the resulting status must be valid for the CRD and its patch must apply."""

    def run(
        status: dict[str, Any] | None = None,
        jobs: list[JobObservation] = (),  # type: ignore[assignment]
        *,
        now: datetime = NOW,
        admit: Callable[[Stage, int, str], str | None] = lambda *_: None,
        spec: AssetSpec = VIDEO,
    ) -> Decision:
        old = status or {}
        decision = reconcile(
            asset_name=NAME, spec=spec, status=old, jobs=list(jobs), now=now, policy=POLICY, admit=admit, generation=1
        )
        validate_status(decision.status)
        assert _apply(old, status_patch(old, decision.status)) == decision.status
        return decision

    return run


def _apply(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = dict(old)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply(result[key], value)
        else:
            result[key] = value
    return result


def phases(decision: Decision) -> dict[str, str]:
    return {stage: entry["phase"] for stage, entry in decision.status["stages"].items()}


def test_new_asset_launches_the_probe_alone(step) -> None:
    decision = step()
    assert [(launch.stage, launch.attempt) for launch in decision.launches] == [(Stage("probe"), 1)]
    assert decision.launches[0].job_name == f"{NAME}-probe-1"
    assert phases(decision) == {
        "probe": "Running",
        "proxies": "Pending",
        "thumbnails": "Pending",
        "audio_visuals": "Pending",
    }
    assert decision.status["phase"] == "Running" and decision.status["stage"] == "probe"
    assert decision.status["progress"] == 0 and decision.status["observedGeneration"] == 1
    assert decision.status["conditions"][0]["status"] == "False"
    assert decision.transitions == [StageStarted(Stage("probe"), 1, f"{NAME}-probe-1", NOW)]


def test_a_running_job_changes_nothing_and_reruns_are_idempotent(step) -> None:
    first = step()
    running = [job(Stage("probe"), 1, JobState.ACTIVE, started_at="2030-01-01T12:00:02Z")]
    second = step(first.status, running, now=NOW + timedelta(seconds=5))
    assert not second.launches and not second.transitions
    third = step(second.status, running, now=NOW + timedelta(seconds=10))
    assert status_patch(second.status, third.status) == {}


def test_probe_success_starts_the_other_stages_in_plan_order(step) -> None:
    status = step().status
    decision = step(status, [job(Stage("probe"), 1, JobState.SUCCEEDED, finished_at="2030-01-01T12:00:30Z")])
    assert [launch.stage for launch in decision.launches] == [
        Stage("proxies"),
        Stage("thumbnails"),
        Stage("audio_visuals"),
    ]
    assert decision.status["stages"]["probe"] == {
        "phase": "Succeeded",
        "attempts": 1,
        "jobName": f"{NAME}-probe-1",
        "startedAt": "2030-01-01T12:00:00Z",
        "finishedAt": "2030-01-01T12:00:30Z",
    }
    assert decision.status["progress"] == 25 and decision.status["stage"] == "proxies,thumbnails,audio_visuals"
    assert StageSucceeded(Stage("probe"), 1, NOW) in decision.transitions


def test_all_stages_succeeded_is_ready_once(step) -> None:
    status = step().status
    done = [job(Stage("probe"), 1, JobState.SUCCEEDED)]
    status = step(status, done).status
    done += [job(stage, 1, JobState.SUCCEEDED) for stage in VIDEO.stages[1:]]
    decision = step(status, done)
    assert decision.status["phase"] == "Ready" and decision.status["progress"] == 100
    assert decision.status["conditions"][0]["status"] == "True"
    assert decision.status["conditions"][0]["reason"] == "Succeeded"
    assert "stage" not in decision.status and "finishedAt" in decision.status
    assert decision.transitions[-1] == AssetFinished(decision.phase, None, NOW)
    again = step(decision.status, done, now=NOW + timedelta(minutes=1))
    assert not again.transitions and not again.launches
    assert again.status["finishedAt"] == decision.status["finishedAt"]


def test_transient_failures_retry_with_exponential_backoff_then_fail(step) -> None:
    spec = AssetSpec(**{**VIDEO.__dict__, "stages": (Stage("probe"),)})
    status = step(spec=spec).status
    failed = [job(Stage("probe"), 1, JobState.FAILED, reason="BackoffLimitExceeded", exit_code=1, message="boom")]
    decision = step(status, failed, spec=spec)
    entry = decision.status["stages"]["probe"]
    assert entry["phase"] == "Retrying" and entry["nextAttemptAt"] == "2030-01-01T12:00:10Z"
    assert entry["message"] == "exit code 1, BackoffLimitExceeded: boom"
    assert decision.transitions == [StageFailed(Stage("probe"), 1, True, entry["message"], NOW)]
    assert not decision.launches and decision.status["phase"] == "Running"
    assert "retrying" in decision.status["message"]

    early = step(decision.status, failed, now=NOW + timedelta(seconds=9), spec=spec)
    assert not early.launches and not early.transitions

    due = NOW + timedelta(seconds=10)
    second = step(early.status, failed, now=due, spec=spec)
    assert [(launch.stage, launch.attempt) for launch in second.launches] == [(Stage("probe"), 2)]
    assert second.status["stages"]["probe"]["phase"] == "Running"

    failed.append(job(Stage("probe"), 2, JobState.FAILED, reason="DeadlineExceeded"))
    third = step(second.status, failed, now=due, spec=spec)
    assert third.status["stages"]["probe"]["nextAttemptAt"] == "2030-01-01T12:00:30Z"  # 2 × 10 s

    later = due + timedelta(seconds=20)
    fourth = step(third.status, failed, now=later, spec=spec)
    assert fourth.launches[0].attempt == 3
    failed.append(job(Stage("probe"), 3, JobState.FAILED, exit_code=137, reason="OOMKilled"))
    final = step(fourth.status, failed, now=later, spec=spec)
    entry = final.status["stages"]["probe"]
    assert entry["phase"] == "Failed" and entry["message"].startswith("gave up after 3 attempts: exit code 137")
    assert final.status["phase"] == "Failed" and final.status["stage"] == "probe"
    assert final.status["message"].startswith("probe: gave up after 3 attempts")
    assert final.status["conditions"][0] == {
        "type": "Ready",
        "status": "False",
        "reason": "StageFailed",
        "message": final.status["message"],
        "lastTransitionTime": "2030-01-01T12:00:00Z",
        "observedGeneration": 1,
    }
    assert StageFailed(Stage("probe"), 3, False, entry["message"], later) in final.transitions
    assert final.transitions[-1] == AssetFinished(final.phase, final.status["message"], later)


@pytest.mark.parametrize(
    "failure",
    [
        {"reason": "PodFailurePolicy", "message": "Container stage failed with exit code 3"},
        {"reason": "BackoffLimitExceeded", "exit_code": 3, "message": "unsupported codec"},
    ],
)
def test_exit_code_3_fails_at_once_and_cancels_the_rest(step, failure: dict[str, Any]) -> None:
    status = step().status
    decision = step(status, [job(Stage("probe"), 1, JobState.FAILED, **failure)])
    assert not decision.launches
    assert phases(decision) == {
        "probe": "Failed",
        "proxies": "Cancelled",
        "thumbnails": "Cancelled",
        "audio_visuals": "Cancelled",
    }
    assert decision.status["phase"] == "Failed"
    assert decision.status["stages"]["proxies"]["message"] == "not run: probe failed"
    assert [type(item) for item in decision.transitions] == [StageFailed, AssetFinished]
    assert decision.transitions[0].will_retry is False  # type: ignore[union-attr]


def test_a_failed_stage_lets_running_siblings_finish_before_failing(step) -> None:
    status = step().status
    jobs = [job(Stage("probe"), 1, JobState.SUCCEEDED)]
    status = step(status, jobs).status
    jobs += [
        job(Stage("proxies"), 1, JobState.FAILED, reason="PodFailurePolicy"),
        job(Stage("thumbnails"), 1, JobState.ACTIVE),
        job(Stage("audio_visuals"), 1, JobState.FAILED, exit_code=1),
    ]
    decision = step(status, jobs)
    assert decision.status["phase"] == "Running" and "waiting for thumbnails" in decision.status["message"]
    assert phases(decision)["audio_visuals"] == "Cancelled"  # its retry is not worth it any more
    assert not decision.launches and not any(isinstance(item, AssetFinished) for item in decision.transitions)
    jobs[2] = job(Stage("thumbnails"), 1, JobState.SUCCEEDED)
    final = step(decision.status, jobs)
    assert final.status["phase"] == "Failed" and final.status["message"].startswith("proxies:")
    assert final.status["progress"] == 50


def test_caps_postpone_launches_and_say_why(step) -> None:
    decision = step(admit=lambda *_: "global cap: 4/4 stage Jobs running")
    assert not decision.launches and decision.waiting_for_capacity == "global cap: 4/4 stage Jobs running"
    assert decision.status["phase"] == "Pending" and decision.status["stage"] == "probe"
    assert decision.status["message"] == "waiting for capacity (global cap: 4/4 stage Jobs running)"
    assert decision.status["conditions"][0]["reason"] == "Pending"

    status = step().status
    status = step(status, [job(Stage("probe"), 1, JobState.SUCCEEDED)], admit=lambda *_: "tenant cap").status
    allowed = iter([None, "tenant cap: 2/2 Jobs of this owner running"])
    partial = step(
        status,
        [job(Stage("probe"), 1, JobState.SUCCEEDED), job(Stage("proxies"), 1, JobState.ACTIVE)],
        admit=lambda *_: next(allowed),
    )
    assert partial.status["phase"] == "Running"
    # proxies was already on the watch (adopted, not admitted again); thumbnails got the last slot.
    assert [launch.stage for launch in partial.launches] == [Stage("thumbnails")]
    assert phases(partial)["audio_visuals"] == "Pending" and partial.waiting_for_capacity


def test_admission_is_asked_in_plan_order_until_refused(step) -> None:
    status = step().status
    asked: list[Stage] = []

    def admit(stage: Stage, attempt: int, name: str) -> str | None:
        asked.append(stage)
        return None if stage == Stage("proxies") else "tenant cap: 2/2 Jobs of this owner running"

    decision = step(status, [job(Stage("probe"), 1, JobState.SUCCEEDED)], admit=admit)
    assert asked == ["proxies", "thumbnails", "audio_visuals"]
    assert [launch.stage for launch in decision.launches] == [Stage("proxies")]
    assert phases(decision)["thumbnails"] == "Pending" and decision.waiting_for_capacity


def test_a_launch_the_status_lost_is_adopted_not_duplicated(step) -> None:
    decision = step({}, [job(Stage("probe"), 1, JobState.ACTIVE)])
    assert not decision.launches
    assert decision.status["stages"]["probe"]["attempts"] == 1
    retrying = step({}, [job(Stage("probe"), 1, JobState.FAILED, exit_code=1), job(Stage("probe"), 2, JobState.ACTIVE)])
    assert retrying.status["stages"]["probe"]["attempts"] == 2 and not retrying.launches


def test_a_running_stage_without_its_job_recreates_the_same_attempt_without_asking_caps(step) -> None:
    status = step().status
    refused = step(status, [], admit=lambda *_: "global cap: 4/4 stage Jobs running")
    assert [(launch.stage, launch.attempt) for launch in refused.launches] == [(Stage("probe"), 1)]
    assert refused.waiting_for_capacity is None


def test_unsettled_failures_are_the_ones_status_has_not_recorded() -> None:
    fresh = job(Stage("probe"), 1, JobState.FAILED)
    assert unsettled_failures({}, [fresh]) == [fresh]
    recorded = {"stages": {"probe": {"phase": "Retrying", "attempts": 1}}}
    assert unsettled_failures(recorded, [fresh]) == []
    assert unsettled_failures({"stages": {"probe": {"phase": "Running", "attempts": 1}}}, [fresh]) == [fresh]
    assert unsettled_failures({}, [job(Stage("probe"), 1, JobState.ACTIVE)]) == []


def test_backoff_deadlines_round_up_to_whole_seconds(step) -> None:
    spec = AssetSpec(**{**VIDEO.__dict__, "stages": (Stage("probe"),)})
    now = NOW + timedelta(milliseconds=300)
    status = step(spec=spec, now=now).status
    decision = step(status, [job(Stage("probe"), 1, JobState.FAILED, exit_code=1)], now=now, spec=spec)
    assert decision.status["stages"]["probe"]["nextAttemptAt"] == "2030-01-01T12:00:11Z"  # 10.3 s → 11 s
    assert not decision.launches


def test_merge_patch_and_retry_policy() -> None:
    assert merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 1, "b": {"c": 2}}) == {"b": {"c": 2, "d": None}}
    assert merge_patch({}, {"x": [1]}) == {"x": [1]}
    assert status_patch({"phase": "Running", "kopf": {"x": 1}}, {"phase": "Ready"}) == {"phase": "Ready"}
    assert [POLICY.backoff(attempt) for attempt in (1, 2, 3, 4)] == [10, 20, 25, 25]


def test_a_job_seen_then_gone_is_a_failed_attempt_never_a_silent_rerun(step) -> None:
    """The operator was down while the Job finished and its TTL removed it: the outcome is unknown, so
    the attempt counts as failed and the next one gets a new Job; the same name is never made again."""
    status = step().status
    seen = step(status, [job(Stage("probe"), 1, JobState.ACTIVE)])
    assert seen.status["stages"]["probe"]["jobSeenAt"] == "2030-01-01T12:00:00Z"

    gone = step(seen.status, [], now=NOW + timedelta(hours=2))
    assert gone.launches == []  # probe-1 is not created again
    probe = gone.status["stages"]["probe"]
    assert probe["phase"] == "Retrying" and "deleted before its result was recorded" in probe["message"]
    assert StageFailed(Stage("probe"), 1, True, probe["message"], NOW + timedelta(hours=2)) in gone.transitions
    later = step(gone.status, [], now=NOW + timedelta(hours=3))
    assert [launch.job_name for launch in later.launches] == [f"{NAME}-probe-2"]
    assert "jobSeenAt" not in later.status["stages"]["probe"]


def test_vanishing_jobs_cannot_loop_forever(step) -> None:
    """With every Job removed as soon as it ends, each vanished attempt still counts: the stage fails."""
    status, now = step().status, NOW
    for attempt in range(1, POLICY.max_attempts + 1):
        status = step(status, [job(Stage("probe"), attempt, JobState.ACTIVE)], now=now).status
        now += timedelta(hours=1)
        status = step(status, [], now=now).status
        now += timedelta(hours=1)
        status = step(status, [], now=now).status  # launches the next attempt, if any
    assert status["stages"]["probe"]["phase"] == "Failed" and status["phase"] == "Failed"
    assert f"gave up after {POLICY.max_attempts} attempts" in status["stages"]["probe"]["message"]


def test_a_job_not_on_the_watch_yet_is_created_again_harmlessly(step) -> None:
    """Launched but never seen: the watch may lag; creating it again is a no-op if it exists."""
    status = step().status
    again = step(status, [])
    assert [launch.job_name for launch in again.launches] == [f"{NAME}-probe-1"]
