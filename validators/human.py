"""The human approval queue's Redis half: the index of every approval, and how a waiting run hears a decision.

The cascade (or a tool marked as needing approval) calls `request`; a person answers with `decide` from the CLI
(`smolcrew approvals ...`) or the UI; the Crew `wait`s or resumes the run later. This queue is never exposed as a
tool: agent code must not be able to approve its own answer. On its own it keeps approvals in Redis alone, which
loses them with Redis's data (a flush, a restart of a Redis that keeps nothing on disk); smolcrew always opens
it with its journal (validators/journaled.py): every approval and decision is on disk first, and this index is
rebuilt from there whenever the `ns:approvals:index` marker is gone.

Layout inside a namespace `ns` (every key starts with `ns:`):

```
ns:approval:<id>            hash    id, run_id, status, task, answer, reasons, evidence, created, decided,
                                    decided_by, note; every value JSON. Decided ones expire after `decided_ttl_s`.
ns:approval:<id>:notify     list    one item pushed by the decision; `wait` blocks on it (short TTL)
ns:approvals:<status>       zset    ids of that status (pending, approved, rejected), scored by creation time
ns:approvals:run:<run_id>   string  the id of the run's latest approval (expires with it once decided)
ns:approvals:events         stream  `event` requested|decided, id, run_id, status, ts (and `by` once decided)
ns:approvals:index          string  set by a rebuild from the journal; gone means Redis lost the index
```

`request`, `decide` and `index` are Lua scripts, so each is atomic: one pending approval per run, one decision
per approval, and `index` never turns a decided approval back to pending.
Needs Redis 6.2 or newer (`BLMOVE`, `XADD MAXLEN ~`) and the `redis` client (`pip install redis`).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from smolcrew.errors import ApprovalError, ApprovalNotFound, ApprovalQueueUnavailable
from smolcrew.memory.sinks.base import SinkHealth
from smolcrew.memory.sinks.redis import check_namespace, decode, safe_text, start_redis, where
from smolcrew.validators.approval import FIELDS, NO_REASON, STATUSES, Approval, ApprovalStatus
from smolcrew.validators.approval_journal import already_decided

__all__ = ["NO_REASON", "Approval", "ApprovalQueue", "ApprovalStatus"]

NOTIFY_TTL_S = 3600
_T = TypeVar("_T")

# KEYS: 1 run pointer, 2 pending zset, 3 new approval hash, 4 events stream.
# ARGV: id, created, run_id, maxlen, then the hash's field/value pairs.
# Returns {0, id of the run's pending approval} | {1, new id} | {2, ""} when the new id is taken (retry).
_REQUEST_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and redis.call('ZSCORE', KEYS[2], current) then return {0, current} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2, ''} end
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'event', 'requested', 'id', ARGV[1],
  'run_id', ARGV[3], 'status', 'pending', 'ts', ARGV[2])
return {1, ARGV[1]}
"""

# KEYS: 1 approval hash, 2 pending zset, 3 zset of the new status, 4 events stream, 5 notify list, 6 run pointer.
# ARGV: id, status, created, decided, decided_by JSON, note JSON, ttl, notify ttl, maxlen, decided_by, run_id.
# Returns {0} when missing, {1, status JSON, decided_by JSON} when decided before, {2} when decided now.
_DECIDE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0} end
if status ~= '"pending"' then return {1, status, redis.call('HGET', KEYS[1], 'decided_by') or 'null'} end
redis.call('HSET', KEYS[1], 'status', '"' .. ARGV[2] .. '"', 'decided', ARGV[4], 'decided_by', ARGV[5],
  'note', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if redis.call('GET', KEYS[6]) == ARGV[1] then redis.call('EXPIRE', KEYS[6], ARGV[7]) end
redis.call('RPUSH', KEYS[5], ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[8])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', 'event', 'decided', 'id', ARGV[1],
  'run_id', ARGV[11], 'status', ARGV[2], 'ts', ARGV[4], 'by', ARGV[10])
