"""A library at 100,000 assets on PostgreSQL: `make bench-library` (python -m bench.library); part of `make bench`.

A fresh database at 127.0.0.1:5432, migrated by the project's Alembic migrations, is seeded in SQL
(INSERT … SELECT over generate_series, seconds rather than minutes): one tenant with 100,000 assets — a mix
of stills, clips and recordings, upload and processing statuses, sizes, durations, worded file names, some
transcripts — their metadata, derived files, ingestion jobs and stage tasks; a few other tenants; and the
tasks table topped up to 1,000,000 finished tasks, with some queued and running ones. Then each query runs
through the real code path — the API app in-process (FastAPI's TestClient: routing, auth, the service, the
repository, the response model) or, for the claim, `tasks.queue.claim` as a worker calls it, rolled back
after each run — and its p50/p95 over `--reps` runs after a warm-up is written to
bench/results/library.{md,json}.

`--keep` leaves the seeded database behind and prints its URL; `--database-url URL` measures that
database again (migrated to head first, not re-seeded): before/after a migration on the same rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.report import RESULTS, meta
from bench.service import fresh_postgres_database

ASSETS = 100_000
FINISHED_TASKS = 1_000_000
OTHER_TENANTS = 5
OTHER_TENANT_ASSETS = 4_000
# The issue's targets at 100,000 assets on PostgreSQL.
MAX_QUERY_P95_MS = 50.0
MAX_CLAIM_P95_MS = 5.0

# File names as cameras, phones and editors leave them: a few hundred distinct words in all.
_NAME_TEXT = (
    "beach interview sunset wedding drone kitchen concert harbour mountain office studio garden city "
    "river forest street market family birthday launch product keynote rehearsal backstage broll "
    "timelapse aerial portrait headshot podcast voiceover ambience foley soundcheck choir orchestra "
    "lecture workshop demo tutorial review festival parade stadium airport station bridge tower castle "
    "lake island desert glacier canyon village harvest vineyard bakery cafe restaurant hotel lobby "
    "rooftop skyline night morning evening winter summer"
)
NAME_WORDS = _NAME_TEXT.split()
# What people say in the recordings: transcripts are sentences of these.
_SPOKEN_TEXT = (
    "the a and to of in we is it that this for you on with our be are was have at as so not but what all "
    "they can there just about people going think know really time today want make good right here now "
    "well like see get one two three first next then thing things kind lot year years week team work "
    "product customer market plan project budget review meeting launch design video audio camera light "
    "sound music shot scene take cut edit color grade story client brief deadline schedule"
)
SPOKEN_WORDS = _SPOKEN_TEXT.split()
# A phrase said in a few recordings (and in no file name): the spoken-phrase search finds these.
PHRASE = "quarterly budget review"


def _text_array(words: tuple[str, ...] | list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"


# One tenant's assets, all in one statement. A row's randoms are drawn once (the `r` subquery) and
# shared by its columns, so a video has a video's extension, MIME type and size.
_ASSETS_SQL = """
INSERT INTO media_assets (id, owner_id, project_id, name, original_name, type, file_size, mime_type,
    upload_status, processing_status, priority, storage_bucket, storage_key, upload_expires_at, uploaded_at,
    processed_at, error, created_at, updated_at)
SELECT id, CAST(:owner AS text), project, fname, fname, type, size, mime, upload_status,
    CASE WHEN upload_status <> 'UPLOADED' THEN 'PENDING'
         WHEN rp < 0.96 THEN 'READY' WHEN rp < 0.98 THEN 'FAILED' WHEN rp < 0.99 THEN 'PROCESSING'
         ELSE 'PENDING' END,
    'NORMAL', 'incoming', 'uploads/' || CAST(:owner AS text) || '/' || id || '.' || ext, created + interval '1 day',
    CASE WHEN upload_status = 'UPLOADED' THEN created + interval '20 seconds' END,
    CASE WHEN upload_status = 'UPLOADED' AND rp < 0.96 THEN created + interval '2 minutes' END,
    CASE WHEN upload_status = 'FAILED' THEN 'integrity check failed: size differs' END,
    created, created + interval '2 minutes'
