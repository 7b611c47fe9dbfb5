"""Where a clip's render task is deferred: a queue some worker claims, whatever the executor."""

from __future__ import annotations

from conftest import SettingsFactory
from mediaingest.assets.clips import render_queue
from mediaingest.pipeline.registry import stage_names
from mediaingest.tasks.registry import DEFAULT_QUEUE, STAGES_QUEUE


def test_the_render_task_goes_where_a_worker_will_claim_it(make_settings: SettingsFactory) -> None:
    assert render_queue(make_settings()) == STAGES_QUEUE  # one machine: the worker runs stages
    every_stage_a_job = {stage: "job" for stage in stage_names()}
    assert render_queue(make_settings(executor="kubernetes", stage_placement=every_stage_a_job)) == DEFAULT_QUEUE
    some_on_workers = every_stage_a_job | {"probe": "worker"}
    assert render_queue(make_settings(executor="kubernetes", stage_placement=some_on_workers)) == STAGES_QUEUE
