"""The runner: claims tasks from its queues and runs them, several at once.

One thread ticks: it defers the periodic tasks that are due (once per period across every runner),
then claims as many tasks of each queue as that queue has free slots, and hands each to a thread.
A `stages` task runs its stage in a stage process (`isolation`), so its slots are the machine's
share of media work; `default` tasks (webhook deliveries, sweeps, reaping) are light and many. A
heartbeat thread extends the lease of every task this runner holds and notices the ones it lost
(cancelled, or reaped after a stall): their work is stopped. A failure is decided here, once, by the
task's retry policy, and applied to the task in the same unit of work that records it where users see
it (`TaskSpec.fail`). SIGTERM stops claiming and lets running tasks finish.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import structlog

from mediaingest.config import Settings
from mediaingest.db import session_scope, utcnow
from mediaingest.exceptions import MediaIngestError, error_message
from mediaingest.models import TaskStatus
from mediaingest.retry import RetryPolicy
from mediaingest.tasks import periodic, queue
from mediaingest.tasks.registry import (
    DEFAULT_QUEUE,
    QUEUES,
    STAGES_QUEUE,
    TaskCancelled,
    TaskRun,
    TaskSpec,
)
from mediaingest.worker import isolation
from mediaingest.worker.stage_runner import StageContext, remove_orphaned_workspaces

log = structlog.stdlib.get_logger(__name__)

DEFAULT_QUEUE_SLOTS = 4  # deliveries and chores wait on the network, not the CPU
PERIODIC_CHECK_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        ctx: StageContext,
        *,
        tasks: Mapping[str, TaskSpec],
        concurrency: int | None = None,
        worker_id: str | None = None,
        queues: Sequence[str] = QUEUES,
    ) -> None:
        self.ctx = ctx
        self.tasks = tasks  # every task this worker may run, by name (`mediaingest.catalog`)
        self.settings = ctx.settings
        unknown = set(queues) - set(QUEUES)
        if unknown:
            raise ValueError(f"unknown queues {sorted(unknown)}; the queues are {list(QUEUES)}")
        self.queues = tuple(queues)
        stage_slots = max(1, concurrency or ctx.settings.worker_concurrency)
        self.slots = {STAGES_QUEUE: stage_slots, DEFAULT_QUEUE: DEFAULT_QUEUE_SLOTS}
        self.concurrency = stage_slots
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        # Set when a slot frees up (a finished stage may have queued the next ones) or on stop: the
        # loop claims again at once instead of sleeping out its poll interval.
        self._wake = threading.Event()
        self._running: dict[str, TaskRun] = {}
        self._running_by_queue = dict.fromkeys(QUEUES, 0)
        self._lock = threading.Lock()
        self._last_periodic = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        tasks: Mapping[str, TaskSpec],
        concurrency: int | None = None,
        queues: Sequence[str] = QUEUES,
    ) -> Worker:
        ctx = StageContext.open(settings, pool_size=max(4, settings.worker_concurrency * 2))
        return cls(ctx, tasks=tasks, concurrency=concurrency, queues=queues)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        log.info("worker.started", worker_id=self.worker_id, queues=list(self.queues), stage_slots=self.concurrency)
        if STAGES_QUEUE in self.queues:
            self._prepare_stage_processes()
        heartbeat = threading.Thread(target=self._heartbeat, name="task-heartbeat", daemon=True)
        heartbeat.start()
        pool_size = sum(self.slots[name] for name in self.queues)
        try:
            with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="task") as pool:
                while not self.stopping.is_set():
                    claimed = self.tick(pool)
                    if not claimed:
                        self._wake.wait(self.settings.worker_poll_interval_seconds)
                        self._wake.clear()
            heartbeat.join(timeout=5)
        finally:
            isolation.retire_idle(self.settings)
        log.info("worker.stopped", worker_id=self.worker_id)

    def _prepare_stage_processes(self) -> None:
        """Before the first stage: the forkserver and a stage process per slot ready, and the workspaces of
        killed workers removed."""
        # Orphans first: a stage process started now could be given a dead one's pid, hiding its workspace.
        removed = remove_orphaned_workspaces(self.settings)
        if removed:
            log.info("worker.orphaned_workspaces_removed", count=removed)
        isolation.warm_up(self.settings, processes=self.concurrency)

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """New work was committed (by the API in this process): claim now rather than at the next poll."""
        self._wake.set()

    def tick(self, pool: ThreadPoolExecutor) -> int:
        """Defers due periodic tasks, claims what the free slots can take. Returns how many were claimed."""
        try:
            self._defer_due_periodic()
            runs = [(name, run) for name in self.queues for run in self._claim_free_slots(name)]
        except Exception:
            log.exception("worker.tick_failed")
            return 0
        for queue_name, run in runs:
            with self._lock:
                self._running[run.task_id] = run
                self._running_by_queue[queue_name] += 1
            future: Future[None] = pool.submit(self._execute, run)
            future.add_done_callback(functools.partial(self._forget, run.task_id, queue_name))
        return len(runs)

    def _defer_due_periodic(self) -> None:
        """The periodic tasks that are due, deferred (looked at once a PERIODIC_CHECK_SECONDS)."""
        if time.monotonic() - self._last_periodic < PERIODIC_CHECK_SECONDS:
            return
        self._last_periodic = time.monotonic()
        with session_scope(self.ctx.session_factory) as session:
            periodic.defer_due(session, self.settings, now=utcnow())

    def _claim_free_slots(self, name: str) -> list[TaskRun]:
        """As many tasks of the queue as it has free slots."""
        with self._lock:
            free = self.slots[name] - self._running_by_queue[name]
        if free <= 0:
            return []
        with session_scope(self.ctx.session_factory) as session:
            tasks = queue.claim(
                session,
                worker_id=self.worker_id,
                queues=[name],
                limit=free,
                lease_seconds=self.settings.worker_lease_seconds,
                now=utcnow(),
                # The one fairness rule: the operator's claim of stage Jobs applies it too.
                tenant_cap=self.settings.tenant_max_running_stages if name == STAGES_QUEUE else None,
            )
            return [
                TaskRun(task.id, task.name, dict(task.payload), task.attempts, task.max_attempts, self.worker_id,
                        wake=self.wake)
                for task in tasks
            ]  # fmt: skip

    def run_due(self) -> int:
        """Claims the due tasks of this runner's queues and runs them in this thread, one by one; returns how
        many ran. For tests and one-shot tools: the loop runs them concurrently instead."""
        with session_scope(self.ctx.session_factory) as session:
            tasks = queue.claim(
                session,
                worker_id=self.worker_id,
                queues=self.queues,
                limit=100,
                lease_seconds=self.settings.worker_lease_seconds,
                now=utcnow(),
            )
            runs = [TaskRun(t.id, t.name, dict(t.payload), t.attempts, t.max_attempts, self.worker_id) for t in tasks]
        for run in runs:
            self._execute(run)
        return len(runs)

    def _forget(self, task_id: str, queue_name: str, _done: Future[None]) -> None:
        with self._lock:
            self._running.pop(task_id, None)
            self._running_by_queue[queue_name] -= 1
        self._wake.set()

    # --- one task -----------------------------------------------------------------------------
    def _execute(self, run: TaskRun) -> None:
        structlog.contextvars.bind_contextvars(task_id=run.task_id, task=run.name, attempt=run.attempt)
        try:
            self._spec(run.name).function(self.ctx, run)
            with session_scope(self.ctx.session_factory) as session:
                queue.succeed(session, task_id=run.task_id, worker_id=self.worker_id, now=utcnow())
        except TaskCancelled:
            log.info("task.cancelled")
            with session_scope(self.ctx.session_factory) as session:  # a no-op when no longer ours
                queue.cancelled(session, task_id=run.task_id, worker_id=self.worker_id, now=utcnow())
        except Exception as error:
            self._record_failure(run, error)
        finally:
            structlog.contextvars.clear_contextvars()

    def _record_failure(self, run: TaskRun, error: Exception) -> None:
        """The one place a worker decides a failed attempt: the task's policy, applied and recorded at once."""
        if not isinstance(error, MediaIngestError):
            log.exception("task.crashed")
        with session_scope(self.ctx.session_factory) as session:
            decision = self._spec(run.name).fail(session, task_id=run.task_id, attempt=run.attempt, error=error,
                                                 settings=self.settings, worker_id=self.worker_id)  # fmt: skip
        if decision is not None:
            log.warning("task.failed", error=error_message(error), retry=decision.retry,
                        delay_seconds=round(decision.delay_seconds, 2))  # fmt: skip

    def _spec(self, name: str) -> TaskSpec:
        """The registered task; one this version does not know fails at once (retrying cannot help)."""
        spec = self.tasks.get(name)
        if spec is None:
            return TaskSpec(name=name, queue="", function=_unknown, retry=lambda _: RetryPolicy(max_attempts=1))
        return spec

    # --- leases -------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        """Extends every held lease; a task whose lease is gone (cancelled, reaped) is stopped."""
        interval = max(0.2, min(self.settings.worker_heartbeat_seconds, self.settings.worker_lease_seconds / 3))
        while True:
            # Wakes at once on stop, then keeps the leases of the tasks still finishing.
            if self.stopping.wait(interval) and self._running:
                time.sleep(min(interval, 0.5))
            with self._lock:
                held = list(self._running.values())
            if self.stopping.is_set() and not held:
                return
            self._keep_leases(held)

    def _keep_leases(self, held: list[TaskRun]) -> None:
        """One beat: each lease extended, a failure for one not stopping the others."""
        for run in held:
            try:
                self._keep_lease(run)
            except Exception:
                log.exception("worker.heartbeat_failed")

    def _keep_lease(self, run: TaskRun) -> None:
        """Extends the task's lease; stops the run when the lease is gone (cancelled or reaped)."""
        with session_scope(self.ctx.session_factory) as session:
            kept = queue.heartbeat(
                session,
                task_id=run.task_id,
                worker_id=self.worker_id,
                lease_seconds=self.settings.worker_lease_seconds,
                now=utcnow(),
            )
            # Finished by its own attempt (a stage process records its success): not lost.
            lost = not kept and queue.status_of(session, task_id=run.task_id) != TaskStatus.SUCCEEDED
        if lost and not run.cancel.is_set():
            log.info("task.lease_lost", task_id=run.task_id, task=run.name)
            run.cancel.set()


def _unknown(_ctx: object, run: TaskRun) -> None:
    raise RuntimeError(f"no task named {run.name!r} is registered")


@contextmanager
def embedded_worker(settings: Settings, *, tasks: Mapping[str, TaskSpec]) -> Iterator[Worker]:
    """A worker in a thread of the current process: the embedded default's one-command set-up."""
    worker = Worker.from_settings(settings, tasks=tasks)
    thread = threading.Thread(target=worker.run, name="embedded-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=60)
