"""The in-memory reference sink: the contract in its simplest form, for tests and for runs without stores.

`available` can be switched off to stand for a store that is down (used by the mirror's catch-up tests).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from smolcrew.errors import SinkUnavailableError
from smolcrew.memory.records import StepRecord, record_to_json
from smolcrew.memory.sinks.base import MemorySink, SinkHealth

__all__ = ["InMemorySink"]


class InMemorySink(MemorySink):
    name = "memory"

    def __init__(self) -> None:
        self.available = True
        self.writes = 0
        self._runs: dict[str, dict[int, StepRecord]] = {}
        self._lock = threading.Lock()

    def _check(self) -> None:
        if not self.available:
            raise SinkUnavailableError("the in-memory sink is switched off (available=False)", sink=self.name)

    def write(self, batch: Sequence[StepRecord]) -> None:
        self._check()
        with self._lock:
            for record in batch:
                self._runs.setdefault(record.run_id, {})[record.seq] = record
            self.writes += 1

    def read(self, run_id: str) -> list[StepRecord]:
        self._check()
        with self._lock:
            records = self._runs.get(run_id, {})
            return [records[seq] for seq in sorted(records)]

    def search(self, query: str, *, run_id: str | None = None, k: int = 5) -> list[StepRecord]:
        self._check()
        words = query.lower().split()
        with self._lock:
            runs = [run_id] if run_id else list(self._runs)
            candidates = [record for run in runs for record in self._runs.get(run, {}).values()]
        return [record for record in candidates if all(w in record_to_json(record).lower() for w in words)][:k]

    def health(self) -> SinkHealth:
        return SinkHealth(self.available, "in memory" if self.available else "switched off")

    def drop(self) -> None:
        with self._lock:
            self._runs.clear()
