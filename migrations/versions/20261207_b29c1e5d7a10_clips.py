"""media_assets.parent_id and .clip: a clip is an asset cut from another, deleted with it

Revision ID: b29c1e5d7a10
Revises: 9c4e1f2a7b58
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b29c1e5d7a10"
down_revision: str | None = "9c4e1f2a7b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("media_assets") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("clip", JSON_TYPE, nullable=True))
        batch.create_foreign_key(
            op.f("fk_media_assets_parent_id_media_assets"), "media_assets", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index(op.f("ix_media_assets_parent_id"), ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("media_assets") as batch:
        batch.drop_index(op.f("ix_media_assets_parent_id"))
        batch.drop_constraint(op.f("fk_media_assets_parent_id_media_assets"), type_="foreignkey")
        batch.drop_column("clip")
        batch.drop_column("parent_id")
