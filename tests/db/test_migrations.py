"""Migrations carry live data across: deliveries waiting when the task queue arrives get their tasks."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
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
    upgrade(fresh_database, "a4c1e9d27b36")  # the revision that made the tasks table
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT dedupe_key, name, status, attempts, payload FROM tasks")).all()
    engine.dispose()
    by_key = {row[0]: row for row in rows}
    assert set(by_key) == {"webhook:d-pending", "webhook:d-sending"}
    _, name, status, attempts, payload = by_key["webhook:d-pending"]
    assert (name, status, attempts) == ("webhooks.deliver", "QUEUED", 1)
    assert (payload if isinstance(payload, dict) else json.loads(payload)) == {"deliveryId": "d-pending"}


def _insert(connection: sa.Connection, table_name: str, **values: object) -> None:
    """A row with `values`, every other required column filled with a value of its type."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=connection)
    filler: dict[type, object] = {sa.Integer: 0, sa.Float: 0.0, sa.Boolean: False, sa.DateTime: NOW}
    row = {
        column.name: next((v for kind, v in filler.items() if isinstance(column.type, kind)), "x")
        for column in table.columns
        if not column.nullable and column.name not in values
    }
    connection.execute(table.insert().values(**row, **values))


NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_jobs_and_deliveries_read_their_status_from_their_tasks_after_the_upgrade(fresh_database: str) -> None:
    """Each job gets its stage's task (found by the task's payload), or, when that task was pruned, a finished
    one that says what the row said: no job changes status in the upgrade."""
    upgrade(fresh_database, "3f6a2b8c1d47")
    engine = sa.create_engine(fresh_database)
    with engine.begin() as connection:
        _insert(connection, "users", id="u1", plan="USER", identity_source="API_TOKEN")
        _insert(connection, "media_assets", id="a1", owner_id="u1", type="VIDEO", priority="NORMAL")
        _insert(connection, "tasks", id="t-live", name="stages.run", queue="stages", status="QUEUED", attempts=2,
                max_attempts=5, payload={"assetId": "a1", "stage": "proxies", "jobId": "j-live"},
                dedupe_key="stage:a1:proxies", priority=1)  # fmt: skip
        for job_id, job_type, status, attempts in (("j-live", "PROXY_GENERATION", "RETRYING", 2),
                                                   ("j-old", "METADATA_EXTRACTION", "COMPLETED", 1),
                                                   ("j-failed", "THUMBNAIL_GENERATION", "FAILED", 5)):  # fmt: skip
            _insert(connection, "ingestion_jobs", id=job_id, asset_id="a1", type=job_type, status=status,
                    attempts=attempts, max_attempts=5, priority="NORMAL", logs="[]",
                    error="boom" if status == "FAILED" else None)  # fmt: skip
        _insert(connection, "tasks", id="t-hook", name="webhooks.deliver", queue="default", status="QUEUED",
                attempts=1, max_attempts=8, payload={"deliveryId": "d-live"}, dedupe_key="webhook:d-live")  # fmt: skip
        for delivery_id, status, attempts in (("d-live", "PENDING", 1), ("d-done", "DELIVERED", 2),
                                              ("d-failed", "FAILED", 8)):  # fmt: skip
            _insert(connection, "webhook_deliveries", id=delivery_id, user_id="u1", asset_id="a1", status=status,
                    attempts=attempts, max_attempts=8, payload={}, attempt_log=[], next_attempt_at=NOW,
                    delivered_at=NOW if status == "DELIVERED" else None,
                    last_error="HTTP 503" if status == "FAILED" else None)  # fmt: skip
    upgrade(fresh_database)
    with engine.connect() as connection:
        query = "SELECT j.id, t.id, status, attempts, last_error FROM {} j JOIN tasks t ON t.id = task_id"
        jobs = connection.execute(sa.text(query.format("ingestion_jobs"))).all()
        deliveries = connection.execute(sa.text(query.format("webhook_deliveries"))).all()
    engine.dispose()
    by_job = {row[0]: row[1:] for row in jobs}
    assert by_job["j-live"] == ("t-live", "QUEUED", 2, None)
    assert by_job["j-old"][1:] == ("SUCCEEDED", 1, None)
    assert by_job["j-failed"][1:] == ("FAILED", 5, "boom")
    by_delivery = {row[0]: row[1:] for row in deliveries}
    assert by_delivery["d-live"] == ("t-hook", "QUEUED", 1, None)
    assert by_delivery["d-done"][1:] == ("SUCCEEDED", 2, None)
    assert by_delivery["d-failed"][1:] == ("FAILED", 8, "HTTP 503")


