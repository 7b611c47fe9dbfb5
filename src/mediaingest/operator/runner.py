"""The Kubernetes runner of the task queue: what a worker's thread does for a stage task, done with a Job.

Each tick it
1. settles the attempts whose Job ended: an attempt whose pod reported has already finished its task
   (the API recorded it); one that ended without a word — killed for memory, past its deadline, a Job
   that vanished — is failed here with the one stage retry policy, through the same hook a worker uses
   for a stage process that died (`stage_tasks.RUN.on_failure`); an out-of-memory kill gives the next
   attempt twice the memory, up to the stage's cap;
2. heartbeats the lease of every task it holds, and lets go of those it lost (finished by their pod's
   report, cancelled with their asset — its Job is deleted — or reaped while the operator was away);
3. claims due tasks of the `stage-jobs` queue for its free Job slots, with the claim's per-tenant rule,
   starts each attempt in the database (`progression.stage_started`, as a worker does) and creates its
   Job; and creates the MediaAssets of newly confirmed uploads (`kubernetes` queue).

It decides nothing about the work: attempts, backoff, fairness, the plan and READY are the queue's and
`progression`'s, exactly as for a worker. The runner id is stable (`OperatorSettings.runner_id`), so a
restarted operator takes up the tasks it held and the Jobs that run them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog

from mediaingest.assets.metadata import metadata_of
from mediaingest.config import Settings
from mediaingest.db import SessionFactory, session_scope, utcnow
from mediaingest.dispatch import PUBLISH_ASSET, RUN_STAGE
from mediaingest.exceptions import PermanentProcessingError, TransientProcessingError
from mediaingest.models import IngestionJob, MediaAsset, Task, TaskStatus
from mediaingest.models.enums import JobPriority, Stage
from mediaingest.operator import metrics, projection
from mediaingest.operator.jobs import (
    MEMORY_SCALE_KEY,
    PERMANENT_EXIT_CODE,
    StageAttempt,
    build_stage_job,
    next_memory_scale,
)
from mediaingest.operator.kube import KubeApi, KubeApiError, PodTermination
from mediaingest.operator.model import KubeJobObservation, KubeJobState
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.registry import UnknownStageError, stage_named
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.tasks import queue
from mediaingest.tasks.registry import KUBERNETES_QUEUE, STAGE_JOBS_QUEUE
from mediaingest.worker import progression
from mediaingest.worker.stage_tasks import RUN

log = structlog.stdlib.get_logger(__name__)

PUBLISH_BATCH = 50  # MediaAssets created per tick at most (the rate limit paces them anyway)


@dataclass
class HeldAttempt:
    """A stage task this operator holds, and the Job that runs its attempt."""

    task_id: str
    asset_id: str
    stage: Stage
    attempt: int
    job_name: str
    since: float  # when its Job was created (or taken up after a restart): the grace for the watch

    @classmethod
    def of(cls, attempt: StageAttempt, since: float) -> HeldAttempt:
        return cls(attempt.task_id, attempt.asset_id, attempt.stage, attempt.attempt, attempt.job_name, since)


@dataclass(frozen=True)
class AttemptEnd:
    """How an attempt ended without its pod reporting, as Kubernetes tells it."""

    cause: str
    kind: str  # the metric's cause label
    permanent: bool = False
    out_of_memory: bool = False


_UNKNOWN_TERMINATION = PodTermination(exit_code=None, reason=None, message=None)
_UNREPORTED = AttemptEnd("the stage pod exited without reporting its result", "unreported")
_OUT_OF_MEMORY = AttemptEnd("the stage pod was killed for using more memory than its limit", "oom_killed",
                            out_of_memory=True)  # fmt: skip


def attempt_end(job: KubeJobObservation, ended: PodTermination | None) -> AttemptEnd:
    """How an unreported attempt ended, from its Job and, when one was read, its pod's last termination (pure)."""
    if job.state == KubeJobState.SUCCEEDED:
        return _UNREPORTED
    if job.past_deadline:
        return AttemptEnd(f"the stage ran past its deadline ({job.message or 'DeadlineExceeded'})", "deadline")
    ended = ended or _UNKNOWN_TERMINATION
    if ended.reason == "OOMKilled":
        return _OUT_OF_MEMORY
    return _pod_failed(job, ended)