return {2}
"""

# KEYS: 1 approval hash, 2-4 pending, approved, rejected zsets, 5 run pointer, 6 events stream, 7 notify list.
# ARGV: id, status, created, run_id, ttl (decided ones), notify ttl, maxlen, by, ts, then the hash's pairs.
# Returns 0 when Redis keeps what it has (decided, or already pending), 1 when added, 2 when decided now.
_INDEX_SCRIPT = """
local old = redis.call('HGET', KEYS[1], 'status')
if old and (old ~= '"pending"' or ARGV[2] == 'pending') then return 0 end
local zset = KEYS[2]
if ARGV[2] == 'approved' then zset = KEYS[3] elseif ARGV[2] == 'rejected' then zset = KEYS[4] end
redis.call('HSET', KEYS[1], unpack(ARGV, 10))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', zset, ARGV[3], ARGV[1])
local current = redis.call('GET', KEYS[5])
local score = current and (redis.call('ZSCORE', KEYS[2], current) or redis.call('ZSCORE', KEYS[3], current)
  or redis.call('ZSCORE', KEYS[4], current))
local latest = (not current) or current == ARGV[1] or (not score) or tonumber(score) <= tonumber(ARGV[3])
if ARGV[2] == 'pending' then
  if latest then redis.call('SET', KEYS[5], ARGV[1]) end
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'event', 'requested', 'id', ARGV[1],
    'run_id', ARGV[4], 'status', 'pending', 'ts', ARGV[3])
  return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
if latest then redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[5]) end
if old then
  redis.call('RPUSH', KEYS[7], ARGV[2])
  redis.call('EXPIRE', KEYS[7], ARGV[6])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'event', 'decided', 'id', ARGV[1],
    'run_id', ARGV[4], 'status', ARGV[2], 'ts', ARGV[9], 'by', ARGV[8])
  return 2
end
return 1
"""


def _dumps(value: Any) -> str:
    """JSON readable as UTF-8; lone surrogates are stored ASCII-escaped instead (still exact)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value, default=str)


