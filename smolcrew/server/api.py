"""The HTTP API over `ChatService`: conversations, runs with live server-sent events, approvals, audit, health.

`create_app()` builds the FastAPI app; `smolcrew serve` runs it with uvicorn. The OpenAPI schema is at
`/openapi.json` (no /docs: Swagger UI would load from a CDN). Errors are RFC 9457 problem details
(`application/problem+json`: type, title, status, detail; smolcrew/server/problems.py).

Security: the server binds 127.0.0.1 by default. When `server.token` is set, every request (the UI mount too)
needs `Authorization: Bearer <token>`; a browser may send the token as a `token` cookie or `?token=` query
parameter instead (smolcrew/server/auth.py). A non-loopback `server.host` without `server.token`, or a token under
32 characters, is refused at start (ConfigError). Request bodies are capped by size and JSON depth before they are
read (smolcrew/server/limits.py); every reply carries security headers and CORS is closed unless
`server.cors_origins` lists an origin (smolcrew/server/headers.py). Artifacts are downloads (`attachment`,
`nosniff`, CSP `sandbox`): a run's HTML, SVG or script never runs on this origin; images and audio stay inline.

Events (`GET /v1/runs/{id}/events`, `text/event-stream`): `event: step|pending_approval|run_end`, `id: n`
(counting from 0 per run), `data:` JSON; a `: keepalive` comment every 15 s. Reconnect with `Last-Event-ID: n`
(or `?after=n`) to get exactly the events after n. The stream closes after `run_end`.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.datastructures import UploadFile

from smolcrew.config import Settings, load_settings
from smolcrew.errors import ConfigError, ServiceError, UnsupportedUploadError
from smolcrew.server import models as m
from smolcrew.server.auth import TokenGate, check_token, is_loopback
from smolcrew.server.headers import SecurityHeaders
from smolcrew.server.limits import BodyLimit
from smolcrew.server.problems import ERROR_RESPONSES, PROBLEM_JSON, add_error_handlers, problem
from smolcrew.server.service import ChatService, RunInfo
from smolcrew.server.uploads import Upload

__all__ = ["PROBLEM_JSON", "create_app", "is_loopback"]

KEEPALIVE_S = 15.0
MAX_FILES = 16
UI_PATH = "/ui"
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "audio/wav", "audio/x-wav", "audio/mpeg",
     "audio/ogg", "audio/flac", "audio/x-flac", "video/mp4", "video/webm"}
)  # fmt: skip
"""Artifact types shown inline (passive media); any other (HTML, SVG, XML, JS, PDF...) is a download."""
ARTIFACT_CSP = "sandbox; default-src 'none'"


def _run_out(info: RunInfo) -> m.RunOut:
    from pathlib import Path

    artifacts = [Path(path).name for path in (info.result or {}).get("artifacts", [])]
    return m.RunOut(
        run_id=info.run_id,
        conversation_id=info.conversation_id,
        status=info.status,
        text=info.text,
        journal_run_id=info.journal_run_id,
        files=list(info.files),
        artifacts=artifacts,
        result=info.result,
        cancel_requested=info.cancel_requested,
    )


def _tracing(settings: Settings) -> None:
    """Instrument smolagents with OpenTelemetry (OTLP/HTTP to `server.otlp_endpoint`)."""
    try:
        from openinference.instrumentation.smolagents import SmolagentsInstrumentor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"`server.tracing` is on but {exc.name or 'a tracing package'} is missing: pip install "
            "openinference-instrumentation-smolagents opentelemetry-sdk opentelemetry-exporter-otlp-proto-http "
            "(or set server.tracing = false)",
            field="server.tracing",
        ) from exc
    provider = TracerProvider()
    endpoint = settings.server.otlp_endpoint
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter())
    )
    SmolagentsInstrumentor().instrument(tracer_provider=provider)


def create_app(
    settings: Settings | None = None, *, service: ChatService | None = None, mount_ui: bool = False
) -> FastAPI:
    """The FastAPI app. Without `service`, one is built from `settings` (and closed at shutdown); a given
    service belongs to the caller. `mount_ui` calls `smolcrew.server.ui.mount(app, service)` when that module exists.

    Raises:
        ConfigError: `server.host` is not loopback and `server.token` is unset; `server.token` is shorter than 32
            characters; or tracing is on without its packages.
    """
    settings = settings or (service.settings if service is not None else load_settings())
    server = settings.server
    check_token(server)
    if server.tracing:
        _tracing(settings)
    owned = service is None
    chat = service if service is not None else ChatService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            chat.close()

    app = FastAPI(
        title="smolcrew",
        version="1",
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,  # type: ignore[arg-type]
    )
    app.state.service = chat
    add_error_handlers(app)
    _add_routes(app, chat)
    home = "/openapi.json"
    if mount_ui:
        import importlib
        import importlib.util

        if importlib.util.find_spec("smolcrew.server.ui") is not None:
            importlib.import_module("smolcrew.server.ui").mount(app, chat, path=UI_PATH)
            home = f"{UI_PATH}/"

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """The chat when the UI is mounted, else the schema."""
        return RedirectResponse(home, status_code=307)

    # the last added runs first: headers (and CORS preflights) > token > body limits > the app
    app.add_middleware(BodyLimit, server=server)
    if server.token is not None:
        app.add_middleware(TokenGate, token=server.token.get_secret_value(), pages=(UI_PATH,))
    app.add_middleware(SecurityHeaders, origins=server.cors_origins, ui_prefix=UI_PATH)
    return app


async def _message(request: Request, limit: int) -> tuple[str, list[Upload]]:
    """The text and files of a message posted as JSON or as multipart/form-data."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": str(exc)}]) from exc
        return m.MessageIn.model_validate(body).text, []
    if kind != "multipart/form-data":
        raise UnsupportedUploadError(
            f"a message is sent as application/json or multipart/form-data, not {kind or 'no content type'!r}",
            content_type=kind,
        )
    async with request.form(max_files=MAX_FILES, max_fields=8) as form:
        text = form.get("text")
        if not isinstance(text, str):
            raise ValueError("the multipart message needs a `text` field (a string)")
        uploads = []
        for part in form.getlist("files"):
            if not isinstance(part, UploadFile):
                raise ValueError("`files` parts must be files (with a filename)")
            data = await part.read(limit + 1)
            uploads.append(Upload(part.filename or "upload", part.content_type or "", data))
    return m.MessageIn(text=text).text, uploads


