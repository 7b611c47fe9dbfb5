"""Media assets, their extracted metadata and their derived files (proxies, thumbnails, visuals)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaingest.db import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow
from mediaingest.models.enums import (
    AssetProcessingStatus,
    JobPriority,
    MediaType,
    UploadStatus,
)


class MediaAsset(Base):
    __tablename__ = "media_assets"
    __table_args__ = (
        # A listing's orders (tenant, sort key, id) and its type tabs: a page read in order, a deep one counted
        # off the index (migration d3b8e1f4a6c2; on PostgreSQL also a trigram index of lower(original_name)
        # for the search, where pg_trgm is available).
        sa.Index("ix_media_assets_owner_created", "owner_id", "created_at", "id"),
        sa.Index(
            "ix_media_assets_owner_name",
            "owner_id",
            sa.text("lower(original_name)"),
            "id",
            postgresql_include=["original_name"],
        ),
        sa.Index("ix_media_assets_owner_size", "owner_id", "file_size", "id"),
        sa.Index("ix_media_assets_owner_type", "owner_id", "type", "created_at", "id"),
        sa.Index("ix_media_assets_owner_upload_status", "owner_id", "upload_status"),
        sa.Index("ix_media_assets_owner_processing_status", "owner_id", "processing_status"),
        sa.Index("ix_media_assets_owner_project", "owner_id", "project_id"),
        # The sweeper's scan: pending uploads past their expiry.
        sa.Index("ix_media_assets_upload_expiry", "upload_status", "upload_expires_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(sa.String(128))
    name: Mapped[str] = mapped_column(sa.String(255))  # sanitized file name
    original_name: Mapped[str] = mapped_column(sa.String(1024))  # as the client sent it (for display)
    type: Mapped[MediaType] = mapped_column(enum_column(MediaType))
    file_size: Mapped[int] = mapped_column(sa.BigInteger)  # declared, then verified on confirm
    mime_type: Mapped[str] = mapped_column(sa.String(128))
    upload_status: Mapped[UploadStatus] = mapped_column(enum_column(UploadStatus), default=UploadStatus.PENDING)
    processing_status: Mapped[AssetProcessingStatus] = mapped_column(
        enum_column(AssetProcessingStatus), default=AssetProcessingStatus.PENDING
    )
    priority: Mapped[JobPriority] = mapped_column(enum_column(JobPriority), default=JobPriority.NORMAL)
    storage_bucket: Mapped[str] = mapped_column(sa.String(255))
    storage_key: Mapped[str] = mapped_column(sa.String(1024), unique=True)
    multipart_upload_id: Mapped[str | None] = mapped_column(sa.String(1024))
    part_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    etag: Mapped[str | None] = mapped_column(sa.String(128))
    declared_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    checksum: Mapped[str | None] = mapped_column(sa.String(64))  # verified SHA-256 of the stored bytes
    error: Mapped[str | None] = mapped_column(sa.Text)
    upload_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Seconds from the start playable over HLS while the proxies pass runs (the whole length once done).
    playable_seconds: Mapped[float | None] = mapped_column(sa.Float)
    # A clip is an asset of its own, cut from this one (its parent): deleted with it.
    parent_id: Mapped[str | None] = mapped_column(sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True)
    # The clip's range of its parent: inFrame, outFrame (exclusive), frameRate, inTimecode.
    clip: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    metadata_record: Mapped[AssetMetadata | None] = relationship(
        back_populates="asset", cascade="all, delete-orphan", passive_deletes=True, uselist=False
    )
    proxies: Mapped[list[AssetProxy]] = relationship(
        back_populates="asset",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AssetProxy.created_at",
    )


class AssetMetadata(Base):
    """What ffprobe (and Pillow, for images) says about the asset, in columns named as MediaMetadata's fields,
    and what the later stages measured, as JSON by stage (`measurements`)."""

    __tablename__ = "asset_metadata"

    asset_id: Mapped[str] = mapped_column(sa.ForeignKey("media_assets.id", ondelete="CASCADE"), primary_key=True)
    format_name: Mapped[str | None] = mapped_column(sa.String(128))
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float)
    bitrate: Mapped[int | None] = mapped_column(sa.BigInteger)
    video_codec: Mapped[str | None] = mapped_column(sa.String(64))
    video_profile: Mapped[str | None] = mapped_column(sa.String(64))
    video_bitrate: Mapped[int | None] = mapped_column(sa.BigInteger)
    width: Mapped[int | None] = mapped_column(sa.Integer)
    height: Mapped[int | None] = mapped_column(sa.Integer)
    display_width: Mapped[int | None] = mapped_column(sa.Integer)
    display_height: Mapped[int | None] = mapped_column(sa.Integer)
    display_aspect_ratio: Mapped[str | None] = mapped_column(sa.String(32))
    rotation: Mapped[int | None] = mapped_column(sa.Integer)
    fps: Mapped[float | None] = mapped_column(sa.Float)
    frame_rate: Mapped[str | None] = mapped_column(sa.String(32))
    is_variable_frame_rate: Mapped[bool | None] = mapped_column(sa.Boolean)
    frame_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    timecode: Mapped[str | None] = mapped_column(sa.String(32))
    pixel_format: Mapped[str | None] = mapped_column(sa.String(64))
    bit_depth: Mapped[int | None] = mapped_column(sa.Integer)
    color_space: Mapped[str | None] = mapped_column(sa.String(64))
    color_primaries: Mapped[str | None] = mapped_column(sa.String(64))
    color_transfer: Mapped[str | None] = mapped_column(sa.String(64))
    color_range: Mapped[str | None] = mapped_column(sa.String(32))
    has_hdr: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    hdr_format: Mapped[str | None] = mapped_column(sa.String(16))
    mastering_display: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    content_light_level: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    audio_codec: Mapped[str | None] = mapped_column(sa.String(64))
    audio_bitrate: Mapped[int | None] = mapped_column(sa.BigInteger)
    channels: Mapped[int | None] = mapped_column(sa.Integer)
    channel_layout: Mapped[str | None] = mapped_column(sa.String(64))
    sample_rate: Mapped[int | None] = mapped_column(sa.Integer)
    has_audio: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    audio_tracks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    has_video: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    color_depth: Mapped[int | None] = mapped_column(sa.Integer)
    has_alpha: Mapped[bool | None] = mapped_column(sa.Boolean)
    image_format: Mapped[str | None] = mapped_column(sa.String(32))
    exif: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    iptc: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # What the transcript stage heard, searched by full text: on PostgreSQL a GIN index of its stored vector
    # (`transcript_tsv`, a generated column the ORM never reads, migration d3b8e1f4a6c2), on SQLite an FTS5
    # table kept by triggers (the migration 20261207_9c4e1f2a7b58).
    transcript_text: Mapped[str | None] = mapped_column(sa.Text)
    # What the later stages measured, by stage: {"proxies": {"shots": […]}, "transcript": {…}, …}, each as
    # its StageSpec's Measurements model stores it, so a new measurement needs no migration.
    measurements: Mapped[dict[str, dict[str, Any]] | None] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    asset: Mapped[MediaAsset] = relationship(back_populates="metadata_record")


class AssetProxy(Base):
    """One derived file: a rendition, poster, sprite sheet, storyboard, waveform, spectrogram…"""

    __tablename__ = "asset_proxies"
    __table_args__ = (sa.UniqueConstraint("asset_id", "storage_key"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    asset_id: Mapped[str] = mapped_column(sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True)
    # The output's kind: one its stage declares (`StageSpec.outputs`; ProxyType names the built-in ones), so a
    # new kind needs no migration. The VARCHAR(32) the ProxyType column always was.
    type: Mapped[str] = mapped_column(sa.String(32))
    resolution: Mapped[str | None] = mapped_column(sa.String(32))
    format: Mapped[str] = mapped_column(sa.String(16))
    content_type: Mapped[str] = mapped_column(sa.String(128))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    quality: Mapped[str | None] = mapped_column(sa.String(64))
    width: Mapped[int | None] = mapped_column(sa.Integer)
    height: Mapped[int | None] = mapped_column(sa.Integer)
    storage_bucket: Mapped[str] = mapped_column(sa.String(255))
    storage_key: Mapped[str] = mapped_column(sa.String(1024))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    asset: Mapped[MediaAsset] = relationship(back_populates="proxies")
