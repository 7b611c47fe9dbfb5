"""The database mirror on a real database (SQLite, and PostgreSQL when it runs): idempotent, ignores
stale attempts, and leaves assets deleted from the database alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mediaingest.db import SessionFactory, create_db_engine, create_session_factory
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, Stage
from mediaingest.operator.handlers.reconcile import AssetPhase, StageFailed, StageStarted, StageSucceeded
from mediaingest.operator.mirror import InMemoryMirror, SqlAlchemyMirror, StatusMirror, apply_transitions
from mediaingest.pipeline.registry import job_type_for

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = create_db_engine(database_url, pool_size=1)
    yield create_session_factory(engine)
    engine.dispose()


def job(sessions: SessionFactory, asset_id: str, stage: Stage) -> IngestionJob | None:
    with sessions() as session:
        return session.scalar(
            sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id, IngestionJob.type == job_type_for(stage))
        )


def asset(sessions: SessionFactory, asset_id: str) -> MediaAsset:
    with sessions() as session:
        found = session.get(MediaAsset, asset_id)
        assert found is not None
        return found


def test_stage_lifecycle_with_a_retry(database_url: str, sessions: SessionFactory, db_asset) -> None:
    asset_id = db_asset(database_url)
    mirror = SqlAlchemyMirror(sessions)
    mirror.stage_started(asset_id=asset_id, stage=Stage("probe"), attempt=1, job_name="asset-x-probe-1", at=T0)
    mirror.stage_started(asset_id=asset_id, stage=Stage("probe"), attempt=1, job_name="asset-x-probe-1", at=T0)
    row = job(sessions, asset_id, Stage("probe"))
    assert row is not None and (row.status, row.attempts, row.started_at) == (IngestionJobStatus.RUNNING, 1, T0)
    assert [entry["event"] for entry in row.logs] == ["job.enqueued", "job.started"]  # reported twice, recorded once
    assert asset(sessions, asset_id).processing_status == AssetProcessingStatus.PROCESSING

    mirror.stage_failed(
        asset_id=asset_id,
        stage=Stage("probe"),
        attempt=1,
        will_retry=True,
        message="exit code 1",
        at=T0 + timedelta(seconds=5),
    )
    row = job(sessions, asset_id, Stage("probe"))
    assert row is not None and (row.status, row.retries, row.error) == (IngestionJobStatus.RETRYING, 1, "exit code 1")

    later = T0 + timedelta(seconds=30)
    mirror.stage_started(asset_id=asset_id, stage=Stage("probe"), attempt=2, job_name="asset-x-probe-2", at=later)
    # A late report about attempt 1 changes nothing any more.
    mirror.stage_failed(asset_id=asset_id, stage=Stage("probe"), attempt=1, will_retry=True, message="late", at=later)
    mirror.stage_succeeded(asset_id=asset_id, stage=Stage("probe"), attempt=2, at=later + timedelta(seconds=9))
    row = job(sessions, asset_id, Stage("probe"))
    assert row is not None
    assert (row.status, row.attempts, row.retries, row.progress) == (IngestionJobStatus.COMPLETED, 2, 1, 100.0)
    assert row.finished_at == later + timedelta(seconds=9)
    mirror.stage_started(asset_id=asset_id, stage=Stage("probe"), attempt=2, job_name="asset-x-probe-2", at=later)
    assert job(sessions, asset_id, Stage("probe")).status == IngestionJobStatus.COMPLETED  # type: ignore[union-attr]

    mirror.asset_finished(asset_id=asset_id, phase=AssetPhase.READY, message=None, at=later)
    done = asset(sessions, asset_id)
    assert done.processing_status == AssetProcessingStatus.READY and done.processed_at == later


def test_asset_failure_cancels_unfinished_stages(database_url: str, sessions: SessionFactory, db_asset) -> None:
    asset_id = db_asset(database_url)
    mirror = SqlAlchemyMirror(sessions)
    apply_transitions(
        mirror,
        asset_id,
        [
            StageStarted(Stage("proxies"), 1, "p-1", T0),
            StageStarted(Stage("thumbnails"), 1, "t-1", T0),
            StageFailed(Stage("proxies"), 1, False, "exit code 3: unsupported codec", T0),
            StageSucceeded(Stage("thumbnails"), 1, T0),
            StageStarted(Stage("audio_visuals"), 1, "a-1", T0),
        ],
    )
    mirror.asset_finished(asset_id=asset_id, phase=AssetPhase.FAILED, message="proxies: unsupported codec", at=T0)
    failed = asset(sessions, asset_id)
    assert (failed.processing_status, failed.error) == (AssetProcessingStatus.FAILED, "proxies: unsupported codec")
    statuses = {
        stage: job(sessions, asset_id, stage).status
        for stage in (Stage("proxies"), Stage("thumbnails"), Stage("audio_visuals"))  # type: ignore[union-attr]
    }
    assert statuses == {
        Stage("proxies"): IngestionJobStatus.FAILED,
        Stage("thumbnails"): IngestionJobStatus.COMPLETED,
        Stage("audio_visuals"): IngestionJobStatus.CANCELLED,
    }


def test_an_asset_deleted_from_the_database_is_left_alone(sessions: SessionFactory, database_url: str) -> None:
    mirror = SqlAlchemyMirror(sessions)
    mirror.stage_started(asset_id="gone", stage=Stage("probe"), attempt=1, job_name="j", at=T0)
    mirror.asset_finished(asset_id="gone", phase=AssetPhase.READY, message=None, at=T0)
    assert job(sessions, "gone", Stage("probe")) is None


@pytest.mark.parametrize("mirror", [InMemoryMirror()], ids=["in-memory"])
def test_in_memory_mirror_follows_the_same_rules(mirror: StatusMirror) -> None:
    assert isinstance(mirror, InMemoryMirror)
    mirror.stage_started(asset_id="a", stage=Stage("probe"), attempt=2, job_name="j", at=T0)
    mirror.stage_failed(asset_id="a", stage=Stage("probe"), attempt=1, will_retry=True, message="late", at=T0)
    assert mirror.stages[("a", Stage("probe"))].status == IngestionJobStatus.RUNNING
    mirror.stage_failed(asset_id="a", stage=Stage("probe"), attempt=2, will_retry=False, message="exit 3", at=T0)
    mirror.asset_finished(asset_id="a", phase=AssetPhase.FAILED, message="probe: exit 3", at=T0)
    assert mirror.stages[("a", Stage("probe"))].status == IngestionJobStatus.FAILED
    assert mirror.assets["a"] == (AssetProcessingStatus.FAILED, "probe: exit 3")
