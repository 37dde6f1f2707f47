"""Who may use the HTTP API: a server bound to a loopback address, or a request carrying `server.token`.

A token is at least `MIN_TOKEN_CHARS` long (`check_token`, at start). A browser opening `/ui?token=...` gets the
token as an HttpOnly cookie and is redirected to the same URL without it, so the token leaves the address bar and
the history; on every path a `token` query parameter is removed from the request once checked, so neither the
app nor uvicorn's access log sees it.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from starlette.responses import RedirectResponse

from smolcrew.errors import ConfigError
from smolcrew.server.problems import problem

if TYPE_CHECKING:
    from smolcrew.config import ServerSettings

__all__ = ["MIN_TOKEN_CHARS", "TokenGate", "check_token", "is_loopback"]

MIN_TOKEN_CHARS = 32
"""Shortest `server.token` accepted: `secrets.token_urlsafe(32)` gives 43 characters (256 bits)."""

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(server: ServerSettings) -> None:
    """Refuse to serve without a token off loopback, or with a short one anywhere (ConfigError)."""
    fix = "make one with `smolcrew serve --generate-token` and set it as SMOLCREW_SERVER__TOKEN"
    if server.token is None:
        if not is_loopback(server.host):
            raise ConfigError(
                f"server.host is {server.host!r}, reachable from other machines, but no server.token is set: "
                f"{fix}, or bind 127.0.0.1",
                field="server.token",
            )
        return
    length = len(server.token.get_secret_value())
    if length < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"server.token is {length} characters, shorter than {MIN_TOKEN_CHARS}: anyone who can reach the "
            f"server could guess it; {fix}",
            field="server.token",
        )


def _is_page(path: str, pages: tuple[str, ...]) -> bool:
    return path == "/" or any(path == page or path.startswith(page + "/") for page in pages)


class TokenGate:
    """ASGI middleware: every HTTP request needs the token (header, `token` cookie or `token` query param).
    A GET of one of `pages` (and `/`) with a good `?token=` is redirected to its clean URL with a cookie."""

    def __init__(self, app: Asgi, token: str, *, pages: tuple[str, ...] = ("/ui",)) -> None:
        self.app, self.token, self.pages = app, token, pages

    def good(self, candidate: str) -> bool:
        return bool(candidate) and secrets.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.headers.get("authorization", "")
        candidates = [given[7:].strip()] if given.lower().startswith("bearer ") else []
        candidates.append(request.cookies.get("token", ""))
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        in_query = any(key == "token" and self.good(value) for key, value in query)
        clean = urlencode([(key, value) for key, value in query if key != "token"]).encode("latin-1")
        if any(key == "token" for key, _ in query):
            scope["query_string"] = clean  # checked: the app and the access log never see a token
        if in_query or any(self.good(c) for c in candidates):
            if in_query and scope.get("method") in ("GET", "HEAD") and _is_page(scope["path"], self.pages):
                location = scope.get("root_path", "") + scope["path"] + (f"?{clean.decode()}" if clean else "")
                redirect = RedirectResponse(location, status_code=303)
                secure = scope.get("scheme") in ("https", "wss")
                redirect.set_cookie("token", self.token, httponly=True, samesite="strict", secure=secure)
                await redirect(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        reply = problem(
            401,
            "this server needs its token: send `Authorization: Bearer <token>` (browsers: a `token` cookie or "
            "`?token=` parameter); the token is `server.token` (SMOLCREW_SERVER__TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await reply(scope, receive, send)