FROM (
    SELECT id, rp, upload_status, created, type, ext,
        CASE type WHEN 'IMAGE' THEN CASE ext WHEN 'jpg' THEN 'image/jpeg' WHEN 'heic' THEN 'image/heic'
                                     ELSE 'image/png' END
                  WHEN 'VIDEO' THEN CASE ext WHEN 'mp4' THEN 'video/mp4' WHEN 'mov' THEN 'video/quicktime'
                                     ELSE 'video/x-matroska' END
                  ELSE CASE ext WHEN 'wav' THEN 'audio/wav' WHEN 'm4a' THEN 'audio/mp4' ELSE 'audio/mpeg' END
        END AS mime,
        -- log-uniform sizes: stills 1–40 MiB, clips 5 MiB–6 GiB, recordings 200 KiB–300 MiB
        (CASE type WHEN 'IMAGE' THEN exp(ln(1048576) + rs * ln(40))
                   WHEN 'VIDEO' THEN exp(ln(5242880) + rs * ln(1228))
                   ELSE exp(ln(204800) + rs * ln(1536)) END)::bigint AS size,
        CASE WHEN rj < 0.7 THEN 'project-' || (floor(rj * 40))::int END AS project,
        CASE WHEN type = 'IMAGE' AND rn < 0.4 THEN 'IMG_' || lpad((g % 10000)::text, 4, '0')
             WHEN type = 'VIDEO' AND rn < 0.2 THEN 'MVI_' || lpad((g % 10000)::text, 4, '0')
             ELSE initcap(w1) || '_' || w2 || CASE WHEN rn < 0.7 THEN ' ' || w3 ELSE '' END
                  || '_' || lpad((g % 1000)::text, 3, '0')
        END || '.' || CASE WHEN rn < 0.1 THEN upper(ext) ELSE ext END AS fname
    FROM (
        SELECT g, id, rp, rs, rj, rn, created,
            CASE WHEN rt < 0.5 THEN 'IMAGE' WHEN rt < 0.8 THEN 'VIDEO' ELSE 'AUDIO' END AS type,
            CASE WHEN ru < 0.93 THEN 'UPLOADED' WHEN ru < 0.95 THEN 'PENDING' WHEN ru < 0.97 THEN 'FAILED'
                 ELSE 'EXPIRED' END AS upload_status,
            (CASE WHEN rt < 0.5 THEN ARRAY['jpg','heic','png'] WHEN rt < 0.8 THEN ARRAY['mp4','mov','mkv']
                  ELSE ARRAY['wav','m4a','mp3'] END)[1 + floor(re * 3)::int] AS ext,
            words[1 + floor(random() * cardinality(words))::int] AS w1,
            words[1 + floor(random() * cardinality(words))::int] AS w2,
            words[1 + floor(random() * cardinality(words))::int] AS w3
        FROM (
            SELECT g, gen_random_uuid()::text AS id, random() AS rt, random() AS ru, random() AS rp,
                random() AS rs, random() AS rj, random() AS rn, random() AS re, {words}::text[] AS words,
                -- about one upload every 30 s over the last five weeks, newest first by g
                now() - g * interval '30 seconds' - random() * interval '25 seconds' AS created
            FROM generate_series(1, :count) AS g
        ) AS r
    ) AS t
) AS a
"""

_METADATA_SQL = """
INSERT INTO asset_metadata (asset_id, format_name, duration_seconds, bitrate, video_codec, width, height, fps,
    has_audio, has_video, has_hdr, audio_codec, channels, sample_rate, image_format, measurements,
    transcript_text, created_at)
