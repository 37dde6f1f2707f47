"""The chat service's conversations and runs in Redis, for a cluster (`[cluster] engine = "ray"`): any API instance
lists, streams, approves and cancels any run, and a run worker on any node writes its events.

`SharedRunLog` and `SharedRun` keep the contract of `RunLog` and `LiveRun` (server/runs.py): events `step`,
`pending_approval`, `run_end`, with ids from 0 per run, and `events(after=n)` resumes without loss or repeat.
Keys, under `<memory.namespace>:service:`:

- `conversation:<id>` (hash: created) and `conversation:<id>:runs` (list of run ids, oldest first);
- `run:<id>` (hash: conversation_id, text, files, status, state, result, cancel);
- `run:<id>:events`: a stream whose entry `0-(n+1)` is event n (Redis numbers `0-*` entries itself, in order);
- `queued`: the set of runs waiting for a worker (`smolcrew cluster status` shows its size);
- `worker:<i>:load`: turns handed to run worker i and not yet ended (a conversation's first turn goes to the least
  loaded worker, recorded as field `worker` of `conversation:<id>`; its later turns follow).

A run's keys expire `KEEP_S` after it ends; conversations `KEEP_S` after their last turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, cast

from smolcrew.errors import RunNotFoundError, ServiceError
from smolcrew.server.runs import Conversation, EventKind, RunEvent, RunInfo, RunStatus, cancel_refusal

if TYPE_CHECKING:
    from smolcrew.config import Settings

__all__ = ["KEEP_S", "SharedRun", "SharedRunLog"]

KEEP_S = 7 * 24 * 3600
"""How long a run's state and events, and an idle conversation, stay in Redis."""
_BLOCK_MS = 5_000  # one XREAD wait; the socket timeout is longer

_START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running')
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
# Cancel atomically: a worker's `start` and a cancel cannot both win a queued run.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
local state = redis.call('HGET', KEYS[1], 'state')
if status == 'queued' or status == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'done', 'state', 'cancelled', 'result', ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return {status or '', state or ''}
"""


class SharedRun:
    """One run's state and events in Redis; the same methods as `LiveRun`."""

    def __init__(self, log: SharedRunLog, run_id: str, conversation_id: str, text: str, files: tuple[str, ...]) -> None:
        self.run_id, self.conversation_id, self.text, self.files = run_id, conversation_id, text, files
        self.journal_run_id: str | None = run_id
        self._log = log
        self._key = log.key(f"run:{run_id}")
        self.events_key = self._key + ":events"

    def __repr__(self) -> str:
        return f"SharedRun({self.run_id!r}, {self.status})"

    @property
    def status(self) -> RunStatus:
        return cast("RunStatus", self._log.call("hget", self._key, "status") or "queued")

    @property
    def result(self) -> dict[str, Any] | None:
        raw = self._log.call("hget", self._key, "result")
        return json.loads(raw) if raw else None

    @property
    def cancel_requested(self) -> bool:
        return self._log.call("hget", self._key, "cancel") == "1"

    def info(self) -> RunInfo:
        fields = self._log.call("hgetall", self._key)
        result = json.loads(fields["result"]) if fields.get("result") else None
        status = cast("RunStatus", fields.get("status", "queued"))
        cancel = fields.get("cancel") == "1"
        return RunInfo(self.run_id, self.conversation_id, status, self.text, self.run_id, result, self.files, cancel)

    def append(self, event: EventKind, data: dict[str, Any]) -> None:
        self._log.call("xadd", self.events_key, {"event": event, "data": json.dumps(data, default=str)}, "0-*")

    def after(self, after: int | None) -> list[RunEvent]:
        start = "-" if after is None or after < 0 else f"(0-{after + 1}"
        return [_event(entry) for entry in self._log.call("xrange", self.events_key, start, "+")]

    def ended(self) -> bool:
        last = self._log.call("xrevrange", self.events_key, "+", "-", 1)
        return bool(last) and _event(last[0]).event == "run_end"

    def start(self) -> bool:
        """queued -> running; False when the run is not queued (cancelled, or taken by an earlier attempt)."""
        return bool(self._log.script(_START, [self._key, self._log.key("queued")], self.run_id))

    @property
    def node(self) -> str | None:
        """The Ray node that last took the run (set by the run worker)."""
        found = self._log.call("hget", self._key, "node")
        return str(found) if found else None

    def taken_by(self, node_id: str) -> None:
        self._log.call("hset", self._key, "node", node_id)

    def resumed(self) -> None:
        self._log.call("hset", self._key, "status", "running")

    def request_cancel(self) -> None:
        """Ask the run to stop; the worker running it reads the flag at its next step. Raises RunNotCancellable."""
        ended: dict[str, Any] = {"run_id": self.run_id, "state": "cancelled", "answer": None, "steps": []}
        ended["error"] = f"run {self.run_id} was cancelled before it started"
        keys = [self._key, self._log.key("queued")]
        status, state = self._log.script(_CANCEL, keys, json.dumps(ended), self.run_id)
        refused = cancel_refusal(self.run_id, status, state or None)
        if refused is not None:
            raise refused
        if status == "queued":
            self.append("run_end", ended)
            self._expire()

    def pending(self, data: dict[str, Any]) -> None:
        self._settle("pending_approval", data)
        self.append("pending_approval", data)

    def end(self, data: dict[str, Any]) -> None:
        self._settle("done", data)
        self.append("run_end", data)
        self._expire()

    def _settle(self, status: RunStatus, data: dict[str, Any]) -> None:
        result = json.dumps(data, default=str)
        self._log.call("hset", self._key, mapping={"status": status, "state": str(data.get("state")), "result": result})

    def _expire(self) -> None:
        for key in (self._key, self.events_key):
            self._log.call("expire", key, KEEP_S)


