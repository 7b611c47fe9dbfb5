"""Sending a webhook delivery: the `webhooks.deliver` task.

A delivery row (what users see through `/api/webhook/deliveries`) and its task are made together,
in the transaction that changes the asset's state (`service.record_asset_event`). A runner claims
the task; one attempt reads the row and the user's current endpoint in a short unit of work, POSTs
the stored payload with no transaction open, then records the attempt on the row in a second unit,
fenced by the task's lease. A non-2xx answer, a timeout or a connection error is retried by the
delivery retry policy (exponential backoff with jitter, 8 attempts over about an hour); redirects
are not followed (a 3xx is a failure). Each attempt resolves the host once, checks every address
(`destinations`), and connects to the address it checked; a refused destination fails the delivery
at once, with its reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from sqlalchemy.orm import Session

from mediaingest import metrics
from mediaingest.config import Settings
from mediaingest.db import new_id, session_scope, utcnow
from mediaingest.exceptions import MediaIngestError, Permanent
from mediaingest.models import Task, WebhookDelivery
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.runtime import Runtime
from mediaingest.tasks import queue
from mediaingest.tasks.registry import DEFAULT_QUEUE, TaskCancelled, TaskRun, TaskSpec
from mediaingest.webhooks import repository, signing
from mediaingest.webhooks.destinations import Destination, RefusedDestination, UnresolvedHost, resolve

log = structlog.stdlib.get_logger(__name__)

DELIVER = "webhooks.deliver"
USER_AGENT = "mediaingest-webhooks/0.1"
MAX_LOG_ENTRIES = 50
MAX_ATTEMPTS = 8


def delivery_retry(base_seconds: float = 30.0) -> RetryPolicy:
    """30 s, 1 min, 2 min, … (± 20 %), capped at an hour: 8 attempts span about an hour."""
    return RetryPolicy(max_attempts=MAX_ATTEMPTS, base_seconds=base_seconds, max_seconds=3600.0, jitter=0.2)


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    allow_private_networks: bool = False
    retry: RetryPolicy = field(default_factory=delivery_retry)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private_networks=settings.webhook_allow_private_networks,
            retry=delivery_retry(settings.webhook_backoff_base_seconds),
        )


@dataclass(frozen=True)
class _Attempt:
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

    def failure(self) -> FailedDelivery:
        """What a failed attempt raises: the runner retries a FailedDelivery, never a RefusedDelivery."""
        message = self.error or "delivery failed"
        return RefusedDelivery(message) if self.permanent else FailedDelivery(message)


class FailedDelivery(MediaIngestError):
    """A non-2xx answer, a timeout or a connection error: retried."""

    code = "webhook_delivery_failed"


class RefusedDelivery(FailedDelivery, Permanent):
    """The destination is refused (a private address): no attempt can succeed."""


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


def new_delivery(
    session: Session,
    *,
    user_id: str,
    asset_id: str,
    event: str,
    url: str,
    payload: dict[str, Any],
    delivery_id: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> WebhookDelivery:
    """A delivery and the task that sends it, together in the caller's transaction."""
    delivery_id = delivery_id or new_id()
    task = queue.defer(
        session,
        name=DELIVER,
        queue=DEFAULT_QUEUE,
        payload={"deliveryId": delivery_id},
        dedupe_key=delivery_task_key(delivery_id),
        max_attempts=max_attempts,
    )
    delivery = WebhookDelivery(id=delivery_id, user_id=user_id, asset_id=asset_id, event=event, url=url,
                               payload=payload, task_id=task.id, attempt_log=[])  # fmt: skip
    session.add(delivery)
    session.flush()
    return delivery


def delivery_task_key(delivery_id: str) -> str:
    return f"webhook:{delivery_id}"


# --- the task ---------------------------------------------------------------------------------------
def deliver(ctx: Runtime, run: TaskRun) -> None:
    policy = DeliveryPolicy.from_settings(ctx.settings)
    attempt = _start(ctx, run)
    if attempt is None:
        return
    result = post(attempt, policy)
    _record(ctx, run, attempt, result)


def _start(ctx: Runtime, run: TaskRun) -> _Attempt | None:
    with session_scope(ctx.session_factory) as session:
        row = session.get(WebhookDelivery, run.payload["deliveryId"])
        if row is None:
            raise TaskCancelled("the delivery is gone (its user was deleted)")
        url, secret = repository.endpoints_of(session, {row.user_id}).get(row.user_id, (None, None))
        if not url or not secret:
            raise TaskCancelled("the user removed their webhook after the event: nobody to tell any more")
        row.url = url  # sent to the user's current URL: fixing a wrong URL also fixes the retries
        return _Attempt(row.id, run.attempt, row.event, url, secret, encode_body(row.payload))


