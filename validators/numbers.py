"""The numbers rule: every number an answer states must be one the tools gave, or one the task gave.

When the tool outputs hold numbers, each number of the answer must be one of them or one of the task's (1,234 =
1234.0; 12.5% = 0.125; "1.2 million" = 1200000; rounding to the stated precision is allowed; "the 14th" states 14),
or, where the answer says it computed something ("in total", "longer", "fell by", "per"...), worked out from them
(a sum, a difference, a product, a ratio or a percentage: "34 years later" from 1867 and 1901; a percentage change;
a unit conversion; an age): an agent that works out a figure from supported ones states a supported figure.
`RuleCheck` (validators/rules.py) runs it with the other rules; the claim check (validators/claims.py) reads numbers
the same way.
"""

from __future__ import annotations

import bisect
import datetime
import re
from collections.abc import Sequence

from smolcrew.validators.grounding import RuleResult, listed
from smolcrew.validators.verdict import Evidence

__all__ = ["COMPUTED", "check_numbers", "in_digits", "numbers_in", "supported_number", "values_in", "worked_out"]

_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\d)(?!(?:st|nd|rd|th)\b)"
    r"(?:\s*(%|percent\b))?(?:\s*(thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
_MARKERS = re.compile(r"\[\d{1,3}\]|^[ \t]*\d{1,2}[.)][ \t]", re.MULTILINE)
"""Citation markers and ordered-list markers: numbers that state nothing."""
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


_Number = tuple[str, list[tuple[float, float]]]
"""A number as written, and its (value, tolerance) readings: a percentage reads as itself and as a fraction."""


def numbers_in(text: str) -> list[_Number]:
    """Every number `text` states, as written and as its readings (citation and list markers left out); the end
    of a year range ("1929-30") also reads as a year."""
    found: list[_Number] = []
    plain = _MARKERS.sub(" ", text)
    for match in _NUMBER.finditer(plain):
        whole, fraction, percent, scale = match.groups()
        value = float(whole.replace(",", "") + (fraction or ""))
        multiplier = _SCALE[scale.lower()] if scale else 1.0
        # "12.5" stands for anything that rounds to it: half a unit of its last digit either way
        tolerance = 0.5 * 10.0 ** -(len(fraction) - 1 if fraction else 0) * multiplier
        before = plain[max(0, match.start() - 8) : match.start()]
        readings = [(value * multiplier, tolerance)]
        if percent:
            readings.append((value * multiplier / 100, tolerance / 100))
        if (century := _YEAR_RANGE.search(before)) and len(whole) == 2:
            readings.append((float(century.group(1) + whole), 0.5))
        found.append((match.group(0).strip(), readings))
    return found


_YEAR_RANGE = re.compile(r"\b(1[0-9]|20)\d{2}\s*[-–]\s*$")
_ORDINAL = re.compile(r"\b(\d{1,4})(?:st|nd|rd|th)\b")


def values_in(text: str) -> list[float]:
    """The values `text` states: its numbers (every reading), its ordinals ("the 14th of March") and its numbers in
    words ("a party of seven", "six thousand five hundred": evidence a person wrote)."""
    values = [value for _, read in numbers_in(text) for value, _ in read] + [float(n) for n in _ORDINAL.findall(text)]
    return values + [value for _, read in numbers_in(in_digits(text)) for value, _ in read]


def in_digits(text: str, threshold: int = 0) -> str:
    """`text` with English numbers in words written in digits ("six thousand five hundred" -> "6500"); numbers
    below `threshold` stay words ("one of us")."""
    from text_to_num import alpha2digit

    safe = text.encode("utf-8", "replace").decode("utf-8")  # the parser refuses lone surrogates
    return str(alpha2digit(safe, "en", threshold=threshold))


COMPUTED = re.compile(
    r"\b(?:total|totals|totalling|sum|altogether|together|combined|difference|differ|more|less|fewer|longer|"
    r"shorter|older|younger|later|earlier|after|before|apart|between|rise|rises|risen|rose|fall|falls|fallen|fell|"
    r"grew|grown|drop|drops|dropped|increased?|decreased?|how\s+much|how\s+many|"
    r"up|down|higher|lower|per|each|average|percent|percentage|share|ratio|times|twice|half|double|triple|left|"
    r"remaining|net|gross|change|gain|loss|saved|saving|spent|overall|aged?|old|took|lasted|extra|additional|"
    r"spanning|elapsed)\b|%",
    re.IGNORECASE,
)
"""Words that say a figure was worked out, not read: only then may it be computed from two supported ones."""


