"""The only step listener: the journal first, synchronously; then every other sink, off the agent's thread.

When `Mirror.__call__(record)` returns, the record is on disk in the journal. Each other sink has a lane: a
queue drained by its own thread in batches. A batch a sink refuses is not retried from memory: the lane marks
the batch's runs as pending (persisted in `state_dir`, so a restart remembers), falls behind, and probes the
sink with growing pauses; when it answers again, the lane replays the pending runs from the journal (writes
are idempotent, so a replay never duplicates) and goes back to live writes. No step is lost while the journal
holds it. `close()` flushes.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import MemorySink
from smolcrew.memory.sinks.journal import JournalSink

__all__ = ["LaneStatus", "Mirror"]

_STOP = object()
_WAKE = object()  # makes an idle lane look at its pending runs (after `sync`)


@dataclass
class LaneStatus:
    sink: str
    queued: int
    behind: bool
    pending_runs: list[str]
    written: int
    failures: int
    last_error: str | None


@dataclass
class _Lane:
    sink: MemorySink
    state_file: Path
    queue: queue.Queue[Any] = field(default_factory=queue.Queue)
    pending: set[str] = field(default_factory=set)
    behind: bool = False
    written: int = 0
    failures: int = 0
    last_error: str | None = None
    busy: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_pending(self, runs: Iterable[str]) -> None:
        with self.lock:
            self.pending.update(runs)
            self.behind = True
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps(sorted(self.pending)))

    def clear_pending(self, runs: Iterable[str]) -> None:
        with self.lock:
            self.pending.difference_update(runs)
            self.behind = bool(self.pending)
            self.state_file.write_text(json.dumps(sorted(self.pending)))


class Mirror:
    """Fan-out of step records: `journal` synchronously, `sinks` asynchronously with catch-up.

    Args:
        journal: the write-ahead log; its errors propagate (a step that cannot be journaled is not safe).
        sinks: the other stores.
        state_dir: where each lane keeps the runs it still owes (`pending-<sink>.json`).
        batch_size: most records per write to a sink.
        linger_s: how long a lane waits to fill a batch before writing what it has.
        retry_s: the first pause before probing a failed sink; it doubles up to `max_retry_s`.
    """

    def __init__(
        self,
        journal: JournalSink,
        sinks: Sequence[MemorySink],
        *,
        state_dir: Path,
        batch_size: int = 100,
        linger_s: float = 0.05,
        retry_s: float = 0.2,
        max_retry_s: float = 5.0,
    ) -> None:
        self.journal = journal
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._lanes = [_Lane(sink, Path(state_dir) / f"pending-{sink.name}.json") for sink in sinks]
        self._threads: list[threading.Thread] = []
        for lane in self._lanes:
            if lane.state_file.is_file():
                lane.pending = set(json.loads(lane.state_file.read_text() or "[]"))
                lane.behind = bool(lane.pending)
            thread = threading.Thread(target=self._drain, args=(lane,), name=f"mirror-{lane.sink.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._closed = False

    def __repr__(self) -> str:
        return f"Mirror(journal={self.journal!r}, sinks={[lane.sink.name for lane in self._lanes]})"

    @property
    def sinks(self) -> list[MemorySink]:
        """The stores behind the journal."""
        return [lane.sink for lane in self._lanes]

    def __call__(self, record: StepRecord) -> None:
        """Journal the record (on disk when this returns), then hand it to every sink's lane."""
        self.journal.write([record])
        for lane in self._lanes:
            lane.queue.put(record)

    # -- the lanes ---------------------------------------------------------------------------------

    def _next_batch(self, lane: _Lane) -> list[StepRecord] | None:
        first = lane.queue.get()
        if first is _STOP:
            return None
        if first is _WAKE:
            return []
        batch = [first]
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_size:
            try:
                item = lane.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                lane.queue.put(_STOP)
                break
            if item is not _WAKE:
                batch.append(item)
        return batch

    def _drain(self, lane: _Lane) -> None:
        pause = self.retry_s
        while True:
            if lane.behind:
                if self._catch_up(lane):
                    pause = self.retry_s
                    continue
                if self._wait_or_stop(lane, pause):
                    return
                pause = min(pause * 2, self.max_retry_s)
                continue
            batch = self._next_batch(lane)
            if batch is None:
                return
            if not batch:
                continue
            lane.busy = True
            try:
                lane.sink.write(batch)
                lane.written += len(batch)
            except Exception as exc:  # any failure of a store: the journal has the batch
                lane.failures += 1
                lane.last_error = f"{type(exc).__name__}: {exc}"
                lane.mark_pending({record.run_id for record in batch})
            finally:
                lane.busy = False

    def _wait_or_stop(self, lane: _Lane, pause: float) -> bool:
        """While behind, new records only add their runs to the pending set. True when stopping."""
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            try:
                item = lane.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            if item is not _WAKE:
                lane.mark_pending({item.run_id})
        return False

    def _catch_up(self, lane: _Lane) -> bool:
        """Replay the lane's pending runs from the journal. True when it is level again."""
        if not lane.sink.health().ok:
            return False
        lane.busy = True
        try:
            while not lane.queue.empty():  # live records of pending runs are in the journal too
                item = lane.queue.get_nowait()
                if item is _STOP:
                    lane.queue.put(_STOP)
                    break
                if item is not _WAKE:
                    lane.mark_pending({item.run_id})
            for run_id in sorted(lane.pending):
                records = self.journal.read(run_id)
                for start in range(0, len(records), self.batch_size):
                    lane.sink.write(records[start : start + self.batch_size])
                lane.written += len(records)
                lane.clear_pending({run_id})
            return not lane.behind
        except Exception as exc:
            lane.failures += 1
            lane.last_error = f"{type(exc).__name__}: {exc}"
            return False
        finally:
            lane.busy = False

    # -- control -----------------------------------------------------------------------------------

    def status(self) -> list[LaneStatus]:
        return [
            LaneStatus(
                lane.sink.name,
                lane.queue.qsize(),
                lane.behind,
                sorted(lane.pending),
                lane.written,
                lane.failures,
                lane.last_error,
            )
            for lane in self._lanes
        ]

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every lane has written what it was given and caught up, or its sink is down (what it
        owes then stays pending on disk). False on timeout."""

        def settled(lane: _Lane) -> bool:
            if not lane.queue.empty() or lane.busy:
                return False
            return not lane.behind or not lane.sink.health().ok

        deadline = time.monotonic() + timeout_s
        while True:
            if all(settled(lane) for lane in self._lanes):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def sync(self, run_ids: Sequence[str] | None = None, *, timeout_s: float = 300.0) -> dict[str, int]:
        """Replay journaled runs (default: all) into every sink and wait; returns records written per sink."""
        runs = list(run_ids) if run_ids is not None else self.journal.runs()
        before = {lane.sink.name: lane.written for lane in self._lanes}
        self.owe(runs)
        self.flush(timeout_s)
        return {lane.sink.name: lane.written - before[lane.sink.name] for lane in self._lanes}

    def owe(self, run_ids: Sequence[str]) -> None:
        """Copy these runs from the journal into every sink again, in the background (writes are idempotent per
        step). A run resumed on another node may hold steps its first node journaled but died before passing on."""
        for lane in self._lanes:
            if run_ids:
                lane.mark_pending(run_ids)
                lane.queue.put(_WAKE)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Flush, then stop the lanes. Runs still owed stay pending on disk for the next start."""
        if self._closed:
            return True
        flushed = self.flush(timeout_s)
        for lane in self._lanes:
            lane.queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._closed = True
        return flushed
