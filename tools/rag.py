"""Retrieval over ingested documents (`smolcrew ingest PATH`): search them, or answer with page citations.

`search_documents` returns the chunks closest in meaning to a query. `answer_with_citations` is a small agentic
loop: retrieve; when the best score is weak, rewrite the query (strip question words and filler, keep the key
words, try each clause, and ask the LLM for a rewrite when the tool was given a smolagents Model) and retrieve
again, at most two rounds in all; then pick the sentences of the top chunks closest to the question and cite
them as `[1] report.pdf p.3`. It runs with no LLM: the agent writes prose from the cited chunks.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.memory.rag import Chunk, DocumentStore
from smolcrew.memory.sentences import sentences
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import current_pool

if TYPE_CHECKING:
    from smolagents import Model

__all__ = [
    "POOR_SCORE",
    "WEAK_SCORE",
    "AnswerWithCitations",
    "SearchDocuments",
    "answer_with_citations",
    "as_row",
    "check_query",
    "default_store_path",
    "open_store",
    "rewrite_query",
    "search",
]

WEAK_SCORE = 0.45
"""Below this cosine similarity (MiniLM) the best chunk is a weak match and the query gets rewritten."""
POOR_SCORE = 0.30
"""Below this, after rewriting, the answer is flagged `weak`: unrelated text scores about 0.0-0.25."""
MAX_K = 50
MAX_QUERY = 2_000
MAX_REWRITES = 4
SECOND_MARGIN = 0.15
"""A second answer sentence is kept only when it scores within this of the first."""
LEXICAL_WEIGHT = 0.2
"""Reranking bonus for the share of the query's key words found in a chunk: MiniLM alone tells identifiers
apart poorly ("project Amber-17" vs "Amber-23"); exact words settle it. Scores reported stay cosine."""
CANDIDATES = 20
"""Chunks fetched by meaning before reranking (at least 4 x k)."""
SIDE_CLAUSE = 0.85
"""Weight of a match found through a side clause (not the whole question, not the asking clause, not the LLM):
a fragment that matches well says less about the question than the whole does."""

_FILLER = """a about above after again all also am an and any are as at be been before being between both but by can
    could did do does doing done during each either else ever for from get gets got had has have having hello
    hey hi how however i i'd i'm if in into is it it's its just kind know let like me mean might mine more most
    much must my need no nor not now of off on once one only or other our out over please pretty quite rather
    really said say says should so some something sort such tell than thank thanks that that's the their them
    then there these they thing things this those though to too uh um up us very want was way we well were what
    what's whatever when where whether which while who whom whose why will wish with wonder wondering would yeah
    yes you your anyway actually basically literally maybe guess think kinda sorta gonna wanna thingy stuff
    whats erm umm hmm ok okay yo lol sorry bother quick question idea put deal lot lots wise terms go goes
    anything everything someone somebody remember recall find look looking info information"""
_STOPWORDS = frozenset(_FILLER.split())
_CLAUSE = re.compile(r"[,;:?!.()]|\b(?:and|but|or|also|then)\b", re.IGNORECASE)
_JOIN = re.compile(r"[;:]|\b(?:and|but|or|so|also|then)\b", re.IGNORECASE)
_WORD = re.compile(r"[\w][\w'\-./]*", re.UNICODE)


def default_store_path() -> Path:
    """`<home>/documents`: where `smolcrew ingest` puts documents unless told otherwise."""
    from smolcrew.config import load_settings

    return load_settings().home / "documents"


def _keywords(text: str) -> list[str]:
    return [w.strip(".-/'") for w in _WORD.findall(text) if w.lower().strip(".-/'") not in _STOPWORDS and len(w) > 1]


def rewrite_query(question: str) -> list[str]:
    """Deterministic rewrites, best first: the key words of the whole question, of the clause that asks (the
    one ending in '?', else the last), then of the other clauses, last to first. At most `MAX_REWRITES`."""
    clauses = [part for part in re.split(r"(?<=\?)", question) if part.strip()]
    asking = next((c for c in clauses if c.rstrip().endswith("?")), question)
    parts = [part for part in _JOIN.split(asking) if part and part.strip()]
    others = [part for part in _CLAUSE.split(question) if part and part.strip()]
    ordered = [question, parts[-1] if parts else asking, *reversed(others)]
    seen = {question.strip().lower()}
    unique = []
    for text in ordered:
        rewrite = " ".join(_keywords(text))
        if rewrite and rewrite.lower() not in seen:
            seen.add(rewrite.lower())
            unique.append(rewrite)
    return unique[:MAX_REWRITES]


def open_store(tool: Any) -> DocumentStore:
    """The tool's document store (`tool.store`), opened on first use at `tool.path` (default `<home>/documents`)
    with the embeddings model of the current pool; the model loads on the first search, not here."""
    if tool.store is None:
        tool.store = DocumentStore(tool.path or default_store_path(), model=current_pool().model_for("embeddings"))
    store: DocumentStore = tool.store
    return store


def check_query(text: Any, name: str) -> str:
    """`text` stripped, with lone surrogates replaced; ToolInputError when it is empty, not text or too long."""
    if not isinstance(text, str):
        raise ToolInputError(f"`{name}` must be a string: what to look for in the ingested documents")
    text = text.encode("utf-8", "replace").decode("utf-8").strip()  # lone surrogates become '?'
    if not text or not _WORD.search(text):
        raise ToolInputError(f"`{name}` is empty: pass what to look for in the ingested documents")
    if len(text) > MAX_QUERY:
        raise ToolInputError(f"`{name}` is {len(text):,} characters; keep it under {MAX_QUERY:,}")
    return text


def search(store: DocumentStore, query: str, k: int) -> list[tuple[Chunk, float]]:
    """Dense retrieval of `max(4k, CANDIDATES)` chunks, reranked by cosine + key-word overlap; top `k` as
    (chunk, rank score)."""
    terms = {w.lower() for w in _keywords(query)}
    ranked = []
    for chunk in store.search(query, max(4 * k, CANDIDATES)):
        overlap = len(terms & {w.lower() for w in _keywords(chunk.text)}) / len(terms) if terms else 0.0
        ranked.append((chunk, chunk.score + LEXICAL_WEIGHT * overlap))
    return sorted(ranked, key=lambda pair: pair[1], reverse=True)[:k]


def as_row(chunk: Chunk, number: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"source": chunk.source, "page": chunk.page, "score": chunk.score, "text": chunk.text}
    row["cite"] = chunk.cite() if number is None else f"[{number}] {chunk.cite()}"
    return row


def answer_with_citations(
    store: DocumentStore, question: str, *, model: Model | None, threshold: float, poor: float, k: int, cite: int
) -> dict[str, Any]:
    """What `answer_with_citations` returns: retrieve; when the best match is weak, rewrite and retrieve again;
    then the sentences of the top `cite` chunks closest to the question, with their sources."""
    queries = [question]
    first = search(store, question, k)
    found = {chunk.id: chunk for chunk, _ in first}
    ranking = {chunk.id: rank for chunk, rank in first}
    via = dict.fromkeys(found, question)
    rounds = 1
    if max((chunk.score for chunk in found.values()), default=-1.0) < threshold and store.count():
        rounds = 2
        rewrites = rewrite_query(question)
        llm = _llm_rewrite(model, question)
        asked = llm is not None and llm.lower() not in {q.lower() for q in [question, *rewrites]}
        if llm is not None and asked:
            rewrites.insert(0, llm)
        for position, rewrite in enumerate(rewrites):
            queries.append(rewrite)
            weight = 1.0 if position < 2 + asked else SIDE_CLAUSE
            for chunk, rank in search(store, rewrite, k):
                if weight * rank > ranking.get(chunk.id, -1.0):
                    ranking[chunk.id], via[chunk.id] = weight * rank, rewrite
                if chunk.id not in found or chunk.score > found[chunk.id].score:
                    found[chunk.id] = chunk
    top = sorted(found.values(), key=lambda c: ranking[c.id], reverse=True)[:cite]
    if not top:
        answer = "No ingested document matches: ingest files first (`smolcrew ingest PATH`)."
        return {"answer": answer, "citations": [], "weak": True, "rounds": rounds, "queries": queries}
    answer = _extract(store, list(dict.fromkeys([question, via[top[0].id]])), top)
    if top[0].score < poor:
        answer = f"Weak match (best score {top[0].score:.2f}): the documents may not answer this.\n{answer}"
    return {
        "answer": answer,
        "citations": [as_row(chunk, n) for n, chunk in enumerate(top, 1)],
        "weak": top[0].score < poor,
        "rounds": rounds,
        "queries": queries,
    }


def _llm_rewrite(model: Model | None, question: str) -> str | None:
    if model is None:
        return None
    from smolagents import ChatMessage, MessageRole

    prompt = (
        "Rewrite the question below as a short search query (key words only) for a document index. "
        f"Reply with the query alone.\nQuestion: {question}"
    )
    try:
        reply = model.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": prompt}])])
    except Exception:  # a broken LLM must not break retrieval: the deterministic rewrites still run
        return None
    content = reply.content if isinstance(reply.content, str) else ""
    line = content.strip().splitlines()[0].strip(" \"'`") if content.strip() else ""
    return line[:300] or None


def _extract(store: DocumentStore, queries: list[str], top: list[Chunk]) -> str:
    """The best sentence of the top chunk, then the best other sentence of the top chunks, closest to the
    question and to the query that found the top chunk (embedding similarity plus key-word overlap)."""
    candidates: list[tuple[int, str]] = []
    for number, chunk in enumerate(top, 1):
        for sentence in _sentences(chunk.text):
            if len(sentence) >= 12 and _WORD.search(sentence):
                candidates.append((number, sentence[:600]))
    picked: list[int] = []
    if candidates:
        embeddings = store.embeddings
        query_vectors = [embeddings.embed_query(query) for query in queries]
        vectors = embeddings.embed_documents([text for _, text in candidates])
        terms = {w.lower() for w in _keywords(" ".join(queries))}

        def score(index: int) -> float:
            number, text = candidates[index]
            meaning = max(_cosine(q, vectors[index]) for q in query_vectors)
            overlap = len(terms & {w.lower() for w in _keywords(text)}) / max(1, len(terms))
            return meaning + 0.3 * overlap - 0.05 * (number - 1)

        ranked = sorted(range(len(candidates)), key=score, reverse=True)
        first = [i for i in ranked if candidates[i][0] == 1][:1]
        best = score(first[0]) if first else score(ranked[0])
        close = [i for i in ranked if i not in first and score(i) >= best - SECOND_MARGIN]
        picked = sorted(first + close[: 2 - len(first)])
    body = " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in picked) or f"{top[0].text[:400]} [1]"
    sources = "\n".join(f"[{n}] {chunk.cite()}" for n, chunk in enumerate(top, 1))
    return f"{body}\n\nSources:\n{sources}"


class SearchDocuments(CheckedTool):
    name = "search_documents"
    task = "document-retrieval"
    description = (
        "Searches the ingested documents (PDFs, notes, web pages added with `smolcrew ingest`) by meaning. "
        "Returns a list of dicts, best first: source (file path), page (PDF page, 1-based, or None), score "
        "(cosine similarity; under 0.45 is a weak match), text (the chunk) and cite ('report.pdf p.3')."
    )
    inputs = {
        "query": {"type": "string", "description": "What to look for, e.g. 'warranty period of the pump'."},
        "k": {"type": "integer", "description": "How many chunks to return (1-50, default 5).", "nullable": True},
    }
    output_type = "array"

    def __init__(self, path: str | None = None, store: Any = None) -> None:
        """`path`: the store's folder (default `<home>/documents`); `store`: an open DocumentStore instead."""
        super().__init__()
        self.path = path
        self.store = store

    def forward(self, query: str, k: int | None = None) -> list[dict[str, Any]]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.rag import MAX_K, as_row, check_query, open_store, search

        query = check_query(query, "query")
        k = 5 if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ToolInputError(f"`k` must be between 1 and {MAX_K}, got {k}")
        return [as_row(chunk) for chunk, _ in search(open_store(self), query, k)]


