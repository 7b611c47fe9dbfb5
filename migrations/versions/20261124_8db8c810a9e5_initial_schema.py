"""initial schema

Revision ID: 8db8c810a9e5
Revises:
Create Date: 2026-11-24 16:21:11.771349
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8db8c810a9e5"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "plan",
            sa.Enum("USER", "PRO", "ENTERPRISE", name="plan", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "media_assets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("original_name", sa.String(length=1024), nullable=False),
        sa.Column(
            "type",
            sa.Enum("VIDEO", "AUDIO", "IMAGE", name="mediatype", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=False),
        sa.Column(
            "upload_status",
            sa.Enum(
                "PENDING",
                "UPLOADING",
                "UPLOADED",
                "FAILED",
                "EXPIRED",
                name="uploadstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "processing_status",
            sa.Enum(
                "PENDING",
                "PROCESSING",
                "READY",
                "FAILED",
                name="assetprocessingstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.Enum("LOW", "NORMAL", "HIGH", "URGENT", name="jobpriority", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("storage_bucket", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=1024), nullable=False),
        sa.Column("multipart_upload_id", sa.String(length=1024), nullable=True),
        sa.Column("part_size", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.String(length=128), nullable=True),
        sa.Column("declared_sha256", sa.String(length=64), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_media_assets_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_assets")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_media_assets_storage_key")),
    )
    with op.batch_alter_table("media_assets", schema=None) as batch_op:
        batch_op.create_index("ix_media_assets_owner_created", ["owner_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_media_assets_owner_processing_status", ["owner_id", "processing_status"], unique=False
        )
        batch_op.create_index("ix_media_assets_owner_project", ["owner_id", "project_id"], unique=False)
        batch_op.create_index("ix_media_assets_owner_type", ["owner_id", "type"], unique=False)
        batch_op.create_index("ix_media_assets_owner_upload_status", ["owner_id", "upload_status"], unique=False)
        batch_op.create_index("ix_media_assets_upload_expiry", ["upload_status", "upload_expires_at"], unique=False)

    op.create_table(
        "asset_metadata",
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("format_name", sa.String(length=128), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("bitrate", sa.BigInteger(), nullable=True),
        sa.Column("video_codec", sa.String(length=64), nullable=True),
        sa.Column("video_profile", sa.String(length=64), nullable=True),
        sa.Column("video_bitrate", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("display_width", sa.Integer(), nullable=True),
        sa.Column("display_height", sa.Integer(), nullable=True),
        sa.Column("display_aspect_ratio", sa.String(length=32), nullable=True),
        sa.Column("rotation", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("pixel_format", sa.String(length=64), nullable=True),
        sa.Column("bit_depth", sa.Integer(), nullable=True),
        sa.Column("color_space", sa.String(length=64), nullable=True),
        sa.Column("color_primaries", sa.String(length=64), nullable=True),
        sa.Column("color_transfer", sa.String(length=64), nullable=True),
        sa.Column("color_range", sa.String(length=32), nullable=True),
        sa.Column("has_hdr", sa.Boolean(), nullable=False),
        sa.Column("hdr_format", sa.String(length=16), nullable=True),
        sa.Column(
            "mastering_display",
            JSON_TYPE,
            nullable=True,
        ),
        sa.Column(
            "content_light_level",
            JSON_TYPE,
            nullable=True,
        ),
        sa.Column("audio_codec", sa.String(length=64), nullable=True),
        sa.Column("audio_bitrate", sa.BigInteger(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("channel_layout", sa.String(length=64), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("has_audio", sa.Boolean(), nullable=False),
        sa.Column("has_video", sa.Boolean(), nullable=False),
        sa.Column("color_depth", sa.Integer(), nullable=True),
        sa.Column("has_alpha", sa.Boolean(), nullable=True),
        sa.Column("image_format", sa.String(length=32), nullable=True),
        sa.Column("exif", JSON_TYPE, nullable=True),
        sa.Column("iptc", JSON_TYPE, nullable=True),
        sa.Column("raw", JSON_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_asset_metadata_asset_id_media_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_asset_metadata")),
    )
    op.create_table(
        "asset_proxies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "VIDEO",
                "VIDEO_VP9",
                "POSTER",
                "THUMBNAIL",
                "SPRITE_SHEET",
                "STORYBOARD",
                "WAVEFORM",
                "WAVEFORM_PEAKS",
                "SPECTROGRAM",
                name="proxytype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("quality", sa.String(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_bucket", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=1024), nullable=False),
        sa.Column(
            "details",
            JSON_TYPE,
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_asset_proxies_asset_id_media_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_proxies")),
        sa.UniqueConstraint("asset_id", "storage_key", name=op.f("uq_asset_proxies_asset_id_storage_key")),
    )
    with op.batch_alter_table("asset_proxies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_proxies_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "ingestion_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "METADATA_EXTRACTION",
                "PROXY_GENERATION",
                "THUMBNAIL_GENERATION",
                "AUDIO_ANALYSIS",
                name="ingestionjobtype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "RUNNING",
                "RETRYING",
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                name="ingestionjobstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.Enum("LOW", "NORMAL", "HIGH", "URGENT", name="jobpriority", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.String(length=1024), nullable=True),
        sa.Column("logs", JSON_TYPE, nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_assets.id"],
            name=op.f("fk_ingestion_jobs_asset_id_media_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_jobs")),
        sa.UniqueConstraint("asset_id", "type", name=op.f("uq_ingestion_jobs_asset_id_type")),
    )
    with op.batch_alter_table("ingestion_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingestion_jobs_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index("ix_ingestion_jobs_claim", ["status", "available_at", "priority_rank"], unique=False)
        batch_op.create_index("ix_ingestion_jobs_lease_expiry", ["status", "lease_expires_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ingestion_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_ingestion_jobs_lease_expiry")
        batch_op.drop_index("ix_ingestion_jobs_claim")
        batch_op.drop_index(batch_op.f("ix_ingestion_jobs_asset_id"))

    op.drop_table("ingestion_jobs")
    with op.batch_alter_table("asset_proxies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_proxies_asset_id"))

    op.drop_table("asset_proxies")
    op.drop_table("asset_metadata")
    with op.batch_alter_table("media_assets", schema=None) as batch_op:
        batch_op.drop_index("ix_media_assets_upload_expiry")
        batch_op.drop_index("ix_media_assets_owner_upload_status")
        batch_op.drop_index("ix_media_assets_owner_type")
        batch_op.drop_index("ix_media_assets_owner_project")
        batch_op.drop_index("ix_media_assets_owner_processing_status")
        batch_op.drop_index("ix_media_assets_owner_created")

    op.drop_table("media_assets")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
