"""Steps that need arithmetic: the model writes the expression, `calculate` works it out.

A 0.5B model asked "the bill came to 86.40 and we were 4, how much each?" answers from its head, and wrongly;
asked to write the expression, it writes `86.40 / 4`. So when a step's request asks for a calculation on
numbers it gives (or that the previous step or a tool's output found), the model is shown a short prompt and may
only write an arithmetic expression (`CALCULATION_GRAMMAR`), and the step calls `calculate` with it. The result
is a tool output, so the validation gate can check the number the answer states.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from smolcrew.agents.dispatch import EARLIER_RESULT, NOW, asks_question, quoted_passage, split_previous

__all__ = [
    "CALCULATION_GRAMMAR",
    "asks_calculation",
    "calculation_messages",
    "expression_of",
    "is_calculation",
    "stated_facts",
]

CALCULATION_GRAMMAR = r"""
root ::= calc
calc ::= term ( " "? [-+*/] " "? term ){1,12}
term ::= number | "(" calc ")"
number ::= [0-9]{1,9} ("." [0-9]{1,6})?
"""
"""An arithmetic expression with at least one operator: the model must write the calculation, not its result."""

_DIGIT = re.compile(r"\d")
_OPERATION = re.compile(r"\d\s*[-+*/×÷^]\s*\d")
_ON_ITS_OWN = re.compile(
    r"\b(?:plus|minus|times|multipl\w*|divid\w*|split\w*|shar(?:e|es|ed|ing)|each|per|average|mean|sum|add up|"
    r"total up|percent|tip|discount|tax|vat|interest|convert\w*|celsius|fahrenheit|how much|how many|half|double|"
    r"twice|triple|difference|more than|less than|left over|remain\w*|square root|squared|cubed|subtract\w*|"
    r"deduct\w*|take away|add\s+[$€£]?\d[\d,.]*|increase\w*|decrease\w*|reduce\w*|how old|"
    r"in \d+ (?:years?|months?|weeks?|days?))\b|%",
    re.I,
)
"""Cues that a request with numbers asks for a calculation, when no tool gave anything yet."""
_ON_AN_OUTPUT = re.compile(
    r"\b(?:plus|minus|times|multipl\w*|divid\w*|split\w*|shar(?:e|es|ed|ing)|each of|per (?:person|head)|between|"
    r"among|average|percent|convert\w*|celsius|fahrenheit|half|double|twice|triple|difference|how much more|"
    r"how much less|left over|remain\w*|work out|calculate)\b|%",
    re.I,
)
"""Stricter cues once a tool found the numbers: "what is the total?", "how much tax did I pay?" are read off the
output, not calculated."""
_ON_STATED = re.compile(
    r"\b(?:shar(?:e|es|ed|ing)|split\w*|each of|per (?:person|head)|between|among|average|how (?:much|many) "
    r"(?:more|less|fewer)|left over|remain\w*|difference|half|double|twice|triple|percent|work out|calculate|"
    r"how old will|until|afford|how long will|how (?:much|many) \w+ (?:is |are )?left|over a (?:whole )?year|"
    r"(?:a|per|each) (?:year|month|week)|how many (?:months|weeks|days|years))\b|%",
    re.I,
)
"""Cues that a question works on numbers the user stated earlier ("how much is my share of the rent?"), not
one that asks for them back ("how many people did I say?")."""
_FILE_OR_QUOTE = re.compile(r"[\w./-]+\.[A-Za-z][A-Za-z0-9]{1,3}\b|\"[^\"]*\"|“[^”]*”|'[^']{4,}'")

_INSTRUCTION = (
    "Write the arithmetic that answers the question, as one expression with numbers, + - * / and parentheses. "
    "Take the numbers from the question and its facts."
)
_EXAMPLES = (
    ("3 of us share a taxi that cost 45.00, how much each?", None, "45.00 / 3"),
    ("what is a 15% tip on the total?", "Total 62.40", "62.40 * 0.15"),
    ("convert that to pounds at 0.85 pounds per euro", "The fee is 120 euros.", "120 * 0.85"),
    ("how many minutes are in 3.5 hours?", None, "3.5 * 60"),
    ("and how much is that per week?", "Each of us pays 12 a day.", "12 * 7"),
    ("I've spent 45 so far, how much of the budget is left?", "The budget is 200.", "200 - 45"),
    ("and with a 10% tip on top, what do I pay?", "Total 50.00", "50.00 + 50.00 * 0.10"),
    ("how old will she be in 4 years?", "Mia is 31.", "31 + 4"),
    ("how many months until I can buy it?", "It costs 600. I save 150 a month.", "600 / 150"),
    ("and over a whole year?", "My share is 300 a month.", "300 * 12"),
)
"""Few-shot turns (question, facts, expression): a small model copies the form of what it was shown."""


def _words(text: str) -> set[str]:
    return {word.removesuffix("s") for word in re.findall(r"[a-z]{4,}", text.lower())}


def _question(question: str, facts: str | None) -> str:
    return f"Question: {question.strip()}" + (f"\nFacts: {facts.strip()}" if facts and facts.strip() else "")


def _request(own: str) -> str:
    """The request without the file names and quoted passages it carries: their numbers are not the question."""
    return _FILE_OR_QUOTE.sub(" ", own)


def stated_facts(task: str) -> list[str]:
    """What the user stated earlier in the conversation, as a task's context lists it (newest last)."""
    return [line[2:] for line in task.rpartition(NOW)[0].splitlines() if line.startswith("- ")]


