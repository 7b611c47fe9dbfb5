"""Per-request middleware: a request id on every log line and response, latency metrics, an access log;
and a bound on API request bodies, enforced before anything parses or authenticates them."""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediaingest import metrics

log = structlog.stdlib.get_logger("mediaingest.access")


class RequestContextMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so streamed upload bodies pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _observe(scope, status_holder["status"], time.perf_counter() - started)
            structlog.contextvars.clear_contextvars()


def _header(scope: Scope, name: bytes) -> bytes:
    """A request header's value as sent (ASGI names are lowercase); b"" when absent."""
    return dict(scope.get("headers") or []).get(name, b"")


def _request_id(scope: Scope) -> str:
    incoming = _header(scope, b"x-request-id").decode("latin-1")
    # Accept a caller's id only if it looks like one; never echo arbitrary bytes into logs.
    return incoming if 0 < len(incoming) <= 64 and incoming.isascii() else uuid.uuid4().hex


def _observe(scope: Scope, status: int, elapsed: float) -> None:
    """The request's latency by route template, and its access-log line (none for probes and scrapes)."""
    template = getattr(scope.get("route"), "path", None) or "unmatched"
    metrics.http_request_duration_seconds.labels(scope["method"], template, str(status)).observe(elapsed)
    if template not in ("/healthz", "/readyz", "/metrics"):
        log.info(
            "http.request",
            method=scope["method"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
        )


class BodySizeLimitMiddleware:
    """Answers 413 to an API request whose body exceeds `limit` bytes, before the app sees any of it.

    FastAPI reads and parses a JSON body before it resolves dependencies, authentication included, so
    without this an anonymous client could make the process hold a body of any size. A declared
    Content-Length over the limit is refused at once; otherwise the body is read here, counting as it
    arrives (chunked bodies have no declared length), and replayed to the app. Paths under `exempt`
    bound their bodies themselves: the local backend's signed upload URLs by their signature, a stage
    pod's result after its token was checked.
    """

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...] = ("/storage/",)) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._bounded(scope):
            await self.app(scope, receive, send)
            return
        if self._declares_too_much(scope):
            await self._too_large(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)
            return
        if body is not None:  # else the client went away: nobody to answer
            await self.app(scope, _replay(body, receive), send)

    def _bounded(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] not in ("GET", "HEAD", "OPTIONS")
            and not scope["path"].startswith(self.exempt)
        )

    def _declares_too_much(self, scope: Scope) -> bool:
        declared = _header(scope, b"content-length")
        return declared.isdigit() and int(declared) > self.limit

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, counted as it arrives; None when the client disconnected first."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("request.rejected", status=413, code="body_too_large", path=scope["path"])
        response = JSONResponse(
            {
                "success": False,
                "error": {
                    "code": "body_too_large",
                    "message": f"request body is over the limit of {self.limit} bytes",
                    "details": {"limit": self.limit},
                },
            },
            status_code=413,
            headers={"Connection": "close"},  # the rest of the body is not read
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    """The body grew past the limit while it was read."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's `receive`: the body read already, once, then whatever the client sends next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
