"""Where the chat service's runs execute on this machine: `LocalRunner` over a `CrewPool`.

`CrewPool`: `workers` worker threads, each running one request at a time on a Crew. Crews are built on demand, at
most one per worker (at most `workers` jobs run at once), and reused: a job takes an idle Crew or builds one, and
gives it back when it ends.

`LocalRunner`: runs a conversation's turns one after another on the pool (any Crew takes a turn: the history rides
with the conversation's `ChatSession`), resumes runs after an approval, and ends a run's stream whatever breaks.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.conversation import ChatSession
from smolcrew.server.runs import Conversation, LiveRun, error_result

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.crew import Crew
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunResult

__all__ = ["CrewPool", "LocalRunner", "Roots", "threads_shared"]

Roots = Callable[[str], tuple[Path, ...]]
"""The folders a run of conversation `id` may read (its uploads and its runs' outputs)."""


class CrewPool:
    """Worker threads and the Crews they run on.

    Args:
        settings: handed to `factory` for each Crew.
        factory: builds one Crew of the pool.
        workers: worker threads, and so the most Crews the pool builds.
    """

    def __init__(self, settings: Settings, factory: Callable[[Settings], Crew], workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self._factory = factory
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smolcrew-run")
        self._idle: queue.LifoQueue[Crew] = queue.LifoQueue()
        self._crews: list[Crew] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CrewPool(workers={self.workers}, {len(self._crews)} crews built)"

    def submit(self, work: Callable[..., None], *args: Any) -> None:
        """Run `work(*args)` on a worker thread; dropped once the pool has shut down."""
        with contextlib.suppress(RuntimeError):  # shut down meanwhile: close() ends the runs still queued
            self._executor.submit(work, *args)

    def with_crew(self, work: Callable[[Crew], None]) -> None:
        """Run `work` on an idle Crew (built now if none is idle) in the calling worker thread."""
        try:
            crew = self._idle.get_nowait()
        except queue.Empty:
            crew = self._factory(self.settings)  # at most `workers` jobs run at once, so at most `workers` crews
            with self._lock:
                self._crews.append(crew)
        try:
            work(crew)
        finally:
            self._idle.put(crew)

    def model_check(self) -> tuple[bool, str]:
        """Whether an idle Crew's model builds (the first check builds a Crew of the pool)."""
        with self._lock:
            if not self._crews:
                try:
                    self._crews.append(self._factory(self.settings))
                except Exception as exc:  # a Crew that cannot be built means not ready
                    return False, str(exc)
                self._idle.put(self._crews[-1])
        try:
            crew = self._idle.get_nowait()
        except queue.Empty:
            return True, f"all {len(self._crews)} crews busy running"
        try:
            return True, f"{type(crew.model).__name__} ready"
        except Exception as exc:  # any failure to build the model means not ready
            return False, str(exc)
        finally:
            self._idle.put(crew)

    def shutdown(self) -> None:
        """Take no more work, wait for the running jobs and drop the queued ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Close every Crew of the pool (after `shutdown`)."""
        with self._lock:
            crews = list(self._crews)
        for crew in crews:
            crew.close()


class LocalRunner:
    """Turns and resumptions on a `CrewPool` of `server.workers` Crews built by `factory`."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], Crew]) -> None:
        self._crews = CrewPool(threads_shared(settings), factory, settings.server.workers)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"LocalRunner({self._crews!r})"

    @property
    def workers(self) -> int:
        return self._crews.workers

    def turn(self, conversation: Conversation, run: LiveRun, task: str, images: list[Any], roots: Roots) -> None:
        """Queue `task` as the conversation's next turn: it runs after the earlier ones, as `run`."""

        def work(crew: Crew) -> None:
            if not run.start():  # cancelled while it waited
                return
            session = conversation.session or ChatSession(crew, conversation_id=conversation.id)
            session.crew = crew
            conversation.session = session
            result = session.send(
                task,
                images=images,
                on_step=_listener(run),
                run_id=run.run_id,
                file_roots=roots(conversation.id),
                cancelled=lambda: run.cancel_requested,
            )
            _finished(run, result)

        with self._lock:
            conversation.waiting.append(lambda: _guarded(run, lambda: self._crews.with_crew(work)))
            if conversation.busy:
                return
            conversation.busy = True
        self._crews.submit(self._drain_one, conversation)

    def resume(self, run_id: str, run: LiveRun | None, conversation: Conversation | None, roots: Roots) -> None:
        """Finish journaled run `run_id` in the background (after an approval was decided); `run`, when this
        server still holds it, gets the events and the end, and the conversation's session the settled answer."""

        def work(crew: Crew) -> None:
            result = crew.resume(
                run_id,
                on_step=_listener(run) if run is not None else None,
                file_roots=roots(run.conversation_id) if run is not None else (),
                cancelled=(lambda: run.cancel_requested) if run is not None else None,
            )
            if conversation is not None and conversation.session is not None:
                conversation.session.settle(result)
            if run is not None:
                _finished(run, result)

        if run is None:
            self._crews.submit(self._crews.with_crew, work)
        else:
            self._crews.submit(_guarded, run, lambda: self._crews.with_crew(work))

    def model_check(self) -> tuple[bool, str]:
        return self._crews.model_check()

    def shutdown(self) -> None:
        """Take no more turns, wait for the running ones and drop the queued ones."""
        with self._lock:
            self._closed = True
        self._crews.shutdown()

    def close(self) -> None:
        self._crews.close()

    def _drain_one(self, conversation: Conversation) -> None:
        with self._lock:
            job = conversation.waiting.popleft()
        try:
            job()
        finally:
            with self._lock:
                more = bool(conversation.waiting) and not self._closed
                conversation.busy = more
            if more:
                self._crews.submit(self._drain_one, conversation)


def _listener(run: LiveRun) -> Callable[[StepRecord], None]:
    def on_step(record: StepRecord) -> None:
        run.append("step", record.to_dict())

    return on_step


def _guarded(run: LiveRun, work: Callable[[], None]) -> None:
    """Run `work`; whatever breaks, the run's stream still ends (with state error)."""
    try:
        work()
    except Exception as exc:  # any failure must end the stream, not hang its subscribers
        run.end(error_result(run, f"{type(exc).__name__}: {exc}"))


def _finished(run: LiveRun, result: RunResult) -> None:
    if result.state == "pending_approval":
        run.pending(result.to_dict())
    else:
        run.end(result.to_dict())


def threads_shared(settings: Settings) -> Settings:
    """`settings` with torch's threads split between the runs that go at once (unless set)."""
    if settings.pool.threads is not None:
        return settings
    from smolcrew.pool import cpu_threads

    pool = settings.pool.model_copy(update={"threads": cpu_threads(settings.server.workers)})
    return settings.model_copy(update={"pool": pool})
