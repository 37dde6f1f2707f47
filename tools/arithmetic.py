"""Arithmetic and counting, done exactly: a small model asked for 86.40 / 4 in its head answers 11.6, and a number
that no tool gave is (rightly) refused by the validation gate. With these tools the sum is worked out by code and
the result is a tool output the gate can check.

Expressions are evaluated by simpleeval (no names, no attributes, no calls but a few math functions), never by
Python's `eval`: the expression comes from a model and is untrusted.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.base import CheckedTool

__all__ = ["Calculate", "ConvertUnits", "CountWords", "conversion_in", "convert", "evaluate", "plain_number"]

MAX_EXPRESSION_CHARS = 300
_FUNCTIONS = {"round": round, "abs": abs, "min": min, "max": max, "sqrt": math.sqrt}
_WORD = re.compile(r"\b[\w'’-]+\b")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?)"
_UNIT = r"([a-zA-Z°µ][a-zA-Z°µ/²³.]*(?:\s+[a-zA-Z]+)?)"
_CONVERSIONS = (
    re.compile(rf"{_NUMBER}\s*{_UNIT},?\s+(?:(?:so|then|now|but)\s+)?(?:to|in|into|as|in terms of)\s+{_UNIT}", re.I),
    re.compile(rf"how many\s+{_UNIT}\s+(?:is|are|in|is in|are in|make|makes)\s+{_NUMBER}\s*{_UNIT}", re.I),
)


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


@cache
def _units() -> Any:
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _unit(written: str) -> Any | None:
    """The pint unit `written` names ("miles", "km", "°F", "celsius"), or None."""
    name = str(written).strip().rstrip(".?!").replace("°", "deg")  # °F -> degF
    for form in dict.fromkeys((name, name.lower())):
        try:
            unit = _units().Unit(form)
        except Exception:  # pint's parser raises a dozen kinds of error on text that is no unit
            continue
        return None if unit.dimensionless else unit
    return None


def convert(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    """`value` `from_unit` in `to_unit` (what `convert_units` returns); ToolInputError for unknown or mismatched
    units."""
    import pint

    units = [_unit(from_unit), _unit(to_unit)]
    for unit, written, name in zip(units, (from_unit, to_unit), ("from_unit", "to_unit"), strict=True):
        if unit is None:
            raise ToolInputError(f"`{name}` {written!r} is no unit; write one such as 'miles', 'km', 'kg', '°F'")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ToolInputError(f"`value` must be a finite number such as 30, got {value!r}")
    try:
        converted = _units().Quantity(float(value), units[0]).to(units[1]).magnitude
    except pint.errors.DimensionalityError as exc:
        raise ToolInputError(
            f"{from_unit!r} cannot be converted to {to_unit!r}: they measure different things"
        ) from exc
    if not math.isfinite(converted):
        raise ToolInputError(f"{value!r} {from_unit} in {to_unit} is too large to state")
    shown = plain_number(round(converted, 2) if abs(converted) >= 1 else float(f"{converted:.4g}"))
    text = f"{plain_number(float(value))} {from_unit.strip()} = {shown} {to_unit.strip()}"
    return {"expression": f"{plain_number(float(value))} {from_unit.strip()} in {to_unit.strip()}",
            "value": float(shown), "text": text}  # fmt: skip


def conversion_in(request: str) -> tuple[float, str, str] | None:
    """(value, from unit, to unit) when `request` asks for a unit conversion pint can do ("convert 30 miles to
    km", "how many km is 30 miles"); None otherwise (currencies need a rate: `calculate`)."""
    for number, pattern in enumerate(_CONVERSIONS):
        for found in pattern.finditer(request):
            value, source, target = found.groups() if number == 0 else (found[2], found[3], found[1])
            for source_words, target_words in ((source, target), (source.split()[0], target.split()[0])):
                have, want = _unit(source_words), _unit(target_words)
                if have is not None and want is not None and have.dimensionality == want.dimensionality:
                    return float(value.replace(",", "")), source_words, target_words
    return None


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


class ConvertUnits(CheckedTool):
    name = "convert_units"
    task = "calculation"
    description = (
        "Converts a quantity from one unit of measure to another exactly: length, mass, volume, temperature, speed, "
        "time, area. Not for currencies (use calculate with the rate) and not for languages. Returns a dict "
        "{'expression': str, 'value': float, 'text': 'VALUE FROM = RESULT TO'}."
    )
    # No example values here: the 0.5B copies them into calls for other requests ("what does it mean in english"
    # became 30 miles in km). A conversion the request states is called directly (agents/specialist_model.py).
    inputs = {
        "value": {"type": "number", "description": "The quantity to convert, as the request states it."},
        "from_unit": {"type": "string", "description": "The unit the quantity is in, as the request names it."},
        "to_unit": {"type": "string", "description": "The unit the request wants it in."},
    }
    output_type = "object"

    def forward(self, value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
        from smolcrew.tools.arithmetic import convert

        return convert(value, from_unit, to_unit)


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
