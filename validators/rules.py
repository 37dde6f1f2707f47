"""Rule checks on final answers: the cheapest stage of the validation cascade."""

from __future__ import annotations

from typing import Any

__all__ = ["require_answer"]


def require_answer(answer: Any, memory: Any = None, agent: Any = None) -> bool:
    """smolagents final-answer check: reject an empty answer, telling the agent what to do instead.

    Raises:
        ValueError: the answer is None or blank (smolagents shows the message to the model, which retries).
    """
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise ValueError("the final answer is empty: call final_answer() with the actual result")
    return True
