"""The run's shared state ("blackboard"): notes the specialists leave for each other, kept in Redis.

A `Blackboard` stores JSON values in one hash per run, `{namespace}:run:{run_id}:state`, beside the run's step
records (memory/sinks/redis.py), with the same TTL refreshed on every write. `WriteNote` and `ReadNote` are the
two tools an agent uses on it; they find the run's blackboard in the current tool context
(`use_tools(blackboard=...)`, see tools.context). Needs the `redis` client (`pip install redis`) and a reachable
server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from smolcrew.errors import ToolInputError
from smolcrew.memory.sinks.redis import decode, redis_errors, safe_text
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import current_blackboard

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_VALUE_CHARS",
    "Blackboard",
    "ReadNote",
    "WriteNote",
    "check_key",
    "require_blackboard",
]

MAX_KEY_CHARS = 100
MAX_VALUE_CHARS = 100_000
_SINK = "blackboard"


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ToolInputError("`key` must be a non-empty string naming the note, e.g. 'sources' or 'draft_answer'")
    key = key.strip()
    if len(key) > MAX_KEY_CHARS:
        raise ToolInputError(f"`key` has {len(key):,} characters; use a short name (at most {MAX_KEY_CHARS})")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolInputError("`key` contains characters that are not valid text; use a plain name") from exc
    if not key.isprintable():
        raise ToolInputError("`key` must not contain control characters (newlines, tabs, NUL); use a plain name")
    return key


def _encode_value(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ToolInputError(
            f"`value` must be JSON-like (text, numbers, booleans, None, lists and dicts with string keys), "
            f"and finite: {exc}"
        ) from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, allow_nan=False)  # lone surrogates: stored escaped, read back exactly
    if len(text) > MAX_VALUE_CHARS:
        raise ToolInputError(
            f"`value` is {len(text):,} characters as JSON; keep notes under {MAX_VALUE_CHARS:,} "
            "(save a summary, or split it over several keys)"
        )
    return text


class Blackboard:
    """Key-value notes shared by every agent of one run.

    Args:
        client: a ready `redis.Redis`; the caller owns it.
        namespace: the key prefix (the same as the run's `RedisSink`).
        run_id: the run whose notes these are.
        ttl_s: the notes expire this long after the last write.
    """

    def __init__(self, client: redis.Redis, namespace: str, run_id: str, ttl_s: int = 7 * 24 * 3600) -> None:
        if not namespace or not run_id:
            raise ValueError("namespace and run_id must be non-empty")
        self._client = client
        self.namespace = namespace
        self.run_id = run_id
        self.ttl_s = int(ttl_s)
        self.key = f"{namespace}:run:{safe_text(run_id)}:state"  # RedisSink.state_key(run_id)

    @classmethod
    @contextmanager
    def from_url(
        cls, url: str, *, namespace: str, run_id: str, ttl_s: int = 7 * 24 * 3600, timeout_s: float = 1.0
    ) -> Iterator[Blackboard]:
        """A blackboard owning a client for `url`, closed on exit."""
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            yield cls(client, namespace, run_id, ttl_s)
        finally:
            client.close()

    def write(self, key: str, value: Any) -> None:
        """Store `value` (JSON-like) under `key`, replacing what was there. Bad input raises ToolInputError."""
        key, text = check_key(key), _encode_value(value)
        with redis_errors(self._client, sink=_SINK):
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self.key, key, text)
            pipe.expire(self.key, self.ttl_s)
            pipe.execute()

    def read(self, key: str) -> Any:
        """The value under `key`. Raises KeyError when there is none."""
        key = check_key(key)
        with redis_errors(self._client, sink=_SINK):
            raw = self._client.hget(self.key, key)
        if raw is None:
            raise KeyError(key)
        return json.loads(decode(raw))

    def items(self) -> dict[str, Any]:
        """Every note, by key (sorted)."""
        with redis_errors(self._client, sink=_SINK):
            stored = self._client.hgetall(self.key)
        return {decode(key): json.loads(decode(raw)) for key, raw in sorted(stored.items())}

    def delete(self, key: str) -> bool:
        """Remove `key`; whether it was there."""
        key = check_key(key)
        with redis_errors(self._client, sink=_SINK):
            return bool(self._client.hdel(self.key, key))

    def clear(self) -> None:
        """Remove every note of the run."""
        with redis_errors(self._client, sink=_SINK):
            self._client.unlink(self.key)


def require_blackboard() -> Blackboard:
    """The blackboard of the current tool context; ToolInputError when the run has none."""
    board: Blackboard | None = current_blackboard()
    if board is None:
        raise ToolInputError("this run has no shared blackboard (it needs Redis); pass results along in the task")
    return board


class WriteNote(CheckedTool):
    name = "write_note"
    task = "shared-notes"
    description = (
        "Saves a note on the run's shared blackboard, where every other agent of this run can read it with "
        "read_note. Writing an existing key replaces its value. Returns a short confirmation string."
    )
    inputs: dict[str, Any] = {
        "key": {"type": "string", "description": "A short name for the note, e.g. 'sources' or 'draft_answer'."},
        "value": {
            "type": ["string", "number", "boolean", "array", "object"],
            "description": "What to save: text, a number, a list or a dict (JSON-like).",
        },
    }
    output_type = "string"

    def forward(self, key: str, value: str | float | bool | list[Any] | dict[str, Any]) -> str:
        from smolcrew.tools.blackboard import check_key, require_blackboard

        key = check_key(key)  # bad input first, then the missing blackboard
        require_blackboard().write(key, value)
        return f"saved note {key!r}"


class ReadNote(CheckedTool):
    name = "read_note"
    task = "shared-notes"
    description = (
        "Reads a note from the run's shared blackboard (notes that agents of this run saved with write_note). "
        "With a key, returns that note's value; without one, returns a dict of every note {key: value}."
    )
    inputs = {
        "key": {
            "type": "string",
            "description": "The note's name; leave it out to get all notes.",
            "nullable": True,
        },
    }
    output_type = "any"

    def forward(self, key: str | None = None) -> Any:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.blackboard import require_blackboard

        board = require_blackboard()
        if key is None or (isinstance(key, str) and not key.strip()):
            return board.items()
        try:
            return board.read(key)
        except KeyError:
            known = sorted(board.items())
            listing = ", ".join(repr(name) for name in known) if known else "none yet"
            raise ToolInputError(
                f"no note named {key.strip()!r}; the blackboard holds: {listing}. Call read_note() for all notes"
            ) from None
