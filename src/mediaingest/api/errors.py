"""Rendering every error as the seed's envelope: `{"success": false, "error": {"code", "message"}}`.

Expected errors carry their own status (`mediaingest.exceptions`); anything else is logged with its
traceback and answered as a bare 500, so no stack trace or internal detail ever reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediaingest.exceptions import AuthenticationError, MediaIngestError

log = structlog.stdlib.get_logger(__name__)


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    sent = dict(headers or {})
    if status_code == 401:
        sent.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"success": False, "error": body}, status_code=status_code, headers=sent or None)


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
        problems.append({"field": location or None, "message": error.get("msg", "invalid value")})
    summary = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return summary or "invalid request", problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MediaIngestError)
    async def _expected(request: Request, exc: MediaIngestError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request.failed", code=exc.code, error=exc.message)
        elif not isinstance(exc, AuthenticationError):
            log.info("request.rejected", status=exc.status_code, code=exc.code, error=exc.message)
        return error_response(exc.status_code, exc.code, exc.message, exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = _describe_validation(exc)
        return error_response(422, "validation_error", message, {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette's own headers (Allow on a 405) are part of the answer's meaning: keep them.
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.crashed", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal server error")
