"""The task queue: defer, claim, heartbeat, finish, retry, cancel, reap. The only module that changes a
task's state, and the only claim in the code base.

Claiming is one statement: PostgreSQL takes due rows with `FOR UPDATE SKIP LOCKED` in a CTE that
feeds an `UPDATE … RETURNING`, so concurrent runners never block on or double-claim a row; SQLite runs the
same statement in one short `BEGIN IMMEDIATE` transaction, which serializes writers anyway. A claim is
a lease: the runner's heartbeat pushes its expiry forward, and `reap_expired` puts the tasks of a
runner that stopped heartbeating back in the queue (or fails them, out of attempts). A retry is a
decision of the task's `RetryPolicy`, applied here; nothing sleeps.

The claim is also the one admission and fairness rule, for every runner (a worker's stage processes,
the operator's Kubernetes Jobs): with `tenant_cap`, a tenant never runs more than that many tasks of the
claimed queues at once, and the due tasks of different tenants are taken in turn (each tenant's first,
then each one's second, …) within a priority, so one tenant's thousand uploads do not hold up another's one.

A task's attempt is finished by whoever holds it: its runner (fenced by the runner's id), or the
report of the attempt itself (fenced by the attempt's number), whichever comes first.

Every function takes the caller's session and only flushes: the runner's unit of work commits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.db import is_postgres, utcnow
from mediaingest.models import Task, TaskStatus
from mediaingest.retry import RetryDecision

FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)
# Inline rather than a parameter: PostgreSQL uses a partial index (the queued tasks', migration d3b8e1f4a6c2)
# only for a condition it can see implies the index's, which a prepared statement's parameter does not show.
_QUEUED = Task.status == sa.literal_column(f"'{TaskStatus.QUEUED.value}'")
# The order of a line of due tasks: the claim's, and each tenant's under the tenant cap.
_LINE_ORDER = (Task.priority.desc(), Task.run_after, Task.created_at)


def defer(
    session: Session,
    *,
    name: str,
    queue: str,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    priority: int = 0,
    max_attempts: int = 5,
    run_after: datetime | None = None,
    tenant: str | None = None,
) -> Task:
    """Queues a task, in the caller's transaction (so it exists if and only if what caused it commits).

    With `dedupe_key`, a task that already has the key is returned instead: deferring is idempotent.
    """
    task = Task(
        name=name,
        queue=queue,
        payload=payload or {},
        dedupe_key=dedupe_key,
        priority=priority,
        tenant=tenant,
        max_attempts=max_attempts,
        run_after=run_after or utcnow(),
        status=TaskStatus.QUEUED,
        attempts=0,
    )
    if dedupe_key is None:
        session.add(task)
        session.flush()
        return task
    return _add_unless_keyed(session, task, dedupe_key)


def _add_unless_keyed(session: Session, task: Task, dedupe_key: str) -> Task:
    """The task that has `dedupe_key`: an existing one, else `task`, inserted."""
    existing = session.scalar(sa.select(Task).where(Task.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    # Two runners deferring the same periodic task at once: the unique key lets one insert win.
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except sa.exc.IntegrityError:
        winner = session.scalar(sa.select(Task).where(Task.dedupe_key == dedupe_key))
        assert winner is not None
        return winner
    return task


def claim(
    session: Session,
    *,
    worker_id: str,
    queues: Sequence[str],
    limit: int,
    lease_seconds: float,
    now: datetime,
    tenant_cap: int | None = None,
) -> Sequence[Task]:
    """Takes up to `limit` due tasks of `queues` for `worker_id`, counting the attempt; with `tenant_cap`,
    never more than that many running tasks of one tenant, tenants taken in turn."""
    if limit <= 0 or not queues:
        return []
    statement = _claim_statement(is_postgres(session), capped=tenant_cap is not None)
    values = {
        "queues": list(queues), "now": now, "limit": limit, "tenant_cap": tenant_cap, "worker_id": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
    }  # fmt: skip
    return session.scalars(statement, values).all()


@functools.cache
def _claim_statement(postgres: bool, *, capped: bool) -> sa.Update:
    """The claim's one statement for each shape, built once: its values are bound at each call, so a claim
    costs the database's work, not the construction of a CTE of CTEs (8 of a capped claim's 12 ms)."""
    now = sa.bindparam("now", type_=Task.run_after.type)
    limit = sa.bindparam("limit", type_=sa.Integer)
    queues: sa.BindParameter[list[str]] = sa.bindparam("queues", expanding=True)
    due = (_QUEUED, Task.queue.in_(queues), Task.run_after <= now)
    picked = sa.select(Task.id).where(*due).order_by(*_LINE_ORDER)
    if capped:
        # Each due task's place in its tenant's line, plus what the tenant already runs, is how many the
        # tenant would run with it: that must stay within the cap, and the tenant running fewest goes
        # first. A window function cannot sit under FOR UPDATE, so the ranking is a CTE joined to `tasks`,
        # and only `tasks` rows are locked.
        running = (
            sa.select(Task.tenant, sa.func.count().label("running"))
            .where(Task.status == TaskStatus.RUNNING, Task.queue.in_(queues), Task.tenant.is_not(None))
            .group_by(Task.tenant)
            .subquery("running")
        )
        lines = _tenant_lines(postgres, due=due, limit=limit)
        would_run = lines.c.place + sa.func.coalesce(running.c.running, 0)
        # MATERIALIZED on PostgreSQL: inlined, the planner cannot tell that the ranking's rows are the due
        # tasks themselves, takes their join for one row and re-counts the running tasks once per due task
        # (measured with 3,000 due tasks: 196 ms → 24 ms a claim on a loaded 2-core machine).
        ranked = (
            sa.select(lines.c.id, would_run.label("would_run"))
            .outerjoin(running, running.c.tenant == lines.c.tenant)
            .where(sa.or_(lines.c.tenant.is_(None), would_run <= sa.bindparam("tenant_cap", type_=sa.Integer)))
            .cte("ranked")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        picked = (
            sa.select(Task.id)
            .join(ranked, ranked.c.id == Task.id)
            .where(*due)
            .order_by(Task.priority.desc(), ranked.c.would_run, Task.run_after, Task.created_at)
        )
    # A CTE, not `id IN (subquery)`: PostgreSQL may run such a subquery once per outer row, and with
    # LIMIT … SKIP LOCKED each run picks other rows (seen: limit 1 claimed three). A locking CTE runs once.
    candidates = (
        picked.limit(limit)
        .with_for_update(skip_locked=True, of=Task)  # ignored by SQLite, whose writers are already serialized
        .cte("candidates")
    )
    return (
        sa.update(Task)
        .where(Task.id == candidates.c.id, *due)
        .values(
            status=TaskStatus.RUNNING,
            lease_owner=sa.bindparam("worker_id", type_=Task.lease_owner.type),
            lease_expires_at=sa.bindparam("lease_expires_at", type_=Task.lease_expires_at.type),
            attempts=Task.attempts + 1,
            updated_at=now,
        )
        .returning(Task)
        .execution_options(synchronize_session=False)
    )


def _tenant_lines(
    postgres: bool, *, due: tuple[sa.ColumnElement[bool], ...], limit: sa.BindParameter[int]
) -> sa.Subquery:
    """The due tasks that could be claimed, each with its place in its tenant's line (1 = next)."""
    place = sa.func.row_number().over(partition_by=Task.tenant, order_by=_LINE_ORDER).label("place")
    if not postgres:
        return sa.select(Task.id, Task.tenant, place).where(*due).subquery("lines")
    # No claim takes more than `limit` tasks, so only the head of each tenant's line can be taken: read
    # those `limit` rows of each tenant from the queued tasks' tenant index (LATERAL, which SQLite lacks)
    # instead of ranking every due task (3,000 due tasks of six tenants: 27 ms → 1.4 ms in the database).
    tenants = _tenants_with_due_tasks(due)
    head = (
        sa.select(Task.id, Task.tenant, Task.priority, Task.run_after, Task.created_at)
        .where(*due, Task.tenant == tenants.c.tenant)
        .order_by(*_LINE_ORDER)
        .limit(limit)
        .lateral("head")
    )
    head_place = sa.func.row_number().over(
        partition_by=head.c.tenant, order_by=(head.c.priority.desc(), head.c.run_after, head.c.created_at)
    )
    untenanted = sa.select(Task.id, Task.tenant, place).where(*due, Task.tenant.is_(None)).order_by(*_LINE_ORDER)
    return sa.union_all(
        sa.select(head.c.id, head.c.tenant, head_place.label("place")).select_from(tenants).join(head, sa.true()),
        untenanted.limit(limit),
    ).subquery("lines")