def _event(entry: tuple[str, dict[str, str]]) -> RunEvent:
    entry_id, fields = entry
    return RunEvent(int(entry_id.split("-")[1]) - 1, cast("EventKind", fields["event"]), json.loads(fields["data"]))


class SharedRunLog:
    """Conversations and runs in the Redis at `services.redis_url`; the same methods as `RunLog`."""

    def __init__(self, settings: Settings) -> None:
        import redis

        self.url = settings.services.redis_url
        self.prefix = f"{settings.memory.namespace}:service:"
        self._client = redis.Redis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=2, socket_timeout=_BLOCK_MS / 1000 + 10
        )
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SharedRunLog({self.url!r}, prefix={self.prefix!r})"

    def key(self, name: str) -> str:
        return self.prefix + name

    def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command; an unreachable Redis is a ServiceError (503) that says what to start."""
        return self._guarded(getattr(self._client, command), *args, **kwargs)

    def script(self, source: str, keys: list[str], *args: Any) -> Any:
        """Run a Lua script (registered once; redis-py reloads it if the server lost it)."""
        if source not in self._scripts:
            self._scripts[source] = self._client.register_script(source)
        return self._guarded(self._scripts[source], keys=keys, args=list(args))

    def _guarded(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return command(*args, **kwargs)
        except redis.ConnectionError as exc:
            raise ServiceError(
                f"Redis at {self.url} is unreachable ({exc}); in cluster mode it holds every run's state: start it "
                "or point services.redis_url at the shared Redis"
            ) from exc

    # conversations ----------------------------------------------------------------------------------------------
    def add_conversation(self, conversation: Conversation) -> None:
        key = self.key(f"conversation:{conversation.id}")
        self.call("hset", key, "created", str(conversation.created))
        self.call("expire", key, KEEP_S)

    def conversation(self, conversation_id: str) -> Conversation | None:
        key = self.key(f"conversation:{conversation_id}")
        created = self.call("hget", key, "created")
        if created is None:
            return None
        run_ids = self.call("lrange", key + ":runs", 0, -1)
        return Conversation(conversation_id, None, float(created), list(run_ids))

    # runs -------------------------------------------------------------------------------------------------------
    def new_run(self, run_id: str, conversation_id: str, text: str, files: tuple[str, ...]) -> SharedRun:
        return SharedRun(self, run_id, conversation_id, text, files)

    def add(self, run: SharedRun) -> None:
        """Record `run` (queued) as its conversation's latest turn."""
        fields = {"conversation_id": run.conversation_id, "text": run.text, "files": json.dumps(list(run.files))}
        self.call("hset", self.key(f"run:{run.run_id}"), mapping={**fields, "status": "queued", "cancel": "0"})
        self.call("sadd", self.key("queued"), run.run_id)
        conversation = self.key(f"conversation:{run.conversation_id}")
        self.call("rpush", conversation + ":runs", run.run_id)
        for key in (conversation, conversation + ":runs"):
            self.call("expire", key, KEEP_S)

    def find(self, run_id: str) -> SharedRun | None:
        fields = self.call("hmget", self.key(f"run:{run_id}"), "conversation_id", "text", "files")
        if fields[0] is None:
            return None
        return SharedRun(self, run_id, fields[0], fields[1] or "", tuple(json.loads(fields[2] or "[]")))

    def get(self, run_id: str) -> SharedRun:
        """The run `run_id`. Raises RunNotFoundError."""
        found = self.find(run_id)
        if found is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in the cluster's run log (runs are kept {KEEP_S // 86400} days); "
                "older runs: `smolcrew runs show RUN`"
            )
        return found

    def worker_for(self, conversation_id: str, workers: int) -> int:
        """The run worker of the conversation: the one its first turn went to, or now the least loaded one."""
        key = self.key(f"conversation:{conversation_id}")
        chosen = self.call("hget", key, "worker")
        if chosen is None or int(chosen) >= workers:
            loads = self.call("mget", [self.key(f"worker:{index}:load") for index in range(workers)])
            least = min(range(workers), key=lambda index: (int(loads[index] or 0), index))
            self.call("hsetnx", key, "worker", least)  # two API instances at once: the first one wins
            chosen = self.call("hget", key, "worker")
        return int(chosen) % workers

    def handed(self, worker: int, change: int) -> None:
        """Count a turn handed to worker `worker` (+1) or ended there (-1)."""
        self.call("incrby", self.key(f"worker:{worker}:load"), change)

    def queued(self) -> int:
        """How many runs wait for a worker, across every API instance."""
        return int(self.call("scard", self.key("queued")))

    def held(self) -> list[SharedRun]:
        """None: the cluster's runs carry on when this API instance closes."""
        return []

    def journal_id(self, run_id: str) -> str:
        return run_id

    def close(self) -> None:
        self._client.close()

    def events(self, run_id: str, after: int | None = None, timeout_s: float | None = None) -> Iterator[RunEvent]:
        """See `ChatService.events`: each wait is one XREAD, whose entries are the events."""
        key = self.get(run_id).events_key
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left_ms = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            block = _BLOCK_MS if left_ms is None else min(_BLOCK_MS, left_ms) if left_ms > 0 else None  # None: no wait
            cursor = "0-0" if after is None or after < 0 else f"0-{after + 1}"
            reply = self.call("xread", {key: cursor}, block=block)
            batch = [_event(entry) for _, entries in reply or [] for entry in entries]
            if not batch:
                if block is None:
                    return  # `timeout_s` passed with no new event
                continue
            yield from batch
            if batch[-1].event == "run_end":
                return
            after = batch[-1].id
            deadline = None if timeout_s is None else time.monotonic() + timeout_s

    async def aevents(
        self, run_id: str, after: int | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """See `ChatService.aevents`: the blocking reads run in a worker thread, one at a time."""
        import asyncio

        events = self.events(run_id, after, timeout_s)
        while True:
            event = await asyncio.to_thread(next, events, None)
            if event is None:
                return
            yield event