SELECT a.id,
    CASE a.type WHEN 'IMAGE' THEN 'image2' WHEN 'VIDEO' THEN 'mov,mp4,m4a,3gp,3g2,mj2' ELSE 'wav' END,
    CASE WHEN a.type <> 'IMAGE' THEN round((3 + random() * random() * 3600)::numeric, 3)::float END,
    CASE WHEN a.type <> 'IMAGE' THEN 128000 + floor(random() * 20000000)::bigint END,
    CASE WHEN a.type = 'VIDEO' THEN 'h264' END,
    CASE WHEN a.type = 'AUDIO' THEN NULL WHEN random() < 0.5 THEN 1920 ELSE 4032 END,
    CASE WHEN a.type = 'AUDIO' THEN NULL WHEN random() < 0.5 THEN 1080 ELSE 3024 END,
    CASE WHEN a.type = 'VIDEO' THEN 29.97 END,
    a.type <> 'IMAGE', a.type <> 'AUDIO', false,
    CASE WHEN a.type <> 'IMAGE' THEN 'aac' END,
    CASE WHEN a.type <> 'IMAGE' THEN 2 END,
    CASE WHEN a.type <> 'IMAGE' THEN 48000 END,
    CASE WHEN a.type = 'IMAGE' THEN 'JPEG' END,
    CAST(CASE WHEN t.spoken THEN '{{"transcript": {{"transcript_language": "en"}}}}' ELSE '{{}}' END AS json),
    CASE WHEN t.spoken THEN (
        SELECT string_agg(w, ' ') FROM (
            SELECT ({spoken}::text[])[1 + floor(random() * {n_spoken})::int] AS w
            FROM generate_series(1, 30 + (length(a.id) - 36) + floor(random() * 120)::int)
        ) AS words
    ) || CASE WHEN t.r_phrase < 0.02 THEN ' so the {phrase} is next' ELSE '' END END,
    a.created_at
FROM media_assets AS a
CROSS JOIN LATERAL (SELECT a.type <> 'IMAGE' AND random() < 0.25 AS spoken, random() AS r_phrase) AS t
WHERE a.owner_id = :owner AND a.upload_status = 'UPLOADED'
"""

# The derived files of each ready asset, as the stages leave them.
_PROXIES_SQL = """
INSERT INTO asset_proxies (id, asset_id, type, resolution, format, content_type, size_bytes, storage_bucket,
    storage_key, created_at)
SELECT gen_random_uuid()::text, a.id, p.type, p.resolution, p.format, p.content_type, 100000 + (a.file_size % 900000),
    'proxies', 'derived/' || CAST(:owner AS text) || '/' || a.id || '/' || p.file, a.processed_at
FROM media_assets AS a
CROSS JOIN LATERAL (VALUES
    ('IMAGE', 'THUMBNAIL', NULL, 'webp', 'image/webp', 'thumb.webp'),
    ('VIDEO', 'POSTER', NULL, 'jpg', 'image/jpeg', 'poster.jpg'),
    ('VIDEO', 'VIDEO', '360p', 'mp4', 'video/mp4', '360p.mp4'),
    ('VIDEO', 'VIDEO', '720p', 'mp4', 'video/mp4', '720p.mp4'),
    ('VIDEO', 'VIDEO', '1080p', 'mp4', 'video/mp4', '1080p.mp4'),
    ('VIDEO', 'HLS', NULL, 'm3u8', 'application/vnd.apple.mpegurl', 'hls/master.m3u8'),
    ('VIDEO', 'SPRITE_SHEET', NULL, 'jpg', 'image/jpeg', 'sprites.jpg'),
    ('VIDEO', 'STORYBOARD', NULL, 'vtt', 'text/vtt', 'storyboard.vtt'),
    ('VIDEO', 'WAVEFORM', NULL, 'png', 'image/png', 'waveform.png'),
    ('AUDIO', 'AUDIO', NULL, 'm4a', 'audio/mp4', 'audio.m4a'),
    ('AUDIO', 'WAVEFORM', NULL, 'png', 'image/png', 'waveform.png'),
    ('AUDIO', 'WAVEFORM_PEAKS', NULL, 'json', 'application/json', 'peaks.json'),
    ('AUDIO', 'SPECTROGRAM', NULL, 'png', 'image/png', 'spectrogram.png')
) AS p (media, type, resolution, format, content_type, file)
WHERE a.owner_id = :owner AND a.processing_status = 'READY' AND p.media = a.type
"""

# Each uploaded asset's stages: a task each (finished for a ready asset; a failed asset's last stage
# failed; a processing or pending one's last stage still queued) and the job users see of it.
_STAGES_SQL = """
CREATE TEMPORARY TABLE bench_stages AS
SELECT gen_random_uuid()::text AS task_id, gen_random_uuid()::text AS job_id, a.id AS asset_id, a.owner_id,
    s.stage, s.job_type, a.created_at,
    CASE WHEN a.processing_status = 'READY' OR s.place < s.last THEN 'SUCCEEDED'
         WHEN a.processing_status = 'FAILED' THEN 'FAILED' ELSE 'QUEUED' END AS status