class ApprovalQueue:
    """Approvals in Redis (layout in the module docstring).

    Args:
        client: a ready `redis.Redis`; the caller owns it (use `from_url` to have the queue own one).
        namespace: prefix of every key the queue touches (settings: `memory.namespace`).
        decided_ttl_s: a decided approval (and its run pointer) expires this long after the decision.
        stream_maxlen: the events stream is trimmed to about this many entries.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "smolcrew",
        decided_ttl_s: int = 30 * 24 * 3600,
        stream_maxlen: int = 10_000,
    ) -> None:
        check_namespace(namespace)
        if decided_ttl_s < 1 or stream_maxlen < 1:
            raise ValueError("decided_ttl_s and stream_maxlen must be positive")
        self._client = client
        self.namespace = namespace
        self.decided_ttl_s = int(decided_ttl_s)
        self.stream_maxlen = int(stream_maxlen)
        self._request_script = client.register_script(_REQUEST_SCRIPT)
        self._decide_script = client.register_script(_DECIDE_SCRIPT)
        self._index_script = client.register_script(_INDEX_SCRIPT)

    @classmethod
    @contextmanager
    def from_url(cls, url: str, *, namespace: str = "smolcrew", timeout_s: float = 1.0) -> Iterator[ApprovalQueue]:
        """A queue owning a client for `url` (e.g. `redis://127.0.0.1:6379/0`), closed on exit. `timeout_s`
        bounds connecting and each command; `wait` slices its blocking reads below it."""
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            yield cls(client, namespace=namespace)
        finally:
            client.close()

    def __repr__(self) -> str:
        return f"ApprovalQueue(redis={where(self._client)}, namespace={self.namespace!r})"

    # keys -------------------------------------------------------------------------------------------------------
    def approval_key(self, approval_id: str) -> str:
        return f"{self.namespace}:approval:{safe_text(approval_id)}"

    def status_key(self, status: ApprovalStatus) -> str:
        return f"{self.namespace}:approvals:{status}"

    def run_key(self, run_id: str) -> str:
        return f"{self.namespace}:approvals:run:{safe_text(run_id)}"

    @property
    def events_key(self) -> str:
        """The stream a UI follows (XREAD): one entry per request and per decision."""
        return f"{self.namespace}:approvals:events"

    @property
    def index_key(self) -> str:
        """Set once the index was rebuilt from a journal; its absence means Redis lost (or never had) the index."""
        return f"{self.namespace}:approvals:index"

    def _notify_key(self, approval_id: str) -> str:
        return f"{self.approval_key(approval_id)}:notify"

    def _call(self, action: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one client call, turning the client's errors into smolcrew's (down: the fix to start Redis)."""
        try:
            return action(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ApprovalQueueUnavailable(
                f"the approval queue's Redis at {where(self._client)} is unreachable ({exc}); "
                f"{start_redis(self._client)}"
            ) from exc
        except redis.RedisError as exc:
            raise ApprovalError(f"Redis at {where(self._client)} refused an approval command: {exc}") from exc

    # API --------------------------------------------------------------------------------------------------------
    def request(
        self, run_id: str, *, task: str, answer: str, reasons: Sequence[str], evidence: Mapping[str, Any]
    ) -> Approval:
        """Ask a person to decide on `answer` (stored in full) and return the pending approval.

        Idempotent per run: while `run_id` has a pending approval, that one is returned unchanged (whatever the
        other arguments say). `evidence` is stored as JSON; values JSON cannot hold are stored as their str.
        """
        for _ in range(5):  # a taken id (one in 2**48) is retried with a fresh one
            approval = Approval.new(run_id, task=task, answer=answer, reasons=reasons, evidence=evidence)
            pairs = _pairs(approval)
            code, approval_id = self._call(
                self._request_script,
                keys=[
                    self.run_key(run_id),
                    self.status_key("pending"),
                    self.approval_key(approval.id),
                    self.events_key,
                ],
                args=[approval.id, repr(approval.created), safe_text(run_id), self.stream_maxlen, *pairs],
            )
            if int(code) == 1:
                return approval
            if int(code) == 0:
                return self.get(decode(approval_id))
        raise ApprovalError(f"could not find a free approval id for run {run_id!r}; try again")

    def get(self, approval_id: str) -> Approval:
        """The approval `approval_id`. Raises ApprovalNotFound when it does not exist (or has expired)."""
        found = self._load([approval_id])[0]
        if found is None:
            raise ApprovalNotFound(
                f"no approval {approval_id!r} in namespace {self.namespace!r} (decided ones expire after "
                f"{self.decided_ttl_s // 86400} days); see `smolcrew approvals list --status all`",
                approval_id=approval_id,
            )
        return found

    def for_run(self, run_id: str) -> Approval | None:
        """The latest approval requested for `run_id`, pending or decided; None when there is none (or expired)."""
        approval_id = self._call(self._client.get, self.run_key(run_id))
        return None if approval_id is None else self._load([decode(approval_id)])[0]

    def list(self, status: ApprovalStatus | None = "pending", limit: int = 50) -> builtins.list[Approval]:
        """Up to `limit` approvals of `status` (None: every status), oldest (by creation) first."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)} or None, got {status!r}")
        if limit < 1:
            return []
        found: builtins.list[Approval] = []
        for each in STATUSES if status is None else (status,):
            found += self._list_one(each, limit)
        return sorted(found, key=lambda approval: (approval.created, approval.id))[:limit]

    def decide(self, approval_id: str, *, approve: bool, by: str, note: str | None = None) -> Approval:
        """Approve or reject a pending approval, once: atomically, so of two concurrent decisions exactly one wins.

        A rejection without a note gets the note "rejected without a reason". Wakes every `wait` on it.

        Raises:
            ApprovalNotFound: no such approval.
            ApprovalAlreadyDecided: it was decided before (`.status`, `.decided_by` say how and by whom).
        """
        current = self.get(approval_id)
        decision = current.decide(approve=approve, by=by, note=note)
        status, decided, note = decision.status, decision.decided, decision.note
        keys = [self.approval_key(approval_id), self.status_key("pending"), self.status_key(status)]
        keys += [self.events_key, self._notify_key(approval_id), self.run_key(current.run_id)]
        args: builtins.list[Any] = [current.id, status, repr(current.created), repr(decided), _dumps(by), _dumps(note)]
        # the wake-up item only has to outlive waiters already blocked: later ones read the hash first
        args += [self.decided_ttl_s, NOTIFY_TTL_S, self.stream_maxlen, safe_text(by), safe_text(current.run_id)]
        reply = self._call(self._decide_script, keys=keys, args=args)
        code = int(reply[0])
        if code == 0:
            raise ApprovalNotFound(f"approval {approval_id!r} expired while deciding it", approval_id=approval_id)
        if code == 1:
            was, who = json.loads(decode(reply[1])), json.loads(decode(reply[2]))
            raise already_decided(Approval.from_dict({**current.to_dict(), "status": was, "decided_by": who}))
        return decision

    def wait(self, approval_id: str, timeout_s: float) -> Approval:
        """The approval once decided, or as it is (pending) after `timeout_s` seconds.

        Blocks on the approval's notify list (BLMOVE onto itself, so every waiter sees the item), in slices below
        the client's socket timeout; it never polls in a tight loop. Raises ApprovalNotFound for an unknown id.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        socket_timeout = self._client.connection_pool.connection_kwargs.get("socket_timeout")
        slice_s = socket_timeout / 2 if socket_timeout else None
        while True:
            approval = self.get(approval_id)
            left = deadline - time.monotonic()
            if not approval.pending or left <= 0:
                return approval
            self._block(approval_id, max(0.01, min(left, slice_s or left)))  # 0 would block forever

    def index(self, approval: Approval, *, now: float | None = None) -> bool:
        """Put `approval` in the index as it is (from the journal): add it, or apply its decision (waking every
        `wait` on it) when Redis has it pending. Never turns a decided approval back to pending; a decision
        older than `decided_ttl_s` is left out. True when Redis changed."""
        ttl = self.decided_ttl_s
        if approval.decided is not None:
            ttl = int((approval.decided + self.decided_ttl_s) - (time.time() if now is None else now))
            if ttl < 1:
                return False
        keys = [self.approval_key(approval.id), *(self.status_key(status) for status in STATUSES)]
        keys += [self.run_key(approval.run_id), self.events_key, self._notify_key(approval.id)]
        args: builtins.list[Any] = [approval.id, approval.status, repr(approval.created), safe_text(approval.run_id)]
        args += [ttl, NOTIFY_TTL_S, self.stream_maxlen, safe_text(str(approval.decided_by)), repr(approval.decided)]
        return int(self._call(self._index_script, keys=keys, args=[*args, *_pairs(approval)])) > 0

    def indexed(self) -> bool:
        """Whether the index marker is set (see `index_key`)."""
        return bool(self._call(self._client.exists, self.index_key))

    def mark_indexed(self) -> None:
        self._call(self._client.set, self.index_key, repr(time.time()))

    def health(self) -> SinkHealth:
        """Whether Redis answers PING now, with the fix when not; never raises."""
        started = time.perf_counter()
        try:
            self._client.ping()
        except redis.RedisError as exc:
            fix = start_redis(self._client)
            return SinkHealth(False, f"Redis at {where(self._client)} did not answer ({exc}); {fix}")
        latency = (time.perf_counter() - started) * 1000
        return SinkHealth(True, f"Redis at {where(self._client)} answered PING", round(latency, 3))

    # internals --------------------------------------------------------------------------------------------------
    def _block(self, approval_id: str, seconds: float) -> None:
        """Block up to `seconds` for the approval's wake-up item."""
        key = self._notify_key(approval_id)
        self._call(self._client.blmove, key, key, seconds, "RIGHT", "LEFT")

    def _load(self, approval_ids: Sequence[str]) -> builtins.list[Approval | None]:
        """The approvals, in order; None for each one that does not exist."""

        def load() -> builtins.list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for approval_id in approval_ids:
                pipe.hgetall(self.approval_key(approval_id))
            return pipe.execute()

        return [_from_hash(stored) if stored else None for stored in self._call(load)]

    def _list_one(self, status: ApprovalStatus, limit: int, page: int = 100) -> builtins.list[Approval]:
        """Up to `limit` approvals of one status, oldest first; ids whose hash expired are dropped from the set."""
        found: builtins.list[Approval] = []
        start = 0
        while len(found) < limit:
            ids = [
                decode(each)
                for each in self._call(self._client.zrange, self.status_key(status), start, start + page - 1)
            ]
            loaded = self._load(ids)
            if gone := [approval_id for approval_id, approval in zip(ids, loaded, strict=True) if approval is None]:
                self._call(self._client.zrem, self.status_key(status), *gone)
            found += [approval for approval in loaded if approval is not None]
            if len(ids) < page:
                break
            start += page - len(gone)  # removed ids shift the rest of the set down
        return found[:limit]


def _pairs(approval: Approval) -> list[str]:
    """The approval's hash as field/value pairs, every value JSON."""
    values = approval.to_dict()
    return [part for name in FIELDS for part in (name, _dumps(values[name]))]


def _from_hash(stored: Mapping[Any, Any]) -> Approval:
    return Approval.from_dict({decode(key): json.loads(decode(value)) for key, value in stored.items()})
