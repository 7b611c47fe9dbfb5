"""asset_metadata.measurements: what the stages after the probe measure, as JSON keyed by stage

Each StageSpec names a Measurements model; its values are kept under the stage's name, so a new measurement
needs no migration. Today's columns move in: loudness (audio_visuals), shots (proxies), transcript_language
and transcript_segments (transcript), each row's values carried over both ways. The probe's record stays in
columns, and so do audio_tracks (the probe's, refined by the audio stage) and transcript_text (the full-text
index reads it).

On SQLite dropping columns rebuilds asset_metadata (batch mode's copy and rename), which drops the
full-text index's triggers with the old table: they are made again, as 9c4e1f2a7b58 made them.

Revision ID: d4e7a1c9f3b2
Revises: b29c1e5d7a10
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d4e7a1c9f3b2"
down_revision: str | None = "b29c1e5d7a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# column → the stage that measures it (its key in the JSON keeps the column's name)
MOVED = {
    "loudness": "audio_visuals",
    "shots": "proxies",
    "transcript_language": "transcript",
    "transcript_segments": "transcript",
}
_COLUMN_TYPES: dict[str, Any] = {
    "loudness": JSON_TYPE,
    "shots": JSON_TYPE,
    "transcript_language": sa.String(length=16),
    "transcript_segments": JSON_TYPE,
}
_SQLITE_TRIGGERS = (  # as in 9c4e1f2a7b58
    """CREATE TRIGGER asset_transcripts_fts_insert AFTER INSERT ON asset_metadata
    WHEN new.transcript_text IS NOT NULL BEGIN
        INSERT INTO asset_transcripts_fts (asset_id, transcript_text) VALUES (new.asset_id, new.transcript_text);
    END""",
    """CREATE TRIGGER asset_transcripts_fts_update AFTER UPDATE OF transcript_text ON asset_metadata BEGIN
        DELETE FROM asset_transcripts_fts WHERE asset_id = old.asset_id;
        INSERT INTO asset_transcripts_fts (asset_id, transcript_text)
            SELECT new.asset_id, new.transcript_text WHERE new.transcript_text IS NOT NULL;
    END""",
    """CREATE TRIGGER asset_transcripts_fts_delete AFTER DELETE ON asset_metadata BEGIN
        DELETE FROM asset_transcripts_fts WHERE asset_id = old.asset_id;
    END""",
)


def _table(*columns: str) -> sa.TableClause:
    return sa.table(
        "asset_metadata",
        sa.column("asset_id", sa.String()),
        sa.column("measurements", JSON_TYPE),
        *(sa.column(name, _COLUMN_TYPES[name]) for name in columns),
    )


def _after_rebuild() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):  # gone with the old table, unless batch mode altered it
            op.execute(f"DROP TRIGGER IF EXISTS asset_transcripts_fts_{name}")
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def upgrade() -> None:
    with op.batch_alter_table("asset_metadata") as batch:
        batch.add_column(sa.Column("measurements", JSON_TYPE, nullable=True))
    table = _table(*MOVED)
    connection = op.get_bind()
    for row in connection.execute(sa.select(table)).mappings().all():
        measurements: dict[str, dict[str, Any]] = {}
        for column, stage in MOVED.items():
            if row[column] is not None:
                measurements.setdefault(stage, {})[column] = row[column]
        connection.execute(table.update().where(table.c.asset_id == row["asset_id"]).values(measurements=measurements))
    with op.batch_alter_table("asset_metadata") as batch:
        for column in MOVED:
            batch.drop_column(column)
    _after_rebuild()


def downgrade() -> None:
    with op.batch_alter_table("asset_metadata") as batch:
        for column in MOVED:
            batch.add_column(sa.Column(column, _COLUMN_TYPES[column], nullable=True))
    table = _table(*MOVED)
    connection = op.get_bind()
    for row in connection.execute(sa.select(table.c.asset_id, table.c.measurements)).mappings().all():
        measured = row["measurements"] or {}
        values = {column: (measured.get(stage) or {}).get(column) for column, stage in MOVED.items()}
        connection.execute(table.update().where(table.c.asset_id == row["asset_id"]).values(**values))
    with op.batch_alter_table("asset_metadata") as batch:
        batch.drop_column("measurements")
    _after_rebuild()
