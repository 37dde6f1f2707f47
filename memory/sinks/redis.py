"""A Redis memory sink: each run's records in one hash, new records published on a stream for live UIs.

Layout inside a namespace `ns` (every key starts with `ns:`, so `drop()` can find them all):

```
ns:run:<run_id>:steps   hash   seq -> the record as JSON (a replay overwrites; TTL refreshed on every write)
ns:run:<run_id>:state   hash   the run's blackboard (tools/blackboard.py)
ns:runs                 zset   run_id scored by its newest record's ts
ns:events               stream one entry per record the first time its (run_id, seq) is written
```

A batch is written by one Lua script, so it is atomic and a replayed record publishes no second event.
Needs Redis 6.2 or newer (`ZADD GT`, `XADD MAXLEN ~`) and the `redis` client (`pip install redis`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import redis

from smolcrew.errors import SinkError, SinkUnavailableError
from smolcrew.memory.records import StepRecord, record_from_json
from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth

__all__ = [
    "START_REDIS",
    "RedisSink",
    "StreamEvent",
    "check_namespace",
    "decode",
    "redis_errors",
    "safe_text",
    "start_redis",
    "where",
]

START_REDIS = (
    "start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --appendonly yes` "
    "or point services.redis_url (SMOLCREW_SERVICES__REDIS_URL) at a reachable server"
)
"""The hint for the default `services.redis_url`; `start_redis(client)` names the server a client is set up for."""
SUMMARY_CHARS = 200
_SUMMARY_KEYS = ("output", "error", "plan", "observations", "code")
_T = TypeVar("_T")

# KEYS: 1 runs zset, 2 events stream, 3.. steps hashes.
# ARGV: ttl, maxlen, then per record: key index, run_id, seq, json, agent, kind, ts, summary.
_WRITE_SCRIPT = """
local ttl, maxlen = ARGV[1], ARGV[2]
local added, last, last_ts = 0, {}, {}
for i = 3, #ARGV, 8 do
  local key = KEYS[tonumber(ARGV[i])]
  local run_id, seq, ts = ARGV[i + 1], ARGV[i + 2], ARGV[i + 6]
  if redis.call('HSET', key, seq, ARGV[i + 3]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'run_id', run_id, 'seq', seq,
      'agent', ARGV[i + 4], 'kind', ARGV[i + 5], 'ts', ts, 'summary', ARGV[i + 7], 'key', key)
    added = added + 1
  end
  if last_ts[run_id] == nil or tonumber(ts) > last_ts[run_id] then
    last_ts[run_id], last[run_id] = tonumber(ts), ts
  end
  redis.call('EXPIRE', key, ttl)
end
for run_id, ts in pairs(last) do
  redis.call('ZADD', KEYS[1], 'GT', ts, run_id)
end
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ttl) end
return added
"""


def decode(value: Any) -> str:
    """A reply value as text, whether the client decodes responses or not."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def safe_text(text: str) -> str:
    """`text` with lone surrogates escaped (`\\udc80`), so Redis keys and stream fields stay valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_namespace(namespace: str) -> None:
    """Refuse a key prefix that is empty or holds spaces (it would break key patterns)."""
    if not namespace or any(ch.isspace() for ch in namespace):
        raise ValueError(f"namespace must be a non-empty string without spaces, got {namespace!r}")


def where(client: Any) -> str:
    """Where a Redis client connects ("host:port" or "unix:/path"), for messages."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def start_redis(client: Any) -> str:
    """How to start the Redis that `client` is configured for (its host and port, or its socket), or where to
    point smolcrew instead: the fix half of an "unreachable" message."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        listen = f"--port 0 --unixsocket {kwargs['path']}"
    else:
        listen = f"--bind {kwargs.get('host', '127.0.0.1')} --port {kwargs.get('port', 6379)}"
    return (
        f"start it with `redis-server --daemonize yes {listen} --appendonly yes` "
        "or point services.redis_url (SMOLCREW_SERVICES__REDIS_URL) at a reachable server"
    )


@contextmanager
def redis_errors(client: Any, *, sink: str = "redis") -> Iterator[None]:
    """Turn the client's errors into smolcrew's: down or slow becomes SinkUnavailableError with the fix."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise SinkUnavailableError(
            f"Redis at {where(client)} is unreachable ({exc}); {start_redis(client)}", sink=sink
        ) from exc
    except redis.RedisError as exc:
        raise SinkError(f"Redis at {where(client)} refused the command: {exc}", sink=sink) from exc


