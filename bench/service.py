"""The service under test, started the way `make run` starts it, and a moto S3 server beside it.

`make run` does `mediaingest db upgrade` then `mediaingest serve --embedded-worker` with the
defaults (SQLite and local storage under DATA_DIR, worker concurrency = half the cores, 1 s idle
polling). `ServiceProcess` does the same in a subprocess with its own DATA_DIR under bench/.cache,
its own port and no `.env` (it runs in its run folder), so the bench measures the shipped defaults.
Its peak RSS is the kernel's high-water mark (VmHWM in /proc/<pid>/status) of that process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from bench.sources import CACHE
from mediaingest.resident import status_kib

ROOT = Path(__file__).resolve().parent.parent
LOGS = CACHE / "logs"
BIN = Path(sys.executable).parent
# Settings every run sets itself; inherited values would make the bench measure something else.
_OWNED_ENV = {
    "HOST", "PORT", "PUBLIC_URL", "DATA_DIR", "DATABASE_URL", "STORAGE_BACKEND", "S3_ENDPOINT_URL",
    "S3_FORCE_PATH_STYLE", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_BUCKET_INCOMING",
    "AWS_S3_BUCKET_PROCESSED", "AWS_S3_BUCKET_PROXIES", "LOCAL_STORAGE_SECRET", "EXECUTOR", "LOG_JSON",
    "WORKER_METRICS_PORT",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The PostgreSQL server the tests use (trust auth): benches that need PostgreSQL make a database of their own there.
POSTGRES_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_postgres_database(*, keep: bool = False) -> Iterator[str]:
    """A new database migrated to head; dropped afterwards unless `keep`. Yields its SQLAlchemy URL."""
    import psycopg
    import sqlalchemy as sa

    from mediaingest.db.migrate import upgrade

    name = f"mediaingest_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+psycopg://", 1))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # uvicorn and the embedded worker shut down on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServiceProcess:
    """`mediaingest serve [--embedded-worker]` in a fresh DATA_DIR; removed again on exit."""

    def __init__(self, label: str, *, embedded_worker: bool, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.run_dir = CACHE / "runs" / f"{label}-{uuid.uuid4().hex[:8]}"
        self.data_dir = self.run_dir / "var"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.embedded_worker = embedded_worker
        self.log_path = self.run_dir / "service.log"
        self.env = {key: value for key, value in os.environ.items() if key not in _OWNED_ENV}
        self.env |= {
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATA_DIR": str(self.data_dir),
            "LOG_JSON": "true",
            "WORKER_METRICS_PORT": "0",  # `serve` does not export it; never collide with a test's worker
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "mediaingest.db"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def migrate(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(BIN / "mediaingest"), "db", "upgrade"],
            cwd=self.run_dir, env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def create_tokens(self, count: int) -> list[str]:
        """`count` ENTERPRISE users (quota is not what is measured) and a token each, in one transaction."""
        from mediaingest.db import create_db_engine, create_session_factory, session_scope
        from mediaingest.models.enums import Plan
        from mediaingest.users.service import create_user, issue_token

        engine = create_db_engine(f"sqlite:///{self.database_path}", pool_size=1)
        try:
            with session_scope(create_session_factory(engine)) as session:
                tokens = []
                for _ in range(count):
                    user = create_user(
                        session, email=f"bench-{uuid.uuid4().hex[:12]}@example.test", plan=Plan.ENTERPRISE
                    )
                    tokens.append(issue_token(session, user=user).token)
        finally:
            engine.dispose()
        return tokens

    def start(self) -> None:
        args = [str(BIN / "mediaingest"), "serve"] + (["--embedded-worker"] if self.embedded_worker else [])
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, cwd=self.run_dir, env=self.env, stdout=log, stderr=log)
        log.close()
        _wait_http(f"{self.url}/healthz", self.process, self.log_path)

    def rss_kib(self) -> int | None:
        return status_kib("VmRSS", self.pid)

    def peak_rss_kib(self) -> int | None:
        return status_kib("VmHWM", self.pid)

    def __enter__(self) -> Self:
        self.migrate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            _stop(self.process)
        if self.log_path.is_file():  # kept (the last run of each label) to explain errors afterwards
            LOGS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, LOGS / f"{self.label}.log")
        if exc_type is None:
            shutil.rmtree(self.run_dir, ignore_errors=True)  # gigabytes of uploads; kept on failure


class MotoProcess:
    """moto's S3 server in its own process (`moto_server`), so it shares no GIL with the clients."""

    access_key_id = "bench-access-key"
    secret_access_key = "bench-secret-key"  # moto checks no signature
    region = "us-east-1"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_path = CACHE / "runs" / f"moto-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def service_env(self, prefix: str) -> dict[str, str]:
        """The service's S3 settings, with buckets of its own (created here: S3 buckets are not the app's)."""
        import boto3

        buckets = {role: f"{prefix}-{role}-{uuid.uuid4().hex[:8]}" for role in ("incoming", "processed", "proxies")}
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )
        for bucket in buckets.values():
            client.create_bucket(Bucket=bucket)
        return {
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_FORCE_PATH_STYLE": "true",
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_S3_BUCKET_INCOMING": buckets["incoming"],
            "AWS_S3_BUCKET_PROCESSED": buckets["processed"],
            "AWS_S3_BUCKET_PROXIES": buckets["proxies"],
        }

    def reset(self) -> None:
        """Drops every bucket and object (moto keeps them in memory and temp files)."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=60).raise_for_status()

    def peak_rss_kib(self) -> int | None:
        return status_kib("VmHWM", self.process.pid) if self.process else None

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log
        )
        log.close()
        _wait_http(f"{self.endpoint_url}/moto-api/", self.process, self.log_path)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            _stop(self.process)
        self.log_path.unlink(missing_ok=True)