def _pod_failed(job: KubeJobObservation, ended: PodTermination) -> AttemptEnd:
    """The stage pod failed: for good when the stage found the media unusable (its exit code, or the reason
    the Job's pod failure policy gives it), else to be retried. The pod's words come first, then the Job's."""
    permanent = job.reason == "PodFailurePolicy" or ended.exit_code == PERMANENT_EXIT_CODE
    failure = PodTermination(ended.exit_code, ended.reason or job.reason, ended.message or job.message)
    return AttemptEnd(_failure_cause(failure), "permanent" if permanent else "failed", permanent=permanent)


def _failure_cause(failure: PodTermination) -> str:
    """The cause as the task records it: `the stage pod failed (exit code 1, Error): <its last words>`."""
    exit_code = f"exit code {failure.exit_code}" if failure.exit_code is not None else None
    head = ", ".join(part for part in (exit_code, failure.reason) if part) or "failed"
    detail = f": {failure.message}" if failure.message else ""
    return f"the stage pod failed ({head}){detail}"[:2000]


@dataclass
class KubernetesRunner:
    settings: OperatorSettings
    app_settings: Settings
    kube: KubeApi
    session_factory: SessionFactory
    held: dict[str, HeldAttempt] = field(default_factory=dict)
    _last_heartbeat: float = 0.0

    @property
    def runner_id(self) -> str:
        return self.settings.runner_id

    def job_counts(self, jobs: Mapping[str, Any]) -> dict[str, int]:
        """Held attempts by whether their Job runs or waits to be admitted (Kueue), for the gauge."""
        observed = (_observed(jobs, held) for held in self.held.values())
        waiting = sum(1 for job in observed if job is not None and job.suspended)
        return {"running": len(self.held) - waiting, "waiting": waiting}

    # --- start ------------------------------------------------------------------------------------
    async def take_up(self) -> None:
        """After a restart: the stage tasks this runner id holds are tracked again (their Jobs live on);
        a MediaAsset creation it was in the middle of goes back to the queue."""
        now = time.monotonic()

        def held_tasks() -> list[HeldAttempt]:
            with session_scope(self.session_factory) as session:
                found = []
                for task in queue.held_by(session, worker_id=self.runner_id):
                    if task.queue != STAGE_JOBS_QUEUE:
                        queue.release(session, task_id=task.id, worker_id=self.runner_id, now=utcnow())
                        continue
                    attempt = _attempt_of(task, owner_id=task.tenant or "", media_type="", duration=None)
                    found.append(HeldAttempt.of(attempt, now))
                return found

        for held in await asyncio.to_thread(held_tasks):
            self.held[held.task_id] = held
        if self.held:
            log.info("operator.tasks_taken_up", count=len(self.held))

    # --- one tick ---------------------------------------------------------------------------------
    async def tick(self, jobs: Mapping[str, Any]) -> int:
        """Settle, heartbeat, claim. Returns how many new Jobs and MediaAssets it created."""
        await self.settle(jobs)
        if time.monotonic() - self._last_heartbeat >= self.settings.lease_seconds / 5:
            await self.heartbeat(jobs)
        return await self.claim(jobs) + await self.publish()

    async def settle(self, jobs: Mapping[str, Any]) -> None:
        now = time.monotonic()
        for held in list(self.held.values()):
            observed = _observed(jobs, held)
            end = await self._ending(held, observed, now)
            if end is None:
                continue
            cancelled = await self._unrecorded(held, end)
            self.held.pop(held.task_id, None)
            if cancelled and observed is not None:
                # Its asset was deleted: the finished Job and its pod go now, not at their TTL.
                await self._delete_job(held.job_name, reason="task cancelled")

    async def _ending(self, held: HeldAttempt, observed: KubeJobObservation | None, now: float) -> AttemptEnd | None:
        """How the held attempt ended; None while its Job runs, or while a new one may not be on the watch yet."""
        if observed is None:
            if now - held.since < self.settings.job_missing_seconds:
                return None  # not on the watch yet
            return AttemptEnd(f"the Kubernetes Job {held.job_name} vanished before its pod reported", "vanished")
        if observed.state == KubeJobState.ACTIVE:
            return None
        return await self._why_ended(observed)

    async def _why_ended(self, job: KubeJobObservation) -> AttemptEnd:
        ended: PodTermination | None = None
        if job.state != KubeJobState.SUCCEEDED and not job.past_deadline:  # its pod says more
            try:
                ended = await self.kube.pod_termination(self.settings.namespace, job.name)
            except KubeApiError as exc:
                log.warning("operator.pod_read_failed", job=job.name, status=exc.status)
        return attempt_end(job, ended)

    async def _unrecorded(self, held: HeldAttempt, end: AttemptEnd) -> bool:
        """Records an attempt that ended without its pod's report. True when the task was cancelled."""
        config = self.settings.stages.get(held.stage)

        def record() -> RetryDecision | TaskStatus | None:
            with session_scope(self.session_factory) as session:
                task = session.get(Task, held.task_id)
                if task is None:
                    return TaskStatus.CANCELLED
                if (task.status != TaskStatus.RUNNING or task.lease_owner != self.runner_id
                        or task.attempts != held.attempt):  # fmt: skip
                    return task.status  # its pod reported, or the task moved on: nothing unrecorded
                cause, payload = end.cause, None
                error: Exception = PermanentProcessingError(cause) if end.permanent else TransientProcessingError(cause)
                decision = RUN.retry(self.app_settings).decide(error, attempts=held.attempt,
                                                               max_attempts=task.max_attempts)  # fmt: skip
                if end.out_of_memory and decision.retry and config is not None:
                    scale = int(task.payload.get(MEMORY_SCALE_KEY) or 1)
                    bigger = next_memory_scale(config, scale)
                    if bigger is None:
                        cause += f"; already at the stage's memory cap ({config.memory_cap}): not retried"
                        decision = RetryDecision(retry=False, delay_seconds=0.0, reason="permanent")
                    else:
                        payload = {**task.payload, MEMORY_SCALE_KEY: bigger}
                        cause += f"; the next attempt gets {bigger}x the memory"
                error = PermanentProcessingError(cause) if end.permanent else TransientProcessingError(cause)
                return RUN.fail(session, task_id=task.id, attempt=held.attempt, error=error, settings=self.app_settings,
                                worker_id=self.runner_id, decision=decision, payload=payload)  # fmt: skip

        decision = await asyncio.to_thread(record)
        if not isinstance(decision, RetryDecision):
            return decision == TaskStatus.CANCELLED
        metrics.attempts_unrecorded_total.labels(stage=held.stage, cause=end.kind).inc()
        log.warning("operator.attempt_unrecorded", task_id=held.task_id, asset_id=held.asset_id, stage=held.stage,
                    attempt=held.attempt, cause=end.cause, retry=decision.retry)  # fmt: skip
        return False

    async def heartbeat(self, jobs: Mapping[str, Any]) -> None:
        self._last_heartbeat = time.monotonic()
        if not self.held:
            return
        held = list(self.held.values())

        def beat() -> dict[str, TaskStatus | None]:
            lost: dict[str, TaskStatus | None] = {}
            with session_scope(self.session_factory) as session:
                for item in held:
                    if not queue.heartbeat(session, task_id=item.task_id, worker_id=self.runner_id,
                                           lease_seconds=self.settings.lease_seconds, now=utcnow()):  # fmt: skip
                        task = session.get(Task, item.task_id)
                        lost[item.task_id] = task.status if task is not None else None
            return lost

        for task_id, status in (await asyncio.to_thread(beat)).items():
            item = self.held.pop(task_id)
            if _lost_job_goes(_observed(jobs, item), status):
                await self._delete_job(item.job_name, reason=f"task {str(status or 'cancelled').lower()}")

    async def _delete_job(self, name: str, *, reason: str) -> None:
        try:
            if await self.kube.delete_job(self.settings.namespace, name):
                log.info("operator.job_deleted", job=name, reason=reason)
        except KubeApiError as exc:
            log.warning("operator.job_delete_failed", job=name, status=exc.status)

    # --- new work ---------------------------------------------------------------------------------
    async def claim(self, jobs: Mapping[str, Any]) -> int:
        free = self.settings.max_running_jobs - len(self.held)
        if free <= 0:
            return 0
        attempts = await asyncio.to_thread(
            claim_attempts, self.session_factory, runner_id=self.runner_id, limit=free,
            lease_seconds=self.settings.lease_seconds, tenant_cap=self.app_settings.tenant_max_running_stages,
            settings=self.app_settings,
        )  # fmt: skip
        created = 0
        for attempt in attempts:
            created += await self._start(attempt, jobs)
        return created

    async def _start(self, attempt: StageAttempt, jobs: Mapping[str, Any]) -> bool:
        """Creates the attempt's Job and holds it; a task whose Job the API server refused goes back to the
        queue. True when a new Job was created."""
        for stale in _older_attempts(jobs, attempt):  # a reaped attempt's Job may still run
            await self._delete_job(stale.name, reason="superseded")
        manifest = build_stage_job(attempt, namespace=self.settings.namespace, settings=self.settings)
        try:
            created = await self.kube.create_job(self.settings.namespace, manifest)
        except KubeApiError as exc:
            log.warning("operator.job_create_failed", job=attempt.job_name, status=exc.status, reason=exc.reason)
            await asyncio.to_thread(self._give_back, attempt.task_id)
            return False
        if created:
            metrics.jobs_created_total.labels(stage=attempt.stage).inc()
        self.held[attempt.task_id] = HeldAttempt.of(attempt, time.monotonic())
        log.info("operator.job_created", job=attempt.job_name, asset_id=attempt.asset_id, attempt=attempt.attempt)
        return created

    def _give_back(self, task_id: str) -> None:
        with session_scope(self.session_factory) as session:
            queue.release(session, task_id=task_id, worker_id=self.runner_id, now=utcnow())

    async def publish(self) -> int:
        """Creates the MediaAssets of newly confirmed uploads (their `mediaassets.publish` tasks)."""

        def claim() -> list[tuple[str, dict[str, Any]]]:
            with session_scope(self.session_factory) as session:
                tasks = queue.claim(session, worker_id=self.runner_id, queues=[KUBERNETES_QUEUE],
                                    limit=PUBLISH_BATCH, lease_seconds=60, now=utcnow())  # fmt: skip
                found = []
                for task in tasks:
                    asset = session.get(MediaAsset, task.payload.get("assetId")) if task.name == PUBLISH_ASSET else None
                    if asset is None:
                        queue.cancelled(session, task_id=task.id, worker_id=self.runner_id, now=utcnow())
                        continue
                    manifest = projection.build_media_asset(asset, namespace=self.settings.namespace,
                                                            release=self.settings.release,
                                                            settings=self.app_settings)  # fmt: skip
                    found.append((task.id, manifest))
                return found

        created = 0
        for task_id, manifest in await asyncio.to_thread(claim):
            try:
                created += await self.kube.create_media_asset(self.settings.namespace, manifest)
                outcome: RetryDecision | None = None
            except KubeApiError as exc:
                log.warning("operator.media_asset_create_failed", status=exc.status, reason=exc.reason)
                outcome = RetryPolicy().decide(TransientProcessingError(str(exc.reason)), attempts=1)
            await asyncio.to_thread(self._finish_publish, task_id, outcome)
        return created

    def _finish_publish(self, task_id: str, failed: RetryDecision | None) -> None:
        with session_scope(self.session_factory) as session:
            if failed is None:
                queue.succeed(session, task_id=task_id, worker_id=self.runner_id, now=utcnow())
            else:
                queue.fail(session, task_id=task_id, worker_id=self.runner_id, decision=failed,
                           error="creating the MediaAsset failed", now=utcnow())  # fmt: skip


