"""The local worker: leases jobs from the database and runs them, several at once.

One thread claims (and reaps, and sweeps); a pool of threads each watch one stage attempt, which runs
in a process of its own (`isolation`: media work never shares memory with the worker, or with the
API that hosts the embedded default); each running job has a heartbeat here that extends its lease
and notices cancellation. SIGTERM stops claiming and lets running jobs finish.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import structlog

from mediaingest import metrics
from mediaingest.assets.service import AssetService
from mediaingest.config import Settings
from mediaingest.db import create_db_engine, create_session_factory, session_scope, utcnow
from mediaingest.dispatch import build_dispatcher
from mediaingest.models import MediaAsset
from mediaingest.models.enums import Stage
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.retry import RetryPolicy
from mediaingest.storage import build_storage
from mediaingest.webhooks.delivery import DeliveryPolicy, WebhookSender
from mediaingest.worker import isolation, leases, progression
from mediaingest.worker.jobs import JobHandle, log_entry
from mediaingest.worker.stage_runner import StageContext, remove_orphaned_workspaces

log = structlog.stdlib.get_logger(__name__)


class Worker:
    def __init__(self, ctx: StageContext, *, concurrency: int | None = None, worker_id: str | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.concurrency = max(1, concurrency or ctx.settings.worker_concurrency)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.policy = RetryPolicy.for_stages(ctx.settings)
        self.stopping = threading.Event()
        # Set when a slot frees up (a finished job may have enqueued the next stages) or on stop:
        # the loop claims again at once instead of sleeping out its poll interval.
        self._wake = threading.Event()
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self.webhooks = WebhookSender(
            ctx.session_factory, worker_id=self.worker_id, policy=DeliveryPolicy.from_settings(ctx.settings)
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> Worker:
        engine = create_db_engine(settings.resolved_database_url, pool_size=max(4, settings.worker_concurrency * 2))
        ctx = StageContext(
            settings=settings,
            session_factory=create_session_factory(engine),
            storage=build_storage(settings),
            options=PipelineOptions.from_settings(settings),
        )
        return cls(ctx, **kwargs)  # type: ignore[arg-type]

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        log.info("worker.started", worker_id=self.worker_id, concurrency=self.concurrency)
        isolation.warm_up()
        removed = remove_orphaned_workspaces(self.settings)
        if removed:
            log.info("worker.orphaned_workspaces_removed", count=removed)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="stage") as pool:
            while not self.stopping.is_set():
                claimed = self.tick(pool)
                if not claimed:
                    self._wake.wait(self.settings.worker_poll_interval_seconds)
                    self._wake.clear()
        self.webhooks.close()
        log.info("worker.stopped", worker_id=self.worker_id)

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """New work was committed (by the API in this process): claim now rather than at the next poll."""
        self._wake.set()

    def tick(self, pool: ThreadPoolExecutor) -> int:
        """Reap, sweep when due, claim as many jobs as there are free slots. Returns how many were claimed."""
        try:
            self._maintenance()
            with self._lock:
                free = self.concurrency - len(self._running)
            if free <= 0:
                return 0
            with session_scope(self.ctx.session_factory) as session:
                jobs = leases.claim_jobs(
                    session,
                    worker_id=self.worker_id,
                    limit=free,
                    lease_seconds=self.settings.worker_lease_seconds,
                    now=utcnow(),
                )
                claimed = [(job.id, job.asset_id, Stage.for_job_type(job.type), job.attempts) for job in jobs]
        except Exception:
            log.exception("worker.tick_failed")
            return 0
        for job_id, asset_id, stage, attempt in claimed:
            cancel = threading.Event()
            with self._lock:
                self._running[job_id] = cancel
            handle = JobHandle(job_id=job_id, lease_owner=self.worker_id, attempt=attempt)
            future: Future[None] = pool.submit(self._run_job, handle, asset_id, stage, cancel)
            future.add_done_callback(functools.partial(self._forget, job_id))
        return len(claimed)

    def _forget(self, job_id: str, _done: Future[None]) -> None:
        with self._lock:
            self._running.pop(job_id, None)
        self._wake.set()

    def _maintenance(self) -> None:
        with session_scope(self.ctx.session_factory) as session:
            reaped = leases.reap_expired_leases(session, now=utcnow())
            for asset_id, job_type, error in reaped.failed:
                asset = session.get(MediaAsset, asset_id)
                if asset is not None:
                    progression.fail_asset(session, asset, stage=Stage.for_job_type(job_type), error=error)
        if reaped.count:
            log.warning("worker.leases_reaped", count=reaped.count)
        self.webhooks.dispatch_due()  # claims and hands off; the POSTs run in the sender's own threads
        if time.monotonic() - self._last_sweep >= self.settings.sweep_interval_seconds:
            self._last_sweep = time.monotonic()
            service = AssetService(
                settings=self.settings, storage=self.ctx.storage, dispatcher=build_dispatcher(self.settings)
            )
            with session_scope(self.ctx.session_factory) as session:
                expired = service.sweep_expired_uploads(session)
            with session_scope(self.ctx.session_factory) as session:
                strays = service.reap_stray_uploads(session)
            if expired or strays:
                log.info("worker.uploads_swept", expired=expired, strays_removed=strays)

    # --- one job ------------------------------------------------------------------------------
    def _run_job(self, handle: JobHandle, asset_id: str, stage: Stage, cancel: threading.Event) -> None:
        structlog.contextvars.bind_contextvars(asset_id=asset_id, stage=stage.value, job_id=handle.job_id)
        heartbeat = threading.Thread(target=self._heartbeat, args=(handle, cancel), daemon=True)
        heartbeat.start()
        started = time.monotonic()
        job_type = stage.job_type.value
        try:
            report = isolation.run_attempt(
                self.ctx, handle=handle, asset_id=asset_id, stage=stage, cancel=cancel, policy=self.policy
            )
            self._observe(handle, job_type, report)
        except Exception:
            log.exception("worker.job_crashed")  # starting the stage process failed; the lease reaper retries
        finally:
            cancel.set()  # stops the heartbeat
            heartbeat.join(timeout=5)
            metrics.ingestion_jobs_duration_seconds.labels(type=job_type).observe(time.monotonic() - started)
            structlog.contextvars.clear_contextvars()

    def _observe(self, handle: JobHandle, job_type: str, report: isolation.AttemptReport) -> None:
        """Metrics and the job's log from what the stage process reported (it recorded the outcome)."""
        if report.status == "failed":
            status = "retrying" if report.retry else "failed"
            metrics.ingestion_jobs_total.labels(type=job_type, status=status).inc()
            metrics.ingestion_jobs_failed_total.labels(type=job_type, reason=report.reason or "transient").inc()
        else:
            metrics.ingestion_jobs_total.labels(type=job_type, status=report.status).inc()
            if report.status == "cancelled":
                metrics.ingestion_jobs_failed_total.labels(type=job_type, reason="cancelled").inc()
        if report.peak_rss_bytes:
            metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="stage").observe(report.peak_rss_bytes)
            metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="tools").observe(
                report.tools_peak_rss_bytes
            )
            with session_scope(self.ctx.session_factory) as session:
                handle.append_log(
                    session,
                    log_entry(
                        "job.resources",
                        attempt=handle.attempt,
                        peakRssBytes=report.peak_rss_bytes,
                        toolsPeakRssBytes=report.tools_peak_rss_bytes,
                        pid=report.pid,
                    ),
                )
            log.info(
                "asset.stage_resources",
                status=report.status,
                peak_rss_mb=round(report.peak_rss_bytes / 2**20, 1),
                tools_peak_rss_mb=round(report.tools_peak_rss_bytes / 2**20, 1),
            )

    def _heartbeat(self, handle: JobHandle, cancel: threading.Event) -> None:
        interval = max(0.2, min(self.settings.worker_heartbeat_seconds, self.settings.worker_lease_seconds / 3))
        while not cancel.wait(interval):
            try:
                if not handle.heartbeat(self.ctx.session_factory, self.settings.worker_lease_seconds):
                    log.info("asset.stage_lease_lost")
                    cancel.set()
            except Exception:
                log.exception("worker.heartbeat_failed")


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[Worker]:
    """A worker in a thread of the current process: the embedded default's one-command set-up."""
    worker = Worker.from_settings(settings)
    thread = threading.Thread(target=worker.run, name="embedded-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=60)