def _tenants_with_due_tasks(due: tuple[sa.ColumnElement[bool], ...]) -> sa.CTE:
    """The tenants that have due tasks, by a skip scan of the queued tasks' tenant index: one descent per
    tenant (the next tenant after the last found) rather than a DISTINCT over every due task's index entry
    (3,000 due tasks of six tenants: 1.4 ms → 0.1 ms in the database)."""
    first = sa.select(Task.tenant).where(*due, Task.tenant.is_not(None)).order_by(Task.tenant).limit(1)
    found = first.cte("tenants", recursive=True)
    after = sa.select(Task.tenant).where(*due, Task.tenant > found.c.tenant).order_by(Task.tenant).limit(1)
    found = found.union_all(sa.select(after.scalar_subquery()).where(found.c.tenant.is_not(None)))
    return sa.select(found.c.tenant).where(found.c.tenant.is_not(None)).cte("due_tenants")


def held_by(session: Session, *, worker_id: str) -> Sequence[Task]:
    """The tasks `worker_id` holds now: a runner that restarts under the same id takes them up again."""
    return session.scalars(
        sa.select(Task).where(Task.status == TaskStatus.RUNNING, Task.lease_owner == worker_id)
    ).all()


def status_of(session: Session, *, task_id: str) -> TaskStatus | None:
    return session.scalar(sa.select(Task.status).where(Task.id == task_id))