def claim_attempts(
    session_factory: SessionFactory, *, runner_id: str, limit: int, lease_seconds: float, tenant_cap: int | None,
    settings: Settings,
) -> list[StageAttempt]:  # fmt: skip
    """Claims due stage-job tasks and starts their attempts in the database, as a worker's thread does."""
    with session_scope(session_factory) as session:
        tasks = queue.claim(
            session, worker_id=runner_id, queues=[STAGE_JOBS_QUEUE], limit=limit, lease_seconds=lease_seconds,
            now=utcnow(), tenant_cap=tenant_cap,
        )  # fmt: skip
        return [attempt for task in tasks if (attempt := _begin(session, task, runner_id, settings)) is not None]


def _begin(session: Any, task: Task, runner_id: str, settings: Settings) -> StageAttempt | None:
    """The attempt starts in the database as a worker's would; None when there is nothing to run."""
    job = session.scalar(sa.select(IngestionJob).where(IngestionJob.task_id == task.id))
    asset = session.get(MediaAsset, task.payload.get("assetId"))
    if task.name != RUN_STAGE or job is None or asset is None:  # deleted with its asset
        queue.cancelled(session, task_id=task.id, worker_id=runner_id, now=utcnow())
        return None
    try:
        attempt = _attempt_on(task, asset)
    except UnknownStageError as exc:  # a stage the API registered and this operator did not
        RUN.fail(session, task_id=task.id, attempt=task.attempts, error=exc, settings=settings, worker_id=runner_id,
                 decision=RetryDecision(retry=False, delay_seconds=0.0, reason="permanent"))  # fmt: skip
        return None
    progression.stage_started(session, job=job, worker_id=runner_id, attempt=task.attempts,
                              message=f"attempt {task.attempts}: Kubernetes Job {attempt.job_name}")  # fmt: skip
    return attempt


