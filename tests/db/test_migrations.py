"""Migrations carry live data across: deliveries waiting when the task queue arrives get their tasks."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from fixtures.database import POSTGRES_ADMIN_DSN
from mediaingest.db.migrate import upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"mediaingest_migration_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+psycopg://", 1))
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_waiting_deliveries_get_their_tasks_in_the_upgrade(fresh_database: str) -> None:
    upgrade(fresh_database, "5b2f0c1d9a7e")  # the last revision before the task queue
    engine = sa.create_engine(fresh_database)
    now = "2026-11-30 12:00:00+00:00"
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, plan, identity_source, created_at) VALUES ('u1', 'USER', 'API_TOKEN', :now)"
            ),
            {"now": now},
        )
        for delivery_id, status in (("d-pending", "PENDING"), ("d-sending", "SENDING"), ("d-done", "DELIVERED")):
            connection.execute(
                sa.text(
                    "INSERT INTO webhook_deliveries (id, user_id, asset_id, event, url, payload, status, attempts,"
                    " max_attempts, next_attempt_at, attempt_log, created_at, updated_at) VALUES (:id, 'u1', 'a1',"
                    " 'asset.ready', 'https://example.com/h', '{}', :status, 1, 8, :now, '[]', :now, :now)"
                ),
                {"id": delivery_id, "status": status, "now": now},
            )
    upgrade(fresh_database)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT dedupe_key, name, status, attempts, payload FROM tasks")).all()
    engine.dispose()
    by_key = {row[0]: row for row in rows}
    assert set(by_key) == {"webhook:d-pending", "webhook:d-sending"}
    _, name, status, attempts, payload = by_key["webhook:d-pending"]
    assert (name, status, attempts) == ("webhooks.deliver", "QUEUED", 1)
    assert (payload if isinstance(payload, dict) else json.loads(payload)) == {"deliveryId": "d-pending"}


def test_the_migrations_build_the_schema_the_models_describe(fresh_database: str) -> None:
    """A column added to a model without its migration (or the other way round) fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mediaingest.db import Base
    from mediaingest.models import asset, job, task, user, webhook  # noqa: F401  (register every table)

    upgrade(fresh_database)
    engine = sa.create_engine(fresh_database)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            diff for diff in compare_metadata(context, Base.metadata)
            if diff[0] in ("add_column", "remove_column", "add_table", "remove_table")
        ]  # fmt: skip
    engine.dispose()
    assert differences == []
