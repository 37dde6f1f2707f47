"""The approval journal: the local, append-only truth of every approval. Redis only indexes it (validators/human.py).

Why: Redis may keep nothing on disk (`--save '' --appendonly no`, a flush, a restart), and an approval lost there
leaves its run waiting forever. So each approval and its decision is written here first, fsynced; the queue
(validators/journaled.py) rebuilds its Redis index from here whenever it finds the index gone.

Layout under `folder` (`<home>/journal/approvals`, beside the runs' journals):

```
<id>.jsonl       the approval's records: an `approval_request` (the approval as the person sees it, pending, with
                 the run's conversation id), then at most one `approval_decision`
runs/<run_id>    the ids of the run's approvals, one a line, oldest first
owed/<id>        written with each record, removed once the Redis index has it
```

Each line is a StepRecord (memory/records.py) of the approval's run: seq 0 the request, seq 1 the decision. A
decision is written under an exclusive lock (flock) on the approval's file after reading it, so of concurrent
decisions, in threads or processes sharing the folder, exactly one is written and the others raise
ApprovalAlreadyDecided. A run's requests are serialised the same way on `runs/<run_id>`: one pending approval per
run. Decisions are never rewritten: the journal keeps them after the index has let them expire.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from smolcrew.errors import ApprovalAlreadyDecided, ApprovalJournalError, ApprovalNotFound
from smolcrew.memory.records import StepRecord, record_from_json, record_to_json
from smolcrew.validators.approval import Approval

__all__ = ["ApprovalJournal", "already_decided"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
REQUEST = "approval_request"
DECISION = "approval_decision"


def already_decided(approval: Approval) -> ApprovalAlreadyDecided:
    """The error for a second decision on `approval` (decided by someone first)."""
    return ApprovalAlreadyDecided(
        f"approval {approval.id} (run {approval.run_id}) was already {approval.status} by {approval.decided_by}; "
        "nothing changed",
        approval_id=approval.id,
        status=approval.status,
        decided_by=approval.decided_by,
    )


def _parse(lines: Iterator[str] | list[str]) -> Approval | None:
    """The approval its records describe (None without a readable request); torn or corrupt lines are skipped."""
    approval: Approval | None = None
    decision: dict[str, Any] | None = None
    for line in lines:
        try:
            record = record_from_json(line)
        except (ValueError, KeyError, TypeError):
            continue
        if record.kind == REQUEST and approval is None:
            approval = Approval.from_dict(record.payload)
        elif record.kind == DECISION and decision is None:
            decision = record.payload
    if approval is None or decision is None:
        return approval
    fields: dict[str, Any] = {name: decision.get(name) for name in ("status", "decided", "decided_by", "note")}
    return Approval.from_dict({**approval.to_dict(), **fields})


class ApprovalJournal:
    """Approvals as files under `folder` (layout in the module docstring). Thread- and process-safe.

    Args:
        folder: where the files go (made on first write).
        runs: the runs' journal folder, read for a run's conversation id (default: `folder`'s parent).
        fsync: sync each write to disk before returning (off only in benchmarks).
    """

    def __init__(self, folder: Path, *, runs: Path | None = None, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.runs = Path(runs) if runs is not None else self.folder.parent
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"ApprovalJournal({str(self.folder)!r})"

    def path(self, approval_id: str) -> Path | None:
        """The approval's file; None when `approval_id` cannot name one (so no such approval exists)."""
        return self.folder / f"{approval_id}.jsonl" if _SAFE_NAME.match(approval_id) else None

    # reading ----------------------------------------------------------------------------------------------------
    def get(self, approval_id: str) -> Approval | None:
        """The approval as journaled (with its decision, if any); None when it is not in the journal."""
        path = self.path(approval_id)
        if path is None or not path.is_file():
            return None
        with self._guard("read"), path.open(encoding="ascii", errors="replace") as handle:
            return _parse(list(handle))

    def for_run(self, run_id: str) -> Approval | None:
        """The latest approval journaled for `run_id`, pending or decided; None when there is none."""
        for approval_id in reversed(self._run_ids(run_id)):
            found = self.get(approval_id)
            if found is not None and found.run_id == run_id:
                return found
        return None

    def all(self) -> list[Approval]:
        """Every journaled approval, oldest (by creation) first."""
        if not self.folder.is_dir():
            return []
        found = [self.get(path.stem) for path in self.folder.glob("*.jsonl")]
        return sorted((a for a in found if a is not None), key=lambda approval: (approval.created, approval.id))

    def owed(self) -> list[str]:
        """Ids written here that the Redis index may not have yet."""
        owed = self.folder / "owed"
        return sorted(path.name for path in owed.iterdir()) if owed.is_dir() else []

    def paid(self, approval_id: str) -> None:
        """The index has `approval_id` as journaled: it is no longer owed."""
        with self._guard("write"):
            (self.folder / "owed" / approval_id).unlink(missing_ok=True)

    # writing ----------------------------------------------------------------------------------------------------
    def request(self, approval: Approval) -> Approval:
        """Journal the pending `approval`, unless its run has a pending one: then that one, unchanged, is returned
        (one pending approval per run). A taken id (one in 2**48) is replaced by a fresh one."""
        if not _SAFE_NAME.match(approval.run_id):
            raise ValueError(f"run id {approval.run_id!r}: use 1-128 letters, digits or _.:- characters")
        with self._locked(self.folder / "runs" / approval.run_id) as index:
            for approval_id in reversed([line.strip() for line in index if line.strip()]):
                found = self.get(approval_id)
                if found is not None and found.pending and found.run_id == approval.run_id:
                    return found
            while (self.folder / f"{approval.id}.jsonl").exists():
                approval = dataclasses.replace(approval, id=secrets.token_hex(6))
            self._append(index, approval.id + "\n")  # the run's index first: a crash leaves no orphan pending
            self._create(approval)
        return approval

    def decide(
        self, approval_id: str, *, approve: bool, by: str, note: str | None, when: float | None = None
    ) -> Approval:
        """Journal the decision on a pending approval, once (see the module docstring) and return it decided.

        Raises:
            ApprovalNotFound: no such approval in the journal.
            ApprovalAlreadyDecided: it was decided before.
        """
        path = self.path(approval_id)
        if path is None or not path.is_file():
            raise ApprovalNotFound(f"no approval {approval_id!r} in {self.folder}", approval_id=approval_id)
        with self._locked(path) as handle:
            current = _parse(list(handle))
            if current is None:
                raise ApprovalNotFound(f"approval {approval_id!r} has no readable request in {path}")
            if not current.pending:
                raise already_decided(current)
            decided = current.decide(approve=approve, by=by, note=note, decided=when)
            payload = {name: getattr(decided, name) for name in ("id", "status", "decided", "decided_by", "note")}
            self._append(handle, self._line(decided, 1, DECISION, payload))
            self._owe(approval_id)
        return decided

    def adopt(self, approval: Approval) -> Approval:
        """Journal an approval the index has and the journal lacks (made or decided by a queue without this
        journal); returns it as the journal now has it (a decision journaled first stands)."""
        found = self.get(approval.id)
        if found is None and _SAFE_NAME.match(approval.run_id) and self.path(approval.id) is not None:
            with self._locked(self.folder / "runs" / approval.run_id) as index:
                if not (self.folder / f"{approval.id}.jsonl").exists():
                    self._append(index, approval.id + "\n")
                    pending = dataclasses.replace(approval, status="pending", decided=None, decided_by=None, note=None)
                    self._create(pending)
            found = self.get(approval.id)
        if found is None:  # not journalable (an odd run id): the index's copy is all there is
            return approval
        if found.pending and not approval.pending:
            try:
                return self.decide(
                    approval.id,
                    approve=approval.status == "approved",
                    by=approval.decided_by or "unknown",
                    note=approval.note,
                    when=approval.decided,
                )
            except ApprovalAlreadyDecided:
                return self.get(approval.id) or found
        return found

    # internals --------------------------------------------------------------------------------------------------
    def _conversation(self, run_id: str) -> str | None:
        """The run's conversation id, from the first record of its journal (its `run_start`)."""
        try:
            with (self.runs / f"{run_id}.jsonl").open(encoding="ascii", errors="replace") as handle:
                first = handle.readline()
            return record_from_json(first).payload.get("conversation_id") if first.strip() else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _line(self, approval: Approval, seq: int, kind: str, payload: dict[str, Any]) -> str:
        agent = "crew" if kind == REQUEST else "person"
        return record_to_json(StepRecord(approval.run_id, seq, agent, kind, payload)) + "\n"

    def _create(self, approval: Approval) -> None:
        """Write the approval's file (its request record), failing if it exists."""
        payload = {**approval.to_dict(), "conversation_id": self._conversation(approval.run_id)}
        path = self.folder / f"{approval.id}.jsonl"
        with self._guard("write"):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w", encoding="ascii") as handle:
                self._append(handle, self._line(approval, 0, REQUEST, payload))
            self._sync_folder(self.folder)
            self._owe(approval.id)

    def _owe(self, approval_id: str) -> None:
        owed = self.folder / "owed"
        with self._guard("write"):
            owed.mkdir(parents=True, exist_ok=True)
            (owed / approval_id).touch()

    def _append(self, handle: IO[str], text: str) -> None:
        with self._guard("write"):
            handle.seek(0, os.SEEK_END)
            handle.write(text)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())

    def _sync_folder(self, folder: Path) -> None:
        """A new file's name is durable once its folder is synced too."""
        if self.fsync:
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _run_ids(self, run_id: str) -> list[str]:
        path = self.folder / "runs" / run_id
        if not _SAFE_NAME.match(run_id) or not path.is_file():
            return []
        with self._guard("read"):
            return [line.strip() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]

    @contextmanager
    def _locked(self, path: Path) -> Iterator[IO[str]]:
        """`path` opened for reading and appending (made when missing), under an exclusive lock, at its start."""
        with self._guard("write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+", encoding="ascii")
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file is closed
            handle.seek(0)
            yield handle

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise ApprovalJournalError(
                f"the approval journal at {self.folder} cannot be {'written' if doing == 'write' else 'read'} "
                f"({exc}); free disk space or fix its permissions"
            ) from exc