def worked_out(text: str, task: str) -> bool:
    """Whether the answer (or the task it answers) says a figure was computed, not read."""
    return bool(COMPUTED.search(text) or COMPUTED.search(task))


_DERIVED_FROM = 40
"""Numbers computed from pairs are only accepted when the evidence holds at most this many distinct numbers:
past that, almost any figure is the sum or difference of some pair."""


def _within(value: float, slack: float, known: Sequence[float]) -> bool:
    start = bisect.bisect_left(known, value - slack)
    return start < len(known) and known[start] <= value + slack


def supported_number(readings: list[tuple[float, float]], known: Sequence[float], *, derived: bool = True) -> bool:
    """Whether a number (its readings, from `numbers_in`) is one of `known` (sorted), or with `derived` worked out
    from them (to the precision it is written with): the sum, difference, product, ratio or percentage of two;
    one changed by another as a percentage ("3.8 billion, up 6%" puts the year before at 3.58); one converted
    between units (days to weeks, months to years, minutes to hours); or a year's distance from this one."""
    for value, tolerance in readings:
        slack = tolerance + 1e-9 * max(1.0, abs(value))
        if _within(value, slack, known):
            return True
    if not derived or len(known) > _DERIVED_FROM:
        return False
    whole = [value for value in known if abs(value) >= 1]  # scores and probabilities are no quantities
    pairs = [(a, b) for i, a in enumerate(whole) for b in whole[i + 1 :]]
    this_year = float(datetime.date.today().year)
    years = [a for a in whole if 1000 <= a < this_year]
    # what the pairs give does not depend on the number checked: worked out once for all its readings
    ratios = [ratio for a, b in pairs for ratio in (a / b, b / a)]
    candidates = [a / unit for a in whole for unit in _UNITS] + [a * unit for a in whole for unit in _UNITS]
    for a, b in pairs:
        candidates += [a + b, abs(b - a), a * b, 100 * b / a, 100 * a / b, 100 * (b - a) / a, 100 * (a - b) / b]
        candidates += [
            x * (1 + sign * p / 100) ** power
            for x, p in ((a, b), (b, a))
            if p < 100 and _within(p / 100, 1e-9, known)  # p was written as a percentage
            for sign in (1, -1)
            for power in (1, -1)
        ]
    for value, tolerance in readings:
        slack = tolerance + 1e-9 * max(1.0, abs(value))
        # an age is stated round: "more than 700 years old" for a wall finished in 1298
        if any(abs(this_year - year - value) <= _round_slack(value) for year in years):
            return True
        # a percentage or a total is stated rounded; a plain ratio ("4 times") only when it is exact
        if any(abs(candidate - value) <= slack for candidate in candidates):
            return True
        if any(abs(ratio - value) <= 1e-3 * abs(value) for ratio in ratios):
            return True
    return False


def _round_slack(value: float) -> float:
    """How far a round figure may be from what it rounds: 700 stands for 650-750, 40 for 35-45."""
    zeros = len(str(int(value))) - len(str(int(value)).rstrip("0")) if value >= 10 and value == int(value) else 0
    return 0.5 * 10.0**zeros


_UNITS = (7.0, 12.0, 24.0, 60.0, 1000.0)
"""Unit conversions an answer may make: days and weeks, months and years, hours and days, minutes, thousands."""


def check_numbers(evidence: Evidence, text: str) -> RuleResult:
    tool_values = [value for output in evidence.tool_outputs for value in values_in(output)]
    if not tool_values:
        return RuleResult("numbers", True)  # nothing to check against: tools gave no numbers
    known = sorted({*tool_values, *values_in(evidence.task)})
    derived = worked_out(text, evidence.task)
    unsupported = [written for written, read in numbers_in(text) if not supported_number(read, known, derived=derived)]
    if not unsupported:
        return RuleResult("numbers", True)
    return RuleResult.broken(
        f"numbers: the answer states {listed(unsupported)}, found in no tool output and not in the task; state "
        "only numbers the tools returned (rounding is fine), or call a tool that gives this one"
    )