def post(attempt: _Attempt, policy: DeliveryPolicy) -> AttemptResult:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signing.signature_header(attempt.secret, attempt.body),
        signing.EVENT_HEADER: attempt.event,
        signing.DELIVERY_HEADER: attempt.delivery_id,
        signing.ATTEMPT_HEADER: str(attempt.attempt),
    }
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        destination = resolve(attempt.url, allow_private=policy.allow_private_networks)
    except RefusedDestination as refused:
        return AttemptResult(None, str(refused), elapsed(), permanent=True)
    except UnresolvedHost as unresolved:
        return AttemptResult(None, str(unresolved), elapsed())
    url, extensions = pinned_request(attempt.url, destination)
    headers["Host"] = urlsplit(attempt.url).netloc
    status, error = _send(url, attempt.body, headers, extensions, timeout_seconds=policy.timeout_seconds)
    return AttemptResult(status, error, elapsed())


def _send(
    url: str, body: bytes, headers: dict[str, str], extensions: dict[str, object], *, timeout_seconds: float
) -> tuple[int | None, str | None]:
    """One POST, redirects not followed: the answer's status, and what went wrong (None when it is 2xx)."""
    try:
        with httpx.Client(timeout=timeout_seconds, follow_redirects=False) as http:
            response = http.post(url, content=body, headers=headers, extensions=extensions)
    except httpx.TimeoutException:
        return None, f"timed out after {timeout_seconds:g} s"
    except httpx.HTTPError as exc:
        # The message names the failure (refused, DNS…), never the headers, so no signature leaks.
        return None, f"{type(exc).__name__}: {exc}"[:500]
    status = response.status_code
    return status, (None if 200 <= status < 300 else f"HTTP {status}")


def _record(ctx: Runtime, run: TaskRun, attempt: _Attempt, result: AttemptResult) -> None:
    """The attempt on the row, fenced by the task's lease. A failure is raised: the runner decides it with
    the delivery retry policy and records the decision on the row (`delivery_failed`)."""
    now = utcnow()
    with session_scope(ctx.session_factory) as session:
        row = session.get(WebhookDelivery, attempt.delivery_id)
        if row is None or not queue.holds(session, task_id=run.task_id, worker_id=run.worker_id):
            # Cancelled meanwhile, or the lease lapsed and another runner took the task over.
            log.info("webhook.attempt_unrecorded", delivery_id=attempt.delivery_id, attempt=attempt.attempt)
            raise TaskCancelled("the delivery is no longer this runner's")
        entry = {
            "at": now.isoformat(),
            "attempt": attempt.attempt,
            "statusCode": result.status_code,
            "error": result.error,
            "durationMs": result.duration_ms,
        }
        row.attempt_log = [*(row.attempt_log or []), entry][-MAX_LOG_ENTRIES:]
        row.last_status_code = result.status_code
    if result.ok:  # the runner marks the task succeeded: the delivery reads DELIVERED
        metrics.webhook_delivery_attempts_total.labels(outcome="delivered").inc()
        log.info("webhook.delivered", delivery_id=attempt.delivery_id, webhook_event=attempt.event,
                 attempt=attempt.attempt, status_code=result.status_code, duration_ms=result.duration_ms)  # fmt: skip
        return
    raise result.failure()


def delivery_failed(session: Session, task: Task, error: str, decision: RetryDecision) -> None:
    """The runner has decided a failed attempt on the task (retried after its delay, or failed): counted and
    logged. The row reads its status, next attempt and error from the task."""
    row = session.get(WebhookDelivery, task.payload.get("deliveryId"))
    if row is None:
        return
    outcome = "retrying" if decision.retry else "failed"
    metrics.webhook_delivery_attempts_total.labels(outcome=outcome).inc()
    log.info("webhook.attempt_failed" if decision.retry else "webhook.delivery_failed", delivery_id=row.id,
             webhook_event=row.event, attempt=task.attempts, status_code=row.last_status_code, error=error)  # fmt: skip


DELIVER_TASK = TaskSpec(
    name=DELIVER,
    queue=DEFAULT_QUEUE,
    function=deliver,
    retry=lambda settings: DeliveryPolicy.from_settings(settings).retry,
    on_failure=delivery_failed,
)
