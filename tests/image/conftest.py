"""Tests of the built images (`make image`): marked `image`, run by `make image-test`.

They need root (namespaces, chroot), umoci, and an OCI layout from `make image`; `make test` skips them
(MEDIAINGEST_IMAGE_TESTS unset) because building the images takes minutes and a layout left from an
earlier build may hold older code than the work tree.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fixtures.stage_image import MAIN_IMAGE, OCI_LAYOUT, SPEECH_IMAGE, STAGE_IMAGE, ImagePod, image_config, unpack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("MEDIAINGEST_IMAGE_TESTS") != "1":
        reason = "image tests run with make image-test (MEDIAINGEST_IMAGE_TESTS=1)"
    elif not (OCI_LAYOUT / "index.json").exists():
        reason = f"no OCI layout at {OCI_LAYOUT}: run make image"
    elif missing := {MAIN_IMAGE, STAGE_IMAGE, SPEECH_IMAGE} - _tags(OCI_LAYOUT):
        reason = f"{OCI_LAYOUT} has no {', '.join(sorted(missing))} (built before it was added): run make image"
    elif os.geteuid() != 0 or not shutil.which("umoci") or not shutil.which("unshare"):
        reason = "needs root, umoci and unshare"
    for item in items:
        if reason and item.get_closest_marker("image"):
            item.add_marker(pytest.mark.skip(reason=reason))


def _tags(layout: Path) -> set[str]:
    index = json.loads((layout / "index.json").read_text())
    return {m.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for m in index["manifests"]}


def _image_pod(tmp_path_factory: pytest.TempPathFactory, image: str) -> ImagePod:
    base = tmp_path_factory.mktemp(image)
    rootfs = unpack(OCI_LAYOUT, image, base / "rootfs")
    mountpoint = base / "mnt"
    mountpoint.mkdir()
    return ImagePod(rootfs=rootfs, mountpoint=mountpoint, config=image_config(OCI_LAYOUT, image))


@pytest.fixture(scope="session")
def stage_image(tmp_path_factory: pytest.TempPathFactory) -> ImagePod:
    return _image_pod(tmp_path_factory, STAGE_IMAGE)


@pytest.fixture(scope="session")
def speech_image(tmp_path_factory: pytest.TempPathFactory) -> ImagePod:
    return _image_pod(tmp_path_factory, SPEECH_IMAGE)


@pytest.fixture(scope="session")
def main_image(tmp_path_factory: pytest.TempPathFactory) -> ImagePod:
    return _image_pod(tmp_path_factory, MAIN_IMAGE)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    return folder
