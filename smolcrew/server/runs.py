"""The chat service's log of conversations and runs: each run's events and state, kept in memory for the last
`keep_runs` runs (server/board.py keeps the same in Redis, for a cluster of API instances).

A run's events are `step` (a `StepRecord` dict, as it happens), `pending_approval` (a RunResult dict: a person
must decide; the stream stays open) and last `run_end` (the final RunResult dict). Event ids count from 0 per
run; `events(run_id, after=n)` gives those after id n, so a subscriber that reconnects with its last id loses
and repeats nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from smolcrew.errors import RunNotCancellable, RunNotFoundError

if TYPE_CHECKING:
    from smolcrew.conversation import ChatSession

__all__ = [
    "Conversation",
    "EventKind",
    "LiveRun",
    "RunEvent",
    "RunInfo",
    "RunLog",
    "RunStatus",
    "cancel_refusal",
    "error_result",
]

EventKind = Literal["step", "pending_approval", "run_end"]
RunStatus = Literal["queued", "running", "pending_approval", "done"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run. `id` counts from 0 within the run; `data` is JSON-able."""

    id: int
    event: EventKind
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Where a run stands. `result` (a RunResult dict) is set once it is `pending_approval` or `done`."""

    run_id: str
    conversation_id: str
    status: RunStatus
    text: str
    journal_run_id: str | None
    result: dict[str, Any] | None
    files: tuple[str, ...]
    cancel_requested: bool = False


@dataclass
class Conversation:
    """A conversation: the ids of every run sent to it; the local runner keeps its chat session (the turns that
    finished) and its waiting turns here too."""

    id: str
    session: ChatSession | None = None
    created: float = field(default_factory=time.time)
    run_ids: list[str] = field(default_factory=list)
    waiting: deque[Callable[[], None]] = field(default_factory=deque)
    busy: bool = False


def cancel_refusal(run_id: str, status: str, state: str | None) -> RunNotCancellable | None:
    """Why a run in `status` (ended in `state`) cannot be cancelled; None when it can (or already was)."""
    if status == "pending_approval":
        return RunNotCancellable(
            f"run {run_id} waits for a person: decide its approval instead", run_id=run_id, status=status
        )
    if status == "done" and state != "cancelled":
        return RunNotCancellable(f"run {run_id} has ended ({state}): nothing to cancel", run_id=run_id, status=status)
    return None


class LiveRun:
    """A run's events and state; `append` wakes blocked and async subscribers."""

    def __init__(self, run_id: str, conversation_id: str, text: str, files: tuple[str, ...]) -> None:
        self.run_id, self.conversation_id, self.text, self.files = run_id, conversation_id, text, files
        self.status: RunStatus = "queued"
        self.journal_run_id: str | None = run_id  # the Crew runs under the service's id (Crew.run(run_id=...))
        self.result: dict[str, Any] | None = None
        self.cancel_requested = False
        self.events: list[RunEvent] = []
        self.cond = threading.Condition()
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def __repr__(self) -> str:
        return f"LiveRun({self.run_id!r}, {self.status}, {len(self.events)} events)"

    def append(self, event: EventKind, data: dict[str, Any]) -> None:
        with self.cond:
            self.events.append(RunEvent(len(self.events), event, data))
            self.cond.notify_all()
            waiters = list(self.waiters)
        for loop, flag in waiters:
            loop.call_soon_threadsafe(flag.set)

    def after(self, after: int | None) -> list[RunEvent]:
        with self.cond:
            return self.events[(-1 if after is None else after) + 1 :]

    def ended(self) -> bool:
        """Whether the run's stream has ended (its last event is `run_end`)."""
        return _ended(self.after(None))

    def info(self) -> RunInfo:
        with self.cond:
            return RunInfo(
                self.run_id,
                self.conversation_id,
                self.status,
                self.text,
                self.journal_run_id,
                self.result,
                self.files,
                self.cancel_requested,
            )

    def start(self) -> bool:
        """queued -> running; False when the run is not queued (cancelled while it waited)."""
        with self.cond:
            if self.status != "queued":
                return False
            self.status = "running"
            return True

    def resumed(self) -> None:
        """A person decided: the run is running again until it ends."""
        with self.cond:
            self.status = "running"

    def request_cancel(self) -> None:
        """Ask the run to stop (see `ChatService.cancel`). Raises RunNotCancellable."""
        with self.cond:
            refused = cancel_refusal(self.run_id, self.status, (self.result or {}).get("state"))
            if refused is not None:
                raise refused
            self.cancel_requested = True
            queued = self.status == "queued"
        if queued:
            self.end(error_result(self, f"run {self.run_id} was cancelled before it started", "cancelled"))

    def pending(self, data: dict[str, Any]) -> None:
        """The run waits for a person (`data`: its RunResult dict); the stream stays open for the decision."""
        with self.cond:
            self.status, self.result = "pending_approval", data
        self.append("pending_approval", data)

    def end(self, data: dict[str, Any]) -> None:
        """End the stream with `run_end` (a RunResult dict)."""
        with self.cond:
            self.status, self.result = "done", data
        self.append("run_end", data)