def _add_routes(app: FastAPI, chat: ChatService) -> None:
    limit = int(chat.settings.server.max_upload_mb * 1024 * 1024)
    message_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": m.MessageIn.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string", "minLength": 1},
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        },
                    }
                },
            },
        }
    }

    @app.post("/v1/conversations", status_code=201, response_model=m.ConversationCreated)
    def create_conversation() -> m.ConversationCreated:
        return m.ConversationCreated(id=chat.create_conversation().id)

    @app.get("/v1/conversations/{conversation_id}", response_model=m.ConversationOut)
    def get_conversation(conversation_id: str) -> m.ConversationOut:
        conversation = chat.conversation(conversation_id)
        turns = [
            m.TurnOut(
                run_id=info.run_id,
                text=info.text,
                status=info.status,
                state=(info.result or {}).get("state"),
                answer=(info.result or {}).get("answer"),
            )
            for info in chat.turns(conversation_id)
        ]
        return m.ConversationOut(id=conversation.id, created=conversation.created, turns=turns)

    @app.post(
        "/v1/conversations/{conversation_id}/messages",
        status_code=202,
        response_model=m.RunAccepted,
        openapi_extra=message_body,
        responses={413: ERROR_RESPONSES[409], 415: ERROR_RESPONSES[409], 400: ERROR_RESPONSES[409]},
    )
    async def send_message(conversation_id: str, request: Request) -> m.RunAccepted:
        chat.conversation(conversation_id)  # 404 before reading a large body
        text, files = await _message(request, limit)
        ticket = chat.send(conversation_id, text, files)
        return m.RunAccepted(
            run_id=ticket.run_id,
            conversation_id=ticket.conversation_id,
            events_url=str(request.url_for("run_events", run_id=ticket.run_id).path),
        )

    @app.get("/v1/runs/{run_id}", response_model=m.RunOut)
    def get_run(run_id: str) -> m.RunOut:
        return _run_out(chat.run_info(run_id))

    @app.post("/v1/runs/{run_id}/cancel", response_model=m.RunOut, status_code=202)
    def cancel_run(run_id: str) -> m.RunOut:
        """Ask the run to stop: a queued run ends at once, a running one at its next step (its stream ends with
        `run_end`, state cancelled). 409 when it has ended or waits for a person."""
        return _run_out(chat.cancel(run_id))

    @app.get(
        "/v1/runs/{run_id}/events",
        name="run_events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    async def run_events(
        run_id: str,
        request: Request,
        after: Annotated[int | None, Query(ge=-1, description="Send the events after this id.")] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        chat.run_info(run_id)  # 404 before the stream starts
        if last_event_id is not None and last_event_id.strip():
            try:
                after = int(last_event_id)
            except ValueError:
                after = None
            if after is None or after < -1:
                raise ValueError(f"Last-Event-ID must be an event id (an integer >= -1), got {last_event_id[:40]!r}")

        async def stream() -> AsyncIterator[str]:
            cursor = after
            while True:
                ended = False
                async for event in chat.aevents(run_id, cursor, timeout_s=KEEPALIVE_S):
                    cursor, ended = event.id, event.event == "run_end"
                    yield f"id: {event.id}\nevent: {event.event}\ndata: {json.dumps(event.data, default=str)}\n\n"
                if ended or await request.is_disconnected():
                    return
                yield ": keepalive\n\n"

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.get(
        "/v1/runs/{run_id}/artifacts/{name}",
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def get_artifact(run_id: str, name: str) -> FileResponse:
        """A file the run wrote, as a download (passive media inline): never a page of this origin."""
        path = chat.artifact(run_id, name)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        inline = kind in INLINE_TYPES
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", path.name).lstrip(".") or "artifact"
        return FileResponse(
            path,
            media_type=kind if inline else "application/octet-stream",
            filename=safe,
            content_disposition_type="inline" if inline else "attachment",
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": ARTIFACT_CSP},
        )

    @app.get("/v1/runs/{run_id}/audit", response_model=m.AuditBundle)
    def get_audit(run_id: str) -> m.AuditBundle:
        return m.AuditBundle.model_validate(chat.audit_export(run_id))

    @app.get("/v1/approvals", response_model=list[m.ApprovalOut])
    def list_approvals(
        status: Annotated[str, Query(pattern="^(pending|approved|rejected|all)$")] = "pending",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[m.ApprovalOut]:
        chosen: Any = None if status == "all" else status
        return [m.ApprovalOut.model_validate(a.to_dict()) for a in chat.list_approvals(chosen, limit)]

    @app.get("/v1/approvals/{approval_id}", response_model=m.ApprovalOut)
    def get_approval(approval_id: str) -> m.ApprovalOut:
        return m.ApprovalOut.model_validate(chat.get_approval(approval_id).to_dict())

    @app.post("/v1/approvals/{approval_id}", response_model=m.ApprovalOut)
    def decide(approval_id: str, decision: m.DecisionIn) -> m.ApprovalOut:
        decided = chat.decide(approval_id, approve=decision.approve, by=decision.by.strip(), note=decision.note)
        return m.ApprovalOut.model_validate(decided.to_dict())

    @app.get("/healthz", response_model=m.Health)
    def healthz() -> m.Health:
        if not chat.health():
            raise ServiceError("the chat service is closed; restart the server")
        return m.Health(status="ok")

    @app.get("/readyz", response_model=m.Readiness)
    def readyz() -> Any:
        """200 when Redis, the journal and the model backend work; else 503, a problem with the same `checks`."""
        ready = chat.ready()
        checks = {name: m.ReadyCheck(ok=ok, detail=detail) for name, (ok, detail) in ready.checks.items()}
        if ready.ok:
            return m.Readiness(ok=True, checks=checks)
        failing = "; ".join(f"{name}: {check.detail}" for name, check in checks.items() if not check.ok)
        extra = {"ok": False, "checks": {name: check.model_dump() for name, check in checks.items()}}
        return problem(503, f"not ready: {failing}", extra=extra)
