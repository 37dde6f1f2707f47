"""The contract every validation stage keeps. Plain functions taking a `stage`; `test_stage_contract.py` runs each
one against every stage (rules, the LLM judge on a scripted model, the NLI judge on a tiny random model)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smolcrew.validators.verdict import Evidence, Outcome, Stage, Verdict

OUTCOMES = set(get_args(Outcome))


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


ODD_ANSWERS: list[Any] = [
    None,
    "",
    "   \n\t",
    {"total": 42, "items": [1, 2]},
    [],
    b"\xff\xfe\x00raw bytes",
    "caf\udce9 na\udcefve",  # undecodable bytes as surrogateescape leaves them
    "\x00\x01 control \u202e characters",
    "x" * 1_000_000,
    " ".join(str(i) for i in range(150_000)),  # a huge answer full of numbers
    42,
    float("nan"),
    _Unprintable(),
]

TOOL_OUTPUTS = (
    "Execution logs:\nthe pump warranty lasts 2 years\nLast output from code snippet:\n{'total': 42, 'share': 0.125}",
    "[{'source': 'report.pdf', 'page': 3, 'text': 'Revenue grew 12.5% to 1,234 units.', 'cite': '[1] report.pdf p.3'}]",
)


def evidence(answer: Any, **fields: Any) -> Evidence:
    fields.setdefault("task", "What does the report say about revenue?")
    fields.setdefault("tool_outputs", TOOL_OUTPUTS)
    fields.setdefault("tools", ("search_documents",))
    return Evidence(answer=answer, **fields)


def assert_valid(verdict: Any, stage: Stage) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.stage == stage.name
    assert verdict.outcome in OUTCOMES
    assert isinstance(verdict.confidence, float | int) and not math.isnan(verdict.confidence)
    assert 0.0 <= verdict.confidence <= 1.0
    assert verdict.duration_ms >= 0
    assert all(isinstance(reason, str) and reason.strip() for reason in verdict.reasons)
    if not verdict.passed:
        assert verdict.reasons, f"{stage.name} gave {verdict.outcome} without a reason"


def odd_answers_give_a_verdict(stage: Stage) -> None:
    """None, dicts, bytes, non-UTF-8 text, huge strings, unprintable objects: a valid verdict, never an error."""
    for answer in ODD_ANSWERS:
        assert_valid(stage.check(evidence(answer)), stage)


def odd_evidence_gives_a_verdict(stage: Stage) -> None:
    """Empty or huge evidence, undecodable tool output, no tools: still a valid verdict."""
    cases = [
        evidence("The revenue grew 12.5% [1].", task="", tool_outputs=(), tools=()),
        evidence("The revenue grew 12.5% [1].", tool_outputs=("caf\udce9 \x00 12.5%",)),
        evidence("The revenue grew 12.5% [1].", tool_outputs=("revenue grew 12.5 percent. " * 20_000,)),
        evidence("The revenue grew 12.5% [1].", tool_outputs=("",) * 50, sources=("report.pdf p.3",)),
    ]
    for case in cases:
        assert_valid(stage.check(case), stage)


def a_plain_answer_gives_a_verdict(stage: Stage) -> None:
    """An ordinary grounded answer gets a well-formed verdict naming the stage."""
    assert_valid(stage.check(evidence("Revenue grew 12.5% to 1,234 units [1].")), stage)


def the_same_evidence_gives_the_same_outcome(stage: Stage) -> None:
    """Checking the same evidence twice gives the same outcome and confidence."""
    case = evidence("Revenue grew 12.5% to 1,234 units (report.pdf p.3).")
    first, second = stage.check(case), stage.check(case)
    assert (first.outcome, round(first.confidence, 6)) == (second.outcome, round(second.confidence, 6))


def fuzzed_answers_give_a_verdict(stage: Stage) -> None:
    """Any text or value hypothesis makes up gives a valid verdict."""
    answers = st.one_of(
        st.text(max_size=300),
        st.binary(max_size=64),
        st.integers(),
        st.floats(),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        st.lists(st.text(max_size=10), max_size=3),
        st.none(),
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(answer=answers, output=st.text(max_size=300))
    def run(answer: Any, output: str) -> None:
        assert_valid(stage.check(evidence(answer, tool_outputs=(output, *TOOL_OUTPUTS))), stage)

    run()


CONTRACT: list[Callable[[Stage], None]] = [
    odd_answers_give_a_verdict,
    odd_evidence_gives_a_verdict,
    a_plain_answer_gives_a_verdict,
    the_same_evidence_gives_the_same_outcome,
    fuzzed_answers_give_a_verdict,
]
