"""The chat service's pool of Crews: `workers` worker threads, each running one request at a time on a Crew.

Crews are built on demand, at most one per worker (at most `workers` jobs run at once), and reused: a job takes
an idle Crew or builds one, and gives it back when it ends.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.crew import Crew

__all__ = ["CrewPool"]


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