def test_the_migrations_build_the_schema_the_models_describe(fresh_database: str) -> None:
    """A column added to a model without its migration (or the other way round) fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mediaingest.assets.repository import COUNTS_TABLE, TRANSCRIPT_FTS_TABLE
    from mediaingest.db import Base
    from mediaingest.models import asset, job, task, user, webhook  # noqa: F401  (register every table)

    upgrade(fresh_database)
    engine = sa.create_engine(fresh_database)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            diff for diff in compare_metadata(context, Base.metadata)
            if diff[0] in ("add_column", "remove_column", "add_table", "remove_table")
            # SQLite's full-text index of transcripts and its shadow tables, PostgreSQL's counts of assets: the
            # migrations', kept by triggers
            and not (diff[0] == "remove_table" and diff[1].name.startswith((TRANSCRIPT_FTS_TABLE, COUNTS_TABLE)))
            # PostgreSQL's stored text-search vector of transcripts: generated by the database, never mapped
            and not (diff[0] == "remove_column" and diff[3].name == "transcript_tsv")
        ]  # fmt: skip
    engine.dispose()
    assert differences == []


def test_stage_measurements_move_into_json_and_back(fresh_database: str) -> None:
    """loudness, shots and the transcript's language and segments leave their columns for the JSON keyed by
    stage, and come back on a downgrade; the full-text index of transcripts keeps following its column."""
    from alembic import command

    from mediaingest.db.migrate import alembic_config

    upgrade(fresh_database, "b29c1e5d7a10")
    engine = sa.create_engine(fresh_database)
    segments = [{"start": 0.5, "text": "hello there", "words": [[0.5, "hello"], [0.9, " there"]]}]
    loudness = {"integratedLufs": -23.1, "loudnessRangeLu": 4.0, "truePeakDbtp": -1.5}
    with engine.begin() as connection:
        _insert(connection, "users", id="u1", plan="USER", identity_source="API_TOKEN")
        for asset_id in ("a1", "a2"):
            _insert(connection, "media_assets", id=asset_id, owner_id="u1", type="VIDEO", priority="NORMAL",
                    storage_key=f"k/{asset_id}")  # fmt: skip
        _insert(connection, "asset_metadata", asset_id="a1", width=640, loudness=loudness, shots=[1.5, 3.0],
                transcript_language="en", transcript_text="hello there", transcript_segments=segments)  # fmt: skip
        _insert(connection, "asset_metadata", asset_id="a2", width=320)  # probed only

    upgrade(fresh_database)
    with engine.begin() as connection:
        columns = {column["name"] for column in sa.inspect(connection).get_columns("asset_metadata")}
        assert {"loudness", "shots", "transcript_language", "transcript_segments"}.isdisjoint(columns)
        rows = dict(connection.execute(sa.text("SELECT asset_id, measurements FROM asset_metadata")).all())
        stored = {key: value if isinstance(value, dict) else json.loads(value) for key, value in rows.items()}
        assert stored["a1"] == {
            "audio_visuals": {"loudness": loudness},
            "proxies": {"shots": [1.5, 3.0]},
            "transcript": {"transcript_language": "en", "transcript_segments": segments},
        }
        assert stored["a2"] == {}
        if engine.dialect.name == "sqlite":  # the rebuilt table's triggers still keep the full-text index
            connection.execute(
                sa.text("UPDATE asset_metadata SET transcript_text = 'good night' WHERE asset_id = 'a2'")
            )
            said = connection.execute(
                sa.text("SELECT asset_id FROM asset_transcripts_fts WHERE asset_transcripts_fts MATCH 'night'")
            ).scalars()
            assert list(said) == ["a2"]

    command.downgrade(alembic_config(fresh_database), "b29c1e5d7a10")
    with engine.connect() as connection:
        back = connection.execute(
            sa.text(
                "SELECT loudness, shots, transcript_language, transcript_segments FROM asset_metadata"
                " WHERE asset_id = 'a1'"
            )
        ).one()
        columns = {column["name"] for column in sa.inspect(connection).get_columns("asset_metadata")}
    engine.dispose()
    as_json = [value if isinstance(value, list | dict) else json.loads(value) for value in (back[0], back[1], back[3])]
    assert (*as_json, back[2]) == (loudness, [1.5, 3.0], segments, "en")
    assert "measurements" not in columns
