"""Stage runs as tasks, against the real databases: one job row and one task per (asset, stage), priority
from the asset, the job row following its task when a runner is lost, cancellation with the asset."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from conftest import SettingsFactory
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.db import SessionFactory, create_db_engine, create_session_factory, session_scope, utcnow
from mediaingest.dispatch import cancel_asset_tasks, enqueue_stage
from mediaingest.models import IngestionJob, MediaAsset, Task, TaskStatus, User
from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, JobPriority, Stage, UploadStatus
from mediaingest.tasks import queue
from mediaingest.tasks.registry import STAGES_QUEUE, TaskRun
from mediaingest.worker import progression
from mediaingest.worker.stage_runner import StageContext
from mediaingest.worker.stage_tasks import RUN

SETTINGS = Settings(_env_file=None, JOB_MAX_ATTEMPTS=2)  # type: ignore[call-arg]


def _seed(factory: SessionFactory, *, priorities: list[JobPriority]) -> list[str]:
    ids = []
    with session_scope(factory) as session:
        user = User(email=None)
        session.add(user)
        session.flush()
        for index, priority in enumerate(priorities):
            asset = MediaAsset(
                owner_id=user.id, name=f"{index}.mp4", original_name=f"{index}.mp4", type="VIDEO", file_size=1,
                mime_type="video/mp4", upload_status=UploadStatus.UPLOADED, storage_bucket="incoming",
                storage_key=f"uploads/{user.id}/{index}.mp4", upload_expires_at=utcnow(), priority=priority,
            )  # fmt: skip
            session.add(asset)
            session.flush()
            ids.append(enqueue_stage(session, asset=asset, stage=Stage("probe"), settings=SETTINGS).asset_id)
    return ids


def test_enqueueing_twice_makes_one_job_and_one_task(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [asset_id] = _seed(factory, priorities=[JobPriority.NORMAL])
    with session_scope(factory) as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        enqueue_stage(session, asset=asset, stage=Stage("probe"), settings=SETTINGS)
    with factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(IngestionJob)) == 1
        [task] = session.scalars(sa.select(Task)).all()
        assert (task.name, task.queue, task.payload["stage"]) == ("stages.run", STAGES_QUEUE, "probe")
        assert (task.max_attempts, task.tenant) == (2, session.get(MediaAsset, asset_id).owner_id)  # type: ignore[union-attr]
    engine.dispose()


def test_under_kubernetes_each_stage_goes_to_the_queue_of_its_placement() -> None:
    """A Job per attempt by default (the operator's queue); a stage placed on workers goes to theirs."""
    from mediaingest.dispatch import stage_queue
    from mediaingest.tasks.registry import STAGE_JOBS_QUEUE

    kubernetes = Settings(_env_file=None, EXECUTOR="kubernetes", STAGE_PLACEMENT={"probe": "worker"})  # type: ignore[call-arg]
    assert stage_queue(kubernetes, Stage("probe")) == STAGES_QUEUE
    assert stage_queue(kubernetes, Stage("proxies")) == STAGE_JOBS_QUEUE
    assert stage_queue(SETTINGS, Stage("proxies")) == STAGES_QUEUE  # one machine: every stage on the worker


def test_stage_tasks_are_claimed_by_the_assets_priority(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    ids = _seed(factory, priorities=[JobPriority.LOW, JobPriority.URGENT, JobPriority.NORMAL])
    order = []
    for _ in range(3):
        with session_scope(factory) as session:
            [task] = queue.claim(session, worker_id="w", queues=[STAGES_QUEUE], limit=1, lease_seconds=60, now=utcnow())
            order.append(task.payload["assetId"])
    assert order == [ids[1], ids[2], ids[0]]
    engine.dispose()


def _claim_and_start(factory: SessionFactory, worker_id: str, *, lease_seconds: float, now) -> Task:  # type: ignore[no-untyped-def]
    from mediaingest.worker import progression

    with session_scope(factory) as session:
        [task] = queue.claim(session, worker_id=worker_id, queues=[STAGES_QUEUE], limit=1,
                             lease_seconds=lease_seconds, now=now)  # fmt: skip
        job = session.scalar(sa.select(IngestionJob).where(IngestionJob.task_id == task.id))
        assert job is not None
        progression.stage_started(session, job=job, worker_id=worker_id, attempt=task.attempts)
        return task


def test_a_lost_runner_leaves_the_job_retrying_then_failed(database_url: str) -> None:
    from mediaingest.catalog import REGISTRY
    from mediaingest.tasks.maintenance import REAP

    reap = REGISTRY[REAP].function

    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [asset_id] = _seed(factory, priorities=[JobPriority.NORMAL])
    ctx = StageContext(settings=None, session_factory=factory, storage=None, options=None)  # type: ignore[arg-type]
    _claim_and_start(factory, "dead", lease_seconds=0.05, now=utcnow())
    time.sleep(0.2)  # the lease lapses: nobody heartbeats it
    reap(ctx, TaskRun("r1", "tasks.reap", {}, 1, 1, "reaper"))
    with factory() as session:
        job = session.scalar(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id))
        assert job is not None
        assert (job.status, job.retries) == (IngestionJobStatus.RETRYING, 1)
        assert session.execute(sa.select(Task.status, Task.lease_owner)).one() == (TaskStatus.QUEUED, None)

    # Claimed again as attempt 2 of 2, and lost again: out of attempts, the job and the asset fail.
    task = _claim_and_start(factory, "dead-too", lease_seconds=0.05, now=utcnow())
    assert task.attempts == 2
    time.sleep(0.2)
    reap(ctx, TaskRun("r2", "tasks.reap", {}, 1, 1, "reaper"))
    with factory() as session:
        job = session.scalar(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id))
        asset = session.get(MediaAsset, asset_id)
        assert job is not None and asset is not None
        assert job.status == IngestionJobStatus.FAILED and "its runner was lost" in (job.error or "")
        assert asset.processing_status == AssetProcessingStatus.FAILED
        assert session.scalar(sa.select(Task.status)) == TaskStatus.FAILED
    assert RUN.on_reaped is not None
    engine.dispose()


