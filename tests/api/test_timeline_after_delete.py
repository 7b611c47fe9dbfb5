"""A timeline picture rendered while its asset was being deleted is not kept: the delete removed the asset's
prefix before the picture was uploaded, and the picture would outlive its asset in storage."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mediaingest.assets.timeline import TimelineService, asset_lives
from mediaingest.config import Settings
from mediaingest.db import create_db_engine, create_session_factory, session_scope, utcnow
from mediaingest.exceptions import NotFoundError
from mediaingest.models import MediaAsset, User
from mediaingest.models.enums import AssetProcessingStatus, MediaType, UploadStatus
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.storage.local import LocalStorage


def test_a_picture_of_an_asset_deleted_meanwhile_is_removed_again(database_url: str, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    storage = LocalStorage(tmp_path / "storage", secret=b"test-secret", public_url="http://test")
    storage.ensure_buckets([settings.bucket_processed])
    engine = create_db_engine(database_url, pool_size=2)
    service = TimelineService(
        settings=settings, storage=storage, options=PipelineOptions.from_settings(settings),
        asset_exists=functools.partial(asset_lives, create_session_factory(engine)),
    )  # fmt: skip
    gone: Any = SimpleNamespace(asset_id="an-asset-deleted-meanwhile")
    key = "assets/someone/an-asset-deleted-meanwhile/timeline/frame-00000001-64x36.jpg"
    with pytest.raises(NotFoundError):
        service._store(gone, key, b"\xff\xd8 not really a jpeg", "image/jpeg")
    assert storage.list_keys(settings.bucket_processed, "assets/") == []
    engine.dispose()


def test_the_existence_check_waits_for_a_delete_in_progress(database_url: str) -> None:
    """It answers only once the deleting transaction has ended, so it cannot see the row the delete removes."""
    engine = create_db_engine(database_url, pool_size=4)
    factory = create_session_factory(engine)
    with session_scope(factory) as session:
        user = User(email="deleter@example.com")
        session.add(user)
        session.flush()
        now = utcnow()
        session.add(MediaAsset(
            id="doomed", owner_id=user.id, name="a.mp4", original_name="a.mp4", type=MediaType.VIDEO, file_size=1,
            mime_type="video/mp4", upload_status=UploadStatus.UPLOADED,
            processing_status=AssetProcessingStatus.READY, storage_bucket="incoming", storage_key="uploads/x/doomed",
            upload_expires_at=now, created_at=now, updated_at=now,
        ))  # fmt: skip
    answers: list[bool] = []
    deleting = factory()
    deleting.delete(deleting.get(MediaAsset, "doomed", with_for_update=True))
    deleting.flush()  # the delete holds the row (PostgreSQL) or the write lock (SQLite), not yet committed
    checker = threading.Thread(target=lambda: answers.append(asset_lives(factory, "doomed")))
    checker.start()
    checker.join(timeout=1.0)
    assert checker.is_alive() and answers == [], "the check must wait for the deleting transaction"
    deleting.commit()
    deleting.close()
    checker.join(timeout=30)
    assert answers == [False]
    engine.dispose()
