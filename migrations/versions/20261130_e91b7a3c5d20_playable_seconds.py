"""media_assets.playable_seconds: how much of a video plays over HLS while it is being ingested

Revision ID: e91b7a3c5d20
Revises: c7e2d4b19f05
Create Date: 2026-11-30 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e91b7a3c5d20"
down_revision: str | None = "c7e2d4b19f05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("media_assets") as batch:
        batch.add_column(sa.Column("playable_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_assets") as batch:
        batch.drop_column("playable_seconds")
