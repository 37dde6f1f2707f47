"""Arithmetic and counting, done exactly: a small model asked for 86.40 / 4 in its head answers 11.6, and a number
that no tool gave is (rightly) refused by the validation gate. With these tools the sum is worked out by code and
the result is a tool output the gate can check.

Expressions are evaluated by simpleeval (no names, no attributes, no calls but a few math functions), never by
Python's `eval`: the expression comes from a model and is untrusted.
"""

from __future__ import annotations

import math
import re
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.base import CheckedTool

__all__ = ["Calculate", "CountWords", "evaluate", "plain_number"]

MAX_EXPRESSION_CHARS = 300
_FUNCTIONS = {"round": round, "abs": abs, "min": min, "max": max, "sqrt": math.sqrt}
_WORD = re.compile(r"\b[\w'’-]+\b")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


def plain_number(value: float) -> str:
    """86.4 / 4 -> '21.6', 2 / 3 -> '0.666667', 5.0 -> '5': no float noise, no exponent."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def evaluate(expression: str) -> float:
    """The value of an arithmetic `expression` (numbers, + - * / // % **, parentheses, round/abs/min/max/sqrt)."""
    from simpleeval import InvalidExpression, SimpleEval

    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,234.50 -> 1234.50
    if not text:
        raise ToolInputError("`expression` is empty; pass arithmetic such as '86.40 / 4'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolInputError(f"`expression` has {len(text)} characters; keep it under {MAX_EXPRESSION_CHARS}")
    evaluator = SimpleEval(functions=_FUNCTIONS, names={"pi": math.pi})
    try:
        value = evaluator.eval(text)
    except ZeroDivisionError as exc:
        raise ToolInputError(f"{expression!r} divides by zero") from exc
    except (InvalidExpression, SyntaxError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise ToolInputError(
            f"cannot work out {expression!r} ({exc}); write numbers and + - * / ( ) only, e.g. '(98.6 - 32) * 5 / 9'"
        ) from exc
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ToolInputError(f"{expression!r} is not arithmetic with a number as its result")
    return value


class Calculate(CheckedTool):
    name = "calculate"
    task = "calculation"
    description = (
        "Works out arithmetic exactly (never do sums in your head). Takes an expression with numbers, "
        "+ - * / % ** and parentheses, e.g. '86.40 / 4' or '(98.6 - 32) * 5 / 9'. Returns a dict "
        "{'expression': str, 'value': float, 'text': 'EXPRESSION = VALUE'}."
    )
    inputs = {"expression": {"type": "string", "description": "The arithmetic to work out, e.g. '45.50 * 0.15'."}}
    output_type = "object"

    def forward(self, expression: str) -> dict[str, Any]:
        from smolcrew.tools.arithmetic import evaluate, plain_number

        value = evaluate(expression)
        shown = plain_number(value)
        return {"expression": expression.strip(), "value": float(shown), "text": f"{expression.strip()} = {shown}"}


class CountWords(CheckedTool):
    name = "count_words"
    task = "text-statistics"
    description = (
        "Counts the words, characters and sentences of a text. Returns a dict "
        "{'words': int, 'characters': int, 'characters_without_spaces': int, 'sentences': int}."
    )
    inputs = {"text": {"type": "string", "description": "The text to count."}}
    output_type = "object"

    def forward(self, text: str) -> dict[str, Any]:
        from smolcrew.tools.arithmetic import _SENTENCE_END, _WORD
        from smolcrew.tools.text import require_text

        text = require_text(text, "text")
        return {
            "words": len(_WORD.findall(text)),
            "characters": len(text),
            "characters_without_spaces": len("".join(text.split())),
            "sentences": max(1, len(_SENTENCE_END.findall(text))),
        }
