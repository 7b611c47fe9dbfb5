"""The stage registry is the one place stages are defined: everything that lists stages agrees with it."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from pydantic import Field, ValidationError

from mediaingest.models.enums import IngestionJobType, MediaType, Stage
from mediaingest.operator.settings import OperatorSettings, default_stage_configs
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import (
    BUILT_IN,
    JobResources,
    OutputKind,
    StageRole,
    StageSpec,
    UnknownStageError,
    job_type_for,
    label_for,
    register,
    spec_for,
    stage_for_job_type,
    stage_named,
    stage_names,
    stage_with_role,
    stages,
)
from mediaingest.pipeline.types import Measurements, MediaMetadata, StageOutput, StageResult
from mediaingest.worker.stage_host import checked_data

ROOT = Path(__file__).resolve().parents[1]


def _sync_stages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_stages", ROOT / "mk/sync_stages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_stage_is_in_the_registry_once_probe_first() -> None:
    assert stages() == BUILT_IN and stage_names()[0] == stage_with_role(StageRole.DESCRIBES_SOURCE) == "probe"
    assert stage_with_role(StageRole.PLAYBACK) == "proxies"
    for spec in stages():
        assert spec_for(spec.stage) is spec and stage_for_job_type(spec.job_type) == spec.stage
        assert job_type_for(spec.stage) == spec.job_type and label_for(spec.job_type) == spec.label


def test_names_from_outside_are_checked_against_the_registry() -> None:
    assert stage_named("proxies") == "proxies"
    with pytest.raises(UnknownStageError, match=r"unknown stage 'proxy'; one of \['probe', 'proxies'"):
        stage_named("proxy")
    with pytest.raises(UnknownStageError, match="no stage makes 'TRANSCODE' jobs"):
        stage_for_job_type("TRANSCODE")
    # An operator configured for a stage nobody registered refuses to start, naming it.
    with pytest.raises(ValueError, match="unknown stage 'loudness'"):
        OperatorSettings(_env_file=None, stages={"loudness": {"activeDeadlineSeconds": 60}})  # type: ignore[call-arg]


def _spec(
    name: str,
    job_type: str,
    media: frozenset[MediaType] = frozenset({MediaType.AUDIO}),
    outputs: tuple[OutputKind, ...] = (),
) -> StageSpec:
    return StageSpec(
        stage=Stage(name),
        job_type=IngestionJobType(job_type),
        label="Measuring",
        media=media,
        run=lambda job: StageResult(),
        resources=JobResources(("1", "1"), ("1Gi", "1Gi"), "1Gi", "1Gi", 60),
        outputs=outputs,
    )


@pytest.mark.parametrize(
    ("spec", "refusal"),
    [
        (_spec("proxies", "LOUDNESS"), "clashes with the registered 'proxies'"),
        (_spec("loudness", "PROXY_GENERATION"), "clashes with the registered 'proxies'"),
        (_spec("Loudness", "LOUDNESS"), "lower-case letters"),
        (_spec("a" * 33, "LOUDNESS"), "at most 32"),  # the CRD's plan items hold 32
        (_spec("loudness", "loudness"), "upper-case letters"),
        (_spec("loudness", "LOUDNESS", frozenset()), "applies to no media type"),
        # an output kind fills AssetProxy.type (32 characters) and names one stage's files only
        (_spec("loudness", "LOUDNESS", outputs=(OutputKind("curve", "image", "Curve"),)), "upper-case letters"),
        (_spec("loudness", "LOUDNESS", outputs=(OutputKind("C" * 33, "image", "Curve"),)), "at most 32"),
        (
            _spec(
                "loudness", "LOUDNESS", outputs=(OutputKind("CURVE", "image", "A"), OutputKind("CURVE", "json", "B"))
            ),
            "declares an output kind twice",
        ),
        (
            _spec("loudness", "LOUDNESS", outputs=(OutputKind("WAVEFORM", "image", "Mine"),)),
            "written by 'audio_visuals'",
        ),
        # the core asks for the stage with a role: exactly one has each
        (dataclasses.replace(_spec("loudness", "LOUDNESS"), role=StageRole.PLAYBACK), "the role playback"),
    ],
)
def test_a_stage_that_would_clash_or_not_fit_is_refused(spec: StageSpec, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        register(spec)
    assert stages() == BUILT_IN


class _Unsent(Measurements):
    kept: int = Field(exclude=True)


class _BadColumn(Measurements):
    columns = frozenset({"width"})


@pytest.mark.parametrize(
    ("model", "refusal"), [(_Unsent, r"unsent measurements \['kept'\] need a default"), (_BadColumn, "not fields")]
)
def test_measurements_that_could_not_be_read_back_are_refused(model: type[Measurements], refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        register(dataclasses.replace(_spec("loudness", "LOUDNESS"), measurements=model))


def test_a_result_is_recorded_only_as_its_stage_declares_it(tmp_path: Path) -> None:
    """Measurements are checked against the stage's model, outputs against its kinds (a pod's report too)."""
    still = StageOutput(kind="POSTER", path=tmp_path / "p.jpg", bucket="processed", format="jpeg",
                        content_type="image/jpeg")  # fmt: skip
    assert checked_data(Stage("thumbnails"), StageResult(outputs=[still])) is None
    with pytest.raises(ValueError, match=r"does not declare: \['POSTER'\]"):
        checked_data(Stage("transcript"), StageResult(outputs=[still]))
    measured = checked_data(Stage("audio_visuals"), StageResult(measurements={"loudness": {"integratedLufs": -20}}))
    assert measured is not None and measured.stored() == {"loudness": {"integratedLufs": -20}}
    with pytest.raises(ValidationError, match="Extra inputs"):
        checked_data(Stage("audio_visuals"), StageResult(measurements={"loudnes": {}}))
    with pytest.raises(ValueError, match="declares no measurements"):
        checked_data(Stage("thumbnails"), StageResult(measurements={"shots": []}))


def test_registering_the_same_spec_again_changes_nothing() -> None:
    assert register(BUILT_IN[1]) is BUILT_IN[1] and stages() == BUILT_IN


def test_the_crd_and_the_charts_values_are_the_registrys() -> None:
    """`make crd-sync` writes them; a stage added without running it fails here."""
    sync = _sync_stages()
    rendered = sync.render(ROOT)
    for path, text in rendered.items():
        assert (ROOT / path).read_text() == text, f"{path} differs from the stage registry: run make crd-sync"
    crd = yaml.safe_load(rendered[sync.CRD])
    plan = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["stages"]
    assert plan["items"]["enum"] == stage_names() and plan["maxItems"] == len(stage_names())
    # The chart's copy, in the crds/ folder Helm installs before any template, is written with it.
    assert rendered[sync.CHART_CRD] == rendered[sync.CRD]
    assert sync.CHART_CRD.parts[:3] == ("charts", "mediaingest", "crds")
    schema = json.loads(rendered[sync.VALUES_SCHEMA])
    assert list(schema["properties"]["jobs"]["properties"]["stages"]["properties"]) == stage_names()
    # The chart's defaults are the registry's: the operator reads the same numbers either way.
    values = yaml.safe_load(rendered[sync.VALUES])["jobs"]["stages"]
    assert list(values) == stage_names()
    assert OperatorSettings(_env_file=None, stages=values).stages == default_stage_configs()  # type: ignore[call-arg]


def test_plans_follow_the_registry() -> None:
    assert stages_for(MediaType.VIDEO) == ["probe", "proxies", "thumbnails", "audio_visuals", "transcript"]
    assert stages_for(MediaType.AUDIO) == ["probe", "audio_visuals", "transcript"]
    assert stages_for(MediaType.IMAGE) == ["probe", "thumbnails"]
    silent = MediaMetadata(has_video=True, has_audio=False)
    assert {"audio_visuals", "transcript"}.isdisjoint(stages_for(MediaType.VIDEO, silent))


def test_job_answers_carry_the_registrys_label_and_document_its_job_types() -> None:
    from mediaingest.assets.schemas import IngestionJobOut, JobOut
    from mediaingest.models.enums import IngestionJobStatus

    job = JobOut(
        id="j", type=IngestionJobType("PROXY_GENERATION"), status=IngestionJobStatus.RUNNING, progress=10.0,
        message=None, error=None, retries=0, attempts=1, started_at=None, finished_at=None,
    )  # fmt: skip
    assert job.model_dump(by_alias=True)["label"] == spec_for("proxies").label == "Making web proxies"
    # Documented as the seed's named enum, from the registry as it is when the document is made.
    schema = IngestionJobOut.model_json_schema()
    assert schema["properties"]["type"] == {"$ref": "#/$defs/IngestionJobType"}
    documented = schema["$defs"]["IngestionJobType"]["enum"]
    assert documented == [
        "METADATA_EXTRACTION", "PROXY_GENERATION", "THUMBNAIL_GENERATION", "AUDIO_ANALYSIS", "TRANSCRIPTION"
    ]  # fmt: skip
