"""Names vulture (`make lint`, [tool.vulture] in pyproject.toml) sees assigned but never read, and that are read
all the same: by a framework, by the wire, or by the tests. This file is parsed, never run.

Anything new here needs its reader named beside it; a name with no reader is removed instead.
"""
# ruff: noqa
# mypy: ignore-errors

_ = object()

# --- Response fields: FastAPI serializes pydantic models into the API's JSON (and documents them in OpenAPI).
_.limit_bytes, _.stored_bytes, _.reserved_bytes, _.available_bytes  # api/account.py Quota
_.session_expires_at, _.aborted  # assets/schemas.py: the upload session's answers
_.frame_count, _.bit_depth, _.content_light_level, _.color_depth, _.transcript_language  # AssetMetadata / MetadataOut
_.poster_url, _.spoken_match, _.download_expires_at, _.ingestion_jobs  # AssetSummary / AssetDetail, set by the service
_.transcript_segments  # pipeline/measurements.py: stored with the stage's measurements, read by key (assets/service.py)
_.retries  # JobOut.retries, read from IngestionJob.retries (from_attributes)
_.decoded_from, _.in_offset_seconds, _.out_offset_seconds  # assets/timeline_schemas.py
_.success  # schemas.Envelope / ErrorEnvelope: the seed's {"success": …} wrapper
_.has_secret, _.next_attempt_at, _.delivered_at  # webhooks/schemas.py, read from WebhookDelivery (from_attributes)

# --- Read through SQLAlchemy: the ORM maps these columns and calls these hooks.
_.impl, _.cache_ok, _.process_bind_param, _.process_result_value  # db/base.py TypeDecorators
_.isolation_level  # db/engine.py: set on the sqlite3 connection, read by the driver

# --- Called or read by a library through its protocol.
_.capture_signals, _.should_exit  # cli.py: uvicorn.Server's hook and stop flag
_.auth_flow  # operator/kube.py: httpx.Auth's hook, called for each request
# operator/main.py: kopf's settings (watching, persistence, posting, scanning) and its memo, read by kopf
_.chunk_size, _.server_timeout, _.client_timeout, _.inactivity_timeout, _.progress_storage, _.diffbase_storage
_.enabled, _.disabled, _.own_kube, _.loop_task, _.metrics_server

# --- The client library's API for programs that upload (bench/resume.py, tests/client).
_.resumed  # client/api.py UploadResult: whether an upload picked up where an earlier one stopped

# --- Read by the tests only, as the rule they check.
_.MAX_LINES  # pipeline/captions.py: `layout` makes one line or two; tests/pipeline/test_transcript.py asserts it
_.encoded_frames  # pipeline/smartcut.py: tests/pipeline/test_smartcut.py checks how much of a cut is re-encoded
_.run_due  # worker/loop.py: tests run a worker's due tasks one round at a time (tests/webhooks)
# pipeline/smartcut.py Packet.dts: parsed from ffprobe with the packet and built by the tests; the cut reads the
# decode order from the list itself. A candidate for removal with the next change there.
_.dts

# --- Written by name and read by the database: the transcript stage's `transcript_text` measurement is one of
# its `columns` (pipeline/measurements.py), set on AssetMetadata by name; full-text search reads it in SQL
# (PostgreSQL's generated transcript_tsv, SQLite's FTS5 triggers), never as a Python attribute.
_.transcript_text
