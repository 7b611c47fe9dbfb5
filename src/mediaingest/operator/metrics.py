"""The operator's Prometheus metrics, served on its own port (`run(metrics_port=…)`).

What waits and what runs is the task queue's to say (`mediaingest_tasks_*` on the worker and API); the
operator tells what it does with Kubernetes: the Jobs it keeps (running, or waiting for Kueue), the
attempts that ended without a word from their pod and why, and every call it makes to the API server.
The gauges are read at scrape time from the runner and the watch indices, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

jobs_created_total = Counter(
    "mediaingest_operator_jobs_created_total", "Stage Jobs created by the operator, one per attempt.", ["stage"]
)
attempts_unrecorded_total = Counter(
    "mediaingest_operator_attempts_unrecorded_total",
    "Stage attempts whose Job ended without its pod reporting, by cause (oom_killed, deadline, vanished, …).",
    ["stage", "cause"],
)
kube_requests_total = Counter(
    "mediaingest_operator_kube_requests_total",
    "Calls the operator made to the Kubernetes API (watches aside), by verb and kind.",
    ["verb", "kind"],
)
assets_expired_total = Counter(
    "mediaingest_operator_assets_expired_total", "Finished MediaAssets deleted by the retention policy."
)


class OperatorCollector(Collector):
    """Gauges from callables the running operator registers (none before it starts: no series)."""

    def __init__(self) -> None:
        self.jobs: Callable[[], dict[str, int]] | None = None  # state → count
        self.limit: int | None = None
        self.live_assets: Callable[[], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.jobs is not None:
            yield _jobs_gauge(self.jobs())
        if self.limit is not None:
            limit = GaugeMetricFamily("mediaingest_operator_jobs_limit", "Stage Jobs the operator keeps at most.")
            limit.add_metric([], self.limit)
            yield limit
        if self.live_assets is not None:
            live = GaugeMetricFamily("mediaingest_operator_media_assets", "Unfinished MediaAssets it keeps current.")
            live.add_metric([], self.live_assets())
            yield live


def _jobs_gauge(counts: dict[str, int]) -> GaugeMetricFamily:
    jobs = GaugeMetricFamily(
        "mediaingest_operator_jobs", "Stage Jobs the operator keeps now, running or waiting (Kueue).", labels=["state"]
    )
    for state, count in counts.items():
        jobs.add_metric([state], count)
    return jobs


collector = OperatorCollector()
REGISTRY.register(collector)
