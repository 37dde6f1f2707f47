"""The human approval queue: a run that needs a person's yes or no waits here, durably, in Redis.

The cascade (or a tool marked as needing approval) calls `request`; a person answers with `decide` from the CLI
(`smolcrew approvals ...`) or the UI; the Crew `wait`s or resumes the run later from `for_run`. Pending approvals
have no TTL, so they survive a restart of smolcrew (not of a Redis that keeps nothing on disk). This queue is never
exposed as a tool: agent code must not be able to approve its own answer.

Layout inside a namespace `ns` (every key starts with `ns:`):

```
ns:approval:<id>            hash    id, run_id, status, task, answer, reasons, evidence, created, decided,
                                    decided_by, note; every value JSON. Decided ones expire after `decided_ttl_s`.
ns:approval:<id>:notify     list    one item pushed by the decision; `wait` blocks on it (short TTL)
ns:approvals:<status>       zset    ids of that status (pending, approved, rejected), scored by creation time
ns:approvals:run:<run_id>   string  the id of the run's latest approval (expires with it once decided)
ns:approvals:events         stream  `event` requested|decided, id, run_id, status, ts (and `by` once decided)
```

`request` and `decide` are Lua scripts, so each is atomic: one pending approval per run, one decision per approval.
Needs Redis 6.2 or newer (`BLMOVE`, `XADD MAXLEN ~`) and the `redis` client (`pip install redis`).
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import redis

from smolcrew.errors import ApprovalAlreadyDecided, ApprovalError, ApprovalNotFound, ApprovalQueueUnavailable
from smolcrew.memory.sinks.base import SinkHealth
from smolcrew.memory.sinks.redis import check_namespace, decode, safe_text, where

__all__ = ["START_REDIS", "Approval", "ApprovalQueue", "ApprovalStatus"]

ApprovalStatus = Literal["pending", "approved", "rejected"]
STATUSES: tuple[ApprovalStatus, ...] = get_args(ApprovalStatus)
START_REDIS = (
    "start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`, "
    "or point `services.redis_url` (env SMOLCREW_SERVICES__REDIS_URL) at a reachable server"
)
NO_REASON = "rejected without a reason"
NOTIFY_TTL_S = 3600
_FIELDS = (
    "id",
    "run_id",
    "status",
    "task",
    "answer",
    "reasons",
    "evidence",
    "created",
    "decided",
    "decided_by",
    "note",
)
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


def _jsonable(value: Any) -> Any:
    """`value` with every part JSON cannot hold made JSON-able: mapping keys and unknown objects become str,
    tuples and sets become lists (sets sorted by str, so the stored form is stable)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return [_jsonable(item) for item in sorted(value, key=str)]
    if isinstance(value, builtins.list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)


def _dumps(value: Any) -> str:
    """JSON readable as UTF-8; lone surrogates are stored ASCII-escaped instead (still exact)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value, default=str)


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for a person's decision on a run's final answer.

    `reasons` say why a person is asked (low confidence, a tool that needs approval); `evidence` is what the
    person needs to decide (tool outputs, sources, verdicts), JSON-able. `decided`, `decided_by` and `note` are
    set once `status` leaves "pending".
    """

    id: str
    run_id: str
    status: ApprovalStatus
    task: str
    answer: str
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    created: float
    decided: float | None = None
    decided_by: str | None = None
    note: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reasons"] = list(self.reasons)
        return data

    def __repr__(self) -> str:
        decided = f" by {self.decided_by}" if self.decided_by else ""
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"Approval({self.id} run={self.run_id} {self.status}{decided}{why})"


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

    def _notify_key(self, approval_id: str) -> str:
        return f"{self.approval_key(approval_id)}:notify"

    def _call(self, action: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one client call, turning the client's errors into smolcrew's (down: the fix to start Redis)."""
        try:
            return action(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ApprovalQueueUnavailable(
                f"the approval queue's Redis at {where(self._client)} is unreachable ({exc}); {START_REDIS}"
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
        if not run_id:
            raise ValueError("run_id must be a non-empty string")
        reasons = (reasons,) if isinstance(reasons, str) else tuple(str(reason) for reason in reasons)
        for _ in range(5):  # a taken id (one in 2**48) is retried with a fresh one
            approval = Approval(
                id=secrets.token_hex(6),
                run_id=run_id,
                status="pending",
                task=str(task),
                answer=str(answer),
                reasons=reasons,
                evidence=_jsonable(evidence),
                created=time.time(),
            )
            values = approval.to_dict()
            pairs = [part for name in _FIELDS for part in (name, _dumps(values[name]))]
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
        if not by or not by.strip():
            raise ValueError("`by` must name who decides (a user name)")
        current = self.get(approval_id)
        status: ApprovalStatus = "approved" if approve else "rejected"
        if not approve and not (note and note.strip()):
            note = NO_REASON
        decided = time.time()
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
            raise ApprovalAlreadyDecided(
                f"approval {approval_id} (run {current.run_id}) was already {was} by {who}; nothing changed",
                approval_id=approval_id,
                status=str(was),
                decided_by=who,
            )
        return dataclasses.replace(current, status=status, decided=decided, decided_by=by, note=note)

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
            block = max(0.01, min(left, slice_s or left))  # 0 would block forever
            key = self._notify_key(approval_id)
            self._call(self._client.blmove, key, key, block, "RIGHT", "LEFT")

    def health(self) -> SinkHealth:
        """Whether Redis answers PING now, with the fix when not; never raises."""
        started = time.perf_counter()
        try:
            self._client.ping()
        except redis.RedisError as exc:
            return SinkHealth(False, f"Redis at {where(self._client)} did not answer ({exc}); {START_REDIS}")
        latency = (time.perf_counter() - started) * 1000
        return SinkHealth(True, f"Redis at {where(self._client)} answered PING", round(latency, 3))

    # internals --------------------------------------------------------------------------------------------------
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


def _from_hash(stored: Mapping[Any, Any]) -> Approval:
    values: dict[str, Any] = {decode(key): json.loads(decode(value)) for key, value in stored.items()}
    values["reasons"] = tuple(values.get("reasons") or ())
    fields: dict[str, Any] = {name: values.get(name) for name in _FIELDS}
    return Approval(**fields)
