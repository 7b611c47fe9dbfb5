"""asset_metadata.transcript_*: what is said, searchable by full text

PostgreSQL: a GIN index on the `simple` text-search vector of transcript_text (words as said, any
language, no stemming). SQLite: an FTS5 table with the same words (unicode61), kept by triggers on
asset_metadata, so every write of the column (the probe's new row, the transcript stage's update, a
deletion) reaches it. A later migration that rebuilds asset_metadata on SQLite (batch mode's copy and
rename) drops these triggers with the old table: it must create them again (`_SQLITE_TRIGGERS`).

Revision ID: 9c4e1f2a7b58
Revises: c8a4f2e6b1d3
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9c4e1f2a7b58"
down_revision: str | None = "c8a4f2e6b1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expression the search query repeats (assets/repository.py), so PostgreSQL uses the index.
_PG_INDEX = (
    "CREATE INDEX ix_asset_metadata_transcript_fts ON asset_metadata "
    "USING gin (to_tsvector('simple'::regconfig, coalesce(transcript_text, '')))"
)
_SQLITE_TRIGGERS = (
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


def upgrade() -> None:
    op.add_column("asset_metadata", sa.Column("transcript_language", sa.String(length=16), nullable=True))
    op.add_column("asset_metadata", sa.Column("transcript_text", sa.Text(), nullable=True))
    op.add_column(
        "asset_metadata",
        sa.Column("transcript_segments", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_INDEX)
    else:
        op.execute(
            "CREATE VIRTUAL TABLE asset_transcripts_fts USING fts5(asset_id UNINDEXED, transcript_text, "
            "tokenize = 'unicode61 remove_diacritics 0')"
        )
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_asset_metadata_transcript_fts")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER asset_transcripts_fts_{name}")
        op.execute("DROP TABLE asset_transcripts_fts")
    with op.batch_alter_table("asset_metadata") as batch:
        batch.drop_column("transcript_segments")
        batch.drop_column("transcript_text")
        batch.drop_column("transcript_language")
