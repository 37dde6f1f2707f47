"""Request bodies the server will read: a size cap per kind of body, a JSON nesting cap, a stall timeout.

`BodyLimit` is pure ASGI middleware, so it sees the body before any framework reads it whole (FastAPI's
`request.body()`, Starlette's multipart spooling, Gradio's routes):

- a `Content-Length` over the limit is refused before one byte of the body is read;
- a body without one (chunked) is counted as it arrives, and refused as soon as the count passes the limit;
- multipart bodies (uploads) may be `server.max_upload_mb` plus `MULTIPART_ALLOWANCE`; every other body
  `server.max_json_kb`;
- a JSON body is refused when `[`/`{` nest deeper than `server.max_json_depth` (counted outside strings, before
  any parser recurses: a 100,000-deep body is a RecursionError, a 500, in `json.loads`);
- a body that stalls longer than `server.body_timeout_s` between pieces is refused with 408.

Every refusal is a problem (`application/problem+json`). What the app answered meanwhile is dropped: a mounted
app (Gradio) may turn the abort into its own 500.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from itertools import accumulate, count
from typing import TYPE_CHECKING, Any

from smolcrew.server.problems import problem

if TYPE_CHECKING:
    from smolcrew.config import ServerSettings

__all__ = ["MULTIPART_ALLOWANCE", "BodyLimit", "BodyRefused", "json_depth"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_ALLOWANCE = 64 * 1024
"""Bytes a multipart body may carry beyond `max_upload_mb`: part headers, boundaries and the `text` field."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_JSON_KINDS = ("", "application/json")


class BodyRefused(Exception):
    """A request body the server will not read; `.status` and `.detail` make the problem reply."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def json_depth(body: bytes) -> int:
    """The most `[`/`{` open at once in `body`, outside JSON strings; linear and in C (no regex backtracking, no
    parser recursion): escapes are dropped, the text between quote pairs is dropped, the brackets left become 2
    (open) and 0 (close), and the running sum minus the count is the depth."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = outside.translate(_STEPS, _NOT_BRACKETS)
    return max(map(operator.sub, accumulate(steps), count(1)), default=0)


@dataclass(frozen=True, slots=True)
class _Rule:
    """The limits of one request's body."""

    limit: int
    setting: str
    json: bool


class BodyLimit:
    """ASGI middleware enforcing `server.max_json_kb`, `max_upload_mb`, `max_json_depth` and `body_timeout_s`."""

    def __init__(self, app: Asgi, server: ServerSettings) -> None:
        self.app = app
        self.json_limit = server.max_json_kb * 1024
        self.upload_limit = int(server.max_upload_mb * 1024 * 1024) + MULTIPART_ALLOWANCE
        self.depth, self.timeout_s = server.max_json_depth, server.body_timeout_s

    def rule(self, scope: Scope) -> _Rule:
        """The limits for this request, by its media type."""
        kind = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                kind = value.decode("latin-1").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return _Rule(self.upload_limit, "server.max_upload_mb", json=False)
        return _Rule(self.json_limit, "server.max_json_kb", json=kind in _JSON_KINDS or kind.endswith("+json"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rule(scope)
        started = refused = False
        try:
            self.check_length(scope, rule)
            if rule.json:
                receive = await self.buffered(receive, rule)
            else:
                receive = self.counted(receive, rule)
        except BodyRefused as exc:
            await problem(exc.status, exc.detail)(scope, receive, send)
            return

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to an aborted body (often a 500) never reaches the client
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            refusal = exc if isinstance(exc, BodyRefused) else _cause(exc)
            if refusal is None:
                raise
            refused = True
            if not started:
                await problem(refusal.status, refusal.detail)(scope, receive, send)

    def check_length(self, scope: Scope, rule: _Rule) -> None:
        """Refuse by `Content-Length` alone: too large (413) or not a length (400)."""
        for name, value in scope.get("headers", ()):
            if name != b"content-length":
                continue
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 19:
                raise BodyRefused(400, f"Content-Length must be a byte count, got {text[:40]!r}")
            if int(text) > rule.limit:
                raise _too_large(rule)

    async def next_piece(self, receive: Receive) -> Message:
        """The next message, or 408 when the client stalls longer than `body_timeout_s`."""
        try:
            return await asyncio.wait_for(receive(), self.timeout_s)
        except TimeoutError as exc:
            raise BodyRefused(
                408, f"the request body stalled for over {self.timeout_s:g} s (`server.body_timeout_s`); send it whole"
            ) from exc

    def counted(self, receive: Receive, rule: _Rule) -> Receive:
        """`receive` that counts body bytes as they arrive and raises BodyRefused past the limit."""
        seen, done = 0, False

        async def wrapped() -> Message:
            nonlocal seen, done
            if done:
                return await receive()  # after the body: only http.disconnect, which may wait as long as it likes
            message = await self.next_piece(receive)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > rule.limit:
                    raise _too_large(rule)
                done = not message.get("more_body", False)
            return message

        return wrapped

    async def buffered(self, receive: Receive, rule: _Rule) -> Receive:
        """Read a JSON body whole (it is small: at most the limit), check its depth, and replay it."""
        chunks, seen = [], 0
        while True:
            message = await self.next_piece(receive)
            if message["type"] != "http.request":
                break  # a disconnect: the app sees an empty body, then the disconnect
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > rule.limit:
                raise _too_large(rule)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.count(b"[") + body.count(b"{") > self.depth and json_depth(body) > self.depth:
            raise BodyRefused(
                400,
                f"the JSON body nests deeper than {self.depth} levels (`server.max_json_depth`); send a flatter body",
            )
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay


def _too_large(rule: _Rule) -> BodyRefused:
    return BodyRefused(
        413, f"the request body is over the {rule.limit:,} byte limit (`{rule.setting}`); send a smaller one"
    )


def _cause(exc: BaseException) -> BodyRefused | None:
    """The BodyRefused behind `exc`, when an app wrapped ours in its own error (an ExceptionGroup too)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BodyRefused):
            return current
        todo += [current.__cause__, current.__context__]
        todo += list(getattr(current, "exceptions", ()))
    return None