FROM media_assets AS a
CROSS JOIN LATERAL (
    SELECT stage, job_type, place, count(*) OVER () AS last FROM (VALUES
        ('probe', 'METADATA_EXTRACTION', 1, 'IMAGE VIDEO AUDIO'),
        ('proxies', 'PROXY_GENERATION', 2, 'VIDEO'),
        ('thumbnails', 'THUMBNAIL_GENERATION', 3, 'IMAGE VIDEO'),
        ('audio_visuals', 'AUDIO_ANALYSIS', 4, 'VIDEO AUDIO'),
        ('transcript', 'TRANSCRIPTION', 5, 'AUDIO')
    ) AS v (stage, job_type, place, media)
    WHERE position(a.type IN v.media) > 0
) AS s
WHERE a.owner_id = :owner AND a.upload_status = 'UPLOADED';

INSERT INTO tasks (id, name, queue, payload, dedupe_key, priority, tenant, status, run_after, attempts, max_attempts,
    last_error, created_at, updated_at, finished_at)
SELECT task_id, 'stages.run', 'stages', jsonb_build_object('assetId', asset_id, 'stage', stage),
    'stage:' || asset_id || ':' || stage, 1, owner_id, status, created_at + interval '20 seconds',
    CASE status WHEN 'QUEUED' THEN 0 WHEN 'FAILED' THEN 5 ELSE 1 END, 5,
    CASE WHEN status = 'FAILED' THEN 'ffmpeg exited with 1' END,
    created_at + interval '20 seconds', created_at + interval '2 minutes',
    CASE WHEN status <> 'QUEUED' THEN created_at + interval '2 minutes' END
FROM bench_stages;

INSERT INTO ingestion_jobs (id, asset_id, type, task_id, priority, progress, logs, started_at, created_at,
    updated_at)
SELECT job_id, asset_id, job_type, task_id, 'NORMAL', CASE WHEN status = 'SUCCEEDED' THEN 100 ELSE 0 END,
    '[]'::jsonb, CASE WHEN status <> 'QUEUED' THEN created_at + interval '21 seconds' END,
    created_at + interval '20 seconds', created_at + interval '2 minutes'
FROM bench_stages;

DROP TABLE bench_stages
"""

# Webhook deliveries and chores finished over the years, up to the history's size.
_HISTORY_SQL = """
INSERT INTO tasks (id, name, queue, payload, dedupe_key, priority, tenant, status, run_after, attempts, max_attempts,
    created_at, updated_at, finished_at)
SELECT gen_random_uuid()::text, 'webhooks.deliver', 'default', '{}'::jsonb, 'bench-history:' || g, 0, NULL,
    CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, at, 1, 8, at, at, at + interval '1 second'
FROM generate_series(1, :count) AS g, LATERAL (SELECT now() - g * interval '90 seconds' AS at) AS t
"""

# Work waiting and running now: every tenant has due stage tasks, the big one already at its cap.
_LIVE_SQL = """
INSERT INTO tasks (id, name, queue, payload, dedupe_key, priority, tenant, status, run_after, attempts, max_attempts,
    lease_owner, lease_expires_at, created_at, updated_at)
SELECT gen_random_uuid()::text, 'stages.run', 'stages', '{}'::jsonb,
    'bench-live:' || CAST(:tenant AS text) || ':' || g, 1, CAST(:tenant AS text),
    CASE WHEN g <= :running THEN 'RUNNING' ELSE 'QUEUED' END,
    now() - g * interval '1 second' + CASE WHEN g % 10 = 0 THEN interval '1 hour' ELSE interval '0' END,
    CASE WHEN g <= :running THEN 1 ELSE 0 END, 5,
    CASE WHEN g <= :running THEN 'worker-bench' END,
    CASE WHEN g <= :running THEN now() + interval '1 hour' END,
    now() - g * interval '1 second', now()
