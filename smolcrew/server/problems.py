"""Errors as RFC 9457 problem details (`application/problem+json`: type, title, status, detail) for the HTTP API
(smolcrew/server/api.py): which smolcrew error answers with which status, and the app's exception handlers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from smolcrew.errors import (
    ApprovalAlreadyDecided,
    ApprovalNotFound,
    ApprovalQueueUnavailable,
    ArtifactNotFoundError,
    ConversationNotFoundError,
    RunNotCancellable,
    RunNotFoundError,
    ServiceError,
    SinkUnavailableError,
    UnsupportedUploadError,
    UploadTooLargeError,
)
from smolcrew.server import models as m

__all__ = ["ERROR_RESPONSES", "PROBLEM_JSON", "add_error_handlers", "problem", "status_of"]

PROBLEM_JSON = "application/problem+json"
STATUS: list[tuple[type[Exception], int]] = [
    (ConversationNotFoundError, 404),
    (RunNotFoundError, 404),
    (ArtifactNotFoundError, 404),
    (ApprovalNotFound, 404),
    (ApprovalAlreadyDecided, 409),
    (RunNotCancellable, 409),
    (UploadTooLargeError, 413),
    (UnsupportedUploadError, 415),
    (ApprovalQueueUnavailable, 503),
    (SinkUnavailableError, 503),
    (ServiceError, 503),
    (ValueError, 422),
]
ERROR_RESPONSES = {code: {"model": m.Problem, "content": {PROBLEM_JSON: {}}} for code in (401, 404, 409, 422, 503)}
"""The OpenAPI schema's error replies, shared by every route."""


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """An RFC 9457 problem reply; `extra` adds extension members."""
    title = HTTPStatus(status).phrase
    body = m.Problem(type=f"https://smolcrew.dev/problems/{status}", title=title, status=status, detail=detail)
    content = {**body.model_dump(), **(extra or {})}
    return JSONResponse(content, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(exc: Exception) -> int:
    """The HTTP status of a smolcrew error (the first matching kind in `STATUS`)."""
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def add_error_handlers(app: FastAPI) -> None:
    """Every error a route raises answers as a problem: smolcrew errors by `STATUS`, schema mismatches 422 (bad
    JSON 400), unknown routes 404."""

    async def smolcrew_error(_: Request, exc: Exception) -> JSONResponse:
        return problem(status_of(exc), str(exc))

    for kind, _code in STATUS:
        app.add_exception_handler(kind, smolcrew_error)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError | PydanticValidationError) else []
        if any(error.get("type") == "json_invalid" for error in errors):
            return problem(400, 'the body is not valid JSON; send a JSON object such as {"text": "..."}')
        where = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg')}" for error in errors[:5]
        )
        return problem(422, f"the request does not match the schema ({where}); see /openapi.json")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(PydanticValidationError, invalid)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else ""
        if status == 404 and detail == "Not Found":
            detail = "no such route; see /openapi.json for the routes"
        return problem(status, str(detail))

    app.add_exception_handler(StarletteHTTPException, http_error)
