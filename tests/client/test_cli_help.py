"""Every command's --help reads as a person expects: value names (TEXT, INTEGER, FILE), nothing beside a
flag, never a Python annotation ("<list[Path]>", "<bool>")."""

from __future__ import annotations

import re
from typing import Any

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
