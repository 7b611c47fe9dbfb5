"""Settings, read from the environment (and an optional `.env`) by pydantic-settings.

The defaults are the embedded default: SQLite and local storage under `./var/`, a local worker.
Production swaps in PostgreSQL (`DATABASE_URL`), S3 (`STORAGE_BACKEND=s3`) and the Kubernetes
operator (`EXECUTOR=kubernetes`) by configuration alone.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediaingest.models.enums import Plan

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class ConfigurationError(ValueError):
    """A setting that cannot work as given, found as a process starts (the CLI prints it as one line)."""


class StorageBackendName(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class ExecutorName(StrEnum):
    LOCAL = "local"  # IngestionJob rows leased by `mediaingest worker`
    KUBERNETES = "kubernetes"  # a MediaAsset custom resource reconciled by the operator


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- service -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT")
    internal_port: int = Field(
        0,
        alias="INTERNAL_PORT",
        description="A port of its own for the stage pods' reports (/internal/stage-run/*), then not served on "
        "PORT, so a NetworkPolicy can admit only stage pods to it (0: served on PORT, as on one machine).",
    )
    metrics_port: int = Field(
        0, alias="METRICS_PORT", description="A port of its own for /metrics, then not served on PORT (0: on PORT)."
    )
    public_url: str | None = Field(
        None,
        alias="PUBLIC_URL",
        description="Base URL clients reach the service at; local-storage signed URLs point here.",
    )
    data_dir: Path = Field(Path("var"), alias="DATA_DIR")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_json: bool = Field(True, alias="LOG_JSON")

    # --- database ----------------------------------------------------------------------------
    database_url: str | None = Field(
        None, alias="DATABASE_URL", description="SQLAlchemy URL; default sqlite:///{DATA_DIR}/mediaingest.db"
    )

    max_request_body_bytes: int = Field(
        1 * MIB,
        alias="MAX_REQUEST_BODY_BYTES",
        description="Largest API request body (JSON); larger ones get 413 before parsing or authentication.",
    )

    # --- auth --------------------------------------------------------------------------------
    jwt_secret: SecretStr | None = Field(None, alias="JWT_SECRET")
    jwt_jwks_url: str | None = Field(None, alias="JWT_JWKS_URL")
    jwt_algorithms: list[str] = Field(["HS256", "RS256", "ES256"], alias="JWT_ALGORITHMS")
    jwt_audience: str | None = Field(None, alias="JWT_AUDIENCE")
    jwt_issuer: str | None = Field(None, alias="JWT_ISSUER")

    # --- storage -----------------------------------------------------------------------------
    storage_backend: StorageBackendName = Field(StorageBackendName.LOCAL, alias="STORAGE_BACKEND")
    aws_region: str = Field("us-east-1", alias="AWS_REGION")
    aws_access_key_id: str | None = Field(None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, alias="AWS_SECRET_ACCESS_KEY")
    s3_endpoint_url: str | None = Field(None, alias="S3_ENDPOINT_URL")
    s3_force_path_style: bool = Field(False, alias="S3_FORCE_PATH_STYLE")
    bucket_incoming: str = Field("incoming", alias="AWS_S3_BUCKET_INCOMING")
    bucket_processed: str = Field("processed", alias="AWS_S3_BUCKET_PROCESSED")
    bucket_proxies: str = Field("proxies", alias="AWS_S3_BUCKET_PROXIES")
    local_storage_secret: SecretStr | None = Field(
        None,
        alias="LOCAL_STORAGE_SECRET",
        description="HMAC key for local-storage signed URLs; generated into DATA_DIR on first run if unset.",
    )

    url_signing_secret: SecretStr | None = Field(
        None,
        alias="URL_SIGNING_SECRET",
        description="HMAC key for the API's own signed URLs (HLS playlists); every API replica needs the same. "
        "Defaults to the local-storage secret.",
    )

    # --- a Kubernetes stage pod ----------------------------------------------------------------
    stage_api_url: str | None = Field(
        None,
        alias="STAGE_API_URL",
        description="Set by the operator on stage pods: the API they report to, as the pod of their attempt, "
        "instead of writing the database and storage themselves.",
    )
    stage_token_file: Path | None = Field(
        None,
        alias="STAGE_TOKEN_FILE",
        description="Set by the operator on stage pods: the projected ServiceAccount token they report with "
        "(read at every report: the kubelet rotates it).",
    )
    termination_message_path: Path | None = Field(
        None,
        alias="TERMINATION_MESSAGE_PATH",
        description="Set by the operator on stage pods: a failed attempt writes its reason there, which "
        "Kubernetes keeps as the container's termination message (the operator shows it on the MediaAsset).",
    )

    # --- uploads -----------------------------------------------------------------------------
    upload_url_ttl_seconds: int = Field(3600, alias="UPLOAD_URL_TTL_SECONDS")
    upload_session_idle_seconds: int = Field(
        24 * 3600,
        alias="UPLOAD_SESSION_IDLE_SECONDS",
        description="An upload stays open while parts or requests for URLs keep coming; this long idle, "
        "the sweeper expires it and releases its quota.",
    )
    download_url_ttl_seconds: int = Field(3600, alias="DOWNLOAD_URL_TTL_SECONDS")
    max_file_size: int = Field(5 * GIB, alias="MAX_FILE_SIZE")
    multipart_threshold: int = Field(100 * MIB, alias="MULTIPART_THRESHOLD")
    multipart_part_size: int = Field(
        16 * MIB, alias="MULTIPART_PART_SIZE", description="S3 requires >= 5 MiB except the last part."
    )
    quota_user: int = Field(5 * GIB, alias="QUOTA_USER")
    quota_pro: int = Field(50 * GIB, alias="QUOTA_PRO")
    quota_enterprise: int = Field(500 * GIB, alias="QUOTA_ENTERPRISE")

    # --- processing --------------------------------------------------------------------------
    ffmpeg_path: str = Field("ffmpeg", alias="FFMPEG_PATH")
    ffprobe_path: str = Field("ffprobe", alias="FFPROBE_PATH")
    executor: ExecutorName = Field(ExecutorName.LOCAL, alias="EXECUTOR")
    stage_modules: list[str] = Field(
        [],
        alias="STAGE_MODULES",
        description="Modules that register more stages when imported (pipeline/registry.py), as JSON: "
        '["acme.loudness"]. Every process that plans or runs stages imports them as it starts.',
    )
    proxy_heights: list[int] = Field([360, 720, 1080], alias="PROXY_HEIGHTS")
    proxy_vp9: bool = Field(False, alias="PROXY_VP9")
    sprite_interval_seconds: float = Field(2.0, alias="SPRITE_INTERVAL_SECONDS")
    sprite_tile_width: int = Field(160, alias="SPRITE_TILE_WIDTH")
    sprite_tile_height: int = Field(90, alias="SPRITE_TILE_HEIGHT")
    sprite_columns: int = Field(10, alias="SPRITE_COLUMNS")
    sprite_rows: int = Field(10, alias="SPRITE_ROWS")
    waveform_width: int = Field(1800, alias="WAVEFORM_WIDTH")
    waveform_height: int = Field(240, alias="WAVEFORM_HEIGHT")
    spectrogram_width: int = Field(1024, alias="SPECTROGRAM_WIDTH")
    spectrogram_height: int = Field(512, alias="SPECTROGRAM_HEIGHT")
    transcribe: bool | None = Field(
        None,
        alias="TRANSCRIBE",
        description="off: no asset goes through the transcript stage. Unset: it transcribes where the `transcribe` "
        "extra is installed (the embedded default, the speech image) and does nothing elsewhere.",
    )
    transcribe_model: str = Field(
        "",
        alias="TRANSCRIBE_MODEL",
        description='A CTranslate2 Whisper model folder, or a name faster-whisper resolves ("small", '
        '"Systran/faster-whisper-large-v3") from the Hugging Face cache. Empty: the packaged tiny.en (English).',
    )
    transcribe_language: str | None = Field(
        None,
        alias="TRANSCRIBE_LANGUAGE",
        pattern=r"^[a-z]{2,3}$",
        description='The spoken language\'s code ("en"), for every asset; unset: detected per asset.',
    )
    timeline_cache_mb: int = Field(
        2048,
        alias="TIMELINE_CACHE_MB",
        description="Disk the API keeps stored videos on (under DATA_DIR) to decode frames and filmstrips from, "
        "least recently used first out; the images' ffmpeg reads local files only.",
    )
    work_dir: Path | None = Field(None, alias="WORK_DIR", description="Per-job temp folders; default system temp.")
    max_decoded_pixels: int = Field(
        50_000_000,
        alias="MAX_DECODED_PIXELS",
        description="Largest image or video frame (width x height) a stage decodes; larger media fail at probe.",
    )
    stage_memory_limit_mb: int = Field(
        4096,
        alias="STAGE_MEMORY_LIMIT_MB",
        description="Address-space cap of each ffmpeg/ffprobe process (0: none). A 2160p source into three "
        "H.264 rungs peaks near 1.1 GB on 2 cores; x264 adds threads, and memory, on larger machines.",
    )
    container_memory_limit_mb: int | None = Field(
        None,
        alias="CONTAINER_MEMORY_LIMIT_MB",
        description="The container's memory limit (a stage Job sets it from the downward API). The ffmpeg cap "
        "then stays below it, so a media bomb ends in a clear error instead of the kernel's OOM kill.",
    )
    ffmpeg_threads: int = Field(
        0,
        alias="FFMPEG_THREADS",
        description="Threads per ffmpeg run (0: ffmpeg's choice, the machine's cores). A stage Job sets its CPU "
        "limit here (the downward API rounds it up to whole cores).",
    )

    # --- worker ------------------------------------------------------------------------------
    # At least two: after the probe, a video's stages run side by side, so the cheap poster and audio
    # visuals are not queued behind a long proxies encode (ffmpeg's own threads share the cores).
    worker_concurrency: int = Field(default_factory=lambda: max(2, os.cpu_count() or 2), alias="WORKER_CONCURRENCY")
    worker_poll_interval_seconds: float = Field(0.5, alias="WORKER_POLL_INTERVAL_SECONDS")
    worker_lease_seconds: int = Field(60, alias="WORKER_LEASE_SECONDS")
    worker_heartbeat_seconds: int = Field(15, alias="WORKER_HEARTBEAT_SECONDS")
    worker_metrics_port: int = Field(9101, alias="WORKER_METRICS_PORT")
    job_max_attempts: int = Field(5, alias="JOB_MAX_ATTEMPTS")
    tenant_max_running_stages: int = Field(
        20,
        alias="TENANT_MAX_RUNNING_STAGES",
        ge=1,
        description="At most this many stage attempts of one tenant run at once on each kind of runner (a "
        "worker's stage processes, the operator's Jobs); tenants take turns. The claim enforces it.",
    )
    job_backoff_base_seconds: float = Field(2.0, alias="JOB_BACKOFF_BASE_SECONDS")
    job_backoff_max_seconds: float = Field(300.0, alias="JOB_BACKOFF_MAX_SECONDS")
    sweep_interval_seconds: int = Field(300, alias="SWEEP_INTERVAL_SECONDS")

    # --- completion webhooks ---------------------------------------------------------------------
    webhook_timeout_seconds: float = Field(10.0, alias="WEBHOOK_TIMEOUT_SECONDS")
    webhook_backoff_base_seconds: float = Field(30.0, alias="WEBHOOK_BACKOFF_BASE_SECONDS")
    webhook_allow_private_networks: bool = Field(
        False,
        alias="WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        description="Deliver to loopback/private/link-local addresses (off: a tenant's URL must not reach "
        "the cluster's internal services or the cloud metadata endpoint).",
    )

    # --- kubernetes (EXECUTOR=kubernetes) ------------------------------------------------------
    k8s_namespace: str = Field("default", alias="K8S_NAMESPACE")
    stage_placement: dict[str, Literal["job", "worker"]] = Field(
        {},
        alias="STAGE_PLACEMENT",
        description='Where each stage runs under EXECUTOR=kubernetes, as JSON: {"probe": "worker"}. "job": a '
        'Kubernetes Job per attempt (the operator); "worker": the worker Deployment\'s stage processes. A stage '
        "left out keeps its registered default (a Job).",
    )
    stage_service_account: str = Field(
        "mediaingest-stage",
        alias="STAGE_SERVICE_ACCOUNT",
        description="The ServiceAccount stage pods run as: the API hears stage reports only from its tokens.",
    )
    stage_token_audience: str = Field(
        "mediaingest-stage-report",
        alias="STAGE_TOKEN_AUDIENCE",
        description="The audience of the projected ServiceAccount token a stage pod reports with.",
    )

    @field_validator("multipart_part_size")
    @classmethod
    def _part_size_is_s3_compatible(cls, value: int) -> int:
        # Tests lower it to exercise multipart without hundreds of megabytes; S3 itself refuses < 5 MiB.
        if value < 1:
            raise ValueError("MULTIPART_PART_SIZE must be positive")
        return value

    @property
    def tool_memory_limit_mb(self) -> int:
        """The ffmpeg/ffprobe cap: STAGE_MEMORY_LIMIT_MB, and within a container at most 80 % of its limit
        (the stage's own Python shares the container, and the kernel kills without saying why)."""
        if not self.container_memory_limit_mb:
            return self.stage_memory_limit_mb
        within = int(self.container_memory_limit_mb * 0.8)
        return min(self.stage_memory_limit_mb, within) if self.stage_memory_limit_mb else within

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mediaingest.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def quota_for(self, plan: Plan) -> int:
        return {Plan.USER: self.quota_user, Plan.PRO: self.quota_pro, Plan.ENTERPRISE: self.quota_enterprise}[plan]

    def url_secret(self) -> bytes:
        if self.url_signing_secret is not None:
            return self.url_signing_secret.get_secret_value().encode()
        return self.storage_secret()

    def storage_secret(self) -> bytes:
        """The local backend's HMAC key: configured, or generated once into DATA_DIR (mode 0600)."""
        if self.local_storage_secret is not None:
            return self.local_storage_secret.get_secret_value().encode()
        path = self.data_dir / "local-storage.secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written whole under a temporary name, then linked into place: two processes starting at
            # once (API and worker) agree on one secret, and neither ever reads a half-written file.
            fd, name = tempfile.mkstemp(dir=self.data_dir, prefix=f".{path.name}.")  # mode 0600
            candidate = Path(name)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(candidate, path)  # fails if another process won the race; theirs is kept
            except FileExistsError:
                pass
            finally:
                candidate.unlink()
        return path.read_text().strip().encode()
