"""The stage registry is the one place stages are defined: everything that lists stages agrees with it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mediaingest.models.enums import IngestionJobType, MediaType, Stage
from mediaingest.operator.settings import DEFAULT_STAGES, OperatorSettings
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import STAGES, label_for, spec_for, stage_for_job_type
from mediaingest.pipeline.types import MediaMetadata

ROOT = Path(__file__).resolve().parents[1]
NAMES = [spec.stage.value for spec in STAGES]


def _crd_stage_enums(path: Path) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "enum" in node and "probe" in node["enum"]:
                found.append(list(node["enum"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(path.read_text()))
    return found


def test_every_stage_is_in_the_registry_once_probe_first() -> None:
    assert NAMES[0] == "probe" and len(set(NAMES)) == len(NAMES)
    assert sorted(NAMES) == sorted(stage.value for stage in Stage)
    assert sorted(spec.job_type for spec in STAGES) == sorted(IngestionJobType)
    for spec in STAGES:
        assert spec_for(spec.stage) is spec and stage_for_job_type(spec.job_type) == spec.stage
        assert Stage(spec.stage).job_type == spec.job_type and label_for(spec.job_type) == spec.label


def test_the_crd_and_its_chart_copy_list_the_registrys_stages() -> None:
    for crd in (ROOT / "crds/mediaasset.yaml", ROOT / "charts/mediaingest/files/crds/mediaasset.yaml"):
        enums = _crd_stage_enums(crd)
        assert enums and all(enum == NAMES for enum in enums), crd


def test_the_charts_values_and_schema_size_the_registrys_stages() -> None:
    values = yaml.safe_load((ROOT / "charts/mediaingest/values.yaml").read_text())["jobs"]["stages"]
    schema = json.loads((ROOT / "charts/mediaingest/values.schema.json").read_text())
    stage_schema = schema["properties"]["jobs"]["properties"]["stages"]["properties"]
    assert list(values) == NAMES and list(stage_schema) == NAMES
    # The chart's defaults are the registry's: the operator reads the same numbers either way.
    rendered = OperatorSettings(_env_file=None, stages=values)  # type: ignore[call-arg]
    assert rendered.stages == DEFAULT_STAGES


def test_plans_follow_the_registry() -> None:
    assert stages_for(MediaType.VIDEO) == [Stage.PROBE, Stage.PROXIES, Stage.THUMBNAILS, Stage.AUDIO_VISUALS]
    assert stages_for(MediaType.AUDIO) == [Stage.PROBE, Stage.AUDIO_VISUALS]
    assert stages_for(MediaType.IMAGE) == [Stage.PROBE, Stage.THUMBNAILS]
    silent = MediaMetadata(has_video=True, has_audio=False)
    assert Stage.AUDIO_VISUALS not in stages_for(MediaType.VIDEO, silent)


def test_job_answers_carry_the_registrys_label_for_the_page() -> None:
    from mediaingest.assets.schemas import JobOut
    from mediaingest.models.enums import IngestionJobStatus

    job = JobOut(
        id="j", type=IngestionJobType.PROXY_GENERATION, status=IngestionJobStatus.RUNNING, progress=10.0,
        message=None, error=None, retries=0, attempts=1, started_at=None, finished_at=None,
    )  # fmt: skip
    assert job.model_dump(by_alias=True)["label"] == spec_for(Stage.PROXIES).label == "Making web proxies"
