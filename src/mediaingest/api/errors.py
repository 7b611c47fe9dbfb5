"""Rendering every error as the seed's envelope: `{"success": false, "error": {"code", "message"}}`,
and documenting it so: the OpenAPI document shows the envelope wherever FastAPI would show its own 422 body.

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

from mediaingest.exceptions import AuthenticationError, MediaIngestError, ProcessingError
from mediaingest.schemas import ErrorEnvelope

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


def _problem(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as the envelope names it: the field's dotted path (without its part of the
    request: body, query, path), and what is wrong with it."""
    location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
    return {"field": location or None, "message": error.get("msg", "invalid value")}


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = [_problem(error) for error in exc.errors()]
    summary = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return summary or "invalid request", problems


_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_VALIDATION_DESCRIPTION = "The request does not match its schema: `error.details.errors` names each field"


def _document_envelope_for_validation_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 as `{detail: [...]}` wherever a route validates input; `_invalid` below
    answers with the envelope, so the document says that instead."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(envelope.pop("$defs", {}))
    schemas.setdefault(ErrorEnvelope.__name__, envelope)
    fastapi_ref = f"#/components/schemas/{_FASTAPI_VALIDATION_SCHEMAS[0]}"
    for answer in _validation_answers(spec):
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref") == fastapi_ref:
            schema["$ref"] = f"#/components/schemas/{ErrorEnvelope.__name__}"
            answer["description"] = _VALIDATION_DESCRIPTION
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return spec


def _validation_answers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The 422 answer of every operation that documents one."""
    operations = (operation for path in spec.get("paths", {}).values() for operation in path.values())
    return [operation["responses"]["422"] for operation in operations if "422" in operation.get("responses", {})]


# Answers made outside the exception tree (Starlette, the body limit, the catch-all below).
_CODES_OUTSIDE_THE_TREE = [
    (405, "method_not_allowed", "The path exists but not with this method; the `Allow` header lists those it has."),
    (413, "body_too_large", "The request body is over the server's limit (checked before authentication)."),
    (500, "internal_error", "An unexpected failure; the details are in the server's log, never in the answer."),
]


def _first_sentence(error_class: type[MediaIngestError]) -> str:
    text = " ".join((error_class.__doc__ or "").split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def error_codes() -> list[tuple[int, str, str]]:
    """(status, code, meaning) of every error an API answer can carry, from the exception tree itself.
    Processing errors are left out: they end up in an ingestion job's `error`, never in an answer."""
    found: dict[str, tuple[int, str, str]] = {
        code: (status, code, text) for status, code, text in _CODES_OUTSIDE_THE_TREE
    }
    pending = list(MediaIngestError.__subclasses__())
    while pending:  # breadth first: where two classes share a code, the more general one describes it
        error_class = pending.pop(0)
        if issubclass(error_class, ProcessingError):
            continue
        pending.extend(error_class.__subclasses__())
        found.setdefault(error_class.code, (error_class.status_code, error_class.code, _first_sentence(error_class)))
    return sorted(found.values())


def _error_codes_markdown() -> str:
    rows = "\n".join(f"| {status} | `{code}` | {meaning} |" for status, code, meaning in error_codes())
    return (
        'Every error is answered as `{"success": false, "error": {"code", "message", "details"}}`; '
        "`code` is stable, `message` is for people.\n\n| Status | Code | Meaning |\n|---|---|---|\n" + rows
    )


def install_error_handlers(app: FastAPI) -> None:
    fastapi_openapi = app.openapi  # FastAPI's own builder (servers, tags, webhooks…); it caches its result

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.description = "\n\n".join(part for part in (app.description, _error_codes_markdown()) if part)
            _document_envelope_for_validation_errors(fastapi_openapi())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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
