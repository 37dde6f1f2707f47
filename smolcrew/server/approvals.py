"""The chat service's approval queue: the Crews' queue (the home's approval journal, indexed in Redis at
`services.redis_url`, namespace `memory.namespace`), opened on first use and closed with the service. Its first
call rebuilds the Redis index from the journal when Redis lost it (validators/journaled.py)."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.validators.human import ApprovalQueue

__all__ = ["Approvals"]


class Approvals:
    """Opens the approval queue named by `settings` on first use; `close()` closes it. Thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores = ExitStack()
        self._queue: ApprovalQueue | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "open" if self._queue is not None else "not opened"
        return f"Approvals({self.settings.services.redis_url!r}, {state})"

    @property
    def queue(self) -> ApprovalQueue:
        """The queue. Its `list` raises ApprovalQueueUnavailable while Redis is down; reads by id and decisions
        go to the journal then."""
        with self._lock:
            if self._queue is None:
                from smolcrew.validators.journaled import JournaledApprovalQueue

                opened = JournaledApprovalQueue.from_settings(self.settings)
                self._queue = self._stores.enter_context(opened)
            return self._queue

    def close(self) -> None:
        """Close the queue (if it was opened). Idempotent."""
        with self._lock:
            self._stores.close()
            self._queue = None
