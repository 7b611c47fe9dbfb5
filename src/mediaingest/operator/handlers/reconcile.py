"""The MediaAsset state machine, as a pure function of (spec, status, observed Jobs, now).

`reconcile` never talks to Kubernetes or the database: it returns a `Decision` (the whole new status,
the Jobs to create, the transitions to mirror into the database) and the handler carries it out.
Being level-based, it is safe to run any number of times on stale input: Job names are deterministic
per (asset, stage, attempt), the highest attempt seen on the watch wins over a status that lost an
update, and every transition it reports is idempotent for the mirror.

Per stage:  Pending ─launch→ Running ─Job succeeded→ Succeeded
                                     ─Job failed, transient, attempts left→ Retrying ─backoff over→ Running
                                     ─exit 3, or attempts exhausted→ Failed
            Pending/Retrying ─another stage Failed→ Cancelled
The plan's first stage (probe) runs alone; the others start together once it has succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from mediaingest.models.enums import Stage
from mediaingest.operator import naming
from mediaingest.operator.jobs import PERMANENT_EXIT_CODE
from mediaingest.operator.model import AssetSpec, JobObservation, JobState
from mediaingest.retry import RetryPolicy

MESSAGE_LIMIT = 2048  # the CRD's maxLength for a stage message


class StagePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class AssetPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    READY = "Ready"
    FAILED = "Failed"


TERMINAL_ASSET_PHASES = frozenset({AssetPhase.READY, AssetPhase.FAILED})
_SETTLED = frozenset({StagePhase.SUCCEEDED, StagePhase.FAILED, StagePhase.CANCELLED})
# The status keys this module owns; anything else someone put in status is left alone.
MANAGED_KEYS = (
    "phase",
    "stage",
    "progress",
    "message",
    "observedGeneration",
    "startedAt",
    "finishedAt",
    "stages",
    "conditions",
)


# --- what the handler has to carry out ------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    stage: Stage
    attempt: int
    job_name: str


@dataclass(frozen=True)
class StageStarted:
    stage: Stage
    attempt: int
    job_name: str
    at: datetime


@dataclass(frozen=True)
class StageFailed:
    stage: Stage
    attempt: int
    will_retry: bool
    message: str
    at: datetime


@dataclass(frozen=True)
class StageSucceeded:
    stage: Stage
    attempt: int
    at: datetime


@dataclass(frozen=True)
class AssetFinished:
    phase: AssetPhase
    message: str | None
    at: datetime


Transition = StageStarted | StageFailed | StageSucceeded | AssetFinished
# Asked before each launch: None to go ahead (a slot is now reserved), or why it must wait.
Admit = Callable[[Stage, int, str], str | None]


@dataclass
class Decision:
    status: dict[str, Any]
    launches: list[Launch] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    waiting_for_capacity: str | None = None

    @property
    def phase(self) -> AssetPhase:
        return AssetPhase(self.status["phase"])


# --- helpers ---------------------------------------------------------------------------------------


def format_time(moment: datetime, *, round_up: bool = False) -> str:
    """RFC 3339 in whole seconds; `round_up` for deadlines, so a backoff is never cut short."""
    if round_up and moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_permanent(job: JobObservation) -> bool:
    # PodFailurePolicy: the Job's FailJob rule matched exit code 3 (see jobs.build_stage_job).
    return job.reason == "PodFailurePolicy" or job.exit_code == PERMANENT_EXIT_CODE


def failure_message(job: JobObservation) -> str:
    parts = []
    if job.exit_code is not None:
        parts.append(f"exit code {job.exit_code}")
    if job.reason:
        parts.append(job.reason)
    head = ", ".join(parts) or "failed"
    text = f"{head}: {job.message}" if job.message else head
    return truncate(text)


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unsettled_failures(status: Mapping[str, Any], jobs: Iterable[JobObservation]) -> list[JobObservation]:
    """Failed Jobs whose outcome the status does not record yet: worth a look at their pod."""
    stages = status.get("stages") or {}
    found = []
    for job in jobs:
        if job.state != JobState.FAILED:
            continue
        entry = stages.get(job.stage) or {}
        recorded = int(entry.get("attempts") or 0)
        if recorded < job.attempt or (recorded == job.attempt and entry.get("phase") == StagePhase.RUNNING):
            found.append(job)
    return found


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new` (None deletes a key)."""
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or value != before:
            patch[key] = value
    return patch


def status_patch(old_status: Mapping[str, Any], new_status: Mapping[str, Any]) -> dict[str, Any]:
    """The status patch for the keys this module owns only."""
    old = {key: old_status[key] for key in MANAGED_KEYS if key in old_status}
    return merge_patch(old, new_status)


# --- the state machine -----------------------------------------------------------------------------


