"""Which messages want a plain reply rather than a tool: chit-chat, facts the user states about themselves,
questions about those facts or about the conversation ("what's my name?", "what was the budget again?").

`ReplyDetector` compares a message with two example banks by the router's own embeddings: its mean similarity to
the three nearest of `data/reply_examples.jsonl` against the router's best specialist score (the same measure
over the specialists' example bank, priors included). A message that names a file or quotes text to work on is
never a reply: it has something for a tool. The run then answers from the conversation in one model call
(smolcrew/answering.py) instead of sending a specialist round its agent loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smolcrew.agents.dispatch import files_named

if TYPE_CHECKING:
    from smolcrew.agents.router import Embedder, Router

__all__ = ["ReplyDetector", "load_reply_examples"]

_QUOTED = ('"', "“", "«")


def load_reply_examples() -> list[str]:
    """The messages that want a reply, one per line of `data/reply_examples.jsonl`."""
    text = (Path(__file__).parent / "data" / "reply_examples.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in text.splitlines() if line.strip()]


class ReplyDetector:
    """`detector(message)`: whether `message` wants a reply from the conversation rather than a tool.

    Args:
        embed: the router's embedder (texts in, L2-normalised rows out).
        router: the router whose specialist scores a reply must beat.
        examples: messages that want a reply (default: the packaged bank).
        margin: how far the reply score must lead the best specialist's.
        top_k: nearest examples averaged, as the router does.
    """

    def __init__(
        self,
        embed: Embedder,
        router: Router,
        examples: list[str] | None = None,
        *,
        margin: float = 0.0,
        top_k: int = 3,
    ) -> None:
        self._embed = embed
        self.router = router
        self.examples = examples if examples is not None else load_reply_examples()
        self.margin = margin
        self.top_k = top_k
        self._vectors = embed(self.examples)

    def __repr__(self) -> str:
        return f"ReplyDetector({len(self.examples)} examples, margin={self.margin})"

    def score(self, message: str) -> tuple[float, float]:
        """(reply score, best specialist score) of `message`."""
        similarity = np.sort(self._embed([message]) @ self._vectors.T, axis=1)[0, ::-1]
        return float(similarity[: self.top_k].mean()), float(self.router.scores([message])[0].max())

    def __call__(self, message: str) -> bool:
        if files_named(message) or any(mark in message for mark in _QUOTED):
            return False
        reply, task = self.score(message)
        return reply > task + self.margin
