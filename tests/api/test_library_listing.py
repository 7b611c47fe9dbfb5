"""The library's listing on both databases: every order pages through the same sequence it lists at once
(ties broken by id, the sort's way), and the search finds names (any case, special characters as typed)
and spoken phrases — the query shapes and indexes of migration d3b8e1f4a6c2 change how, never what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Users
from mediaingest.assets.repository import PageWindow, compact_counts
from mediaingest.config import Settings
from mediaingest.db import create_db_engine, create_session_factory, session_scope
from mediaingest.models import AssetMetadata, MediaAsset, User
from mediaingest.models.enums import AssetProcessingStatus, MediaType, UploadStatus

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# (original name, type, size, minutes after T0, transcript): equal names, sizes and times, so ties matter.
ROWS: list[tuple[str, MediaType, int, int, str | None]] = [
    ("Sunset_Beach.MOV", MediaType.VIDEO, 500, 1, "and now the quarterly budget review begins"),
    ("sunset beach.mov", MediaType.VIDEO, 500, 1, None),
    ("IMG_0001.jpg", MediaType.IMAGE, 100, 2, None),
    ("IMG_0001.jpg", MediaType.IMAGE, 100, 2, None),
    ("IMG_0001.jpg", MediaType.IMAGE, 300, 3, None),
    ("100%_done.png", MediaType.IMAGE, 200, 4, None),
    ("1000_done.png", MediaType.IMAGE, 200, 5, None),
    ("voice note.m4a", MediaType.AUDIO, 50, 6, "the budget is fine, the review comes later"),
    ("Interview.wav", MediaType.AUDIO, 50, 6, "Quarterly Budget Review, part two"),
    ("a_b.png", MediaType.IMAGE, 10, 7, None),
    ("axb.png", MediaType.IMAGE, 10, 8, None),
]


def _seed(settings: Settings, owner_id: str, *, copies: int = 1) -> None:
    engine = create_db_engine(settings.resolved_database_url, pool_size=1)
    with session_scope(create_session_factory(engine)) as session:
        for copy in range(copies):
            for name, kind, size, minutes, transcript in ROWS:
                asset_id = str(uuid.uuid4())
                created = T0 + timedelta(minutes=minutes + 60 * copy)
                session.add(
                    MediaAsset(
                        id=asset_id, owner_id=owner_id, name=name, original_name=name, type=kind, file_size=size,
                        mime_type="application/octet-stream", upload_status=UploadStatus.UPLOADED,
                        processing_status=AssetProcessingStatus.READY, storage_bucket="incoming",
                        storage_key=f"uploads/{owner_id}/{asset_id}", upload_expires_at=created, created_at=created,
                        updated_at=created,
                    )
                )  # fmt: skip
                session.flush()
                session.add(AssetMetadata(asset_id=asset_id, transcript_text=transcript))
    engine.dispose()


def _list(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/api/assets", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


SORT_KEYS = {
    "createdAt": lambda item: item["createdAt"],
    "name": lambda item: item["originalName"].lower(),
    "fileSize": lambda item: item["fileSize"],
}


@pytest.mark.parametrize("sort", ["-createdAt", "createdAt", "name", "-name", "fileSize", "-fileSize"])
def test_every_order_pages_through_the_sequence_it_lists(
    client: TestClient, users: Users, settings: Settings, sort: str
) -> None:
    owner, headers = users.create()
    _, other = users.create()
    _seed(settings, owner, copies=3)
    _seed(settings, users.create()[0])  # another tenant's assets are never counted or listed
    whole = _list(client, headers, sort=sort, pageSize=100)
    assert whole["total"] == len(whole["items"]) == 3 * len(ROWS)
    key = SORT_KEYS[sort.removeprefix("-")]
    descending = sort.startswith("-")
    expected = sorted(whole["items"], key=lambda item: (key(item), item["id"]), reverse=descending)
    if sort.removeprefix("-") != "name":  # names follow the database's collation, which Python's order is not
        assert [item["id"] for item in whole["items"]] == [item["id"] for item in expected]
    else:
        expected = whole["items"]
    # Equal keys (three copies of each name, equal sizes and times) are in id order, the sort's way.
    for before, after in zip(whole["items"], whole["items"][1:], strict=False):
        if key(before) == key(after):
            assert (before["id"] > after["id"]) if descending else (before["id"] < after["id"])
    paged: list[str] = []
    for page in range(1, 3 * len(ROWS) // 4 + 2):
        answer = _list(client, headers, sort=sort, pageSize=4, page=page)
        assert answer["total"] == 3 * len(ROWS)
        paged += [item["id"] for item in answer["items"]]
    assert paged == [item["id"] for item in expected]
    images = _list(client, headers, sort=sort, type="IMAGE", pageSize=5, page=2)
    expected_images = [item["id"] for item in expected if item["type"] == "IMAGE"]
    assert (images["total"], [item["id"] for item in images["items"]]) == (len(expected_images), expected_images[5:10])
    # Pages past the middle are read from the far end: the same rows, in the same order, and nothing past it.
    late = _list(client, headers, sort=sort, type="IMAGE", pageSize=5, page=4)
    assert [item["id"] for item in late["items"]] == expected_images[15:20]
    assert _list(client, headers, sort=sort, pageSize=4, page=10)["items"] == []
    assert _list(client, other)["total"] == 0


def test_a_page_window_reads_the_same_rows_from_either_end() -> None:
    for total in range(13):
        rows = list(range(total))
        for page_size in range(1, 6):
            for page in range(1, 7):
                window = PageWindow.of(total=total, page=page, page_size=page_size)
                source = rows[::-1] if window.from_end else rows
                read = source[window.skip : window.skip + window.limit]
                assert (read[::-1] if window.from_end else read) == rows[(page - 1) * page_size : page * page_size]
                assert window.skip <= max(0, total - page_size), "never walks further than the nearer end"


def test_search_finds_names_in_any_case_and_phrases_as_said(
    client: TestClient, users: Users, settings: Settings
) -> None:
    owner, headers = users.create()
    _seed(settings, owner)
    _seed(settings, users.create()[0])

    def names(q: str, **params: Any) -> list[str]:
        answer = _list(client, headers, q=q, sort="name", pageSize=100, **params)
        assert answer["total"] == len(answer["items"])
        return sorted(item["originalName"] for item in answer["items"])  # (the collation's order is not the point)

    assert names("SUNSET") == ["Sunset_Beach.MOV", "sunset beach.mov"]
    assert names("100%") == ["100%_done.png"]  # % and _ are the characters typed, not wildcards
    assert names("a_b") == ["a_b.png"]
    assert names("img_0001") == ["IMG_0001.jpg"] * 3
    # Words said in this order, any case: not the transcript that has them apart.
    assert names("quarterly budget review") == ["Interview.wav", "Sunset_Beach.MOV"]
    assert names("Budget Review", type="AUDIO") == ["Interview.wav"]
    # A name or a phrase: "done" is in two names and said nowhere.
    assert names("done") == ["100%_done.png", "1000_done.png"]
    assert names("nothing like this") == []
    # Past its last page a search still says how many matches there are.
    past = _list(client, headers, q="done", page=3, pageSize=1)
    assert (past["total"], past["items"]) == (2, [])
    second = _list(client, headers, q="img_0001", page=2, pageSize=2)
    assert (second["total"], len(second["items"])) == (3, 1)


def test_totals_follow_every_change_of_type_and_status(client: TestClient, users: Users, settings: Settings) -> None:
    """PostgreSQL sums per-group counts that triggers append; SQLite counts: the same totals either way,
    through inserts, status changes, deletions (one by one, and with the user), and the periodic folding."""
    owner, headers = users.create()
    doomed, _ = users.create()
    _seed(settings, owner, copies=2)
    _seed(settings, doomed)
    engine = create_db_engine(settings.resolved_database_url, pool_size=1)
    sessions = create_session_factory(engine)

    def check() -> None:
        for filters in ({}, {"type": "IMAGE"}, {"status": "UPLOADED"}, {"processingStatus": "FAILED"},
                        {"type": "AUDIO", "processingStatus": "READY"}, {"status": "EXPIRED"}):  # fmt: skip
            listed = _list(client, headers, pageSize=100, **filters)
            assert listed["total"] == len(listed["items"]), filters

    check()
    with session_scope(sessions) as session:
        images = session.scalars(sa.select(MediaAsset).where(MediaAsset.owner_id == owner, MediaAsset.type == "IMAGE"))
        for index, asset in enumerate(images):
            if index % 2:
                asset.processing_status = AssetProcessingStatus.FAILED
            else:
                asset.upload_status = UploadStatus.EXPIRED
        session.execute(sa.update(MediaAsset).where(MediaAsset.owner_id == owner).values(error="touched"))
    check()
    assert _list(client, headers, processingStatus="FAILED")["total"] == 7
    with session_scope(sessions) as session:
        session.execute(sa.delete(MediaAsset).where(MediaAsset.owner_id == owner, MediaAsset.type == "AUDIO"))
        session.execute(sa.delete(User).where(User.id == doomed))
    check()
    assert _list(client, headers)["total"] == 2 * len(ROWS) - 4
    with session_scope(sessions) as session:
        folded = compact_counts(session)
        if engine.dialect.name == "postgresql":  # one row per group left, and groups that came to 0 gone
            assert folded > 0
            rows, groups, zero = session.execute(
                sa.text("SELECT count(*), count(DISTINCT (owner_id, type, upload_status, processing_status)), "
                        "count(*) FILTER (WHERE assets = 0) FROM media_asset_counts")
            ).one()  # fmt: skip
            assert (rows, zero) == (groups, 0)
    check()
    engine.dispose()
