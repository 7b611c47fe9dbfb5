"""Every query on assets, so the API, the worker and the operator share one meaning of "my assets"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from mediaingest.db import is_postgres
from mediaingest.models import AssetMetadata, IngestionJob, MediaAsset, User
from mediaingest.models.enums import AssetProcessingStatus, MediaType, UploadStatus
from mediaingest.pipeline.captions import tokens


def get_owned(
    session: Session, *, asset_id: str, owner_id: str, for_update: bool = False, with_details: bool = False
) -> MediaAsset | None:
    """The tenant boundary: an asset is found only through its owner."""
    query = sa.select(MediaAsset).where(MediaAsset.id == asset_id, MediaAsset.owner_id == owner_id)
    if with_details:
        query = query.options(selectinload(MediaAsset.metadata_record), selectinload(MediaAsset.proxies))
    if for_update and is_postgres(session):
        query = query.with_for_update()
    return session.scalar(query)


def all_owned(session: Session, *, owner_id: str) -> Sequence[MediaAsset]:
    """Every asset of a tenant, locked (deleting a user takes them all)."""
    query = sa.select(MediaAsset).where(MediaAsset.owner_id == owner_id).order_by(MediaAsset.created_at)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).all()


def clips_of(session: Session, asset_id: str) -> Sequence[MediaAsset]:
    """The clips cut from an asset, oldest first, locked (they are deleted with it)."""
    query = sa.select(MediaAsset).where(MediaAsset.parent_id == asset_id).order_by(MediaAsset.created_at)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).all()


def get_for_update(session: Session, asset_id: str) -> MediaAsset | None:
    """For the worker and the operator, which act for the system rather than a tenant."""
    query = sa.select(MediaAsset).where(MediaAsset.id == asset_id)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalar(query)


def lock_user(session: Session, user_id: str) -> User | None:
    """Serializes a tenant's quota decisions (SQLite serializes all writers at BEGIN IMMEDIATE)."""
    query = sa.select(User).where(User.id == user_id)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalar(query)


def bytes_used(session: Session, *, owner_id: str) -> tuple[int, int]:
    """(stored, reserved): verified uploads, and the declared sizes of uploads still in flight."""
    # Sums without GROUP BY: exactly one row each, and coalesce makes an empty sum 0.
    stored = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(MediaAsset.file_size), 0)).where(
            MediaAsset.owner_id == owner_id, MediaAsset.upload_status == UploadStatus.UPLOADED
        )
    ).scalar_one()
    reserved = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(MediaAsset.file_size), 0)).where(
            MediaAsset.owner_id == owner_id,
            # Until the sweeper expires it: an upload past its deadline may still be receiving parts.
            MediaAsset.upload_status.in_([UploadStatus.PENDING, UploadStatus.UPLOADING]),
        )
    ).scalar_one()
    return int(stored), int(reserved)


@dataclass(frozen=True)
class AssetFilters:
    upload_status: UploadStatus | None = None
    processing_status: AssetProcessingStatus | None = None
    media_type: MediaType | None = None
    project_id: str | None = None
    id_prefix: str | None = None  # the first characters of an id, as people type them from a listing
    # A search as people type it: case-insensitive, anywhere in the name; or said in the asset, as a phrase.
    name_contains: str | None = None
    parent_id: str | None = None  # the clips cut from this asset

    def conditions(self, *, postgres: bool) -> list[sa.ColumnElement[bool]]:
        conditions = []
        if self.name_contains:
            name = sa.func.lower(MediaAsset.original_name)
            matches = name.contains(self.name_contains.lower(), autoescape=True)
            said = spoken_phrase(self.name_contains, postgres=postgres)
            conditions.append(matches if said is None else sa.or_(matches, said))
        if self.id_prefix is not None:
            conditions.append(MediaAsset.id.startswith(self.id_prefix.lower(), autoescape=True))
        equal_to = (
            (MediaAsset.parent_id, self.parent_id),
            (MediaAsset.upload_status, self.upload_status),
            (MediaAsset.processing_status, self.processing_status),
            (MediaAsset.type, self.media_type),
            (MediaAsset.project_id, self.project_id),
        )
        return conditions + [column == value for column, value in equal_to if value is not None]

    def counted(self, counts: sa.TableClause) -> list[sa.ColumnElement[bool]] | None:
        """These filters over the per-group counts (type, statuses), or None when they filter on more."""
        if any(f is not None for f in (self.project_id, self.id_prefix, self.name_contains, self.parent_id)):
            return None
        wanted = {"type": self.media_type, "upload_status": self.upload_status,
                  "processing_status": self.processing_status}  # fmt: skip
        return [counts.c[column] == value.value for column, value in wanted.items() if value is not None]


# SQLite's full-text index of transcripts (migration 9c4e1f2a7b58): an FTS5 table kept by triggers.
TRANSCRIPT_FTS_TABLE = "asset_transcripts_fts"
_transcript_fts = sa.table(TRANSCRIPT_FTS_TABLE, sa.column("asset_id"), sa.column("transcript_text"))