FROM generate_series(1, :count) AS g
"""


def seed(url: str, *, assets: int, finished_tasks: int, log: Callable[[str], None]) -> tuple[str, str]:
    """Seeds the library; returns the big tenant's id and an API token of it."""
    from mediaingest.db import create_db_engine, create_session_factory, session_scope
    from mediaingest.models.enums import Plan
    from mediaingest.users.service import create_user, issue_token

    engine = create_db_engine(url, pool_size=1)
    with session_scope(create_session_factory(engine)) as session:
        owner = create_user(session, email="library@bench.invalid", plan=Plan.ENTERPRISE)
        token = issue_token(session, user=owner).token
        others = [create_user(session, email=f"other{i}@bench.invalid", plan=Plan.PRO).id for i in range(OTHER_TENANTS)]
        owner_id = owner.id
    assets_sql = _ASSETS_SQL.format(words=_text_array(NAME_WORDS))
    metadata_sql = _METADATA_SQL.format(spoken=_text_array(SPOKEN_WORDS), n_spoken=len(SPOKEN_WORDS), phrase=PHRASE)
    started = time.monotonic()
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT setseed(0.27)"))
        for tenant, count in ((owner_id, assets), *((other, OTHER_TENANT_ASSETS) for other in others)):
            connection.execute(sa.text(assets_sql), {"owner": tenant, "count": count})
            connection.execute(sa.text(metadata_sql), {"owner": tenant})
            connection.execute(sa.text(_PROXIES_SQL), {"owner": tenant})
            for statement in _STAGES_SQL.split(";\n\n"):
                connection.execute(sa.text(statement), {"owner": tenant})
        finished = connection.execute(sa.text("SELECT count(*) FROM tasks WHERE finished_at IS NOT NULL")).scalar_one()
        connection.execute(sa.text(_HISTORY_SQL), {"count": max(finished_tasks - finished, 0)})
        for tenant, running, count in ((owner_id, 20, 200), *((other, 3, 25) for other in others)):
            connection.execute(sa.text(_LIVE_SQL), {"tenant": tenant, "running": running, "count": count})
    log(f"  seeded in {time.monotonic() - started:.0f} s; analysing")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))  # what autovacuum does soon after a bulk load
        counts = connection.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM media_assets), (SELECT count(*) FROM asset_proxies), "
                "(SELECT count(*) FROM ingestion_jobs), (SELECT count(*) FROM tasks WHERE finished_at IS NOT NULL), "
                "(SELECT count(*) FROM tasks WHERE status IN ('QUEUED', 'RUNNING'))"
            )
        ).one()
    log(f"  assets {counts[0]}, derived files {counts[1]}, jobs {counts[2]}, finished tasks {counts[3]}, "
        f"queued or running {counts[4]}")  # fmt: skip
    engine.dispose()
    return owner_id, token


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def _time(run: Callable[[int], None], *, reps: int, warmup: int) -> dict[str, float]:
    for i in range(warmup):
        run(i)
    samples = []
    for i in range(reps):
        started = time.perf_counter()
        run(i)
        samples.append(time.perf_counter() - started)
    return _stats(samples)


