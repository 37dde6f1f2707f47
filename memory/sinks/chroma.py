"""Chroma: steps as vectors, searchable by meaning.

Each record becomes one Chroma entry with id `run_id:seq` (upserted, so a replay stores it once), a document (the
step's searchable text: agent, kind, task, code, observations, output, error; truncated with a note), our own
MiniLM embedding of that document, and metadata: the indexed fields (`run_id`, `seq`, `agent`, `kind`, `ts`,
`schema`, `conversation_id` when the payload has one) plus the whole record as ASCII-escaped JSON, so `read`
returns it intact. A record whose JSON is over `max_record_bytes` keeps shortened strings and `truncated=True`;
the journal holds the full text.

Chroma's default embedding function downloads a model and fails offline, so the collection has none
(`embedding_function=None`) and every add and query passes embeddings computed here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from smolcrew.errors import SinkError, SinkUnavailableError
from smolcrew.memory.records import StepRecord, record_from_json
from smolcrew.memory.sinks.base import Capability, MemorySink, SinkHealth
from smolcrew.memory.sinks.chroma_records import (
    RECORD_LIMIT,
    clean_text,
    collection_name,
    record_document,
    record_json,
    record_metadata,
    where,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from smolcrew.pool import PipelinePool

__all__ = ["ChromaSink", "Embed", "collection_name", "minilm_embedder", "record_document", "record_json"]

Embed = Callable[[list[str]], list[list[float]]]
"""Texts in, one vector per text out (normalised MiniLM vectors by default)."""

PAGE = 300
"""Records per `get` page (Chroma Cloud returns at most 300)."""
_T = TypeVar("_T")


def minilm_embedder(pool: PipelinePool | None = None) -> Embed:
    """The packaged MiniLM (`embeddings` role), loaded on first call."""
    state: dict[str, Any] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        if "model" not in state:
            from smolcrew.pool import PipelinePool

            state["model"] = (pool or PipelinePool(device="cpu")).get("embeddings")
        vectors: list[list[float]] = state["model"].encode(texts, normalize_embeddings=True, batch_size=32).tolist()
        return vectors

    return embed


class ChromaSink(MemorySink):
    """Step records in one Chroma collection (named from `namespace`), embedded by `embed`.

    Args:
        client: a ready Chroma client (`PersistentClient`, `HttpClient`, ...); the caller closes it. None with
            `connect`: the sink connects on first use and again after a failed connection.
        namespace: the collection's name (sanitised by `collection_name`).
        embed: texts to vectors; the same function must embed records and queries.
        connect: builds a client; the sink then owns it and closes it in `close()`.
        location: where the store is, for messages (a URL or a folder).
        max_record_bytes: record JSON longer than this is shortened and flagged (`truncated` metadata).
    """

    name = "chroma"
    capabilities = frozenset({Capability.VECTOR_SEARCH})

    def __init__(
        self,
        client: ClientAPI | None,
        *,
        namespace: str = "steps",
        embed: Embed,
        connect: Callable[[], ClientAPI] | None = None,
        location: str = "an in-process Chroma client",
        max_record_bytes: int = RECORD_LIMIT,
    ) -> None:
        if client is None and connect is None:
            raise ValueError("ChromaSink needs a client or a connect function")
        self.namespace = namespace
        self.collection_name = collection_name(namespace)
        self.embed = embed
        self.location = location
        self.max_record_bytes = max_record_bytes
        self._client = client
        self._connect = connect
        self._collection: Collection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"ChromaSink({self.location!r}, collection={self.collection_name!r})"

    @classmethod
    def embedded(
        cls, path: str | Path | None = None, *, namespace: str = "steps", embed: Embed | None = None, **kwargs: Any
    ) -> closing[ChromaSink]:
        """A sink over Chroma files in `path` (default: `<smolcrew home>/chroma`); a context manager that closes it."""
        if path is None:
            from smolcrew.config import load_settings

            path = load_settings().home / "chroma"
        folder = Path(path).expanduser()

        def connect() -> ClientAPI:
            import chromadb

            folder.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(folder), settings=_settings())

        embed = embed or minilm_embedder()
        return closing(cls(None, namespace=namespace, embed=embed, connect=connect, location=str(folder), **kwargs))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "steps",
        embed: Embed | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        **kwargs: Any,
    ) -> closing[ChromaSink]:
        """A sink over a Chroma server (`http://host:port`, as `chroma run` serves); a context manager.

        Nothing is contacted here: an unreachable server shows in `health()` and as `SinkUnavailableError`, and
        the sink connects on its next use once the server is up."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not a Chroma server URL; expected http://host:port")
        host, ssl = parts.hostname, parts.scheme == "https"
        port = parts.port or (443 if ssl else 8000)

        def connect() -> ClientAPI:
            import chromadb
            import httpx

            # HttpClient's constructor asks the server with no timeout (a stopped server hangs it): ask first, bounded.
            base = f"{parts.scheme}://{host}:{port}"
            httpx.get(f"{base}/api/v2/heartbeat", timeout=httpx.Timeout(timeout, connect=connect_timeout))
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
            _set_timeouts(client, timeout, connect_timeout)
            return client

        embed = embed or minilm_embedder()
        return closing(cls(None, namespace=namespace, embed=embed, connect=connect, location=url, **kwargs))

    # -- MemorySink

    def setup(self) -> None:
        """Create the collection if missing (cosine space, no embedding function). Idempotent."""
        self._get_collection()

    def write(self, batch: Sequence[StepRecord]) -> None:
        if not batch:
            return
        latest = {(record.run_id, record.seq): record for record in batch}  # a batch may repeat a step: last wins
        records = list(latest.values())
        ids = [f"{clean_text(record.run_id)}:{record.seq}" for record in records]
        documents = [record_document(record) for record in records]
        metadatas = [record_metadata(record, self.max_record_bytes) for record in records]

        def upsert() -> None:
            collection = self._get_collection()  # first, so a store that is down fails before the embedding work
            embeddings = self.embed(documents)
            size = max(1, self._client_or_connect().get_max_batch_size())
            for start in range(0, len(ids), size):
                end = start + size
                collection.upsert(
                    ids=ids[start:end],
                    embeddings=embeddings[start:end],  # type: ignore[arg-type]
                    documents=documents[start:end],
                    metadatas=metadatas[start:end],  # type: ignore[arg-type]
                )

        self._call("write", upsert)

    def read(self, run_id: str) -> list[StepRecord]:
        def get_all() -> list[StepRecord]:
            collection = self._get_collection()
            records: list[StepRecord] = []
            offset = 0
            while True:
                page = collection.get(where=where(run_id=run_id), include=["metadatas"], limit=PAGE, offset=offset)
                metadatas = page["metadatas"] or []
                records += [record_from_json(str(meta["record"])) for meta in metadatas]
                if len(metadatas) < PAGE:
                    return sorted(records, key=lambda record: record.seq)
                offset += PAGE

        return self._call("read", get_all)

    def search(
        self,
        query: str,
        *,
        run_id: str | None = None,
        k: int = 5,
        agent: str | None = None,
        kind: str | None = None,
    ) -> list[StepRecord]:
        """Up to `k` records nearest to `query` in meaning, optionally only of one run, agent or kind.

        Within one run the ranking is exact: a run's steps are often near-duplicates of each other ("step 147
        done"), and on such data Chroma's HNSW search misses the one distinctive step (12 of 30 fresh collections
        of 205 records, at its default ef_search of 100; 1 of 10 at 1,000 records even with ef_search 400). Across
        runs it is the index's approximate search."""
        if k <= 0 or not query.strip():
            return []
        vector = self.embed([clean_text(query)])[0]

        def nearest() -> list[StepRecord]:
            collection = self._get_collection()
            filters = where(run_id=run_id, agent=agent, kind=kind)
            if run_id is not None:
                return _ranked_exactly(collection, vector, filters, k)
            result = collection.query(
                query_embeddings=[vector],  # type: ignore[arg-type]
                n_results=max(4 * k, 20),  # the HNSW index is approximate: asking for more widens its search
                where=filters,
                include=["metadatas"],
            )
            metadatas = (result["metadatas"] or [[]])[0][:k]  # nearest first
            return [record_from_json(str(meta["record"])) for meta in metadatas]

        return self._call("search", nearest)

    def health(self) -> SinkHealth:
        start = time.perf_counter()
        try:
            self._call("health check", lambda: self._client_or_connect().heartbeat())
        except SinkError as exc:
            return SinkHealth(ok=False, detail=str(exc))
        latency = (time.perf_counter() - start) * 1000
        return SinkHealth(ok=True, detail=f"chroma at {self.location} answers", latency_ms=latency)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client, self._collection = self._client, None, None
        if client is not None and self._connect is not None:
            _close_client(client)

    def drop(self) -> None:
        """Delete the namespace's collection and everything in it; a later write creates it again."""

        def delete() -> None:
            from chromadb.errors import NotFoundError

            self._collection = None
            with suppress(NotFoundError):
                self._client_or_connect().delete_collection(self.collection_name)

        self._call("drop", delete)

    def count(self) -> int:
        """Records stored in the namespace."""
        return self._call("count", lambda: self._get_collection().count())

    # -- internals

    def _client_or_connect(self) -> ClientAPI:
        with self._lock:
            if self._closed:
                raise SinkError("the Chroma sink was closed; open a new one", sink=self.name)
            if self._client is None and self._connect is not None:
                self._client = self._connect()
            if self._client is None:
                raise SinkError("the Chroma sink has no client", sink=self.name)
            return self._client

    def _get_collection(self) -> Collection:
        if self._collection is None:
            client = self._client_or_connect()
            self._collection = client.get_or_create_collection(
                self.collection_name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        return self._collection

    def _call(self, action: str, work: Callable[[], _T]) -> _T:
        """Run `work`, translating the client's failures into SinkUnavailableError (down) or SinkError."""
        import httpx
        from chromadb.errors import ChromaError, NotFoundError

        try:
            try:
                return work()
            except NotFoundError:
                # The collection went away under us (dropped elsewhere, server wiped): make it again, once.
                self._collection = None
                return work()
        except (httpx.TransportError, OSError) as exc:
            self._forget_client()
            raise self._unavailable(action, exc) from exc
        except ValueError as exc:
            if "connect" not in str(exc).lower():  # HttpClient says "Could not connect to a Chroma server"
                raise
            self._forget_client()
            raise self._unavailable(action, exc) from exc
        except ChromaError as exc:
            raise SinkError(f"chroma {action} failed at {self.location}: {exc}", sink=self.name) from exc

    def _forget_client(self) -> None:
        """After a connection failure, build a fresh client next time (owned clients only)."""
        if self._connect is None:
            return
        with self._lock:
            client, self._client, self._collection = self._client, None, None
        if client is not None:
            with suppress(Exception):  # best effort on a broken connection
                _close_client(client)

    def _unavailable(self, action: str, exc: BaseException) -> SinkUnavailableError:
        if "://" in self.location:
            parts = urlsplit(self.location)
            start = f"chroma run --path DIR --host {parts.hostname} --port {parts.port or 8000}"
            hint = f"start it with `{start}` or point services.chroma_url at a running server"
        else:
            hint = "check that the folder exists and is writable"
        return SinkUnavailableError(
            f"chroma {action} failed: {self.location} did not answer ({type(exc).__name__}: {exc}); {hint}",
            sink=self.name,
        )


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def _set_timeouts(client: ClientAPI, timeout: float, connect_timeout: float) -> None:
    """HttpClient's httpx session waits forever by default and Chroma has no setting for it: set ours."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout, connect=connect_timeout)


def _close_client(client: ClientAPI) -> None:
    close = getattr(client, "close", None)  # chromadb 1.x clients have close(); ClientAPI does not declare it
    if callable(close):
        close()


def _ranked_exactly(
    collection: Collection, vector: list[float], filters: dict[str, Any] | None, k: int
) -> list[StepRecord]:
    """The `k` records matching `filters` nearest to `vector` by cosine, every candidate scored (pages of PAGE)."""
    import numpy as np

    query = np.asarray(vector, dtype=np.float32)
    query /= np.linalg.norm(query) or 1.0
    best: list[tuple[float, str]] = []
    offset = 0
    while True:
        page = collection.get(where=filters, include=["embeddings", "metadatas"], limit=PAGE, offset=offset)
        metadatas = page["metadatas"] or []
        if metadatas:
            matrix = np.asarray(page["embeddings"], dtype=np.float32)
            scores = matrix @ query / np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
            best += [(float(score), str(meta["record"])) for score, meta in zip(scores, metadatas, strict=True)]
            best = sorted(best, key=lambda scored: -scored[0])[:k]
        if len(metadatas) < PAGE:
            return [record_from_json(record) for _, record in best]
        offset += PAGE
