"""Stage outcomes mirrored into the database, so `GET /api/assets/{id}/status` and `kubectl get
mediaassets` tell the same story.

The operator's handler reports transitions through `StatusMirror`; every method is idempotent and
ignores reports about an attempt older than the one already recorded, because a level-based
reconciler may report the same transition again (a status patch it made was not visible yet).

    StatusMirror          the protocol the handler calls
    InMemoryMirror        for tests and for running without a database (OPERATOR_MIRROR_DATABASE=false)
    SqlAlchemyMirror      IngestionJob rows (one per asset and stage) and MediaAsset.processing_status
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from mediaingest.assets.lifecycle import mark_failed, mark_ready
from mediaingest.db import SessionFactory, session_scope
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, Stage
from mediaingest.operator.handlers.reconcile import (
    AssetFinished,
    AssetPhase,
    StageFailed,
    StageStarted,
    StageSucceeded,
    Transition,
)

log = structlog.get_logger(__name__)

_FINISHED = (IngestionJobStatus.COMPLETED, IngestionJobStatus.FAILED, IngestionJobStatus.CANCELLED)


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
        if record is None or (record.attempts == attempt and record.status in _FINISHED):
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
                if asset == asset_id and record.status not in _FINISHED:
                    self.stages[(asset, stage)] = StageRecord(
                        IngestionJobStatus.CANCELLED, record.attempts, record.retries, record.error
                    )


class SqlAlchemyMirror:
    """IngestionJob rows keyed by (asset, stage type), as the local worker keeps them."""

    def __init__(self, session_factory: SessionFactory) -> None:
        self._session_factory = session_factory

    def _job(self, session: Session, asset_id: str, stage: Stage) -> IngestionJob | None:
        job = session.scalar(
            sa.select(IngestionJob)
            .where(IngestionJob.asset_id == asset_id, IngestionJob.type == stage.job_type)
            .with_for_update()
        )
        if job is not None:
            return job
        asset = session.get(MediaAsset, asset_id)
        if asset is None:
            # Deleted from the database while its resource still exists: nothing to mirror into.
            log.info("operator.mirror_asset_missing", asset_id=asset_id, stage=stage.value)
            return None
        job = IngestionJob(
            asset_id=asset_id,
            type=stage.job_type,
            status=IngestionJobStatus.PENDING,
            priority=asset.priority,
            priority_rank=asset.priority.rank,
            attempts=0,
            retries=0,
            progress=0.0,
            logs=[],
        )
        session.add(job)
        session.flush()
        return job

    @staticmethod
    def _log(job: IngestionJob, at: datetime, event: str, **fields: Any) -> None:
        # Reassigned, not appended in place: JSON columns only notice a new value.
        job.logs = [*(job.logs or []), {"at": at.isoformat(), "event": event, **fields}]

    def stage_started(self, *, asset_id: str, stage: Stage, attempt: int, job_name: str, at: datetime) -> None:
        with session_scope(self._session_factory) as session:
            job = self._job(session, asset_id, stage)
            if job is None or job.attempts > attempt:
                return
            if job.attempts == attempt and job.status in (*_FINISHED, IngestionJobStatus.RUNNING):
                return
            job.status = IngestionJobStatus.RUNNING
            if job.attempts < attempt:
                job.progress = 0.0
            job.attempts = attempt
            job.started_at = at
            job.finished_at = None
            job.message = f"attempt {attempt}: Kubernetes Job {job_name}"
            self._log(job, at, "job.started", stage=stage.value, attempt=attempt, kubernetes_job=job_name)
            session.execute(
                sa.update(MediaAsset)
                .where(MediaAsset.id == asset_id, MediaAsset.processing_status == AssetProcessingStatus.PENDING)
                .values(processing_status=AssetProcessingStatus.PROCESSING)
            )

    def stage_failed(
        self, *, asset_id: str, stage: Stage, attempt: int, will_retry: bool, message: str, at: datetime
    ) -> None:
        status = IngestionJobStatus.RETRYING if will_retry else IngestionJobStatus.FAILED
        with session_scope(self._session_factory) as session:
            job = self._job(session, asset_id, stage)
            if job is None or job.attempts > attempt:
                return
            if job.attempts == attempt and job.status == status and job.error == message:
                return
            job.status = status
            job.attempts = attempt
            job.error = message
            if will_retry:
                job.retries = max(job.retries or 0, attempt)
                job.message = f"attempt {attempt} failed; retrying"
            else:
                job.message = f"failed after {attempt} attempt{'s' if attempt > 1 else ''}"
                job.finished_at = at
            self._log(job, at, "job.failed", stage=stage.value, attempt=attempt, will_retry=will_retry, error=message)

    def stage_succeeded(self, *, asset_id: str, stage: Stage, attempt: int, at: datetime) -> None:
        with session_scope(self._session_factory) as session:
            job = self._job(session, asset_id, stage)
            if job is None or job.attempts > attempt:
                return
            if job.status == IngestionJobStatus.COMPLETED and job.attempts == attempt:
                return
            job.status = IngestionJobStatus.COMPLETED
            job.attempts = attempt
            job.progress = 100.0
            job.finished_at = at
            job.message = "completed"
            self._log(job, at, "job.completed", stage=stage.value, attempt=attempt)

    def asset_finished(self, *, asset_id: str, phase: AssetPhase, message: str | None, at: datetime) -> None:
        ready = phase == AssetPhase.READY
        with session_scope(self._session_factory) as session:
            asset = session.get(MediaAsset, asset_id, with_for_update=True)
            if asset is None:
                return
            if ready:
                mark_ready(session, asset, at=at)
                return
            mark_failed(session, asset, reason=message or "failed")
            session.execute(
                sa.update(IngestionJob)
                .where(IngestionJob.asset_id == asset_id, IngestionJob.status.not_in(_FINISHED))
                .values(status=IngestionJobStatus.CANCELLED, finished_at=at, message="cancelled: asset failed")
            )
