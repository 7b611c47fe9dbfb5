"""The chart names both images (image and image.stage) by digest when given one, by tag otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fixtures.chart import CHART_DIR, by_kind, env_of, render, run_helm

APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
MAIN_DIGEST = "sha256:" + "1" * 64
STAGE_DIGEST = "sha256:" + "2" * 64


def _images(docs: list[dict[str, Any]]) -> tuple[set[str], str]:
    """Every container image of the release's pods, and the image the operator gives stage Jobs."""
    images: set[str] = set()
    stage_image = ""
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            images.add(container["image"])
            stage_image = env_of(container).get("OPERATOR_WORKER_IMAGE", stage_image)
    return images, stage_image


def test_images_by_tag_default_to_the_app_version(helm: Path, tmp_path: Path) -> None:
    images, stage_image = _images(render(helm, tmp_path))
    assert images == {f"mediaingest:{APP_VERSION}"}
    assert stage_image == f"mediaingest-stage:{APP_VERSION}"


def test_digests_pin_both_images(helm: Path, tmp_path: Path) -> None:
    values = {
        "image": {
            "repository": "registry.example/mediaingest",
            "tag": "ignored-when-pinned",
            "digest": MAIN_DIGEST,
            "pullPolicy": "IfNotPresent",
            "stage": {"repository": "registry.example/mediaingest-stage", "digest": STAGE_DIGEST},
        }
    }
    docs = render(helm, tmp_path, values)
    images, stage_image = _images(docs)
    assert images == {f"registry.example/mediaingest@{MAIN_DIGEST}"}
    assert stage_image == f"registry.example/mediaingest-stage@{STAGE_DIGEST}"
    assert by_kind(docs, "Deployment")  # the API, worker and operator were all rendered


def test_a_digest_that_is_not_one_is_refused(helm: Path) -> None:
    refused = run_helm(helm, "template", "r", str(CHART_DIR), "--set", "image.stage.digest=latest")
    assert refused.returncode != 0
    assert "digest" in refused.stderr
