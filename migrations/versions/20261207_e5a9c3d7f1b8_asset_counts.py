"""media_asset_counts (PostgreSQL): a tenant's assets counted by type and status without reading them

A library page says how many assets match (`total`). Counting a tenant's 100,000 assets reads 100,000
index entries on every page (45 ms on a loaded 2-core machine, the floor of every listing). Statement
triggers on media_assets append what each statement changed to media_asset_counts — one row per
(tenant, type, upload status, processing status) that moved, +n or −n — so a total filtered by type and
statuses is a sum over a few rows, exact and in the writer's transaction. Appended, never updated: no
two writers wait for the same counter row. The periodic task `assets.compact_counts` folds the rows into
one per group (`assets.repository.compact_counts`).

SQLite (the embedded default, one writer, small libraries) counts the assets themselves.

Revision ID: e5a9c3d7f1b8
Revises: d3b8e1f4a6c2
Create Date: 2026-12-07 17:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e5a9c3d7f1b8"
down_revision: str | None = "d3b8e1f4a6c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATEMENTS = (
    """CREATE TABLE media_asset_counts (
        owner_id VARCHAR(64) NOT NULL, type VARCHAR(32) NOT NULL, upload_status VARCHAR(32) NOT NULL,
        processing_status VARCHAR(32) NOT NULL, assets BIGINT NOT NULL
    )""",
    "CREATE INDEX ix_media_asset_counts_owner ON media_asset_counts (owner_id)",
    # One function for the three statements: each reads only the transition tables its trigger declares.
    """CREATE FUNCTION media_asset_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO media_asset_counts (owner_id, type, upload_status, processing_status, assets)
            SELECT owner_id, type, upload_status, processing_status, count(*) FROM new_rows GROUP BY 1, 2, 3, 4;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO media_asset_counts (owner_id, type, upload_status, processing_status, assets)
            SELECT owner_id, type, upload_status, processing_status, -count(*) FROM old_rows GROUP BY 1, 2, 3, 4;
        ELSE  -- an update moves assets between groups only when it changes one of the group's columns
            INSERT INTO media_asset_counts (owner_id, type, upload_status, processing_status, assets)
            SELECT owner_id, type, upload_status, processing_status, sum(n) FROM (
                SELECT owner_id, type, upload_status, processing_status, -1 AS n FROM old_rows
                UNION ALL
                SELECT owner_id, type, upload_status, processing_status, 1 AS n FROM new_rows
            ) AS moved GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER media_asset_counts_insert AFTER INSERT ON media_assets REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION media_asset_counts_track()""",
    """CREATE TRIGGER media_asset_counts_update AFTER UPDATE ON media_assets
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION media_asset_counts_track()""",
    """CREATE TRIGGER media_asset_counts_delete AFTER DELETE ON media_assets REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION media_asset_counts_track()""",
    # The assets already there (the triggers see every later change: this runs in their transaction).
    """INSERT INTO media_asset_counts (owner_id, type, upload_status, processing_status, assets)
        SELECT owner_id, type, upload_status, processing_status, count(*) FROM media_assets
        GROUP BY owner_id, type, upload_status, processing_status""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER media_asset_counts_{name} ON media_assets")
    op.execute("DROP FUNCTION media_asset_counts_track()")
    op.execute("DROP TABLE media_asset_counts")
