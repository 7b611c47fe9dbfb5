"""deploy/compose.yaml: valid by the Compose Specification's JSON schema (vendored in tests/data), and
configured like the chart, with the same images and commands the CLI has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import typer
import yaml

from mediaingest.cli import app
from mediaingest.config import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
SCHEMA = json.loads((REPO / "tests" / "data" / "compose-spec" / "compose-spec.json").read_text())
CHART = REPO / "charts" / "mediaingest"
MEDIAINGEST_SERVICES = ("migrate", "api", "worker")


def _settings_names() -> set[str]:
    return {field.alias or name.upper() for name, field in Settings.model_fields.items()}


def test_the_compose_file_is_valid_by_the_specification() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_check_refuses_what_compose_refuses() -> None:
    broken: dict[str, Any] = {"services": {"api": {"image": "x", "healthcheck": {"test": 5}, "restart": []}}}
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))


def test_it_names_the_charts_settings_and_only_real_ones() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = set(values["config"]) | set(values["secret"]["values"])
    for service in MEDIAINGEST_SERVICES:
        environment = set(COMPOSE["services"][service]["environment"])
        assert chart <= environment, (service, sorted(chart - environment))
        assert environment <= _settings_names(), (service, sorted(environment - _settings_names()))


def test_mediaingest_services_run_the_release_image_as_the_chart_does() -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for service in MEDIAINGEST_SERVICES:
        spec = COMPOSE["services"][service]
        assert spec["image"] == f"${{MEDIAINGEST_IMAGE:-{values['image']['repository']}:{version}}}"
        assert (
            spec["user"] == f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
        )
        assert spec["read_only"] is True and spec["tmpfs"] == ["/tmp"]
    assert COMPOSE["services"]["postgres"]["volumes"] == ["database:/var/lib/postgresql/data"]
    assert all("healthcheck" in COMPOSE["services"][name] for name in ("postgres", "minio", "api", "worker"))


def test_every_command_is_one_the_cli_has() -> None:
    cli = typer.main.get_command(app)
    for service in MEDIAINGEST_SERVICES:
        program, *words = COMPOSE["services"][service]["command"]
        assert program == "mediaingest"
        command: Any = cli
        while words and words[0] in getattr(command, "commands", {}):
            command = command.commands[words.pop(0)]
        assert command is not cli, (service, words)
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        given = {word for word in words if word.startswith("--")}
        assert given <= options, (service, sorted(given - options))
