"""Security headers on every reply, and CORS closed unless `server.cors_origins` opens it.

`SecurityHeaders` is the outermost ASGI middleware, so it also covers the mounted Gradio UI, the 401s of the
token gate and the 413s of the body limit:

- every reply: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`;
- a Content-Security-Policy unless the route set its own (artifacts set `sandbox`): the API's denies everything
  (`default-src 'none'`, it serves JSON); the UI's (`UI_CSP`) lets Gradio's page run its inline scripts and
  styles and talk to this origin only;
- CORS: a preflight from an origin in `server.cors_origins` is answered here (credentials allowed); from any
  other origin it is refused (403). Any `Access-Control-*` header an app set (Gradio echoes `http://localhost:*`
  origins with credentials) is removed unless the request's origin is listed. A state-changing request (not
  GET/HEAD/OPTIONS) from another origin that is not listed is refused with 403: multipart posts need no
  preflight, and origins on the same host are the same site, so SameSite cookies do not stop them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from smolcrew.server.problems import problem

__all__ = ["API_CSP", "UI_CSP", "SecurityHeaders"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

API_CSP = "default-src 'none'; frame-ancestors 'none'"
UI_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""Gradio's page needs inline scripts and styles (and `eval` for some components); everything else is this
origin only (`connect-src 'self'` covers its same-origin fetches, server-sent events and web sockets)."""
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"))
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID"
OWN_CORS = (b"access-control-allow-origin", b"access-control-allow-credentials")
"""Set here alone for a listed origin, whatever the app set."""


class SecurityHeaders:
    """ASGI middleware: security headers, CSP by path (`ui_prefix` gets `UI_CSP`), and CORS for `origins`."""

    def __init__(self, app: Asgi, *, origins: Sequence[str] = (), ui_prefix: str = "/ui") -> None:
        self.app, self.origins, self.ui_prefix = app, frozenset(o.rstrip("/") for o in origins), ui_prefix

    def csp(self, path: str) -> bytes:
        ui = path == self.ui_prefix or path.startswith(self.ui_prefix + "/")
        return (UI_CSP if ui else API_CSP).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value for name, value in scope.get("headers", ())}
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
        listed = bool(origin) and origin in self.origins
        foreign = bool(origin) and not listed and not _same_origin(origin, headers.get(b"host", b""))
        preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
        reply: Asgi | None = None
        if preflight and listed:
            allow = {"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "600"}
            reply = Response(status_code=204, headers={**allow, "Access-Control-Allow-Headers": ALLOW_HEADERS})
        elif preflight or (foreign and scope["method"] not in SAFE_METHODS):
            reply = problem(
                403,
                f"cross-origin requests from {origin or 'this page'!r} are not allowed; list the origin in "
                "`server.cors_origins` (SMOLCREW_SERVER__CORS_ORIGINS) to allow it",
            )
        csp = self.csp(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                dropped = OWN_CORS if listed else (b"access-control-",)
                kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(dropped)]
                names = {k.lower() for k, _ in kept}
                kept += [(k, v) for k, v in ALWAYS if k not in names]
                if b"content-security-policy" not in names:
                    kept.append((b"content-security-policy", csp))
                if listed:
                    kept += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-credentials", b"true"),
                        (b"vary", b"Origin"),
                    ]
                message["headers"] = kept
            await send(message)

        await (reply or self.app)(scope, receive, send_with_headers)


def _same_origin(origin: str, host: bytes) -> bool:
    """Whether `origin` names this server as the request reached it (its `Host`); the scheme is not compared, as a
    TLS proxy in front changes it."""
    return bool(host) and urlsplit(origin).netloc.lower() == host.decode("latin-1").lower()