def _answers_with_numbers(task: str) -> list[str]:
    """The assistant's earlier answers that hold a number, as the task's context shows them (newest last)."""
    lines = task.rpartition(NOW)[0].splitlines()
    answers = [line.removeprefix(_ANSWERED) for line in lines if line.startswith(_ANSWERED) and _DIGIT.search(line)]
    return [_WORKED_OUT.sub(r"The answer was \1.", answer) for answer in answers]  # a result, not a sum to copy


_ANSWERED = "Assistant: "
_WORKED_OUT = re.compile(r"^[\d\s.,()+\-*/%]+=\s*(-?[\d.,]+)\s*$")
_FOLLOW_UP = re.compile(r"^\W*(?:(?:ok(?:ay)?|so|and|then)\b\W*)+", re.I)


def asks_calculation(task: str, *, after_output: bool = False, stated: Sequence[str] = ()) -> bool:
    """Whether the step's request asks to work something out from numbers: the request (or the previous step's
    answer) holds a number and the request says what to do with it, or the user stated the numbers earlier in
    the conversation (`stated`, and the facts in the task's context) and the request works on them ("what's my
    share of the rent?"). `after_output`: a tool has answered, and only an explicit operation (split, a
    percentage, a conversion, ...) still needs a calculation."""
    own, previous = split_previous(task)
    own, _, referenced = own.partition(EARLIER_RESULT)  # "now double it" + the result it points at
    request = _request(own)
    if not after_output and quoted_passage(own) is not None:
        return False  # a passage to work on: a text tool's job, whatever numbers it holds
    earlier = f"{previous or ''} {referenced}"
    has_numbers = after_output or bool(_DIGIT.search(request) or _DIGIT.search(earlier))
    cues = _ON_AN_OUTPUT if after_output else _ON_ITS_OWN
    if not has_numbers and _DIGIT.search(" ".join([*stated, *stated_facts(task)])):
        return asks_question(request) and _ON_STATED.search(request) is not None  # "we split it": a new fact
    return has_numbers and bool(_OPERATION.search(request) or cues.search(request))


_NOT_NAMES = frozenset({
    "what", "which", "when", "where", "much", "many", "does", "will", "would", "could", "should", "have", "that",
    "this", "with", "from", "into", "over", "then", "your", "their", "there", "paid", "cost", "costs", "make",
    "need", "left", "each", "give", "tell", "show", "work", "full", "whole",
})  # fmt: skip


def _named_figures(question: str, texts: Sequence[str]) -> list[str]:
    """ "total: 11.45" for each thing the question names ("a 10% tip on the total", "how much rent is that for a
    year?") that one of `texts` gives a figure for (its last mention, first text first): among a receipt's or a
    lease's many figures, the 0.5B took the wrong ones."""
    named = []
    for word in dict.fromkeys(re.findall(r"[a-z]{4,}", question.lower())):
        figure = rf"\b{word}s?\b[^\d.!?\n]{{0,20}}[.!?\n]?[^\d\n]{{0,15}}?([$€£]?\d[\d,]*(?:\.\d+)?)"
        if word in _NOT_NAMES or re.search(figure, question, re.I):
            continue  # "split 240 between 3": the question gives its own figure
        found = next((hits[-1] for text in texts if (hits := re.findall(figure, text, re.I))), None)
        if found is not None:
            named.append(f"{word}: {found}")
    return named


def calculation_messages(task: str, facts: str | None = None) -> list[dict[str, Any]]:
    """The short prompt a model writes the expression from: the step's request and what is known so far (what
    the user stated earlier in the conversation, the earlier result the request points at, `facts`, what the
    previous step found)."""
    own, previous = split_previous(task)
    question, _, referenced = own.partition(EARLIER_RESULT)  # "what's 15% of it?" + the result it points at
    said = stated_facts(task)  # newest first below
    # "45 - 38": a target said, a count found; a request with its own numbers, or pointing at one result ("the bill
    # plus that tip"), needs no other earlier answer: the 0.5B added every number it was shown
    own_numbers = _DIGIT.search(_request(question)) or referenced.strip()
    answers = [] if own_numbers else _answers_with_numbers(task)[::-1][:2]
    found = [*said[::-1], *answers]
    if _FOLLOW_UP.match(question) and answers:  # "and my share over a whole year?": on from the last answer (625 a
        # month); the 0.5B, shown the rent and the split too, worked the month out again: only facts it names stay
        found = [answers[0], *(fact for fact in said[::-1] if _words(fact) & _words(question))]
    named = _named_figures(question, [referenced, previous or "", task.rpartition(NOW)[0]])
    referenced = "" if named else referenced  # the figures it names stand for the text they came from
    known = "\n".join(part.strip().strip('"') for part in (*named, referenced, *found, facts, previous) if part)
    own = question

    def turn(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": text}]}

    messages = [turn("system", _INSTRUCTION)]
    for question, example_facts, expression in _EXAMPLES:
        messages += [turn("user", _question(question, example_facts)), turn("assistant", expression)]
    return [*messages, turn("user", _question(own, known or None))]


def expression_of(reply: str) -> str:
    """The expression in the model's reply, one line, spaces normalised."""
    return " ".join(reply.strip().splitlines()[0].split()) if reply.strip() else ""


def is_calculation(output: Any) -> bool:
    """Whether a tool output is `calculate`'s."""
    return isinstance(output, dict) and {"expression", "value", "text"} <= set(output)
