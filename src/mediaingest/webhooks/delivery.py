"""Sending webhook deliveries: what the worker runs from its maintenance tick.

`WebhookSender.dispatch_due()` never blocks the tick: it claims as many due deliveries as it has free
senders (one short transaction), hands each to a small thread pool, and returns. A sender POSTs the
stored payload with no transaction open, then records the attempt in a second short transaction,
fenced by its claim. Non-2xx answers, timeouts and connection errors are retried with exponential
backoff (and jitter) up to the row's `max_attempts`; redirects are not followed (a 3xx is a failure).
Each attempt resolves the host once, checks every address (`destinations`), and connects to the
address it checked; a refused destination fails the delivery at once, with its reason.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from mediaingest.config import Settings
from mediaingest.db import SessionFactory, session_scope, utcnow
from mediaingest.models import WebhookDeliveryStatus
from mediaingest.webhooks import repository, signing
from mediaingest.webhooks.destinations import Destination, RefusedDestination, UnresolvedHost, resolve

log = structlog.stdlib.get_logger(__name__)

USER_AGENT = "mediaingest-webhooks/0.1"
MAX_LOG_ENTRIES = 50


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    backoff_base_seconds: float = 30.0  # 30 s, 1 min, 2 min, … : 8 attempts span about an hour
    backoff_max_seconds: float = 3600.0
    concurrency: int = 4
    allow_private_networks: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            backoff_base_seconds=settings.webhook_backoff_base_seconds,
            allow_private_networks=settings.webhook_allow_private_networks,
        )

    def delay(self, attempt: int) -> float:
        """Seconds before the attempt after `attempt` (1-based), with ±20 % jitter against thundering herds."""
        base = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, attempt - 1))
        return base * random.uniform(0.8, 1.2)

    @property
    def lease_seconds(self) -> float:
        # Long enough for a POST that runs into its timeout, so a live sender never loses its claim.
        return self.timeout_seconds * 3 + 30


@dataclass(frozen=True)
class _Job:
    delivery_id: str
    attempt: int
    event: str
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: float
    permanent: bool = False  # no later attempt can succeed (the destination is refused)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def pinned_request(url: str, destination: Destination) -> tuple[str, dict[str, object]]:
    """The URL rewritten to the checked address, and the TLS name to verify (the original host).

    The caller sends the original `Host` header; with `sni_hostname` httpx presents and verifies the
    certificate of the name, so pinning the address changes nothing the receiver sees.
    """
    parts = urlsplit(url)
    address = destination.addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{literal}:{destination.port}", parts.path or "/", parts.query, ""))
    extensions: dict[str, object] = {}
    if parts.scheme == "https":
        extensions["sni_hostname"] = destination.host
    return pinned, extensions


def encode_body(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSender:
    def __init__(
        self, session_factory: SessionFactory, *, worker_id: str, policy: DeliveryPolicy | None = None
    ) -> None:
        self.session_factory = session_factory
        self.worker_id = worker_id
        self.policy = policy or DeliveryPolicy()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    def _started(self) -> tuple[ThreadPoolExecutor, httpx.Client]:
        # Built on first use: a worker whose users never set a webhook opens no pool and no client.
        if self._pool is None or self._http is None:
            self._pool = ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="webhook")
            self._http = httpx.Client(
                timeout=self.policy.timeout_seconds, follow_redirects=False, headers={"User-Agent": USER_AGENT}
            )
        return self._pool, self._http

    def dispatch_due(self) -> int:
        """Claims due deliveries for the free senders and starts them; returns how many were claimed."""
        with self._lock:
            free = self.policy.concurrency - self._in_flight
        if free <= 0:
            return 0
        jobs = self._claim(free)
        if not jobs:
            return 0
        pool, _ = self._started()
        for job in jobs:
            with self._lock:
                self._in_flight += 1
            pool.submit(self._run, job)
        return len(jobs)

    def deliver_due_now(self) -> int:
        """Claims and sends synchronously, in this thread (tests and one-shot tools)."""
        jobs = self._claim(self.policy.concurrency)
        for job in jobs:
            self._deliver(job)
        return len(jobs)

    def close(self) -> None:
        """Waits for the sends in flight (each bounded by the timeout) and closes the client."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._http is not None:
            self._http.close()
        self._pool = self._http = None

    # --- internals ------------------------------------------------------------------------------
    def _claim(self, limit: int) -> list[_Job]:
        now = utcnow()
        jobs: list[_Job] = []
        with session_scope(self.session_factory) as session:
            claimed = repository.claim_due(
                session, worker_id=self.worker_id, limit=limit, lease_seconds=self.policy.lease_seconds, now=now
            )
            if not claimed:
                return []
            endpoints = repository.endpoints_of(session, {row.user_id for row in claimed})
            for row in claimed:
                url, secret = endpoints.get(row.user_id, (None, None))
                if not url or not secret:
                    # The user removed their webhook after the event: nobody to tell any more.
                    row.status = WebhookDeliveryStatus.CANCELLED
                    row.lease_owner, row.lease_expires_at = None, None
                    continue
                # Sent to the user's current URL: fixing a wrong URL also fixes the retries.
                row.url = url
                jobs.append(_Job(row.id, row.attempts, row.event, url, secret, encode_body(row.payload)))
        return jobs

    def _run(self, job: _Job) -> None:
        try:
            self._deliver(job)
        except Exception:
            log.exception("webhook.delivery_crashed", delivery_id=job.delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _deliver(self, job: _Job) -> None:
        result = self._post(job)
        self._record(job, result)

    def _post(self, job: _Job) -> AttemptResult:
        _, http = self._started()
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.signature_header(job.secret, job.body),
            signing.EVENT_HEADER: job.event,
            signing.DELIVERY_HEADER: job.delivery_id,
            signing.ATTEMPT_HEADER: str(job.attempt),
        }
        started = time.perf_counter()
        try:
            destination = resolve(job.url, allow_private=self.policy.allow_private_networks)
        except RefusedDestination as refused:
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            return AttemptResult(None, str(refused), elapsed, permanent=True)
        except UnresolvedHost as unresolved:
            return AttemptResult(None, str(unresolved), round((time.perf_counter() - started) * 1000, 1))
        url, extensions = pinned_request(job.url, destination)
        headers["Host"] = urlsplit(job.url).netloc
        try:
            response = http.post(url, content=job.body, headers=headers, extensions=extensions)
            status, error = response.status_code, None
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.TimeoutException:
            status, error = None, f"timed out after {self.policy.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            # The message names the failure (refused, DNS…), never the headers, so no signature leaks.
            status, error = None, f"{type(exc).__name__}: {exc}"[:500]
        return AttemptResult(status, error, round((time.perf_counter() - started) * 1000, 1))

    def _record(self, job: _Job, result: AttemptResult) -> None:
        now = utcnow()
        with session_scope(self.session_factory) as session:
            row = repository.get_claimed(session, delivery_id=job.delivery_id, worker_id=self.worker_id)
            if row is None:
                # Cancelled meanwhile, or our claim lapsed and another worker took it over.
                log.info("webhook.attempt_unrecorded", delivery_id=job.delivery_id, attempt=job.attempt)
                return
            entry = {
                "at": now.isoformat(),
                "attempt": job.attempt,
                "statusCode": result.status_code,
                "error": result.error,
                "durationMs": result.duration_ms,
            }
            row.attempt_log = [*(row.attempt_log or []), entry][-MAX_LOG_ENTRIES:]
            row.last_status_code, row.last_error = result.status_code, result.error
            row.lease_owner, row.lease_expires_at = None, None
            if result.ok:
                row.status, row.delivered_at = WebhookDeliveryStatus.DELIVERED, now
            elif result.permanent or job.attempt >= row.max_attempts:
                row.status = WebhookDeliveryStatus.FAILED
            else:
                row.status = WebhookDeliveryStatus.PENDING
                row.next_attempt_at = now + timedelta(seconds=self.policy.delay(job.attempt))
            status = row.status
        event_name = {
            WebhookDeliveryStatus.DELIVERED: "webhook.delivered",
            WebhookDeliveryStatus.FAILED: "webhook.delivery_failed",
        }.get(status, "webhook.attempt_failed")
        log.info(
            event_name,
            delivery_id=job.delivery_id,
            webhook_event=job.event,
            attempt=job.attempt,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
