"""The task queue against the real databases: one claim per task under contention, dedupe, leases,
retries as decisions, reaping, cancelling and pruning."""

from __future__ import annotations

import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mediaingest.db import SessionFactory, create_db_engine, create_session_factory, session_scope, utcnow
from mediaingest.models import Task, TaskStatus
from mediaingest.retry import RetryDecision
from mediaingest.tasks import queue


@pytest.fixture
def factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(database_url, pool_size=8)
    yield create_session_factory(engine)
    engine.dispose()


def _defer(factory: SessionFactory, count: int, **values: object) -> list[str]:
    with session_scope(factory) as session:
        return [queue.defer(session, name="t", queue="default", payload={"n": n}, **values).id  # type: ignore[arg-type]
                for n in range(count)]  # fmt: skip


def _task(factory: SessionFactory, task_id: str) -> Task:
    with factory() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def test_concurrent_claimers_never_share_a_task(factory: SessionFactory) -> None:
    ids = _defer(factory, 40)
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def claimer(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while True:
            with session_scope(factory) as session:
                batch = [t.id for t in queue.claim(session, worker_id=name, queues=["default"], limit=3,
                                                   lease_seconds=60, now=utcnow())]  # fmt: skip
            if not batch:
                break
            mine += batch
        claimed[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every_claim = [task_id for mine in claimed.values() for task_id in mine]
    assert sorted(every_claim) == sorted(ids)  # each once, none lost
    assert all(_task(factory, task_id).attempts == 1 for task_id in ids)


def test_claims_follow_queue_priority_and_time(factory: SessionFactory) -> None:
    now = utcnow()
    with session_scope(factory) as session:
        late = queue.defer(session, name="t", queue="default", run_after=now + timedelta(minutes=5)).id
        low = queue.defer(session, name="t", queue="default", priority=0).id
        high = queue.defer(session, name="t", queue="default", priority=3).id
        other = queue.defer(session, name="t", queue="stages", priority=9).id
    order = []
    for _ in range(3):
        with session_scope(factory) as session:
            order += [t.id for t in queue.claim(session, worker_id="w", queues=["default"], limit=1,
                                                lease_seconds=60, now=now + timedelta(seconds=1))]  # fmt: skip
    assert order == [high, low]  # most urgent first; not the other queue's, not the one not yet due
    with session_scope(factory) as session:
        later = queue.claim(session, worker_id="w", queues=["default", "stages"], limit=5, lease_seconds=60,
                            now=now + timedelta(minutes=6))  # fmt: skip
        assert {t.id for t in later} == {late, other}


def test_deferring_with_a_key_is_idempotent_even_when_racing(factory: SessionFactory) -> None:
    results: list[str] = []
    barrier = threading.Barrier(4)

    def defer() -> None:
        barrier.wait()
        with session_scope(factory) as session:
            results.append(queue.defer(session, name="t", queue="default", dedupe_key="periodic:x:1").id)

    threads = [threading.Thread(target=defer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    with factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Task)) == 1


def test_a_lease_fences_every_write(factory: SessionFactory) -> None:
    [task_id] = _defer(factory, 1)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="a", queues=["default"], limit=1, lease_seconds=60, now=now)
    with session_scope(factory) as session:
        assert queue.heartbeat(session, task_id=task_id, worker_id="a", lease_seconds=60, now=now)
        assert not queue.heartbeat(session, task_id=task_id, worker_id="b", lease_seconds=60, now=now)
        assert queue.holds(session, task_id=task_id, worker_id="a")
        assert not queue.succeed(session, task_id=task_id, worker_id="b", now=now)
        assert queue.succeed(session, task_id=task_id, worker_id="a", now=now)
    assert _task(factory, task_id).status == TaskStatus.SUCCEEDED


def test_a_failure_is_the_policy_decision_applied(factory: SessionFactory) -> None:
    retried, failed = _defer(factory, 2)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="w", queues=["default"], limit=2, lease_seconds=60, now=now)
        queue.fail(session, task_id=retried, worker_id="w", now=now, error="boom",
                   decision=RetryDecision(retry=True, delay_seconds=30, reason="transient"))  # fmt: skip
        queue.fail(session, task_id=failed, worker_id="w", now=now, error="unreadable",
                   decision=RetryDecision(retry=False, delay_seconds=0, reason="permanent"))  # fmt: skip
    task = _task(factory, retried)
    assert task.status == TaskStatus.QUEUED and task.last_error == "boom" and task.lease_owner is None
    assert task.run_after >= now + timedelta(seconds=29)
    assert _task(factory, failed).status == TaskStatus.FAILED
    with session_scope(factory) as session:  # not due before its backoff
        assert queue.claim(session, worker_id="w", queues=["default"], limit=2, lease_seconds=60, now=now) == []


def test_reaping_requeues_or_fails_out_of_attempts(factory: SessionFactory) -> None:
    again, last = _defer(factory, 1) + _defer(factory, 1, max_attempts=1)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="dead", queues=["default"], limit=2, lease_seconds=5, now=now)
    with session_scope(factory) as session:
        assert queue.reap_expired(session, now=now + timedelta(seconds=1)).requeued == []  # still leased
    with session_scope(factory) as session:
        reaped = queue.reap_expired(session, now=now + timedelta(seconds=10))
        assert [t.id for t in reaped.requeued] == [again] and [t.id for t in reaped.failed] == [last]
    assert _task(factory, again).status == TaskStatus.QUEUED
    assert _task(factory, last).status == TaskStatus.FAILED


