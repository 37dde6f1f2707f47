"""Which messages want a plain reply rather than a tool: chit-chat, facts the user states about themselves,
questions about those facts or about the conversation ("what's my name?", "what was the budget again?").

`ReplyDetector` compares a message with example banks by the router's own embeddings: its mean similarity to the
three nearest messages that want a reply (`data/reply_examples.jsonl`, `reply: true`) against the best of the
router's specialist scores (the same measure over the specialists' example bank, priors included) and of the
follow-up commands that act on an earlier result ("now double it", "read it aloud", "in French instead":
`reply: false`). A message that names a file or quotes text to work on is never a reply: it has something for
a tool. The run then answers from the conversation in one model call
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


def load_reply_examples() -> tuple[list[str], list[str]]:
    """(messages that want a reply, follow-up commands that want a tool) from `data/reply_examples.jsonl`."""
    text = (Path(__file__).parent / "data" / "reply_examples.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [row["text"] for row in rows if row["reply"]], [row["text"] for row in rows if not row["reply"]]


class ReplyDetector:
    """`detector(message)`: whether `message` wants a reply from the conversation rather than a tool.

    Args:
        embed: the router's embedder (texts in, L2-normalised rows out).
        router: the router whose specialist scores a reply must beat.
        examples: (messages that want a reply, follow-ups that want a tool); default: the packaged banks.
        margin: how far the reply score must lead the best specialist's.
        top_k: nearest examples averaged, as the router does.
    """

    def __init__(
        self,
        embed: Embedder,
        router: Router,
        examples: tuple[list[str], list[str]] | None = None,
        *,
        margin: float = 0.0,
        top_k: int = 3,
    ) -> None:
        self._embed = embed
        self.router = router
        self.replies, self.follow_ups = examples if examples is not None else load_reply_examples()
        self.margin = margin
        self.top_k = top_k
        self._replies = router.vectors(self.replies)  # cached with the router's own example bank
        self._follow_ups = router.vectors(self.follow_ups)

    def __repr__(self) -> str:
        return f"ReplyDetector({len(self.replies)} replies, {len(self.follow_ups)} follow-ups, margin={self.margin})"

    def score(self, message: str) -> tuple[float, float]:
        """(reply score, best task score: a specialist's or a follow-up command's) of `message`."""
        vector = self._embed([message])

        def nearest(bank: np.ndarray) -> float:
            return float(np.sort(vector @ bank.T, axis=1)[0, ::-1][: self.top_k].mean())

        task = max(float(self.router.scores([message])[0].max()), nearest(self._follow_ups))
        return nearest(self._replies), task

    def nearest(self, message: str, texts: list[str], k: int = 2, floor: float = 0.2) -> list[str]:
        """The `k` of `texts` closest in meaning to `message` (at least `floor` cosine), in their own order."""
        if not texts:
            return []
        similarity = (self._embed([message]) @ self._embed(texts).T)[0]
        chosen = sorted(int(i) for i in np.argsort(similarity)[::-1][:k] if similarity[i] >= floor)
        return [texts[i] for i in chosen]

    def __call__(self, message: str) -> bool:
        if files_named(message) or any(mark in message for mark in _QUOTED):
            return False
        reply, task = self.score(message)
        return reply > task + self.margin