def spoken_phrase(text: str, *, postgres: bool) -> sa.ColumnElement[bool] | None:
    """Assets whose transcript says `text`'s words in that order (full text: whole words, any case).

    The words are extracted here (`captions.tokens`) rather than passed to the query parser, so no
    search string is FTS syntax, and both databases see the same words.
    """
    words = tokens(text)
    if not words:
        return None
    if postgres:
        # The stored `simple` vector of transcript_text (migration d3b8e1f4a6c2), GIN-indexed: a phrase's
        # recheck reads it rather than parsing each transcript again.
        vector: sa.ColumnElement[Any] = sa.literal_column("asset_metadata.transcript_tsv")
        query = sa.func.phraseto_tsquery(sa.literal_column("'simple'::regconfig"), " ".join(words))
        # `id = ANY(ARRAY(…))`, not `id IN (…)`: ORed with the name's condition, the array lets PostgreSQL
        # combine the primary key's and the name's trigram index (a BitmapOr); an IN subquery is a filter
        # it can only apply to every asset of the tenant in turn (measured: 2,668 matches of 100,000
        # assets, 180 ms → 28 ms on a loaded 2-core machine).
        said = sa.select(AssetMetadata.asset_id).where(vector.op("@@")(query)).scalar_subquery()
        return MediaAsset.id == sa.any_(sa.func.array(said))
    phrase = '"' + " ".join(words) + '"'
    return MediaAsset.id.in_(
        sa.select(_transcript_fts.c.asset_id).where(sa.literal_column(TRANSCRIPT_FTS_TABLE).op("MATCH")(phrase))
    )


# PostgreSQL's counts of each tenant's assets by type and statuses, appended by triggers (migration
# e5a9c3d7f1b8): a page's total is a sum over a few rows instead of a count of the tenant's assets.
COUNTS_TABLE = "media_asset_counts"
_asset_counts = sa.table(
    COUNTS_TABLE,
    sa.column("owner_id"), sa.column("type"), sa.column("upload_status"), sa.column("processing_status"),
    sa.column("assets", sa.BigInteger),
)  # fmt: skip


def count_owned(session: Session, *, owner_id: str, filters: AssetFilters) -> int:
    """How many of the tenant's assets `filters` lets through."""
    postgres = is_postgres(session)
    counted = filters.counted(_asset_counts) if postgres else None
    if counted is not None:
        total = sa.func.coalesce(sa.func.sum(_asset_counts.c.assets), 0)
        return int(session.execute(sa.select(total).where(_asset_counts.c.owner_id == owner_id, *counted)).scalar_one())
    conditions = filters.conditions(postgres=postgres)
    query = sa.select(sa.func.count()).select_from(MediaAsset).where(MediaAsset.owner_id == owner_id, *conditions)
    return int(session.execute(query).scalar_one())  # count(*) without GROUP BY: one row, never NULL


_GROUP = "owner_id, type, upload_status, processing_status"
# Only groups with more than one row are rewritten: a quiet tenant's counts stay as they are.
_COMPACT = f"""
WITH moved AS (
    SELECT {_GROUP} FROM media_asset_counts GROUP BY {_GROUP} HAVING count(*) > 1
), folded AS (
    DELETE FROM media_asset_counts AS c USING moved AS m
    WHERE (c.owner_id, c.type, c.upload_status, c.processing_status)
        = (m.owner_id, m.type, m.upload_status, m.processing_status)
    RETURNING c.owner_id, c.type, c.upload_status, c.processing_status, c.assets
)
INSERT INTO media_asset_counts ({_GROUP}, assets)
SELECT {_GROUP}, sum(assets) FROM folded GROUP BY {_GROUP} HAVING sum(assets) <> 0
"""  # noqa: S608  (constant column names, no input)


def compact_counts(session: Session) -> int:
    """Folds the appended counts into one row per group, dropping groups that came to nothing; returns how
    many groups it folded. One statement: a count another transaction appends meanwhile is kept."""
    if not is_postgres(session):
        return 0
    return int(session.execute(sa.text(_COMPACT)).rowcount)  # type: ignore[attr-defined]


# How a listing can be ordered: the API's names → columns; "-" in front for descending.
SORTS: dict[str, Any] = {
    "createdAt": MediaAsset.created_at,
    "name": sa.func.lower(MediaAsset.original_name),
    "fileSize": MediaAsset.file_size,
}


def exists_for_share(session: Session, *, asset_id: str) -> bool:
    """Whether the asset still exists, once any transaction deleting it has ended (FOR SHARE waits for its
    row lock; SQLite's writers are serialized already)."""
    found = session.scalar(sa.select(MediaAsset.id).where(MediaAsset.id == asset_id).with_for_update(read=True))
    return found is not None


@dataclass(frozen=True)
class PageWindow:
    """Which rows of a sorted listing one page reads: `skip` rows, then up to `limit`, counted from the
    listing's far end (its order reversed) when `from_end`."""

    skip: int
    limit: int
    from_end: bool

    @classmethod
    def of(cls, *, total: int, page: int, page_size: int) -> PageWindow:
        # A page past the middle is read from the far end, the same index backwards: reaching the last
        # of 100,000 rows then walks one page of index entries instead of 99,980.
        skip = (page - 1) * page_size
        left_after = total - skip - page_size
        if skip <= max(0, left_after):
            return cls(skip=skip, limit=page_size, from_end=False)
        limit = max(0, min(page_size, total - skip))
        return cls(skip=max(0, left_after), limit=limit, from_end=True)