class _Journaled(Protocol):
    journal_run_id: str | None


def error_result(run: _Journaled, error: str, state: str = "error") -> dict[str, Any]:
    """The RunResult dict of a run that broke, or never ran (state error, or cancelled): no answer, no steps."""
    return {"run_id": run.journal_run_id, "state": state, "answer": None, "error": error, "steps": []}


def _ended(events: Sequence[RunEvent]) -> bool:
    return bool(events) and events[-1].event == "run_end"


class RunLog:
    """Conversations, and the last `keep_runs` runs by id (the oldest finished runs are forgotten first), in this
    process's memory. Thread-safe."""

    def __init__(self, keep_runs: int) -> None:
        self.keep_runs = keep_runs
        self._runs: OrderedDict[str, LiveRun] = OrderedDict()
        self._conversations: dict[str, Conversation] = {}
        self._lock = threading.Lock()

    def new_run(self, run_id: str, conversation_id: str, text: str, files: tuple[str, ...]) -> LiveRun:
        return LiveRun(run_id, conversation_id, text, files)

    def add_conversation(self, conversation: Conversation) -> None:
        with self._lock:
            self._conversations[conversation.id] = conversation

    def conversation(self, conversation_id: str) -> Conversation | None:
        with self._lock:
            return self._conversations.get(conversation_id)

    def close(self) -> None:
        """Nothing to release: the log lives in this process."""

    def __len__(self) -> int:
        return len(self._runs)

    def __repr__(self) -> str:
        return f"RunLog({len(self._runs)} runs, keep_runs={self.keep_runs})"

    def add(self, run: LiveRun) -> None:
        """Log `run` as its conversation's latest, forgetting the oldest finished runs over `keep_runs`."""
        with self._lock:
            self._runs[run.run_id] = run
            if run.conversation_id in self._conversations:
                self._conversations[run.conversation_id].run_ids.append(run.run_id)
            excess = len(self._runs) - self.keep_runs
            for run_id in [r for r, logged in self._runs.items() if logged.status == "done"][: max(0, excess)]:
                self._runs.pop(run_id)

    def find(self, run_id: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def get(self, run_id: str) -> LiveRun:
        """The run `run_id`. Raises RunNotFoundError."""
        found = self.find(run_id)
        if found is None:
            raise RunNotFoundError(
                f"no run {run_id!r} on this server (it keeps the last {self.keep_runs}); "
                "older runs: `smolcrew runs show RUN`"
            )
        return found

    def held(self) -> list[LiveRun]:
        """The runs this process holds: they end when it closes."""
        with self._lock:
            return list(self._runs.values())

    def journal_id(self, run_id: str) -> str:
        """The run's id in the journal and audit log; an id this log does not hold is taken as one (of an earlier
        server process, maybe). Raises RunNotFoundError for a run that has not started."""
        run = self.find(run_id)
        if run is None:
            return run_id
        if run.journal_run_id is None:
            raise RunNotFoundError(f"run {run_id} has not started yet; try again once it has")
        return run.journal_run_id

    def events(self, run_id: str, after: int | None = None, timeout_s: float | None = None) -> Iterator[RunEvent]:
        """See `ChatService.events`."""
        run = self.get(run_id)
        while True:
            with run.cond:
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                batch = run.after(after)
                while not batch:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    run.cond.wait(left)
                    batch = run.after(after)
            yield from batch
            if _ended(batch):
                return
            after = batch[-1].id

    async def aevents(
        self, run_id: str, after: int | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """See `ChatService.aevents`."""
        run = self.get(run_id)
        flag = asyncio.Event()
        waiter = (asyncio.get_running_loop(), flag)
        with run.cond:
            run.waiters.add(waiter)
        try:
            while True:
                flag.clear()
                batch = run.after(after)
                if not batch:
                    try:
                        await asyncio.wait_for(flag.wait(), timeout_s)
                    except TimeoutError:
                        return
                    continue
                for event in batch:
                    yield event
                if _ended(batch):
                    return
                after = batch[-1].id
        finally:
            with run.cond:
                run.waiters.discard(waiter)
