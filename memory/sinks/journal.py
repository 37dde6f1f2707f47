"""The journal: an append-only JSONL file per run, fsynced on every write. The write-ahead log of the memory.

Every step is written here first, synchronously, before the other sinks see it: when `write` returns, the step
is on disk. The other sinks catch up from here. Appends are never rewritten; a record written again (a replay)
is appended again and `read` keeps the last copy of each seq. A corrupt line (a torn write, a hand edit) is
reported in `problems` and skipped, never fatal.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from smolcrew.errors import SinkUnavailableError
from smolcrew.memory.records import StepRecord, record_from_json, record_to_json
from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth

__all__ = ["JournalProblem", "JournalSink"]

_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class JournalProblem:
    file: Path
    line: int
    error: str


class JournalSink(MemorySink):
    """JSONL files under `folder`, one per run (`<run_id>.jsonl`)."""

    name = "journal"
    capabilities = frozenset({Capability.DURABLE})

    def __init__(self, folder: Path, *, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.fsync = fsync
        self.problems: list[JournalProblem] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JournalSink({str(self.folder)!r})"

    def setup(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str) -> Path:
        if not _SAFE_RUN_ID.match(run_id):
            raise ValueError(f"run id {run_id!r} is not a safe file name")
        return self.folder / f"{run_id}.jsonl"

    def write(self, batch: Sequence[StepRecord]) -> None:
        by_run: dict[str, list[str]] = {}
        for record in batch:
            by_run.setdefault(record.run_id, []).append(record_to_json(record) + "\n")
        with self._lock:
            try:
                self.setup()
                for run_id, lines in by_run.items():
                    with self.path(run_id).open("a", encoding="ascii") as handle:
                        handle.writelines(lines)
                        handle.flush()
                        if self.fsync:
                            os.fsync(handle.fileno())
            except OSError as exc:
                raise SinkUnavailableError(
                    f"the journal at {self.folder} cannot be written ({exc}); free disk space or fix permissions",
                    sink=self.name,
                ) from exc

    def read(self, run_id: str) -> list[StepRecord]:
        path = self.path(run_id)
        if not path.is_file():
            return []
        latest: dict[int, StepRecord] = {}
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = record_from_json(raw.decode("ascii"))
                except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
                    self.problems.append(JournalProblem(path, number, f"{type(exc).__name__}: {exc}"))
                    continue
                latest[record.seq] = record
        return [latest[seq] for seq in sorted(latest)]

    def runs(self) -> list[str]:
        """Run ids with a journal, oldest first."""
        if not self.folder.is_dir():
            return []
        files = sorted(self.folder.glob("*.jsonl"), key=lambda path: path.stat().st_mtime)
        return [path.stem for path in files]

    def search(self, query: str, *, run_id: str | None = None, k: int = 5) -> list[StepRecord]:
        """Records whose JSON contains every word of `query` (case-insensitive), newest runs first."""
        words = query.lower().split()
        found: list[StepRecord] = []
        for run in [run_id] if run_id else reversed(self.runs()):
            for record in self.read(run):
                text = record_to_json(record).lower()
                if all(word in text for word in words):
                    found.append(record)
                    if len(found) >= k:
                        return found
        return found

    def health(self) -> SinkHealth:
        try:
            self.setup()
            probe = self.folder / ".health"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return SinkHealth(False, f"{self.folder} is not writable: {exc}")
        return SinkHealth(True, f"{self.folder} writable, {len(self.runs())} runs")

    def drop(self) -> None:
        for path in self.folder.glob("*.jsonl"):
            path.unlink()
