"""The chart names its three images (image, image.stage, image.speech) by digest when given one, by tag
otherwise; transcribe.enabled puts the transcript Jobs in the speech image, or turns TRANSCRIBE off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.chart import CHART_DIR, by_kind, env_of, render, run_helm
from mediaingest.models.enums import Stage
from mediaingest.operator.settings import OperatorSettings

APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
MAIN_DIGEST = "sha256:" + "1" * 64
STAGE_DIGEST = "sha256:" + "2" * 64
SPEECH_DIGEST = "sha256:" + "3" * 64


def _images(docs: list[dict[str, Any]]) -> tuple[set[str], dict[str, str]]:
    """Every container image of the release's pods, and the operator's OPERATOR_* environment."""
    images: set[str] = set()
    operator: dict[str, str] = {}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            images.add(container["image"])
            env = env_of(container)
            if "OPERATOR_WORKER_IMAGE" in env:
                operator = env
    return images, operator


def _operator_settings(operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """The operator's settings as it reads them from its rendered environment."""
    for name in ("OPERATOR_WORKER_IMAGE", "OPERATOR_STAGE_IMAGES"):
        monkeypatch.setenv(name, operator_env[name])
    return OperatorSettings()


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    [config] = by_kind(docs, "ConfigMap")
    return dict(config["data"])


def test_images_by_tag_default_to_the_app_version(helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(helm, tmp_path)
    images, operator = _images(docs)
    assert images == {f"mediaingest:{APP_VERSION}"}
    settings = _operator_settings(operator, monkeypatch)
    # transcribe.enabled is the default: the transcript Jobs run in the speech image, every other stage's in
    # the stage image, and no pod is told TRANSCRIBE (each image's own extras decide).
    assert settings.image_for(Stage("transcript")) == f"mediaingest-speech:{APP_VERSION}"
    assert settings.image_for(Stage("proxies")) == f"mediaingest-stage:{APP_VERSION}"
    assert "TRANSCRIBE" not in _config(docs)


def test_digests_pin_all_three_images(helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "image": {
            "repository": "registry.example/mediaingest",
            "tag": "ignored-when-pinned",
            "digest": MAIN_DIGEST,
            "pullPolicy": "IfNotPresent",
            "stage": {"repository": "registry.example/mediaingest-stage", "digest": STAGE_DIGEST},
            "speech": {"repository": "registry.example/mediaingest-speech", "tag": "x", "digest": SPEECH_DIGEST},
        }
    }
    docs = render(helm, tmp_path, values)
    images, operator = _images(docs)
    assert images == {f"registry.example/mediaingest@{MAIN_DIGEST}"}
    settings = _operator_settings(operator, monkeypatch)
    assert settings.worker_image == f"registry.example/mediaingest-stage@{STAGE_DIGEST}"
    assert settings.stage_images == {Stage("transcript"): f"registry.example/mediaingest-speech@{SPEECH_DIGEST}"}
    assert by_kind(docs, "Deployment")  # the API, worker and operator were all rendered


def test_transcription_off_is_off_everywhere_and_no_job_uses_the_speech_image(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(helm, tmp_path, {"transcribe": {"enabled": False}, "image": {"speech": {"tag": "9"}}})
    _, operator = _images(docs)
    settings = _operator_settings(operator, monkeypatch)
    assert settings.stage_images == {}
    assert settings.image_for(Stage("transcript")) == f"mediaingest-stage:{APP_VERSION}"
    # The ConfigMap is the environment of the API, the worker, the operator and every stage Job.
    assert _config(docs)["TRANSCRIBE"] == "off"
    config_name = by_kind(docs, "ConfigMap")[0]["metadata"]["name"]
    for deployment in by_kind(docs, "Deployment"):
        assert {"configMapRef": {"name": config_name}} in deployment["spec"]["template"]["spec"]["containers"][0][
            "envFrom"
        ]
    assert operator["OPERATOR_JOB_CONFIG_MAP_NAME"] == config_name  # the stage Jobs' envFrom


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "image.stage.digest=latest"], "digest"),
        (["--set", "image.speech.digest=sha256:abc"], "digest"),
        (["--set", "transcribe.enabled=yes"], "transcribe"),
        (["--set", "stagePlacement.transcript=worker"], "stagePlacement.transcript=worker"),
    ],
)
def test_bad_image_and_transcription_values_are_refused(helm: Path, args: list[str], complaint: str) -> None:
    refused = run_helm(helm, "template", "r", str(CHART_DIR), *args)
    assert refused.returncode != 0
    assert complaint in refused.stderr, refused.stderr
