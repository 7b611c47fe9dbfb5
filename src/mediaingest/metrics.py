"""Every Prometheus metric mediaingest exports, in one place.

The API serves them on /metrics; the worker on its own port (WORKER_METRICS_PORT); the operator
adds its gauges from `mediaingest.operator`. `storage_usage_bytes` is computed from the database at
scrape time, so every API replica reports the same truth instead of a per-process counter.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mediaingest.db import SessionFactory
from mediaingest.models.task import TaskStatus

upload_requests_total = Counter(
    "upload_requests_total",
    "Upload API requests by endpoint and outcome.",
    ["endpoint", "outcome"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "API request latency by route template, method and status code.",
    ["method", "route", "status"],
)
ingestion_jobs_total = Counter(
    "ingestion_jobs_total",
    "Ingestion job attempts finished, by job type and final status of the attempt.",
    ["type", "status"],
)
ingestion_jobs_duration_seconds = Histogram(
    "ingestion_jobs_duration_seconds",
    "Wall time of one ingestion job attempt, by job type.",
    ["type"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
ingestion_jobs_failed_total = Counter(
    "ingestion_jobs_failed_total",
    "Ingestion job attempts that failed, by job type and reason (transient, permanent, cancelled).",
    ["type", "reason"],
)
webhook_delivery_attempts_total = Counter(
    "mediaingest_webhook_delivery_attempts_total",
    "Completion webhook delivery attempts, by outcome: delivered, retrying, failed (given up).",
    ["outcome"],
)
assets_finished_total = Counter(
    "mediaingest_assets_finished_total",
    "Assets that reached READY or FAILED, counted where it was decided (a worker, or the API for a stage pod).",
    ["status"],
)
ingestion_stage_peak_rss_bytes = Histogram(
    "ingestion_stage_peak_rss_bytes",
    "Peak resident memory of one stage attempt: the stage process itself, and its largest ffmpeg/ffprobe.",
    ["type", "process"],
    buckets=[float(2**20 * mib) for mib in (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)],
)


class StorageUsageCollector(Collector):
    """`storage_usage_bytes{bucket_role}`: bytes of verified uploads and of derived files."""

    def __init__(self) -> None:
        self.session_factory: SessionFactory | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "storage_usage_bytes", "Bytes stored, by bucket role (incoming, derived).", labels=["bucket_role"]
        )
        if self.session_factory is None:
            return
        # Imported here: models import this package's db layer, and metrics must stay importable alone.
        from mediaingest.models import AssetProxy, MediaAsset
        from mediaingest.models.enums import UploadStatus

        # Sums without GROUP BY: exactly one row each, and coalesce makes an empty sum 0.
        with self.session_factory() as session:
            uploads = session.execute(
                sa.select(sa.func.coalesce(sa.func.sum(MediaAsset.file_size), 0)).where(
                    MediaAsset.upload_status == UploadStatus.UPLOADED
                )
            ).scalar_one()
            derived = session.execute(sa.select(sa.func.coalesce(sa.func.sum(AssetProxy.size_bytes), 0))).scalar_one()
        family.add_metric(["incoming"], float(uploads))
        family.add_metric(["derived"], float(derived))
        yield family


storage_usage = StorageUsageCollector()
REGISTRY.register(storage_usage)


class TaskQueueCollector(Collector):
    """The task queue as it stands, at scrape time, for every executor alike (one query, grouped):

    `mediaingest_tasks{queue,state}` — `waiting` (due, not yet claimed), `backing_off` (a retry's delay not
    over), `running` (held by a worker or the operator); `mediaingest_tasks_oldest_waiting_seconds{queue}` —
    how long the oldest due task has waited: the backlog to alert and scale on (`stages`: the workers' stage
    processes; `stage-jobs`: the operator's Jobs).
    """

    def __init__(self) -> None:
        self.session_factory: SessionFactory | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.session_factory is None:
            return
        from mediaingest.db import utcnow
        from mediaingest.models import Task, TaskStatus

        now = utcnow()
        tasks = GaugeMetricFamily(
            "mediaingest_tasks", "Unfinished tasks by queue and state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "mediaingest_tasks_oldest_waiting_seconds", "Age of the oldest due, unclaimed task.", labels=["queue"]
        )
        state = sa.case(
            (Task.status == TaskStatus.RUNNING, "running"), (Task.run_after > now, "backing_off"), else_="waiting"
        )
        with self.session_factory() as session:
            rows = session.execute(
                sa.select(Task.queue, state, sa.func.count(), sa.func.min(Task.run_after))
                .where(Task.status.in_((TaskStatus.QUEUED, TaskStatus.RUNNING)))
                .group_by(Task.queue, state)
            ).all()
        for queue, label, count, first in rows:
            tasks.add_metric([queue, label], float(count))
            if label == "waiting":  # `run_after` is NOT NULL, and read back timezone-aware (UTCDateTime)
                oldest.add_metric([queue], max(0.0, (now - first).total_seconds()))
        yield tasks
        yield oldest


task_queue = TaskQueueCollector()
REGISTRY.register(task_queue)


def track_storage_usage(session_factory: SessionFactory) -> None:
    """Points the scrape-time gauges (storage, the task queue) at this process's database."""
    storage_usage.session_factory = session_factory
    task_queue.session_factory = session_factory


# ingestion_jobs_total's status label keeps its published words (dashboards and alerts read them).
_ATTEMPT_LABELS = {TaskStatus.SUCCEEDED: "completed", TaskStatus.CANCELLED: "cancelled", TaskStatus.FAILED: "failed"}


def count_stage_attempt(job_type: str, ended: TaskStatus, *, retrying: bool = False) -> None:
    """One finished stage attempt: how it ended, in its task's words (a failure that will be retried is
    counted as retrying)."""
    status = "retrying" if retrying else _ATTEMPT_LABELS[ended]
    ingestion_jobs_total.labels(type=job_type, status=status).inc()
