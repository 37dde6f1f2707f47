"""Ingest files into a `DocumentStore` (memory/rag.py): load, split, embed and store them.

`ingest(paths, store=...)` loads PDFs (`PyPDFLoader`, one document per page), text and markdown (`TextLoader`)
and HTML (`BSHTMLLoader` with the standard-library parser), walking folders recursively (hidden entries are
left out). Text is split with `RecursiveCharacterTextSplitter` (markdown-aware separators for `.md`). Every
chunk carries `source` (the resolved path), `name` (the file name, for citations), `page` (PDFs, 1-based),
`chunk` (index within the file) and `file_hash`. Ids are `sha1(source)[:16]:file_hash[:16]:chunk`, so an
unchanged file adds nothing on re-ingest and a changed file's old chunks are deleted before the new ones go in.
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
from smolcrew.memory.rag import ADD_BATCH, chunk_id

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from smolcrew.memory.rag import DocumentStore

__all__ = [
    "CHUNK_OVERLAP", "CHUNK_SIZE", "SUPPORTED", "IngestReport", "Progress", "Skipped", "file_hash", "ingest",
    "load_file", "split_documents",
]  # fmt: skip

CHUNK_SIZE = 800
CHUNK_OVERLAP = 100
SUPPORTED: dict[str, str] = {".pdf": "pdf", ".txt": "text", ".text": "text", ".md": "markdown"}
SUPPORTED |= {".markdown": "markdown", ".html": "html", ".htm": "html"}
"""File suffix -> kind of loader."""

Progress = Callable[[int, int, str], None]
"""progress(files_done, files_total, path): called after each file."""


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
            chunk.id = chunk_id(chunk.metadata)
        pending.extend(chunks)
        report.files += 1
        if len(pending) >= ADD_BATCH:
            report.chunks += store.add(pending)
            pending = []
    if pending:
        report.chunks += store.add(pending)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
