"""Every command's --help reads as a person expects: value names (TEXT, INTEGER, FILE), nothing beside a
flag, never a Python annotation ("<list[Path]>", "<bool>")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mediaingest.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `group` (typer's groups are click groups in shape, not always in class)."""
    found = [path]
    for name, command in group.commands.items():
        found += _commands(command, (*path, name)) if hasattr(command, "commands") else [(*path, name)]
    return found


def test_every_help_names_values_without_python_annotations() -> None:
    commands = _commands(typer.main.get_command(app))
    assert ("upload",) in commands and ("assets", "list") in commands
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (command, result.output)
        assert not re.search(r"<(bool|str|int|float|list\[|Path)", result.output), (command, result.output)
    upload = runner.invoke(app, ["upload", "--help"], env={"COLUMNS": "120"}).output
    assert re.search(r"--wait\s+Follow", upload)  # a flag takes no value: nothing between it and its help
    assert re.search(r"--server\s+TEXT", upload)


MEDIAINGEST = str(Path(sys.executable).parent / "mediaingest")


@pytest.mark.parametrize(
    ("command", "setting", "said"),
    [
        (
            "serve",
            {"STAGE_MODULES": '["acme.loudness"]'},
            "error: STAGE_MODULES names 'acme.loudness', which cannot be imported: No module named 'acme'",
        ),
        (
            "worker",
            {"STAGE_MODULES": "acme.loudness"},
            'error: error parsing value for field "stage_modules" from source "EnvSettingsSource": Expecting value',
        ),
        ("sweep", {"PORT": "eighty"}, "error: invalid settings: PORT: Input should be a valid integer"),
    ],
)
def test_a_setting_that_cannot_work_ends_in_one_line(
    command: str, setting: dict[str, str], said: str, tmp_path: Path
) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATA_DIR": str(tmp_path / "var"), **setting}
    ran = subprocess.run([MEDIAINGEST, command], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith(said) and ran.stderr.count("\n") == 1, ran.stderr
