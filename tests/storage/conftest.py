"""Storage fixtures: S3Storage against moto's server (fixtures.s3), LocalStorage over uvicorn
(fixtures.storage)."""

from __future__ import annotations

import uuid

import pytest

from fixtures.s3 import MotoS3Server
from mediaingest.storage.s3 import S3Storage


@pytest.fixture
def s3_storage(moto_s3_server: MotoS3Server) -> S3Storage:
    return S3Storage(
        region=moto_s3_server.region,
        endpoint_url=moto_s3_server.endpoint_url,
        access_key_id=moto_s3_server.access_key_id,
        secret_access_key=moto_s3_server.secret_access_key,
        force_path_style=True,
        max_attempts=2,
    )


@pytest.fixture
def s3_bucket(s3_storage: S3Storage) -> str:
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_storage.ensure_buckets([bucket])
    return bucket
