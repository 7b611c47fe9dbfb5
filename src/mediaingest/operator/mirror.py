"""Stage outcomes mirrored into the database, so `GET /api/assets/{id}/status` and `kubectl get
mediaassets` tell the same story.

The operator's handler reports transitions through `StatusMirror`; every method is idempotent and
ignores reports about an attempt older than the one already recorded, because a level-based
reconciler may report the same transition again (a status patch it made was not visible yet).

    StatusMirror          the protocol the handler calls
    InMemoryMirror        for tests and for running without a database (OPERATOR_MIRROR_DATABASE=false)
    SqlAlchemyMirror      the database, through worker.progression (which owns IngestionJob rows and
                          MediaAsset.processing_status)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mediaingest.db import SessionFactory, session_scope
from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, Stage
from mediaingest.operator.handlers.reconcile import (
    AssetFinished,
    AssetPhase,
    StageFailed,
    StageStarted,
    StageSucceeded,
    Transition,
)
from mediaingest.worker import progression


class StatusMirror(Protocol):
    def stage_started(self, *, asset_id: str, stage: Stage, attempt: int, job_name: str, at: datetime) -> None: ...

    def stage_failed(
        self, *, asset_id: str, stage: Stage, attempt: int, will_retry: bool, message: str, at: datetime
    ) -> None: ...

    def stage_succeeded(self, *, asset_id: str, stage: Stage, attempt: int, at: datetime) -> None: ...

    def asset_finished(self, *, asset_id: str, phase: AssetPhase, message: str | None, at: datetime) -> None: ...


def apply_transitions(mirror: StatusMirror, asset_id: str, transitions: Iterable[Transition]) -> None:
    for item in transitions:
        match item:
            case StageStarted():
                mirror.stage_started(
                    asset_id=asset_id, stage=item.stage, attempt=item.attempt, job_name=item.job_name, at=item.at
                )
            case StageFailed():
                mirror.stage_failed(
                    asset_id=asset_id,
                    stage=item.stage,
                    attempt=item.attempt,
                    will_retry=item.will_retry,
                    message=item.message,
                    at=item.at,
                )
            case StageSucceeded():
                mirror.stage_succeeded(asset_id=asset_id, stage=item.stage, attempt=item.attempt, at=item.at)
            case AssetFinished():
                mirror.asset_finished(asset_id=asset_id, phase=item.phase, message=item.message, at=item.at)


@dataclass
class StageRecord:
    status: IngestionJobStatus
    attempts: int
    retries: int = 0
    error: str | None = None


@dataclass
class InMemoryMirror:
    """The same rules as the database mirror, on dicts."""

    stages: dict[tuple[str, Stage], StageRecord] = field(default_factory=dict)
    assets: dict[str, tuple[AssetProcessingStatus, str | None]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _current(self, asset_id: str, stage: Stage, attempt: int) -> StageRecord | None:
        """The stage's record, or None when it already records a newer attempt (a stale report)."""
        record = self.stages.get((asset_id, stage)) or StageRecord(IngestionJobStatus.PENDING, 0)
        return None if record.attempts > attempt else record

    def stage_started(self, *, asset_id: str, stage: Stage, attempt: int, job_name: str, at: datetime) -> None:
        self.calls.append(("stage_started", {"asset_id": asset_id, "stage": stage, "attempt": attempt}))
        record = self._current(asset_id, stage, attempt)
        if record is None or (record.attempts == attempt and record.status in progression.FINISHED_STATUSES):
            return
        self.stages[(asset_id, stage)] = StageRecord(IngestionJobStatus.RUNNING, attempt, record.retries, record.error)
        if self.assets.get(asset_id, (AssetProcessingStatus.PENDING, None))[0] == AssetProcessingStatus.PENDING:
            self.assets[asset_id] = (AssetProcessingStatus.PROCESSING, None)

    def stage_failed(
        self, *, asset_id: str, stage: Stage, attempt: int, will_retry: bool, message: str, at: datetime
    ) -> None:
        self.calls.append(
            ("stage_failed", {"asset_id": asset_id, "stage": stage, "attempt": attempt, "will_retry": will_retry})
        )
        record = self._current(asset_id, stage, attempt)
        if record is None:
            return
        status = IngestionJobStatus.RETRYING if will_retry else IngestionJobStatus.FAILED
        retries = max(record.retries, attempt) if will_retry else record.retries
        self.stages[(asset_id, stage)] = StageRecord(status, attempt, retries, message)

    def stage_succeeded(self, *, asset_id: str, stage: Stage, attempt: int, at: datetime) -> None:
        self.calls.append(("stage_succeeded", {"asset_id": asset_id, "stage": stage, "attempt": attempt}))
        record = self._current(asset_id, stage, attempt)
        if record is None:
            return
        self.stages[(asset_id, stage)] = StageRecord(IngestionJobStatus.COMPLETED, attempt, record.retries)

    def asset_finished(self, *, asset_id: str, phase: AssetPhase, message: str | None, at: datetime) -> None:
        self.calls.append(("asset_finished", {"asset_id": asset_id, "phase": phase}))
        ready = phase == AssetPhase.READY
        self.assets[asset_id] = (AssetProcessingStatus.READY if ready else AssetProcessingStatus.FAILED, message)
        if not ready:
            for (asset, stage), record in list(self.stages.items()):
                if asset == asset_id and record.status not in progression.FINISHED_STATUSES:
                    self.stages[(asset, stage)] = StageRecord(
                        IngestionJobStatus.CANCELLED, record.attempts, record.retries, record.error
                    )


class SqlAlchemyMirror:
    """Reports into the database through `worker.progression`, the one owner of job and asset state;
    each report in a unit of work of its own."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self._session_factory = session_factory

    def stage_started(self, *, asset_id: str, stage: Stage, attempt: int, job_name: str, at: datetime) -> None:
        with session_scope(self._session_factory) as session:
            progression.observed_stage_started(
                session, asset_id=asset_id, stage=stage, attempt=attempt, job_name=job_name, at=at
            )

    def stage_failed(
        self, *, asset_id: str, stage: Stage, attempt: int, will_retry: bool, message: str, at: datetime
    ) -> None:
        with session_scope(self._session_factory) as session:
            progression.observed_stage_failed(
                session, asset_id=asset_id, stage=stage, attempt=attempt, will_retry=will_retry, message=message, at=at
            )

    def stage_succeeded(self, *, asset_id: str, stage: Stage, attempt: int, at: datetime) -> None:
        with session_scope(self._session_factory) as session:
            progression.observed_stage_succeeded(session, asset_id=asset_id, stage=stage, attempt=attempt, at=at)

    def asset_finished(self, *, asset_id: str, phase: AssetPhase, message: str | None, at: datetime) -> None:
        with session_scope(self._session_factory) as session:
            progression.observed_asset_finished(
                session, asset_id=asset_id, ready=phase == AssetPhase.READY, message=message, at=at
            )
