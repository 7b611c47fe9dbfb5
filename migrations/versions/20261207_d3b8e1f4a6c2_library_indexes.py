"""Indexes for a library of 100,000 assets and a queue with 1,000,000 finished tasks

Measured by `make bench-library` (bench/library.py). Each listing order has an index (tenant, sort key, id),
so a page is read in order and a deep page is counted off the index alone (the listing selects the page's
ids first, then their rows); the type filter, the library's tabs, has one too. The name sort's index
includes the name itself: PostgreSQL reads an expression index alone only when it holds the columns the
expression uses. The claim reads queued tasks from partial indexes of the queued rows only, in the claim's
order, however many finished tasks the table keeps.

PostgreSQL: transcripts' text-search vectors are stored (a generated column, `transcript_tsv`, indexed in
place of the expression), and a trigram index (pg_trgm) answers the search's "name contains" without reading
every name of the tenant. pg_trgm is a trusted extension (any user who may create in the database may add it); where it
cannot be created the upgrade says so and goes on without the index: the search stays correct, and slower.

Revision ID: d3b8e1f4a6c2
Revises: d4e7a1c9f3b2
Create Date: 2026-12-07 17:00:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3b8e1f4a6c2"
down_revision: str | None = "d4e7a1c9f3b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

TRGM_INDEX = "CREATE INDEX ix_media_assets_name_trgm ON media_assets USING gin (lower(original_name) gin_trgm_ops)"
_QUEUED = sa.text("status = 'QUEUED'")


def _create_trigram_index() -> None:
    connection = op.get_bind()
    try:
        with connection.begin_nested():  # a failure here must not abort the rest of the upgrade
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            connection.exec_driver_sql(TRGM_INDEX)
    except sa.exc.DBAPIError as error:
        log.warning(
            "pg_trgm could not be created (%s): searching names reads every name of the tenant. "
            "To index it, as a user allowed to: CREATE EXTENSION pg_trgm; %s;",
            str(error.orig).strip().splitlines()[0],
            TRGM_INDEX,
        )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_media_assets_owner_created", table_name="media_assets")
    op.create_index("ix_media_assets_owner_created", "media_assets", ["owner_id", "created_at", "id"])
    op.drop_index("ix_media_assets_owner_type", table_name="media_assets")
    op.create_index("ix_media_assets_owner_type", "media_assets", ["owner_id", "type", "created_at", "id"])
    op.create_index(
        "ix_media_assets_owner_name",
        "media_assets",
        ["owner_id", sa.text("lower(original_name)"), "id"],
        postgresql_include=["original_name"],
    )
    op.create_index("ix_media_assets_owner_size", "media_assets", ["owner_id", "file_size", "id"])
    # The claim's two orders: by priority, then when due (no tenant cap); by tenant first (the cap ranks
    # each tenant's tasks). `id` included: the ranking reads the index alone.
    op.create_index(
        "ix_tasks_queued",
        "tasks",
        ["queue", sa.text("priority DESC"), "run_after", "created_at"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    op.create_index(
        "ix_tasks_queued_by_tenant",
        "tasks",
        ["queue", "tenant", sa.text("priority DESC"), "run_after", "created_at"],
        postgresql_include=["id"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )
    if postgres:
        _create_trigram_index()
        # A phrase search rechecks every transcript the index names (a GIN index keeps words, not their
        # places): from the expression's index it ran to_tsvector on each again (289 transcripts, 113 of
        # the query's 140 ms). Stored, the vector is read instead.
        op.execute(
            "ALTER TABLE asset_metadata ADD COLUMN transcript_tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple'::regconfig, coalesce(transcript_text, ''))) STORED"
        )
        op.execute("DROP INDEX ix_asset_metadata_transcript_fts")
        op.execute("CREATE INDEX ix_asset_metadata_transcript_fts ON asset_metadata USING gin (transcript_tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_media_assets_name_trgm")  # absent where pg_trgm was not available
        op.execute("DROP INDEX ix_asset_metadata_transcript_fts")
        op.execute("ALTER TABLE asset_metadata DROP COLUMN transcript_tsv")
        op.execute(
            "CREATE INDEX ix_asset_metadata_transcript_fts ON asset_metadata "
            "USING gin (to_tsvector('simple'::regconfig, coalesce(transcript_text, '')))"
        )
    op.drop_index("ix_tasks_queued_by_tenant", table_name="tasks")
    op.drop_index("ix_tasks_queued", table_name="tasks")
    op.drop_index("ix_media_assets_owner_size", table_name="media_assets")
    op.drop_index("ix_media_assets_owner_name", table_name="media_assets")
    op.drop_index("ix_media_assets_owner_type", table_name="media_assets")
    op.create_index("ix_media_assets_owner_type", "media_assets", ["owner_id", "type"])
    op.drop_index("ix_media_assets_owner_created", table_name="media_assets")
    op.create_index("ix_media_assets_owner_created", "media_assets", ["owner_id", "created_at"])
