"""users.identity_source: API-token users and JWT users in separate namespaces

Revision ID: 5b2f0c1d9a7e
Revises: 0d7df8ab15e5
Create Date: 2026-11-30 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b2f0c1d9a7e"
down_revision: str | None = "0d7df8ab15e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "identity_source",
                sa.Enum("API_TOKEN", "JWT", name="identitysource", native_enum=False, length=32),
                nullable=False,
                server_default="API_TOKEN",
            )
        )
    # Users created by a JWT on first sight had neither an e-mail nor a token of ours.
    op.execute(
        "UPDATE users SET identity_source = 'JWT' WHERE email IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM api_tokens WHERE api_tokens.user_id = users.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("identity_source")
