"""asset_metadata: what an editing timeline needs (timeline rate, variable rate, frame count, start
timecode, every audio track, loudness, shots)

Revision ID: c7e2d4b19f05
Revises: a4c1e9d27b36
Create Date: 2026-11-30 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c7e2d4b19f05"
down_revision: str | None = "a4c1e9d27b36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("frame_rate", "is_variable_frame_rate", "frame_count", "timecode", "audio_tracks", "loudness", "shots")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("asset_metadata") as batch:
        batch.add_column(sa.Column("frame_rate", sa.String(32), nullable=True))
        batch.add_column(sa.Column("is_variable_frame_rate", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("frame_count", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("timecode", sa.String(32), nullable=True))
        batch.add_column(sa.Column("audio_tracks", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("loudness", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("shots", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("asset_metadata") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
