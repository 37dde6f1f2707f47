"""The router's tie-breaker: when the embeddings leave two or three specialists close, the chat model picks one,
its answer constrained by a JSON schema to their names."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from smolcrew.agents.router import Chooser

__all__ = ["llm_chooser"]


def llm_chooser(model: Any, descriptions: dict[str, str]) -> Chooser:
    """A tie-breaker that asks a smolagents Model, its output constrained to the candidates' names."""
    from smolagents.models import ChatMessage, MessageRole

    def choose(request: str, candidates: Sequence[str]) -> str:
        listing = "\n".join(f"- {name}: {descriptions[name]}" for name in candidates)
        prompt = (
            f"Which assistant should handle this request?\n{listing}\n\nRequest: {request}\n"
            'Answer as JSON: {"specialist": "<name>"}'
        )
        schema = {
            "type": "object",
            "properties": {"specialist": {"type": "string", "enum": list(candidates)}},
            "required": ["specialist"],
        }
        message = model.generate(
            [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": prompt}])],
            response_format={"type": "json_schema", "json_schema": {"name": "route", "schema": schema}},
        )
        try:
            return str(json.loads(message.content or "{}").get("specialist", ""))
        except (ValueError, AttributeError):
            return ""

    return choose
