"""The operator's Prometheus metrics, served on its own port (`run(metrics_port=…)`).

The gauges are computed at scrape time from kopf's in-memory indices (the MediaAssets and the active
stage Jobs as the watch streams last showed them), so they cannot drift from what the operator acts
on. `mediaingest_operator_stage_assets{state="pending"}` is the backlog to alert or scale on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mediaingest.pipeline.registry import stage_names

jobs_created_total = Counter(
    "mediaingest_operator_jobs_created_total", "Stage Jobs created by the operator.", ["stage"]
)
stage_failures_total = Counter(
    "mediaingest_operator_stage_failures_total",
    "Stage Job attempts that failed, by whether they will be retried (transient) or not (permanent).",
    ["stage", "kind"],
)
capacity_waits_total = Counter(
    "mediaingest_operator_capacity_waits_total",
    "Launches postponed because a concurrency cap was reached, by cap (global, tenant).",
    ["cap"],
)
assets_finished_total = Counter(
    "mediaingest_operator_assets_finished_total", "MediaAssets that reached Ready or Failed.", ["phase"]
)

assets_expired_total = Counter(
    "mediaingest_operator_assets_expired_total", "Finished MediaAssets deleted by the retention policy."
)

# Index keys (see handlers.handle_asset.index_asset_states): ("phase", phase) and ("stage", stage, state).
IndexView = Mapping[Any, Iterable[Any]]


class OperatorCollector(Collector):
    def __init__(self) -> None:
        self.asset_states: IndexView | None = None
        self.active_jobs: IndexView | None = None
        self.max_running: int | None = None

    def track(self, *, asset_states: IndexView, active_jobs: IndexView, max_running: int) -> None:
        self.asset_states = asset_states
        self.active_jobs = active_jobs
        self.max_running = max_running

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phases = GaugeMetricFamily(
            "mediaingest_operator_assets", "MediaAssets not yet finished, by phase.", labels=["phase"]
        )
        stages = GaugeMetricFamily(
            "mediaingest_operator_stage_assets",
            "MediaAssets with a stage pending (waiting, or backing off before a retry) or running, by stage.",
            labels=["stage", "state"],
        )
        jobs = GaugeMetricFamily("mediaingest_operator_jobs_running", "Stage Jobs active now.")
        limit = GaugeMetricFamily("mediaingest_operator_jobs_limit", "The global cap on stage Jobs running at once.")
        # Every series is present from the start, at zero, so dashboards and KEDA never see a gap.
        phase_counts = {phase: 0 for phase in ("Pending", "Running")}
        stage_counts = {(stage, state): 0 for stage in stage_names() for state in ("pending", "running")}
        if self.asset_states is not None:
            for key, store in list(self.asset_states.items()):
                if key[0] == "phase":
                    phase_counts[key[1]] = len(list(store))
                elif key[0] == "stage":
                    stage_counts[(key[1], key[2])] = len(list(store))
        for phase, count in phase_counts.items():
            phases.add_metric([phase], count)
        for (stage, state), count in stage_counts.items():
            stages.add_metric([stage, state], count)
        if self.active_jobs is not None:
            jobs.add_metric([], sum(len(list(store)) for store in self.active_jobs.values()))
        if self.max_running is not None:
            limit.add_metric([], self.max_running)
        yield phases
        yield stages
        yield jobs
        yield limit


collector = OperatorCollector()
REGISTRY.register(collector)