def _queries(sample: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, path, query parameters) of every listing measured."""
    listed: list[tuple[str, str, dict[str, Any]]] = [
        ("list, default order (-createdAt)", "/api/assets", {}),
        (f"list, q={sample['common_word']!r} (a word in many names)", "/api/assets", {"q": sample["common_word"]}),
        (f"list, q={sample['rare_name']!r} (one name's tail)", "/api/assets", {"q": sample["rare_name"]}),
        (f"list, q={PHRASE!r} (a spoken phrase)", "/api/assets", {"q": PHRASE}),
    ]
    listed += [(f"list, type={kind}", "/api/assets", {"type": kind}) for kind in ("VIDEO", "AUDIO", "IMAGE")]
    listed += [
        (f"list, status={status}", "/api/assets", {"status": status})
        for status in ("UPLOADED", "PENDING", "FAILED", "EXPIRED")
    ]
    listed += [
        (f"list, processingStatus={status}", "/api/assets", {"processingStatus": status})
        for status in ("READY", "PROCESSING", "FAILED", "PENDING")
    ]
    sorts = ("createdAt", "name", "-name", "fileSize", "-fileSize")
    listed += [(f"list, sort={sort}", "/api/assets", {"sort": sort}) for sort in sorts]
    listed += [
        ("list, type=VIDEO&sort=-fileSize", "/api/assets", {"type": "VIDEO", "sort": "-fileSize"}),
        ("list, page 500 (offset 10,000)", "/api/assets", {"page": 500}),
        ("list, last page (offset 99,980)", "/api/assets", {"page": sample["last_page"]}),
        ("list, last page by name", "/api/assets", {"page": sample["last_page"], "sort": "name"}),
    ]
    return listed


def _sample(url: str, owner_id: str) -> dict[str, Any]:
    """What the queries look for, taken from the seeded rows."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        total = connection.execute(
            sa.text("SELECT count(*) FROM media_assets WHERE owner_id = :o"), {"o": owner_id}
        ).scalar_one()
        ids = connection.execute(
            sa.text(
                "SELECT id FROM media_assets WHERE owner_id = :o AND type = 'VIDEO' AND processing_status = 'READY' "
                "ORDER BY md5(id) LIMIT 200"
            ),
            {"o": owner_id},
        ).scalars().all()  # fmt: skip
        name = connection.execute(
            sa.text("SELECT original_name FROM media_assets WHERE owner_id = :o AND original_name LIKE '% %' "
                    "ORDER BY md5(id) LIMIT 1"),
            {"o": owner_id},
        ).scalar_one()  # fmt: skip
    engine.dispose()
    return {
        "assets": total,
        "ids": list(ids),
        "common_word": "sunset",
        "rare_name": name.split(" ", 1)[1].rsplit(".", 1)[0],  # "forest_123": few names end so
        "last_page": (total + 19) // 20,
    }


def measure(
    url: str, owner_id: str, token: str, *, reps: int, warmup: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from mediaingest.api import create_app
    from mediaingest.config import Settings
    from mediaingest.db import create_db_engine, create_session_factory, utcnow
    from mediaingest.tasks import queue
    from mediaingest.tasks.registry import DEFAULT_QUEUE, STAGES_QUEUE

    sample = _sample(url, owner_id)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-library-") as scratch:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=url, data_dir=Path(scratch), public_url="http://testserver",
            local_storage_secret="bench-library-secret", storage_backend="local", executor="local", log_json=True,
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings, configure_logs=False)) as client:

            def get(path: str, params: dict[str, Any]) -> dict[str, Any]:
                response = client.get(path, params=params, headers=headers)
                response.raise_for_status()
                return response.json()["data"]  # type: ignore[no-any-return]

            for label, path, params in _queries(sample):
                page = get(path, params)
                figures = _time(lambda _i, path=path, params=params: get(path, params), reps=reps, warmup=warmup)
                results.append({"query": label, "kind": "api", "rows": len(page["items"]), "total": page["total"],
                                **figures})  # fmt: skip
                log(f"  {label:48} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f} ms  (total {page['total']})")
            ids = sample["ids"]
            for label, template in (("GET /api/assets/{id}", "/api/assets/{}"),
                                    ("GET /api/assets/{id}/status", "/api/assets/{}/status")):  # fmt: skip
                figures = _time(lambda i, template=template: get(template.format(ids[i % len(ids)]), {}),
                                reps=reps, warmup=warmup)  # fmt: skip
                results.append({"query": label, "kind": "api", **figures})
                log(f"  {label:48} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f} ms")

        engine = create_db_engine(url, pool_size=1)
        sessions = create_session_factory(engine)
        for label, queues, cap in (
            ("claim, stages queue (tenant cap, as a worker)", [STAGES_QUEUE], settings.tenant_max_running_stages),
            ("claim, default queue", [DEFAULT_QUEUE], None),
        ):

            def claim(_i: int, queues: list[str] = queues, cap: int | None = cap) -> None:
                with sessions() as session:  # rolled back: every run claims from the same rows
                    claimed = queue.claim(session, worker_id="bench", queues=queues, limit=2, lease_seconds=60,
                                          now=utcnow(), tenant_cap=cap)  # fmt: skip
                    assert claimed or queues == [DEFAULT_QUEUE], "the seeded queue has due stage tasks"
                    session.rollback()

            figures = _time(claim, reps=reps, warmup=warmup)
            results.append({"query": label, "kind": "claim", **figures})
            log(f"  {label:48} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f} ms")
        engine.dispose()
    return results