def test_cancelling_an_assets_jobs_cancels_their_tasks_and_fences_the_runner(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [asset_id] = _seed(factory, priorities=[JobPriority.NORMAL])
    task = _claim_and_start(factory, "w", lease_seconds=60, now=utcnow())
    with session_scope(factory) as session:
        assert cancel_asset_tasks(session, asset_id=asset_id) == 1
    with session_scope(factory) as session:
        assert not queue.heartbeat(session, task_id=task.id, worker_id="w", lease_seconds=60, now=utcnow())
        assert session.get(Task, task.id).status == TaskStatus.CANCELLED  # type: ignore[union-attr]
    engine.dispose()


def test_a_finished_stage_is_never_queued_again_and_keeps_its_task_while_its_job_exists(database_url: str) -> None:
    """A repeated confirm re-dispatches the probe: once it finished, that must run nothing. The task holds the
    job's status, so pruning old tasks keeps it for as long as the job (the asset) exists."""
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [asset_id] = _seed(factory, priorities=[JobPriority.NORMAL])
    with session_scope(factory) as session:
        session.execute(sa.update(Task).values(status=TaskStatus.SUCCEEDED, finished_at=utcnow()))
        assert queue.prune_finished(session, before=utcnow() + timedelta(seconds=1)) == 0
    with session_scope(factory) as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        enqueue_stage(session, asset=asset, stage=Stage("probe"), settings=SETTINGS)
    with factory() as session:
        assert session.scalars(sa.select(Task.status)).all() == [TaskStatus.SUCCEEDED]
        job = session.scalar(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id))
        assert job is not None and job.status == IngestionJobStatus.COMPLETED
    with session_scope(factory) as session:
        session.execute(sa.delete(MediaAsset))
        assert queue.prune_finished(session, before=utcnow() + timedelta(seconds=1)) == 1
    engine.dispose()


def test_a_stage_this_worker_does_not_know_fails_its_job_and_asset_saying_so(make_settings: SettingsFactory) -> None:
    """A task queued by a worker with more STAGE_MODULES (a rolling update) is retried, perhaps by another
    worker; out of attempts, the job and the asset fail with the reason instead of staying queued."""
    settings = make_settings()
    engine = create_db_engine(settings.resolved_database_url)
    factory = create_session_factory(engine)
    [asset_id] = _seed(factory, priorities=[JobPriority.NORMAL])
    with session_scope(factory) as session:
        task = session.scalars(sa.select(Task)).one()
        task.payload = {**task.payload, "stage": "loudness"}

    def job() -> IngestionJob:
        with factory() as session:
            found = session.scalar(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id))
            assert found is not None
            return found

    seen: set[IngestionJobStatus] = set()
    with embedded_worker(settings):
        deadline = time.monotonic() + 30
        while job().status != IngestionJobStatus.FAILED and time.monotonic() < deadline:
            seen.add(job().status)
            time.sleep(0.02)
    failed = job()
    assert IngestionJobStatus.RETRYING in seen and failed.status == IngestionJobStatus.FAILED
    assert failed.error is not None and "unknown stage 'loudness'; one of ['probe'" in failed.error
    assert (failed.retries, failed.logs[-1]["event"]) == (1, "job.attempt_failed")
    with factory() as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None and asset.processing_status == AssetProcessingStatus.FAILED
        assert "loudness stage failed: UnknownStageError: unknown stage 'loudness'" in (asset.error or "")
        # The worker's periodic tasks share the table: the stage's own task is the one that failed.
        assert session.scalar(sa.select(Task.status).where(Task.name == RUN.name)) == TaskStatus.FAILED
    engine.dispose()