def list_owned(
    session: Session,
    *,
    owner_id: str,
    filters: AssetFilters,
    page: int,
    page_size: int,
    sort: str = "-createdAt",
    with_previews: bool = False,
) -> tuple[Sequence[MediaAsset], int]:
    conditions = [MediaAsset.owner_id == owner_id, *filters.conditions(postgres=is_postgres(session))]
    total = count_owned(session, owner_id=owner_id, filters=filters)
    window = PageWindow.of(total=total, page=page, page_size=page_size)
    if window.limit == 0:
        return [], total
    # Ties go the sort's way too, so each order is one index (tenant, key, id) read forwards or backwards.
    column = SORTS[sort.removeprefix("-")]
    descending = sort.startswith("-") != window.from_end
    order = (column.desc(), MediaAsset.id.desc()) if descending else (column, MediaAsset.id)
    # The page's ids first, then their rows: skipping to a deep page reads index entries, not 100,000 rows.
    # (A search's total is not counted in the same pass, with count(*) OVER (): PostgreSQL 15 then costs
    # the window as if LIMIT stopped it early and reads the tenant's 100,000 rows in order, 218 ms.)
    page_ids = (
        sa.select(MediaAsset.id)
        .where(*conditions)
        .order_by(*order)
        .limit(window.limit)
        .offset(window.skip)
        .subquery("page_ids")
    )
    query = sa.select(MediaAsset).join(page_ids, page_ids.c.id == MediaAsset.id).order_by(*order)
    if with_previews:  # the poster and the duration of each row, in two queries for the whole page
        query = query.options(selectinload(MediaAsset.metadata_record), selectinload(MediaAsset.proxies))
    rows = session.scalars(query).all()
    return (rows[::-1] if window.from_end else rows), total


def library_changes(session: Session, *, owner_id: str, since: datetime) -> tuple[Sequence[MediaAsset], int]:
    """What a library stream looks at on each poll: the tenant's assets still moving (uploading or
    processing) or changed since `since`, and how many assets the tenant has (a drop means a deletion)."""
    moving = sa.or_(
        MediaAsset.upload_status.in_([UploadStatus.PENDING, UploadStatus.UPLOADING]),
        sa.and_(
            MediaAsset.upload_status == UploadStatus.UPLOADED,
            MediaAsset.processing_status.in_([AssetProcessingStatus.PENDING, AssetProcessingStatus.PROCESSING]),
        ),
    )
    owned = MediaAsset.owner_id == owner_id
    changed = session.scalars(
        sa.select(MediaAsset)
        .where(owned, sa.or_(moving, MediaAsset.updated_at >= since))
        .order_by(MediaAsset.created_at)
    ).all()
    return changed, count_owned(session, owner_id=owner_id, filters=AssetFilters())


def jobs_of(session: Session, asset_id: str) -> Sequence[IngestionJob]:
    return session.scalars(
        sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id).order_by(IngestionJob.created_at)
    ).all()


def expired_pending_uploads(session: Session, *, now: datetime, limit: int = 500) -> Sequence[MediaAsset]:
    query = (
        sa.select(MediaAsset)
        .where(
            MediaAsset.upload_status.in_([UploadStatus.PENDING, UploadStatus.UPLOADING]),
            MediaAsset.upload_expires_at <= now,
        )
        .order_by(MediaAsset.upload_expires_at)
        .limit(limit)
    )
    if is_postgres(session):
        # The sweep is a periodic task, one at a time: it may wait the moment a confirm holds a row.
        query = query.with_for_update()
    return session.scalars(query).all()


_WAITING_FOR_BYTES = (UploadStatus.PENDING, UploadStatus.UPLOADING)


def accepts_upload(session: Session, *, bucket: str, key: str) -> bool:
    """Whether an upload URL may still write `bucket/key`: its asset exists and waits for its bytes.
    Past its idle deadline too, until swept: a part arriving then keeps the session open, as on S3."""
    found = session.scalar(
        sa.select(MediaAsset.id).where(
            MediaAsset.storage_bucket == bucket,
            MediaAsset.storage_key == key,
            MediaAsset.upload_status.in_(_WAITING_FOR_BYTES),
        )
    )
    return found is not None


def keys_of_live_assets(session: Session, *, bucket: str, keys: Sequence[str]) -> set[str]:
    """Which of these upload keys belong to an asset that may hold bytes there (waiting or verified)."""
    if not keys:
        return set()
    rows = session.scalars(
        sa.select(MediaAsset.storage_key).where(
            MediaAsset.storage_bucket == bucket,
            MediaAsset.storage_key.in_(keys),
            MediaAsset.upload_status.in_([*_WAITING_FOR_BYTES, UploadStatus.UPLOADED]),
        )
    )
    return set(rows)