class AnswerWithCitations(CheckedTool):
    name = "answer_with_citations"
    task = "question-answering"
    description = (
        "Answers a question from the ingested documents with citations. Retrieves the best chunks, rewrites "
        "the question and retries when the match is weak, and returns a dict: answer (the sentences that "
        "answer it, each marked [n], followed by the sources as '[1] report.pdf p.3'), citations (list of "
        "{source, page, text, score}), weak (True when even the best match is poor: say so, do not guess), "
        "rounds and queries (what was searched)."
    )
    inputs = {"question": {"type": "string", "description": "The question, in plain words."}}
    output_type = "object"

    def __init__(
        self,
        path: str | None = None,
        store: Any = None,
        model: Any = None,
        threshold: float = 0.45,
        poor: float = 0.3,
        k: int = 4,
        cite: int = 3,
    ) -> None:
        """`path`/`store` as for search_documents; `model`: a smolagents Model that rewrites weak questions;
        `threshold` (WEAK_SCORE): below it the question is rewritten; `poor` (POOR_SCORE): below it the answer
        is flagged weak; `k` chunks retrieved per query, `cite` chunks cited."""
        super().__init__()
        self.path = path
        self.store = store
        self.model = model
        self.threshold = threshold
        self.poor = poor
        self.k = k
        self.cite = cite

    def forward(self, question: str) -> dict[str, Any]:
        from smolcrew.tools.rag import answer_with_citations, check_query, open_store

        return answer_with_citations(
            open_store(self),
            check_query(question, "question"),
            model=self.model,
            threshold=self.threshold,
            poor=self.poor,
            k=self.k,
            cite=self.cite,
        )


def _sentences(text: str) -> list[str]:
    """Sentences of a chunk. A line break ends a block after a short line (a heading, a list item) or before a
    list marker; other line breaks are wrapped lines (PDF text) and become spaces."""
    blocks: list[str] = []
    lines = [line.strip() for line in text.splitlines()]
    for previous, line in zip(["", *lines], lines, strict=False):
        if not line:
            blocks.append("")
        elif blocks and blocks[-1] and len(previous) >= 60 and not re.match(r"([#*>\-]|\d{1,2}[.)])\s", line):
            blocks[-1] += " " + line
        else:
            blocks.append(line)
    return [part for block in blocks if block for part in sentences(block.lstrip("#*> -"))]


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0