def run(
    log: Callable[[str], None],
    *,
    reps: int = 200,
    warmup: int = 20,
    assets: int = ASSETS,
    finished_tasks: int = FINISHED_TASKS,
    database_url: str | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Seeds (or reuses) the library and measures it; the figures and the targets they meet."""
    from mediaingest.db.migrate import upgrade

    started = time.monotonic()
    database = nullcontext(database_url) if database_url else fresh_postgres_database(keep=keep)
    with database as url:
        assert url is not None
        if database_url:
            upgrade(url)  # the same rows under this checkout's migrations
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(sa.text("ANALYZE"))  # as autovacuum soon does after new indexes and tables
            engine.dispose()
            owner_id, token = _reissue_token(url)
        else:
            log(f"library: seeding {assets:,} assets and {finished_tasks:,} finished tasks in {url.rsplit('/', 1)[1]}")
            owner_id, token = seed(url, assets=assets, finished_tasks=finished_tasks, log=log)
        log(f"  {'query':48} {'p50':>8} {'p95':>8}")
        rows = measure(url, owner_id, token, reps=reps, warmup=warmup, log=log)
        if keep:
            log(f"  kept: --database-url {url}")
    for row in rows:
        limit = MAX_CLAIM_P95_MS if row["kind"] == "claim" else MAX_QUERY_P95_MS
        row["target_p95_ms"] = limit
        row["met"] = row["p95_ms"] <= limit
    return {"assets": assets, "finished_tasks": finished_tasks, "reps": reps, "warmup": warmup,
            "seconds": round(time.monotonic() - started, 1), "queries": rows}  # fmt: skip


def _reissue_token(url: str) -> tuple[str, str]:
    from mediaingest.db import create_db_engine, create_session_factory, session_scope
    from mediaingest.models import User
    from mediaingest.users.service import issue_token

    engine = create_db_engine(url, pool_size=1)
    with session_scope(create_session_factory(engine)) as session:
        user = session.scalars(sa.select(User).where(User.email == "library@bench.invalid")).one()
        token = issue_token(session, user=user, name=f"bench-{datetime.now(UTC):%H%M%S}").token
        owner_id = user.id
    engine.dispose()
    return owner_id, token


def markdown(result: dict[str, Any], run_meta: dict[str, Any]) -> str:
    lines = [
        f"# A library of {result['assets']:,} assets on PostgreSQL",
        "",
        f"{run_meta.get('finished_at', '')} · commit {run_meta['commit']} · {run_meta['cpus']} CPUs · "
        f"{result['finished_tasks']:,} finished tasks · p50/p95 of {result['reps']} runs after {result['warmup']} "
        f"warm-up · load average {run_meta['load_before']} before",
        "",
        "Through the API in-process (routing, auth, service, repository, response); the claim is "
        "`tasks.queue.claim` as a worker calls it (limit 2), rolled back after each run.",
        "",
        "| query | p50 ms | p95 ms | target p95 | |",
        "|---|---:|---:|---:|---|",
    ]
    for row in result["queries"]:
        mark = "met" if row["met"] else "**MISSED**"
        lines.append(f"| {row['query']} | {row['p50_ms']} | {row['p95_ms']} | ≤ {row['target_p95_ms']:g} | {mark} |")
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], run_meta: dict[str, Any]) -> str:
    text = markdown(result, run_meta)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "library.json").write_text(json.dumps({"meta": run_meta, **result}, indent=2) + "\n")
    (RESULTS / "library.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="timed runs of each query (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--assets", type=int, default=ASSETS, help="the big tenant's assets (default 100,000)")
    parser.add_argument("--finished-tasks", type=int, default=FINISHED_TASKS)
    parser.add_argument("--keep", action="store_true", help="leave the seeded database behind")
    parser.add_argument("--database-url", help="measure this seeded database again (after upgrading it)")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    from mediaingest.logging import configure_logging

    configure_logging("WARNING", json=False)  # the API runs in this process: its request lines would drown the report
    run_meta = meta("library")
    result = run(log, reps=args.reps, warmup=args.warmup, assets=args.assets, finished_tasks=args.finished_tasks,
                 database_url=args.database_url, keep=args.keep)  # fmt: skip
    run_meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = write(result, run_meta)
    log("")
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