def reconcile(
    *,
    asset_name: str,
    spec: AssetSpec,
    status: Mapping[str, Any],
    jobs: Iterable[JobObservation],
    now: datetime,
    policy: RetryPolicy,
    admit: Admit,
    generation: int | None = None,
) -> Decision:
    old_stages: Mapping[str, Any] = status.get("stages") or {}
    observed: dict[tuple[Stage, int], JobObservation] = {(job.stage, job.attempt): job for job in jobs}
    stamp = format_time(now)
    decision = Decision(status={})
    stages: dict[Stage, dict[str, Any]] = {}

    # 1. Fold what the Jobs say into each stage.
    for stage in spec.stages:
        entry: dict[str, Any] = {"phase": StagePhase.PENDING.value, "attempts": 0}
        entry.update(old_stages.get(stage) or {})
        stages[stage] = entry
        phase = StagePhase(entry["phase"])
        if phase in _SETTLED:
            continue
        newest = max((attempt for (kind, attempt) in observed if kind == stage), default=0)
        if newest > int(entry["attempts"]):
            # The status lost (or has not caught up with) a launch the watch already shows: adopt it.
            entry.update(
                phase=StagePhase.RUNNING.value,
                attempts=newest,
                jobName=naming.job_name(asset_name, stage, newest),
                startedAt=stamp,
            )
            entry.pop("nextAttemptAt", None)
            entry.pop("finishedAt", None)
            entry.pop("jobSeenAt", None)
            decision.transitions.append(StageStarted(stage, newest, entry["jobName"], now))
            phase = StagePhase.RUNNING
        if phase != StagePhase.RUNNING:
            continue
        attempt = int(entry["attempts"])
        job = observed.get((stage, attempt))
        if job is None and "jobSeenAt" in entry:
            # Seen, then gone before its result was folded in (its TTL ran out while the operator was
            # down, or someone deleted it): its outcome is unknown, and re-creating it under the same
            # name would run the attempt again unannounced. It counts as a failed attempt instead.
            _fold_vanished(entry, stage, attempt, now, policy, decision)
            continue
        if job is None:
            # Created but not on the watch yet: make sure it exists (an existing one counts as created).
            decision.launches.append(Launch(stage, attempt, naming.job_name(asset_name, stage, attempt)))
            continue
        if job.state == JobState.ACTIVE:
            entry.setdefault("jobSeenAt", stamp)  # from now on, a missing Job was deleted, not late
            if job.suspended:
                entry["message"] = WAITING_FOR_ADMISSION
            elif entry.get("message") == WAITING_FOR_ADMISSION:
                entry.pop("message")
            if job.started_at:
                entry["startedAt"] = job.started_at
            continue
        entry.pop("jobSeenAt", None)  # its result is folded in: the Job may go
        if job.state == JobState.SUCCEEDED:
            entry.update(phase=StagePhase.SUCCEEDED.value, finishedAt=job.finished_at or stamp)
            entry.pop("message", None)
            decision.transitions.append(StageSucceeded(stage, attempt, now))
        else:
            _fold_failure(entry, stage, attempt, job, now, policy, decision)

    # 2. Launch what is due, in plan order, as far as the caps allow.
    failed = [stage for stage in spec.stages if stages[stage]["phase"] == StagePhase.FAILED]
    if failed:
        for stage in spec.stages:
            if stages[stage]["phase"] in (StagePhase.PENDING, StagePhase.RETRYING):
                stages[stage].update(phase=StagePhase.CANCELLED.value, message=f"not run: {failed[0]} failed")
                stages[stage].pop("nextAttemptAt", None)
    else:
        gate_open = stages[spec.stages[0]]["phase"] == StagePhase.SUCCEEDED
        for index, stage in enumerate(spec.stages):
            if index > 0 and not gate_open:
                break
            entry = stages[stage]
            phase = StagePhase(entry["phase"])
            if phase == StagePhase.RETRYING:
                if parse_time(entry["nextAttemptAt"]) > now:
                    continue
            elif phase != StagePhase.PENDING:
                continue
            attempt = int(entry["attempts"]) + 1
            name = naming.job_name(asset_name, stage, attempt)
            reason = admit(stage, attempt, name)
            if reason is not None:
                decision.waiting_for_capacity = decision.waiting_for_capacity or reason
                continue
            entry.update(phase=StagePhase.RUNNING.value, attempts=attempt, jobName=name, startedAt=stamp)
            for key in ("finishedAt", "nextAttemptAt", "jobSeenAt"):
                entry.pop(key, None)
            decision.launches.append(Launch(stage, attempt, name))
            decision.transitions.append(StageStarted(stage, attempt, name, now))

    decision.status = _asset_status(spec, status, stages, failed, decision, now, generation)
    return decision