def _succeed_due_stages(factory: SessionFactory, asset_id: str, settings: Settings, *, only: set[str]) -> list[str]:
    """Claims the asset's due stage tasks and records the success of those named in `only`, as a stage
    process does (the rest are given back); returns the stages that succeeded."""
    done = []
    with session_scope(factory) as session:
        for task in queue.claim(session, worker_id="w", queues=[STAGES_QUEUE], limit=10, lease_seconds=60,
                                now=utcnow()):  # fmt: skip
            if task.payload["assetId"] != asset_id or task.payload["stage"] not in only:
                queue.release(session, task_id=task.id, worker_id="w", now=utcnow())
                continue
            job = session.scalar(sa.select(IngestionJob).where(IngestionJob.task_id == task.id))
            asset = session.get(MediaAsset, asset_id)
            assert job is not None and asset is not None
            handle = progression.stage_started(session, job=job, attempt=task.attempts, worker_id="w")
            assert progression.stage_succeeded(session, asset=asset, stage=Stage(task.payload["stage"]),
                                               handle=handle, message="done", settings=settings)  # fmt: skip
            done.append(task.payload["stage"])
    return sorted(done)


def _jobs_and_status(factory: SessionFactory, asset_id: str) -> tuple[set[str], AssetProcessingStatus]:
    with factory() as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        return set(session.scalars(sa.select(IngestionJob.type).where(IngestionJob.asset_id == asset_id))), (
            asset.processing_status
        )


def test_a_stage_turned_on_or_off_while_an_asset_is_in_flight_never_leaves_it_stuck(database_url: str) -> None:
    """The plan follows the settings of whoever records a success (a rolling update may flip TRANSCRIBE):
    a stage turned on after the probe is queued at the next success rather than waited for for ever, and
    one turned off after it was queued still finishes before the asset is READY."""
    off, on = (SETTINGS.model_copy(update={"transcribe": flag}) for flag in (False, None))
    after_probe = {"proxies", "thumbnails", "audio_visuals"}
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    turned_on, turned_off = _seed(factory, priorities=[JobPriority.NORMAL, JobPriority.NORMAL])
    with session_scope(factory) as session:
        for asset_id in (turned_on, turned_off):
            session.get(MediaAsset, asset_id).checksum = "0" * 64  # type: ignore[union-attr]

    # Turned on: probed while off, so no transcript job; the next success (under on) queues it.
    assert _succeed_due_stages(factory, turned_on, off, only={"probe"}) == ["probe"]
    assert "TRANSCRIPTION" not in _jobs_and_status(factory, turned_on)[0]
    assert _succeed_due_stages(factory, turned_on, on, only=after_probe) == sorted(after_probe)
    jobs, status = _jobs_and_status(factory, turned_on)
    assert "TRANSCRIPTION" in jobs and status == AssetProcessingStatus.PROCESSING
    assert _succeed_due_stages(factory, turned_on, on, only={"transcript"}) == ["transcript"]
    assert _jobs_and_status(factory, turned_on)[1] == AssetProcessingStatus.READY

    # Turned off: its transcript was queued while on; the asset waits for it, and becomes READY once.
    assert _succeed_due_stages(factory, turned_off, on, only={"probe"}) == ["probe"]
    assert _succeed_due_stages(factory, turned_off, off, only=after_probe) == sorted(after_probe)
    assert _jobs_and_status(factory, turned_off)[1] == AssetProcessingStatus.PROCESSING
    assert _succeed_due_stages(factory, turned_off, off, only={"transcript"}) == ["transcript"]
    assert _jobs_and_status(factory, turned_off)[1] == AssetProcessingStatus.READY
    engine.dispose()
