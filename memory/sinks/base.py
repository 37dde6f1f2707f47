"""The one interface every memory sink implements, and the values that cross it.

A sink stores `StepRecord`s. `write` is idempotent on (run_id, seq): writing a batch twice stores it once, so
a sink that fell behind can be replayed from the journal without duplicates. `read` returns a run's records in
order; `search` finds records by meaning (or by text, for sinks without vectors); `health` says whether the
store answers. Capabilities are declared, never guessed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from smolcrew.memory.records import StepRecord

__all__ = ["Capability", "MemorySink", "SinkHealth"]


class Capability(StrEnum):
    DURABLE = "durable"
    """Written synchronously to disk; the source of truth for catch-up (the journal)."""
    VECTOR_SEARCH = "vector_search"
    GRAPH = "graph"
    STREAM = "stream"
    """Publishes records as events other processes can follow."""


@dataclass(frozen=True, slots=True)
class SinkHealth:
    ok: bool
    detail: str
    latency_ms: float | None = None


class MemorySink(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abstractmethod
    def write(self, batch: Sequence[StepRecord]) -> None:
        """Store every record of `batch`; records already stored (same run_id and seq) are replaced, not added.

        Raises:
            SinkUnavailableError: the store did not take the batch; nothing of it may be assumed stored.
        """

    @abstractmethod
    def read(self, run_id: str) -> list[StepRecord]:
        """Every stored record of `run_id`, ordered by seq."""

    @abstractmethod
    def search(self, query: str, *, run_id: str | None = None, k: int = 5) -> list[StepRecord]:
        """Up to `k` records that best match `query`, optionally within one run."""

    @abstractmethod
    def health(self) -> SinkHealth:
        """Whether the store answers now, with a short detail; never raises."""

    def close(self) -> None:  # noqa: B027 - optional for sinks that hold no connection
        """Release connections. The sink is unusable afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
