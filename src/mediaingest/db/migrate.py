"""Applying the Alembic migrations programmatically (`mediaingest db upgrade`, `make run`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_REPO_ROOT = Path(__file__).resolve().parents[3]


def alembic_config(database_url: str) -> Config:
    # The source checkout keeps alembic.ini at the root; the worker image copies it to its workdir.
    candidates = [_REPO_ROOT / "alembic.ini", Path.cwd() / "alembic.ini"]
    ini = next((path for path in candidates if path.exists()), None)
    if ini is None:
        raise FileNotFoundError("alembic.ini not found next to the source tree or in the working directory")
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