def _fold_failure(
    entry: dict[str, Any],
    stage: Stage,
    attempt: int,
    job: JobObservation,
    now: datetime,
    policy: RetryPolicy,
    decision: Decision,
) -> None:
    message = failure_message(job)
    finished = job.finished_at or format_time(now)
    if is_permanent(job):
        entry.update(phase=StagePhase.FAILED.value, finishedAt=finished, message=message)
    elif attempt >= policy.max_attempts:
        message = truncate(f"gave up after {attempt} attempts: {message}")
        entry.update(phase=StagePhase.FAILED.value, finishedAt=finished, message=message)
    else:
        retry_at = now + timedelta(seconds=policy.backoff(attempt))
        entry.update(
            phase=StagePhase.RETRYING.value, nextAttemptAt=format_time(retry_at, round_up=True), message=message
        )
        decision.transitions.append(StageFailed(stage, attempt, True, message, now))
        return
    decision.transitions.append(StageFailed(stage, attempt, False, message, now))


WAITING_FOR_ADMISSION = "waiting for admission by the Kueue queue"
VANISHED_MESSAGE = "the Job was deleted before its result was recorded (its TTL ran out, or by hand)"


def _fold_vanished(
    entry: dict[str, Any], stage: Stage, attempt: int, now: datetime, policy: RetryPolicy, decision: Decision
) -> None:
    if attempt >= policy.max_attempts:
        message = truncate(f"gave up after {attempt} attempts: {VANISHED_MESSAGE}")
        entry.update(phase=StagePhase.FAILED.value, finishedAt=format_time(now), message=message)
        decision.transitions.append(StageFailed(stage, attempt, False, message, now))
        return
    retry_at = now + timedelta(seconds=policy.backoff(attempt))
    entry.update(
        phase=StagePhase.RETRYING.value, nextAttemptAt=format_time(retry_at, round_up=True), message=VANISHED_MESSAGE
    )
    decision.transitions.append(StageFailed(stage, attempt, True, VANISHED_MESSAGE, now))


def _asset_status(
    spec: AssetSpec,
    old: Mapping[str, Any],
    stages: dict[Stage, dict[str, Any]],
    failed: list[Stage],
    decision: Decision,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    phases = {stage: StagePhase(stages[stage]["phase"]) for stage in spec.stages}
    running = [stage for stage, phase in phases.items() if phase == StagePhase.RUNNING]
    retrying = [stage for stage, phase in phases.items() if phase == StagePhase.RETRYING]
    succeeded = sum(1 for phase in phases.values() if phase == StagePhase.SUCCEEDED)
    message: str | None = None
    current: str  # the stage(s) the status column shows

    if failed and not running:
        phase, current = AssetPhase.FAILED, failed[0]
        message = truncate(f"{failed[0]}: {stages[failed[0]].get('message', 'failed')}", 4096)
    elif failed:
        # Let the stages already running finish (their outcome is still mirrored), launch nothing new.
        phase, current = AssetPhase.RUNNING, ",".join(running)
        message = f"{failed[0]} failed; waiting for {', '.join(running)} to finish"
    elif succeeded == len(spec.stages):
        phase, current = AssetPhase.READY, ""
    elif any(phase != StagePhase.PENDING for phase in phases.values()):
        phase, current = AssetPhase.RUNNING, ",".join(running + retrying)
        if retrying:
            entry = stages[retrying[0]]
            message = truncate(
                f"{retrying[0]} attempt {entry['attempts']} failed, retrying at {entry['nextAttemptAt']}: "
                f"{entry.get('message', '')}",
                4096,
            )
    else:
        phase, current = AssetPhase.PENDING, spec.stages[0]
    if decision.waiting_for_capacity and phase in (AssetPhase.PENDING, AssetPhase.RUNNING) and not failed:
        message = f"waiting for capacity ({decision.waiting_for_capacity})"

    stamp = format_time(now)
    status: dict[str, Any] = {
        "phase": phase.value,
        "progress": 100 * succeeded // len(spec.stages),
        "stages": {stage: stages[stage] for stage in spec.stages},
        "conditions": [_ready_condition(old, phase, message, stamp, generation)],
    }
    if current:
        status["stage"] = current
    if message:
        status["message"] = message
    if generation is not None:
        status["observedGeneration"] = generation
    started = old.get("startedAt") or (stamp if phase != AssetPhase.PENDING else None)
    if started:
        status["startedAt"] = started
    if phase in TERMINAL_ASSET_PHASES:
        status["finishedAt"] = old.get("finishedAt") or stamp
        if old.get("phase") != phase.value:
            decision.transitions.append(AssetFinished(phase, message, now))
    return status


def _ready_condition(
    old: Mapping[str, Any], phase: AssetPhase, message: str | None, stamp: str, generation: int | None
) -> dict[str, Any]:
    ready = phase == AssetPhase.READY
    reason = {
        AssetPhase.READY: "Succeeded",
        AssetPhase.FAILED: "StageFailed",
        AssetPhase.RUNNING: "Processing",
        AssetPhase.PENDING: "Pending",
    }[phase]
    status = "True" if ready else "False"
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), None)
    changed = previous is None or previous.get("status") != status
    condition: dict[str, Any] = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message or ("all stages succeeded" if ready else ""),
        "lastTransitionTime": stamp if changed else previous["lastTransitionTime"],  # type: ignore[index]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