def _dumps(value: Any) -> str:
    """JSON readable as UTF-8; a value with lone surrogates is stored ASCII-escaped instead (still exact)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value, default=str)


def _summary(record: StepRecord) -> str:
    payload = record.payload if isinstance(record.payload, dict) else {}
    text = next((str(payload[key]) for key in _SUMMARY_KEYS if payload.get(key)), "")
    text = safe_text(" ".join(text.split()))
    if len(text) > SUMMARY_CHARS:
        text = text[:SUMMARY_CHARS] + f"... [{len(text) - SUMMARY_CHARS:,} more characters; read the record]"
    return text


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One entry of the events stream: a record was stored for the first time. Pass `id` as `after_id`."""

    id: str
    run_id: str
    seq: int
    agent: str
    kind: str
    ts: float
    summary: str
    key: str
    """The hash holding the full record (field `seq`)."""


class RedisSink(MemorySink):
    """Records in Redis hashes, new ones announced on a stream; search is a case-insensitive substring scan.

    Args:
        client: a ready `redis.Redis`; the caller owns it (use `from_url` to have the sink own one).
        namespace: prefix of every key this sink touches.
        ttl_s: a run's keys expire this long after its last write.
        stream_maxlen: the events stream is trimmed to about this many entries.
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.STREAM})

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "smolcrew",
        ttl_s: int = 7 * 24 * 3600,
        stream_maxlen: int = 100_000,
    ) -> None:
        check_namespace(namespace)
        if ttl_s < 1 or stream_maxlen < 1:
            raise ValueError("ttl_s and stream_maxlen must be positive")
        self._client = client
        self.namespace = namespace
        self.ttl_s = int(ttl_s)
        self.stream_maxlen = int(stream_maxlen)
        self._script = client.register_script(_WRITE_SCRIPT)
        self._closed = False

    @classmethod
    @contextmanager
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "smolcrew",
        ttl_s: int = 7 * 24 * 3600,
        stream_maxlen: int = 100_000,
        timeout_s: float = 1.0,
    ) -> Iterator[RedisSink]:
        """A sink owning a client for `url` (e.g. `redis://127.0.0.1:6379/0`), closed on exit."""
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        sink = cls(client, namespace=namespace, ttl_s=ttl_s, stream_maxlen=stream_maxlen)
        try:
            yield sink
        finally:
            sink.close()
            client.close()

    # keys -------------------------------------------------------------------------------------------------------
    def steps_key(self, run_id: str) -> str:
        return f"{self.namespace}:run:{safe_text(run_id)}:steps"

    def state_key(self, run_id: str) -> str:
        return f"{self.namespace}:run:{safe_text(run_id)}:state"

    @property
    def runs_key(self) -> str:
        return f"{self.namespace}:runs"

    @property
    def events_key(self) -> str:
        return f"{self.namespace}:events"

    def _call(self, action: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._closed:
            raise SinkError("the Redis sink is closed", sink=self.name)
        with redis_errors(self._client, sink=self.name):
            return action(*args, **kwargs)

    # MemorySink -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Check the server (version 6.2 or newer) and load the write script; safe to call again."""

        def check() -> None:
            version = decode(self._client.info("server").get("redis_version", "0"))
            major, minor = (int(part) for part in [*version.split("."), "0"][:2])
            if (major, minor) < (6, 2):
                raise SinkError(f"Redis {version} is too old: the sink needs 6.2 or newer", sink=self.name)
            self._client.script_load(_WRITE_SCRIPT)

        self._call(check)

    def write(self, batch: Sequence[StepRecord]) -> None:
        self.write_counted(batch)

    def write_counted(self, batch: Sequence[StepRecord]) -> int:
        """Write `batch` like `write` and return how many records were new (and so published)."""
        if not batch:
            return 0
        keys = [self.runs_key, self.events_key]
        index: dict[str, int] = {}
        args: list[Any] = [self.ttl_s, self.stream_maxlen]
        for record in batch:
            key = self.steps_key(record.run_id)
            if key not in index:
                keys.append(key)
                index[key] = len(keys)
            args += [
                index[key],
                safe_text(record.run_id),
                int(record.seq),
                _dumps(record.to_dict()),
                safe_text(record.agent),
                safe_text(record.kind),
                repr(float(record.ts)) if math.isfinite(record.ts) else "0",  # orders runs; the record keeps its ts
                _summary(record),
            ]
        return int(self._call(self._script, keys=keys, args=args))

    def read(self, run_id: str) -> list[StepRecord]:
        stored = self._call(self._client.hgetall, self.steps_key(run_id))
        return [record_from_json(decode(raw)) for _, raw in sorted(stored.items(), key=lambda item: int(item[0]))]

    def search(self, query: str, *, run_id: str | None = None, k: int = 5) -> list[StepRecord]:
        """Records whose JSON contains `query` (case-insensitive), newest runs first and newest steps first."""
        needle = query.strip().lower()
        if not needle or k < 1:
            return []
        needles = {needle, json.dumps(needle, ensure_ascii=False)[1:-1], json.dumps(needle)[1:-1]}
        found: list[StepRecord] = []
        for rid in [run_id] if run_id is not None else self._runs_newest_first():
            key = self.steps_key(rid)
            stored = self._call(self._client.hgetall, key)
            if not stored and run_id is None:  # the run expired: forget it
                self._call(self._client.zrem, self.runs_key, rid)
            for _, raw in sorted(stored.items(), key=lambda item: -int(item[0])):
                text = decode(raw).lower()
                if any(n in text for n in needles):
                    found.append(record_from_json(decode(raw)))
                    if len(found) >= k:
                        return found
        return found

    def _runs_newest_first(self, page: int = 100) -> Iterator[str]:
        start = 0
        while True:
            runs = self._call(self._client.zrevrange, self.runs_key, start, start + page - 1)
            yield from (decode(run) for run in runs)
            if len(runs) < page:
                return
            start += page

    def health(self) -> SinkHealth:
        started = time.perf_counter()
        try:
            self._client.ping()
        except redis.RedisError as exc:
            return SinkHealth(
                False, f"Redis at {where(self._client)} did not answer ({exc}); {start_redis(self._client)}"
            )
        latency = (time.perf_counter() - started) * 1000
        return SinkHealth(True, f"Redis at {where(self._client)} answered PING", round(latency, 3))

    def close(self) -> None:
        """Mark the sink closed; the client belongs to whoever made it (`from_url` closes its own)."""
        self._closed = True

    # extras -----------------------------------------------------------------------------------------------------
    def events(self, after_id: str = "0-0", *, count: int = 100, block_ms: int | None = None) -> list[StreamEvent]:
        """Up to `count` events after `after_id` ("$" means only events from now on). With `block_ms`, wait up
        to that long for one; the wait is sliced below the client's socket timeout so it never trips it."""
        timeout = self._client.connection_pool.connection_kwargs.get("socket_timeout")
        slice_ms = max(1, int(timeout * 500)) if timeout else None
        deadline = time.monotonic() + (block_ms or 0) / 1000
        cursor = after_id
        if cursor == "$":  # resolve "now" once, so sliced waits do not skip events between slices
            last = self._call(self._client.xrevrange, self.events_key, count=1)
            cursor = decode(last[0][0]) if last else "0-0"
        while True:
            wait = None
            if block_ms:
                left = int((deadline - time.monotonic()) * 1000)
                wait = max(1, min(left, slice_ms or left))
            reply = self._call(self._client.xread, {self.events_key: cursor}, count=count, block=wait)
            entries = _stream_entries(reply)
            if entries or not block_ms or time.monotonic() >= deadline:
                return [_event(entry_id, values) for entry_id, values in entries]

    def drop(self) -> int:
        """Delete every key of the namespace (SCAN, never KEYS); returns how many were deleted."""
        pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.namespace) + ":*"

        def delete_all() -> int:
            deleted, chunk = 0, []
            for key in self._client.scan_iter(match=pattern, count=1000):
                chunk.append(key)
                if len(chunk) >= 500:
                    deleted += int(self._client.unlink(*chunk))
                    chunk = []
            if chunk:
                deleted += int(self._client.unlink(*chunk))
            return deleted

        return self._call(delete_all)


def _stream_entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """XREAD's entries for our one stream, as RESP2 (a list) or RESP3 (a dict) gives them."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply]
    return [(entry[0], entry[1]) for entries in streams for entry in entries if entry and entry[1] is not None]


def _event(entry_id: Any, values: dict[Any, Any]) -> StreamEvent:
    field = {decode(key): decode(value) for key, value in values.items()}
    return StreamEvent(
        id=decode(entry_id),
        run_id=field.get("run_id", ""),
        seq=int(field.get("seq", -1)),
        agent=field.get("agent", ""),
        kind=field.get("kind", ""),
        ts=float(field.get("ts", 0.0)),
        summary=field.get("summary", ""),
        key=field.get("key", ""),
    )