def _lost_job_goes(observed: KubeJobObservation | None, status: TaskStatus | None) -> bool:
    """Whether the Job of a task this runner lost is deleted (`status` None: the task is gone with its asset).

    Finished by its pod's report: the pod is on its way out. Reaped and retried elsewhere: nobody will hear
    its pod, so it goes. Cancelled (its asset deleted): it goes even if it has ended.
    """
    if observed is None:
        return False
    if status in (TaskStatus.CANCELLED, None):
        return True
    return observed.state == KubeJobState.ACTIVE and status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


def _attempt_on(task: Task, asset: MediaAsset) -> StageAttempt:
    """The task's attempt as its asset sizes it: owner, media type, priority and, once probed, length."""
    metadata = metadata_of(asset)
    return _attempt_of(task, owner_id=asset.owner_id, media_type=asset.type.value, priority=asset.priority,
                       duration=metadata.duration_seconds if metadata is not None else None)  # fmt: skip


def _observed(jobs: Mapping[str, Any], held: HeldAttempt) -> KubeJobObservation | None:
    """The held attempt's Job as the watch last showed it (kopf's index: task id → its Jobs)."""
    return next((job for job in jobs.get(held.task_id, ()) if job.attempt == held.attempt), None)


def _older_attempts(jobs: Mapping[str, Any], attempt: StageAttempt) -> list[KubeJobObservation]:
    earlier = jobs.get(attempt.task_id, ())
    return [job for job in earlier if job.attempt < attempt.attempt and job.state == KubeJobState.ACTIVE]


def _attempt_of(
    task: Task, *, owner_id: str, media_type: str, duration: float | None, priority: JobPriority = JobPriority.NORMAL
) -> StageAttempt:
    return StageAttempt(
        task_id=task.id,
        asset_id=str(task.payload["assetId"]),
        owner_id=owner_id,
        media_type=media_type,
        priority=priority,
        stage=stage_named(str(task.payload["stage"])),
        attempt=task.attempts,
        duration_seconds=duration,
        memory_scale=int(task.payload.get(MEMORY_SCALE_KEY) or 1),
    )
