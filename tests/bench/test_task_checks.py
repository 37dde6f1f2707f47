"""The task suite's checks (bench/task_checks.py): each kind tells a right answer from a wrong one, and a failed
run is put down to the right cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.task_checks import (
    CHECK_KINDS,
    CheckError,
    Outcome,
    classify,
    numbers_in,
    run_check,
    validate_check,
)
from smolcrew.failures import error_kinds
from smolcrew.memory.records import StepRecord
from tests.bench.conftest import CALL_STEP, TOOL_STEP, step

RUN_END = StepRecord(
    "r1", 9, "crew", "run_end", {"state": "max_steps_error", "error": "the agents used all their steps"}
)

# ---- the checks -----------------------------------------------------------------------------------------


CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (check, right outcome, wrong outcome): outcomes as Outcome keyword arguments; artifacts by media name
    (
        {"kind": "contains_all", "terms": ["Thursday", "budget"]},
        {"answer": "Moved to THURSDAY; bring the budget."},
        {"answer": "Moved to Thursday."},
    ),
    ({"kind": "contains_any", "terms": ["4872", "4 8 7 2"]}, {"answer": "Parcel 4 8 7 2"}, {"answer": "Parcel 4827"}),
    (
        {"kind": "contains_none", "terms": ["not the same"]},
        {"answer": "Yes, the same."},
        {"answer": "They are not the same."},
    ),
    (
        {"kind": "number", "value": 42},
        {"answer": "The survey had 42 respondents."},
        {"answer": "The survey had 24 respondents."},
    ),
    ({"kind": "number", "value": 1_200_000}, {"answer": "Revenue was 1.2 million euros"}, {"answer": "1.2 euros"}),
    ({"kind": "number", "value": 12.7}, {"answer": {"total": "$12.70"}}, {"answer": {"total": "$127"}}),
    ({"kind": "number", "value": 37.0, "tolerance": 0.1}, {"answer": "37.0 °C"}, {"answer": "36.8 °C"}),
    (
        {"kind": "language_code", "code": "fr"},
        {"answer": "{'language': 'fr', 'confidence': 0.99}"},
        {"answer": "The text is from France? No: 'de'"},
    ),
    ({"kind": "language_code", "code": "de"}, {"answer": "That's German."}, {"answer": "That's Dutch."}),
    ({"kind": "artifact_audio", "min_seconds": 1.0}, {"artifacts": ["long.wav"]}, {"artifacts": ["short.wav"]}),
    ({"kind": "artifact_audio"}, {"artifacts": ["short.wav", "long.wav"]}, {"artifacts": ["big.png"]}),
    (
        {"kind": "artifact_image", "min_width": 100, "min_height": 100},
        {"artifacts": ["big.png"]},
        {"artifacts": ["small.png", "long.wav"]},
    ),
    (
        {"kind": "trace_contains", "terms": ["12.70"]},
        {"answer": "done", "trace": "TOTAL 12.70"},
        {"answer": "done", "trace": "TOTAL 12.07"},
    ),
    (
        {"kind": "no_tool"},
        {"answer": "You are Ada.", "tools": ["recall_conversation"]},
        {"answer": "You are Ada.", "tools": ["calculate"]},
    ),
]


def _outcome(kwargs: dict[str, Any], media: dict[str, Path]) -> Outcome:
    answer = kwargs.get("answer", "")
    return Outcome(
        answer=answer if isinstance(answer, str) else json.dumps(answer),
        artifacts=tuple(media[name] for name in kwargs.get("artifacts", [])),
        trace=kwargs.get("trace", ""),
        tools=tuple(kwargs.get("tools", ())),
    )


@pytest.mark.parametrize(("check", "right", "wrong"), CASES, ids=[f"{c[0]['kind']}-{i}" for i, c in enumerate(CASES)])
def test_each_check_passes_a_right_answer_and_fails_a_wrong_one(
    check: dict[str, Any], right: dict[str, Any], wrong: dict[str, Any], media: dict[str, Path]
) -> None:
    assert run_check(check, _outcome(right, media))[0], run_check(check, _outcome(right, media))[1]
    assert not run_check(check, _outcome(wrong, media))[0]


def test_every_check_kind_is_tested() -> None:
    assert {case[0]["kind"] for case in CASES} == set(CHECK_KINDS)


@pytest.mark.parametrize(
    "check",
    [
        {"kind": "number", "value": "42"},
        {"kind": "number", "value": True},
        {"kind": "contains_all", "terms": []},
        {"kind": "contains_all", "terms": [" "]},
        {"kind": "artifact_audio", "min_seconds": 1, "max_seconds": 2},
        {"kind": "language_code"},
    ],
)
def test_malformed_checks_are_refused(check: dict[str, Any]) -> None:
    with pytest.raises(CheckError):
        validate_check(check)


def test_numbers_are_read_as_people_write_them() -> None:
    assert numbers_in("$1,234.50 and 7 and -3") == [1234.5, 7.0, -3.0]
    assert numbers_in("1.2 million") == [1.2, 1_200_000.0]
    assert numbers_in("Gate B17") == []  # part of a code, not a quantity
    assert numbers_in("3pm, 37C") == [3.0, 37.0]
    assert numbers_in("at 3 p.m.") == [3.0]


# ---- why a run failed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "tools", "kind"),
    [
        (
            "Code execution failed at line 'final_answer(x)' due to: InterpreterError: The variable `x` is not defined",
            [],
            "call",
        ),
        (
            "Code execution failed at line 'transcribe('a.wav')' due to: InterpreterError: Forbidden function "
            "evaluation: 'transcribe' is not among the explicitly allowed tools",
            [],
            "call",
        ),
        (
            "Code execution failed at line 'read_text_in_image(p, 1)' due to: ToolInputError: `page` only applies to "
            "PDF files",
            ["read_text_in_image"],
            "call",
        ),
        (
            "Code execution failed at line 'r = answer_from_pdf(pdf_path=p, question=q)' due to: "
            "ModelUnavailableError: model 'distilbert' for role 'pdf_qa' could not be loaded",
            ["answer_from_pdf"],
            "tool",
        ),
        ("Code execution failed at line 'r = upscale_image(image=p)' due to: MemoryError: ", ["upscale_image"], "tool"),
        (
            "Code execution failed at line 'print(result['total'])' due to: KeyError: 'total'",
            ["read_text_in_image"],
            "call",
        ),
        (
            "Error in code parsing:\nYour code snippet is invalid, because the regex pattern <code>(.*?)</code> "
            "was not found in it.",
            [],
            "call",
        ),
        ("Error in generating model output:\ncontext window exceeded", [], "model"),
        ("Reached max steps.", [], "steps"),
        ("Code execution exceeded the maximum execution time of 30 seconds", ["answer_from_pdf"], "tool"),
        ("Code execution exceeded the maximum execution time of 30 seconds", [], "call"),
        (
            "Check validate_research failed with error: your final answer was rejected (rejection 1 of at most 2)",
            [],
            "rejected",
        ),
    ],
)
def test_step_errors_are_told_apart(error: str, tools: list[str], kind: str) -> None:
    assert error_kinds(error, tools) == kind


@pytest.mark.parametrize(
    ("state", "handled_by", "steps", "cause"),
    [
        ("success", ["vision"], [], "answer"),
        ("success", ["language"], [], "routing"),
        ("max_steps_error", ["vision", "audio"], [CALL_STEP], "routing"),
        ("max_steps_error", ["vision"], [CALL_STEP, TOOL_STEP], "tool"),
        ("success", ["vision"], [TOOL_STEP], "tool"),
        ("max_steps_error", ["vision"], [CALL_STEP, step("Reached max steps.")], "call"),
        ("max_steps_error", ["vision"], [step(None), step("Reached max steps.")], "steps"),
        ("max_steps_error", ["vision"], [step("Reached max steps."), RUN_END], "steps"),
        ("success", ["vision"], [CALL_STEP], "answer"),  # it recovered from the error, then answered wrongly
        ("rejected", ["vision"], [], "rejected"),
        ("rejected", ["vision"], [CALL_STEP, step("Check validate_vision failed with error: rejected")], "rejected"),
        ("error", ["vision"], [], "error"),
        (None, None, [], "error"),
    ],
)
def test_failures_are_put_down_to_one_cause(
    state: str | None, handled_by: list[str] | None, steps: list[StepRecord], cause: str
) -> None:
    got, _ = classify(passed=False, state=state, handled_by=handled_by, accepted=[("vision",)], steps=steps)
    assert got == cause


def test_a_passed_task_has_no_cause_and_alternative_routes_count() -> None:
    assert classify(passed=True, state="success", handled_by=["vision"], accepted=[("vision",)])[0] is None
    accepted = [("vision",), ("vision", "language")]
    assert classify(passed=False, state="success", handled_by=["vision", "language"], accepted=accepted)[0] == "answer"


def test_the_conversation_suite_loads_and_covers_every_category() -> None:
    from bench.conversations import CATEGORIES, load_conversations

    conversations = load_conversations()
    assert len(conversations) >= 40
    assert {c["category"] for c in conversations} == set(CATEGORIES)
    assert {c["split"] for c in conversations} == {"dev", "blind"}