def _held(task_id: str, worker_id: str | None = None, attempt: int | None = None) -> tuple[sa.ColumnElement[bool], ...]:
    """The task is still running as the caller knows it: held by its runner, or still at its attempt."""
    if (worker_id is None) == (attempt is None):
        raise ValueError("fence a task by its runner or by its attempt, one of the two")
    fence = Task.lease_owner == worker_id if worker_id is not None else Task.attempts == attempt
    return (Task.id == task_id, Task.status == TaskStatus.RUNNING, fence)


def _update(session: Session, conditions: tuple[sa.ColumnElement[bool], ...], **values: Any) -> bool:
    result = session.execute(
        sa.update(Task).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def heartbeat(session: Session, *, task_id: str, worker_id: str, lease_seconds: float, now: datetime) -> bool:
    """Extends the lease; False when the task is no longer this runner's (cancelled, or reaped)."""
    return _update(
        session, _held(task_id, worker_id), lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now
    )


def holds(session: Session, *, task_id: str, worker_id: str) -> bool:
    """Whether `worker_id` still holds the task: the fence every write on its behalf checks."""
    return session.scalar(sa.select(Task.id).where(*_held(task_id, worker_id))) is not None


def succeed(
    session: Session, *, task_id: str, now: datetime, worker_id: str | None = None, attempt: int | None = None
) -> bool:
    return _update(
        session,
        _held(task_id, worker_id, attempt),
        status=TaskStatus.SUCCEEDED,
        lease_owner=None,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
        last_error=None,
    )


def fail(
    session: Session,
    *,
    task_id: str,
    decision: RetryDecision,
    error: str,
    now: datetime,
    worker_id: str | None = None,
    attempt: int | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Applies the retry policy's decision: queued again after its delay, or failed for good. `payload`
    replaces the task's input for the next attempt (say, more memory after an out-of-memory kill)."""
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": error[:4000],
        "updated_at": now,
    }
    if decision.retry:
        values |= {"status": TaskStatus.QUEUED, "run_after": now + timedelta(seconds=decision.delay_seconds)}
    else:
        values |= {"status": TaskStatus.FAILED, "finished_at": now}
    if payload is not None:
        values["payload"] = payload
    return _update(session, _held(task_id, worker_id, attempt), **values)


def cancelled(session: Session, *, task_id: str, worker_id: str, now: datetime) -> bool:
    """The runner found there is nothing left to do (what the task was for is gone): ended, not retried."""
    return _update(
        session,
        _held(task_id, worker_id),
        status=TaskStatus.CANCELLED,
        lease_owner=None,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
    )


def release(session: Session, *, task_id: str, worker_id: str, now: datetime) -> bool:
    """Gives the task back without counting the attempt (the runner is shutting down)."""
    return _update(
        session,
        _held(task_id, worker_id),
        status=TaskStatus.QUEUED,
        lease_owner=None,
        lease_expires_at=None,
        attempts=Task.attempts - 1,
        updated_at=now,
    )


def cancel(session: Session, *, dedupe_keys: Sequence[str], now: datetime | None = None) -> int:
    """Cancels the unfinished tasks with these keys; a runner holding one notices at its next heartbeat."""
    if not dedupe_keys:
        return 0
    result = session.execute(
        sa.update(Task)
        .where(Task.dedupe_key.in_(dedupe_keys), Task.status.not_in(FINISHED))
        .values(status=TaskStatus.CANCELLED, lease_owner=None, lease_expires_at=None, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Reaped:
    requeued: list[Task]
    failed: list[Task]  # out of attempts: their runners' deaths used the last one


def reap_expired(session: Session, *, now: datetime) -> Reaped:
    """Tasks whose runner stopped heartbeating go back to the queue, or fail when out of attempts."""
    expired = (Task.status == TaskStatus.RUNNING, Task.lease_expires_at < now)
    error = "its runner was lost during this attempt (a worker or the operator stopped heartbeating)"
    failed = session.scalars(
        sa.update(Task)
        .where(*expired, Task.attempts >= Task.max_attempts)
        .values(status=TaskStatus.FAILED, lease_owner=None, lease_expires_at=None, finished_at=now,
                last_error=error + "; no attempts left", updated_at=now)
        .returning(Task)
        .execution_options(synchronize_session=False)
    ).all()  # fmt: skip
    requeued = session.scalars(
        sa.update(Task)
        .where(*expired)
        .values(status=TaskStatus.QUEUED, lease_owner=None, lease_expires_at=None, run_after=now,
                last_error=error, updated_at=now)
        .returning(Task)
        .execution_options(synchronize_session=False)
    ).all()  # fmt: skip
    return Reaped(requeued=list(requeued), failed=list(failed))


def prune_finished(session: Session, *, before: datetime) -> int:
    """Deletes tasks finished before `before`, but those a record users see still refers to (an
    IngestionJob reads its status from its task): any foreign key to `tasks.id` keeps its task."""
    referenced = [
        sa.not_(sa.exists().where(fk.parent == Task.id))
        for table in Task.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column is Task.__table__.c.id
    ]
    result = session.execute(sa.delete(Task).where(Task.status.in_(FINISHED), Task.finished_at < before, *referenced))
    return int(result.rowcount)  # type: ignore[attr-defined]
