"""Who may use the HTTP API: a server bound to a loopback address, or a request carrying `server.token`."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request

from smolcrew.server.problems import problem

__all__ = ["TokenGate", "is_loopback"]

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


class TokenGate:
    """ASGI middleware: every HTTP request needs the token (header, `token` cookie or `token` query param)."""

    def __init__(self, app: Asgi, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.headers.get("authorization", "")
        candidates = [given[7:].strip()] if given.lower().startswith("bearer ") else []
        candidates += [request.cookies.get("token", ""), request.query_params.get("token", "")]
        if any(c and secrets.compare_digest(c.encode(), self.token.encode()) for c in candidates):
            await self.app(scope, receive, send)
            return
        reply = problem(
            401,
            "this server needs its token: send `Authorization: Bearer <token>` (browsers: a `token` cookie or "
            "`?token=` parameter); the token is `server.token` (SMOLCREW_SERVER__TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await reply(scope, receive, send)
