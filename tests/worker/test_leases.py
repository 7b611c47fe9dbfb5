"""Leases against the real databases: one claim per job even under contention, heartbeats, reaping."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from mediaingest.db import create_db_engine, create_session_factory, session_scope, utcnow
from mediaingest.models import IngestionJob, MediaAsset, User
from mediaingest.models.enums import IngestionJobStatus, JobPriority, Stage, UploadStatus
from mediaingest.worker import leases
from mediaingest.worker.queue import enqueue_stage


def _seed(session_factory, *, jobs: int, priorities: list[JobPriority] | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    with session_scope(session_factory) as session:
        user = User(email=None)
        session.add(user)
        session.flush()
        for index in range(jobs):
            priority = priorities[index] if priorities else JobPriority.NORMAL
            asset = MediaAsset(
                owner_id=user.id, name=f"{index}.mp4", original_name=f"{index}.mp4", type="VIDEO", file_size=1,
                mime_type="video/mp4", upload_status=UploadStatus.UPLOADED, storage_bucket="incoming",
                storage_key=f"uploads/{user.id}/{index}.mp4", upload_expires_at=utcnow(), priority=priority,
            )  # fmt: skip
            session.add(asset)
            session.flush()
            ids.append(enqueue_stage(session, asset=asset, stage=Stage.PROBE, max_attempts=3).id)
    return ids


def test_concurrent_claimers_never_share_a_job(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=8)
    factory = create_session_factory(engine)
    job_ids = _seed(factory, jobs=40)
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def claimer(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while True:
            with session_scope(factory) as session:
                batch = leases.claim_jobs(session, worker_id=name, limit=3, lease_seconds=60, now=utcnow())
                ids = [job.id for job in batch]
            if not ids:
                break
            mine.extend(ids)
        claimed[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every_claim = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every_claim) == sorted(job_ids)  # each job exactly once
    with factory() as session:
        rows = session.scalars(sa.select(IngestionJob)).all()
        assert {row.status for row in rows} == {IngestionJobStatus.RUNNING}
        assert all(row.attempts == 1 and row.lease_owner for row in rows)
    engine.dispose()


def test_claims_follow_priority_then_age(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    ids = _seed(factory, jobs=3, priorities=[JobPriority.LOW, JobPriority.URGENT, JobPriority.NORMAL])
    with session_scope(factory) as session:
        first = leases.claim_jobs(session, worker_id="w", limit=1, lease_seconds=60, now=utcnow())
    assert [job.id for job in first] == [ids[1]]
    engine.dispose()


def test_backoff_keeps_a_job_from_being_claimed_early(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [job_id] = _seed(factory, jobs=1)
    with session_scope(factory) as session:
        job = session.get(IngestionJob, job_id)
        assert job is not None
        job.status, job.available_at = IngestionJobStatus.RETRYING, utcnow() + timedelta(seconds=30)
    with session_scope(factory) as session:
        assert leases.claim_jobs(session, worker_id="w", limit=5, lease_seconds=60, now=utcnow()) == []
        later = utcnow() + timedelta(seconds=31)
        assert len(leases.claim_jobs(session, worker_id="w", limit=5, lease_seconds=60, now=later)) == 1
    engine.dispose()


def test_heartbeat_extends_only_the_owners_lease_and_reaping_requeues(database_url: str) -> None:
    engine = create_db_engine(database_url)
    factory = create_session_factory(engine)
    [job_id, other_id] = _seed(factory, jobs=2)
    now = utcnow()
    with session_scope(factory) as session:
        leases.claim_jobs(session, worker_id="alive", limit=1, lease_seconds=10, now=now)
        leases.claim_jobs(session, worker_id="dead", limit=1, lease_seconds=10, now=now)
    with session_scope(factory) as session:
        owners = {owner: job for owner, job in session.execute(sa.select(IngestionJob.lease_owner, IngestionJob.id))}
    alive_job, dead_job = owners["alive"], owners["dead"]
    assert {alive_job, dead_job} == {job_id, other_id}

    later = now + timedelta(seconds=20)
    with session_scope(factory) as session:
        assert leases.heartbeat(session, job_id=alive_job, worker_id="alive", lease_seconds=60, now=later)
        assert not leases.heartbeat(session, job_id=alive_job, worker_id="dead", lease_seconds=60, now=later)
        result = leases.reap_expired_leases(session, now=later)
    assert (result.count, result.failed) == (1, [])
    with factory() as session:
        dead = session.get(IngestionJob, dead_job)
        alive = session.get(IngestionJob, alive_job)
        assert dead is not None and alive is not None
        assert (dead.status, dead.lease_owner, dead.retries) == (IngestionJobStatus.RETRYING, None, 1)
        assert alive.status == IngestionJobStatus.RUNNING
    # The requeued job is claimed again, as attempt 2; out of attempts, reaping fails it instead.
    with session_scope(factory) as session:
        [again] = leases.claim_jobs(session, worker_id="next", limit=1, lease_seconds=1, now=later)
        assert again.attempts == 2
        session.execute(sa.update(IngestionJob).where(IngestionJob.id == dead_job).values(max_attempts=2))
    with session_scope(factory) as session:
        result = leases.reap_expired_leases(session, now=later + timedelta(seconds=5))
    assert result.count == 1 and [asset for asset, _, _ in result.failed]
    with factory() as session:
        failed = session.get(IngestionJob, dead_job)
        assert failed is not None and failed.status == IngestionJobStatus.FAILED
    engine.dispose()