def test_a_runner_ends_a_task_it_finds_pointless_only_while_it_holds_it(factory: SessionFactory) -> None:
    [task_id] = _defer(factory, 1)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="a", queues=["default"], limit=1, lease_seconds=60, now=now)
        assert not queue.cancelled(session, task_id=task_id, worker_id="b", now=now)
        assert queue.cancelled(session, task_id=task_id, worker_id="a", now=now)
    assert _task(factory, task_id).status == TaskStatus.CANCELLED


def test_cancel_and_prune(factory: SessionFactory) -> None:
    with session_scope(factory) as session:
        keep = queue.defer(session, name="t", queue="default", dedupe_key="k:keep").id
        gone = queue.defer(session, name="t", queue="default", dedupe_key="k:gone").id
        assert queue.cancel(session, dedupe_keys=["k:gone", "k:unknown"]) == 1
    assert _task(factory, gone).status == TaskStatus.CANCELLED
    with session_scope(factory) as session:
        assert queue.prune_finished(session, before=utcnow() - timedelta(days=1)) == 0
        assert queue.prune_finished(session, before=utcnow() + timedelta(seconds=1)) == 1
    with factory() as session:
        assert session.get(Task, gone) is None and session.get(Task, keep) is not None


def test_one_claim_implementation() -> None:
    """Claiming lives in tasks/queue.py alone: every background job is a task."""
    src = Path(__file__).parents[2] / "src"
    found = subprocess.run(
        ["grep", "-rl", "--include=*.py", "skip_locked", str(src)], capture_output=True, text=True
    ).stdout.split()
    assert [Path(path).relative_to(src).as_posix() for path in found] == ["mediaingest/tasks/queue.py"]


def test_the_claim_caps_each_tenant_and_takes_tenants_in_turn(factory: SessionFactory) -> None:
    """One rule for every runner: a tenant's bulk upload neither exceeds its cap nor holds up another's."""
    now = utcnow()
    bulk = _defer(factory, 10, tenant="bulk", run_after=now - timedelta(minutes=5))  # queued first
    small = _defer(factory, 2, tenant="small", run_after=now)
    urgent = _defer(factory, 1, tenant="bulk", priority=5, run_after=now)

    def claim(limit: int) -> list[str]:
        with session_scope(factory) as session:
            return sorted(t.id for t in queue.claim(session, worker_id="w", queues=["default"], limit=limit,
                                                    lease_seconds=60, now=utcnow(), tenant_cap=3))  # fmt: skip

    # Priority first; then the tenant running fewest: small's first, then bulk's oldest, then small's second.
    assert [claim(1) for _ in range(4)] == [urgent, [small[0]], [bulk[0]], [small[1]]]
    assert claim(10) == [bulk[1]]  # bulk now runs 3, its cap, however many slots are free
    assert claim(10) == []
    with session_scope(factory) as session:
        assert queue.succeed(session, task_id=bulk[0], worker_id="w", now=utcnow())
    assert claim(10) == [bulk[2]]  # one finished, one more of bulk's starts
    # Tasks without a tenant (chores, deliveries) are never held back by the rule.
    chores = _defer(factory, 3)
    assert sorted(claim(10)) == sorted(chores)


def test_the_capped_claim_finds_every_tenant_with_due_tasks_and_only_those(factory: SessionFactory) -> None:
    """The tenants are found one after another along the queued tasks' index (a skip scan on PostgreSQL):
    tenants with nothing due, or due only in another queue, sit between them and are passed over."""
    now = utcnow()
    later = _defer(factory, 2, tenant="b-later", run_after=now + timedelta(hours=1))
    with session_scope(factory) as session:
        elsewhere = queue.defer(session, name="t", queue="stages", tenant="c-elsewhere", run_after=now).id
    due = {tenant: _defer(factory, 2, tenant=tenant, run_after=now)[0] for tenant in ("a", "d", "e")}
    with session_scope(factory) as session:
        claimed = queue.claim(session, worker_id="w", queues=["default"], limit=10, lease_seconds=60, now=utcnow(),
                              tenant_cap=1)  # fmt: skip
        assert sorted(t.id for t in claimed) == sorted(due.values())
    for task_id in [*later, elsewhere]:
        assert _task(factory, task_id).status == TaskStatus.QUEUED


def test_an_attempt_fences_its_own_report(factory: SessionFactory) -> None:
    [task_id] = _defer(factory, 1)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="runner", queues=["default"], limit=1, lease_seconds=60, now=now)
        with pytest.raises(ValueError, match="one of the two"):
            queue.succeed(session, task_id=task_id, now=now)
        # A report of another attempt changes nothing; the current attempt's finishes the task.
        assert not queue.succeed(session, task_id=task_id, attempt=2, now=now)
        assert queue.succeed(session, task_id=task_id, attempt=1, now=now)
        # Its runner then finds it no longer held: nothing more to write.
        assert not queue.heartbeat(session, task_id=task_id, worker_id="runner", lease_seconds=60, now=now)
    assert _task(factory, task_id).status == TaskStatus.SUCCEEDED


def test_a_retry_can_carry_a_new_payload_and_a_runner_takes_up_what_it_held(factory: SessionFactory) -> None:
    [task_id] = _defer(factory, 1)
    now = utcnow()
    with session_scope(factory) as session:
        queue.claim(session, worker_id="op", queues=["default"], limit=1, lease_seconds=60, now=now)
        assert [t.id for t in queue.held_by(session, worker_id="op")] == [task_id]
        assert queue.held_by(session, worker_id="other") == []
        decision = RetryDecision(retry=True, delay_seconds=0, reason="transient")
        assert queue.fail(session, task_id=task_id, worker_id="op", decision=decision, error="OOMKilled", now=now,
                          payload={"n": 0, "memoryScale": 2})  # fmt: skip
    assert _task(factory, task_id).payload == {"n": 0, "memoryScale": 2}
