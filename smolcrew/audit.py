"""The audit log: one append-only, hash-chained JSONL file per run, that can be verified and exported.

Each entry's `hash` is the SHA-256 hex of the canonical JSON of `{index, run_id, kind, ts, body, prev}`, where
`prev` is the hash of the entry before it (`GENESIS` for the first). Each line is the canonical JSON of the whole
entry, hash included. Canonical JSON: `sort_keys=True`, `separators=(",", ":")`, `ensure_ascii=True`,
`allow_nan=False`. A body is made plain (`jsonable`) before it is hashed, so what is written is what was hashed.

What `verify` catches: a changed entry (hash mismatch, a line not in canonical form, an unparsable line), a deleted,
inserted, duplicated or moved entry (index and `prev` links), and entries removed from the end, but only against
a head recorded elsewhere (`expected_head`; the Crew stores it in the run's journal, record kind `run_end`). The
hash has no key: whoever can write the file can rebuild the whole chain, which only the recorded head reveals.

Appends are thread-safe and, on POSIX, process-safe (an exclusive `flock` on the file). The head of each run is
cached; when the file changed size under us (another process, a restart) it is read back from the last line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import AuditError

try:
    import fcntl
except ImportError:  # Windows: no flock; the in-process lock still holds, so one writing process per log
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from smolcrew.memory.records import StepRecord

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "AuditReport",
    "canonical_json",
    "entry_hash",
    "jsonable",
]

GENESIS = "0" * 64
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # the journal's rule: the run id is a file name
_HASH = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = frozenset({"index", "run_id", "kind", "ts", "body", "prev", "hash"})
_MAX_INT_BITS = 2_000  # ~600 digits: below the smallest int-to-str limit Python allows (640), so json never refuses
_TAIL_CHUNK = 64 * 1024


def canonical_json(value: Any) -> str:
    """The one encoding that is hashed and written. `value` must already be plain (see `jsonable`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types: mappings become dicts with str keys, lists and tuples become lists, str/int/
    float subclasses become the base type; anything else (bytes, sets, paths, objects), NaN and infinities become
    `str(value)`, and ints too big for JSON become `hex(value)`. Lone surrogates survive (written as escapes)."""
    return _plain(value, set())


def _plain(value: Any, active: set[int]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # an enum mixing in str would print as Cls.MEMBER with str()
    if isinstance(value, int):
        return int(value) if value.bit_length() <= _MAX_INT_BITS else hex(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping | list | tuple):
        if id(value) in active:  # a cycle: str() renders it with "..."
            return _str(value)
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {k if isinstance(k, str) else _str(k): _plain(v, active) for k, v in value.items()}
            return [_plain(item, active) for item in value]
        finally:
            active.discard(id(value))
    return _str(value)


def _str(value: Any) -> str:
    try:
        return str.__str__(str(value))
    except Exception as exc:  # an audit write must not fail because some object cannot print itself
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def entry_hash(index: int, run_id: str, kind: str, ts: float, body: Mapping[str, Any], prev: str) -> str:
    """SHA-256 hex over the canonical JSON of the entry's content (everything but its hash)."""
    content = {"index": index, "run_id": run_id, "kind": kind, "ts": ts, "body": body, "prev": prev}
    return hashlib.sha256(canonical_json(content).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of an audit log. `body` is plain JSON (see `jsonable`); `hash` chains it to `prev`."""

    index: int
    run_id: str
    kind: str
    ts: float
    body: dict[str, Any]
    prev: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditReport:
    """The result of `AuditLog.verify`. `first_bad` is the position of the first bad entry (0 = first line; one
    past the last line when entries are missing at the end); `problem` says what is wrong there, in words."""

    run_id: str
    ok: bool
    entries: int
    head: str | None
    first_bad: int | None = None
    problem: str | None = None
    expected_head: str | None = None

    def __str__(self) -> str:
        return f"ok: {self.entries} entries, head {self.head}" if self.ok else f"FAILED: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(raw: bytes, run_id: str) -> AuditEntry | str:
    """The entry on one line (with its line end), or why the line is not a sound entry of `run_id`."""
    if not raw.endswith(b"\n"):
        return "the line has no line end: a write was cut off, or the file was truncated inside an entry"
    try:
        text = raw[:-1].decode("ascii")
        data = json.loads(text, parse_constant=_refuse)
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise ValueError(f"fields {sorted(data) if isinstance(data, dict) else type(data).__name__}")
        entry = AuditEntry(**data)
        if not (isinstance(entry.index, int) and not isinstance(entry.index, bool) and entry.index >= 0):
            raise ValueError(f"index {entry.index!r}")
        if not (isinstance(entry.run_id, str) and isinstance(entry.kind, str) and isinstance(entry.ts, float)):
            raise ValueError("run_id, kind or ts has the wrong type")
        if not (isinstance(entry.body, dict) and isinstance(entry.prev, str) and isinstance(entry.hash, str)):
            raise ValueError("body, prev or hash has the wrong type")
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
        return f"the line is not an audit entry ({type(exc).__name__}: {str(exc)[:120]}) — the entry was changed"
    if canonical_json(data) != text:
        return "the line is not in canonical form — the entry was edited"
    if not (_HASH.match(entry.prev) and _HASH.match(entry.hash)):
        return "its prev or hash is not a SHA-256 hex digest — the entry was changed"
    if entry_hash(entry.index, entry.run_id, entry.kind, entry.ts, entry.body, entry.prev) != entry.hash:
        return "its hash does not match its content — the entry was changed"
    if entry.run_id != run_id:
        return f"it belongs to run {entry.run_id!r} — it was copied in from another log"
    return entry


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not canonical JSON")


class AuditLog:
    """Hash-chained audit logs under `folder`, one file per run: `<folder>/<run_id>.jsonl`.

    `fsync=True` (the default) makes every `append` durable before it returns; tests may turn it off.
    """

    def __init__(self, folder: Path, *, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._heads: dict[str, tuple[int, int, str]] = {}  # run -> (file size, next index, head hash)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.folder)!r})"

    def path(self, run_id: str) -> Path:
        """The log file of `run_id`; raises `AuditError` when the id is not a safe file name."""
        if not isinstance(run_id, str) or not _SAFE_RUN_ID.match(run_id):
            raise AuditError(
                f"run id {run_id!r} is not a safe file name (1-128 of A-Z a-z 0-9 _ . : -)", run_id=str(run_id)
            )
        return self.folder / f"{run_id}.jsonl"

    def append(self, run_id: str, kind: str, body: Mapping[str, Any]) -> AuditEntry:
        """Chain one entry to the run's log and return it; on disk (fsynced) when this returns. Any `kind` string
        is accepted; `body` is stored as `jsonable(body)`. Raises `AuditError` when the log cannot be written or
        its last line is not a complete entry (then nothing is written)."""
        path = self.path(run_id)
        if not isinstance(kind, str) or not kind:
            raise AuditError(f"an audit entry needs a kind (a non-empty string), got {kind!r}", run_id=run_id)
        if not isinstance(body, Mapping):
            raise AuditError(f"an audit body must be a mapping, got {type(body).__name__}", run_id=run_id)
        plain = jsonable(body)
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                created = not path.exists()
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise self._unwritable(run_id, exc) from exc
            try:
                if fcntl is not None:  # another process may append to this run; closing the file unlocks
                    fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                cached = self._heads.get(run_id)
                index, prev = cached[1:] if cached and cached[0] == size else self._tail(run_id, size)
                ts = time.time()
                digest = entry_hash(index, run_id, kind, ts, plain, prev)
                entry = AuditEntry(index, run_id, kind, ts, plain, prev, digest)
                line = (canonical_json(entry.to_dict()) + "\n").encode("ascii")
                self._write(fd, line, size, created)
                self._heads[run_id] = (size + len(line), index + 1, digest)
                return entry
            except OSError as exc:
                raise self._unwritable(run_id, exc) from exc
            finally:
                os.close(fd)

    def _write(self, fd: int, line: bytes, size: int, created: bool) -> None:
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
                if created and fcntl is not None:  # POSIX: the new file's name must survive a crash too
                    folder = os.open(self.folder, os.O_RDONLY)
                    try:
                        os.fsync(folder)
                    finally:
                        os.close(folder)
        except OSError:
            os.ftruncate(fd, size)  # never leave half an entry behind: the next append would build on it
            raise

    def _unwritable(self, run_id: str, exc: OSError) -> AuditError:
        fix = "free disk space or fix permissions"
        return AuditError(
            f"the audit log of run {run_id} in {self.folder} cannot be written ({exc}); {fix}", run_id=run_id
        )

    def record(self, record: StepRecord) -> AuditEntry:
        """Append a step record of the journal: kind `step`, body `record.to_dict()`."""
        return self.append(record.run_id, "step", record.to_dict())

    def entries(self, run_id: str) -> list[AuditEntry]:
        """Every entry of the run's log in file order (none when there is no log). Lines that are no entry are
        skipped, entries that fail their hash are kept: `verify` says which lines are bad."""
        path = self.path(run_id)
        if not path.is_file():
            return []
        with path.open("rb") as handle:
            parsed = [_parse(raw if raw.endswith(b"\n") else raw + b"\n", run_id) for raw in handle]
        return [entry for entry in parsed if isinstance(entry, AuditEntry)]

    def head(self, run_id: str) -> str | None:
        """The hash of the run's last entry; None when it has no entries. Raises `AuditError` when the last
        line is not a complete entry."""
        path = self.path(run_id)
        with self._lock:
            size = path.stat().st_size if path.is_file() else 0
            cached = self._heads.get(run_id)
            head = cached[2] if cached and cached[0] == size else self._tail(run_id, size)[1]
        return None if head == GENESIS else head

    def _tail(self, run_id: str, size: int) -> tuple[int, str]:
        """(next index, head hash) from the last line of the run's log, which is `size` bytes long."""
        if size == 0:
            return 0, GENESIS
        path = self.path(run_id)
        chunks: list[bytes] = []
        with path.open("rb") as handle:
            start, ends = size, 0
            while start > 0 and ends < 2:  # read back to the line end before the last line
                step = min(_TAIL_CHUNK, start)
                start -= step
                handle.seek(start)
                chunks.append(handle.read(step))
                ends += chunks[-1].count(b"\n")
        chunk = b"".join(reversed(chunks))
        last = chunk[chunk.rfind(b"\n", 0, len(chunk) - 1) + 1 :]
        entry = _parse(last, run_id)
        if isinstance(entry, str):
            raise AuditError(
                f"the last line of {path} is not a sound audit entry ({entry}); the chain cannot continue from it. "
                f"Check it with `smolcrew audit verify {run_id}` and move the file aside to start a new log.",
                run_id=run_id,
            )
        return entry.index + 1, entry.hash

    def runs(self) -> list[str]:
        """Run ids that have an audit log, oldest first."""
        if not self.folder.is_dir():
            return []
        files = sorted(self.folder.glob("*.jsonl"), key=lambda path: path.stat().st_mtime)
        return [path.stem for path in files if _SAFE_RUN_ID.match(path.stem)]

    def verify(self, run_id: str, *, expected_head: str | None = None) -> AuditReport:
        """Recompute the chain of the run's log and report the first bad entry. Without `expected_head` (the
        head recorded when the run ended) entries removed from the end go unnoticed. Never raises for a bad or
        missing log: the report says what is wrong."""
        try:
            path = self.path(run_id)
        except AuditError as exc:
            return AuditReport(run_id, False, 0, None, None, str(exc), expected_head)
        if not path.exists():
            problem = f"there is no audit log for run {run_id!r} (looked for {path})"
            return AuditReport(run_id, False, 0, None, None, problem, expected_head)
        try:
            with path.open("rb") as handle:
                rows = [_parse(raw, run_id) for raw in handle]
        except OSError as exc:
            return AuditReport(run_id, False, 0, None, None, f"cannot read {path}: {exc}", expected_head)
        return _check_chain(run_id, rows, expected_head)


def _check_chain(run_id: str, rows: list[AuditEntry | str], expected_head: str | None) -> AuditReport:
    last = rows[-1] if rows else None
    head = last.hash if isinstance(last, AuditEntry) else None
    report = AuditReport(run_id, True, len(rows), head, None, None, expected_head)
    where: dict[int, list[int]] = {}  # entry index -> the positions that hold it
    for position, row in enumerate(rows):
        if isinstance(row, AuditEntry):
            where.setdefault(row.index, []).append(position)
    prev = GENESIS
    for position, row in enumerate(rows):
        name = f"entry {position} (line {position + 1})"
        if isinstance(row, str):
            problem: tuple[int, str] | None = (position, f"{name}: {row}")
        elif row.index != position:
            problem = _misplaced(position, row, rows, where)
        elif row.prev != prev:
            why = "the entry before it was replaced, or the chain was spliced"
            problem = (position, f"{name}: it does not follow entry {position - 1} (prev is not its hash) — {why}")
        else:
            prev, problem = row.hash, None
        if problem:
            return replace(report, ok=False, first_bad=problem[0], problem=problem[1])
    if expected_head is None or expected_head == head:
        return report
    recorded = [position for position, row in enumerate(rows) if getattr(row, "hash", None) == expected_head]
    if recorded:
        after, extra = recorded[0] + 1, len(rows) - recorded[0] - 1
        added = f"{extra} entr{'y' if extra == 1 else 'ies'} from here on"
        why = f"added after the recorded head (entry {recorded[0]}): the log was extended after the run ended"
        problem = (after, f"entry {after} (line {after + 1}): {added} {'was' if extra == 1 else 'were'} {why}")
    else:
        ends = f"ends at entry {len(rows) - 1} (head {head})" if rows else "is empty"
        why = "entries were removed from the end (truncated), or the log was rewritten"
        problem = (len(rows), f"the log {ends}, but the run recorded head {expected_head} — {why}")
    return replace(report, ok=False, first_bad=problem[0], problem=problem[1])


def _misplaced(
    position: int, row: AuditEntry, rows: list[AuditEntry | str], where: dict[int, list[int]]
) -> tuple[int, str]:
    """(first bad position, problem) for an entry found at the wrong position."""
    name, index = f"entry {position} (line {position + 1})", row.index
    before = rows[index - 1] if 0 < index <= len(rows) else None
    follows = row.prev == (GENESIS if index == 0 else before.hash if isinstance(before, AuditEntry) else None)
    if index < position and follows:  # the original entry, pushed down by entries inserted before it
        count, place = position - index, f"follows entry {index - 1} directly" if index else "is the first entry"
        return index, (
            f"entry {index} (line {index + 1}) was inserted: line {position + 1} holds the original entry {index}, "
            f"which {place} ({count} entr{'y' if count == 1 else 'ies'} inserted)"
        )
    others = [other for other in where[index] if other != position]
    if others:
        return position, f"{name}: it repeats entry {index} (also at line {others[0] + 1}) — an entry was duplicated"
    if index > position and position in where:
        moved = where[position][0]
        why = "entries were reordered (swapped or moved)"
        return (
            position,
            f"{name}: line {position + 1} holds entry {index} and entry {position} is at line {moved + 1} — {why}",
        )
    if index > position:
        missing = f"entry {position} is" if index == position + 1 else f"entries {position} to {index - 1} are"
        return position, f"{name}: line {position + 1} holds entry {index}, {missing} missing — deleted"
    return position, f"{name}: it says it is entry {index} — entries were inserted before it, or renumbered"
