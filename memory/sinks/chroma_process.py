"""Chroma in a worker process: the `chroma` sink a crew's mirror uses.

A `ChromaSink` (memory/sinks/chroma.py) does all its work in its caller's process: MiniLM embeddings, the
client's validation of each record, the index. Measured in bench/memory.py, that work in the agent's process
delays the agent's thread (GIL and cores) even with the embeddings stubbed out. `ChromaProcessSink` runs the same
`ChromaSink`, MiniLM included, in a child process (memory/worker.py); this process only pickles records over a
socket. Same records, same collection, same results as a `ChromaSink` over the same store.

Contract: the `MemorySink` contract, plus:
- Lazy: no process starts until the first call (in a mirror: the first write).
- A child that dies or hangs fails the call in progress with `SinkWorkerError` (a `SinkUnavailableError`); the
  next call starts a new child. A mirror's lane catches up from the journal, so no step is lost.
- `health()` asks the child (starting it if needed); a child that cannot start is an unhealthy store.
- `close()` (or leaving its `with` block) stops the child; later calls raise `SinkWorkerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import SinkError
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth
from smolcrew.memory.sinks.chroma_records import RECORD_LIMIT
from smolcrew.memory.worker import WorkerProcess

if TYPE_CHECKING:
    from smolcrew.memory.sinks.chroma import ChromaSink

__all__ = ["ChromaProcessSink", "open_chroma"]


def open_chroma(
    *,
    path: str | None,
    url: str | None,
    namespace: str,
    models: dict[str, str],
    max_record_bytes: int,
    timeout: float,
    connect_timeout: float,
) -> ChromaSink:
    """In the child: the `ChromaSink` it serves, embedding with the `embeddings` model in that process."""
    from smolcrew.memory.sinks.chroma import ChromaSink, minilm_embedder
    from smolcrew.pool import PipelinePool

    embed = minilm_embedder(PipelinePool(device="cpu", overrides=models))
    if url is not None:
        opened = ChromaSink.from_url(
            url,
            namespace=namespace,
            embed=embed,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_record_bytes=max_record_bytes,
        )
    else:
        opened = ChromaSink.embedded(path, namespace=namespace, embed=embed, max_record_bytes=max_record_bytes)
    return opened.__enter__()  # the child closes it when it stops


class ChromaProcessSink(MemorySink):
    """Step records in Chroma, written by a `ChromaSink` in a worker process.

    Args:
        path: the embedded store's folder (`chromadb.PersistentClient`); or
        url: a Chroma server (`http://host:port`); exactly one of the two.
        namespace: the collection's name (sanitised as `ChromaSink` does).
        models: role -> model id or folder, as config `models` (`embeddings` picks the embedder).
        max_record_bytes, timeout, connect_timeout: as `ChromaSink` and `ChromaSink.from_url`.
        threads, niceness, call_timeout_s: the worker's torch threads, CPU priority drop and per-call limit.
    """

    name = "chroma"
    capabilities = frozenset({Capability.VECTOR_SEARCH})

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        namespace: str = "steps",
        models: dict[str, str] | None = None,
        max_record_bytes: int = RECORD_LIMIT,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        threads: int = 1,
        niceness: int = 10,
        call_timeout_s: float = 120.0,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("ChromaProcessSink needs exactly one of `path` (embedded) or `url` (a Chroma server)")
        folder = None if path is None else str(Path(path).expanduser())
        self.namespace = namespace
        self.location = url or str(folder)
        options: dict[str, Any] = {"path": folder, "url": url, "namespace": namespace, "models": dict(models or {})}
        options |= {"max_record_bytes": max_record_bytes, "timeout": timeout, "connect_timeout": connect_timeout}
        self.worker = WorkerProcess(
            f"{__name__}:open_chroma",
            options,
            sink=self.name,
            threads=threads,
            niceness=niceness,
            timeout_s=call_timeout_s,
        )

    def __enter__(self) -> ChromaProcessSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaProcessSink({self.location!r}, namespace={self.namespace!r}, {self.worker!r})"

    def setup(self) -> None:
        """Create the collection if missing. Idempotent."""
        self.worker.call("setup")

    def write(self, batch: Sequence[StepRecord]) -> None:
        if batch:
            self.worker.call("write", list(batch))

    def read(self, run_id: str) -> list[StepRecord]:
        records: list[StepRecord] = self.worker.call("read", run_id)
        return records

    def search(
        self,
        query: str,
        *,
        run_id: str | None = None,
        k: int = 5,
        agent: str | None = None,
        kind: str | None = None,
    ) -> list[StepRecord]:
        """Up to `k` records nearest to `query` in meaning, optionally only of one run, agent or kind."""
        if k <= 0 or not query.strip():
            return []
        found: list[StepRecord] = self.worker.call("search", query, run_id=run_id, k=k, agent=agent, kind=kind)
        return found

    def health(self) -> SinkHealth:
        try:
            health: SinkHealth = self.worker.call("health")
        except SinkError as exc:
            return SinkHealth(ok=False, detail=str(exc))
        return health

    def drop(self) -> None:
        """Delete the namespace's collection and everything in it."""
        self.worker.call("drop")

    def count(self) -> int:
        """Records stored in the namespace."""
        counted: int = self.worker.call("count")
        return counted

    def close(self) -> None:
        self.worker.close()
