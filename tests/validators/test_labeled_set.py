"""The labeled set of final answers (bench/data/validation_cases.jsonl) is well formed, and the rules-only cascade
keeps catching and passing it at least as well as when it was measured (bench/validation.py --quick)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smolcrew.config import ValidationSettings
from smolcrew.validators.cascade import Cascade
from smolcrew.validators.verdict import RETRIEVAL_TOOLS, Evidence

CASES = Path(__file__).resolve().parents[2] / "bench" / "data" / "validation_cases.jsonl"
FIELDS = {
    "id": str,
    "category": str,
    "label": str,
    "task": str,
    "tool_outputs": list,
    "tools": list,
    "sources": list,
    "note": str,
}
"""Required fields and their types; `answer` is required too but may be any JSON value (null, a dict, ...)."""
LABELS = {
    "correct": {"good"},
    "wrong_number": {"bad"},
    "unsupported_claim": {"bad"},
    "missing_citation": {"bad"},
    "empty_or_malformed": {"bad"},
    "prompt_injection": {"good", "bad"},
}
MIN_CASES = 120
MIN_PER_CATEGORY = 15
MIN_CORRECT = 40

# Measured with `python bench/validation.py --quick` on the 135-case set on 2026-12-06 (the validators' code
# fingerprint is in bench/results/validation.json): the default cascade without a judge (the rules, then the claim
# check's names, dates and numbers) caught 66/83 bad answers (79.5%) and blocked 6/52 good ones (11.5%). A change
# to the rules or the set that does worse fails here; one that does better should tighten these figures.
RULES_MIN_CATCH_RATE = 66 / 83
RULES_MAX_FALSE_BLOCK_RATE = 6 / 52


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_line_is_a_json_object() -> None:
    lines = [line for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_every_case_has_the_required_fields(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        assert "answer" in case, case.get("id")
        for name, kind in FIELDS.items():
            assert isinstance(case.get(name), kind), f"{case.get('id')}: {name} should be a {kind.__name__}"
        assert case["task"].strip() and case["note"].strip(), case["id"]
        assert all(isinstance(x, str) for x in case["tool_outputs"] + case["tools"] + case["sources"]), case["id"]


def test_ids_are_unique(cases: list[dict[str, Any]]) -> None:
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]


def test_size_and_category_balance(cases: list[dict[str, Any]]) -> None:
    per_category = Counter(case["category"] for case in cases)
    assert len(cases) >= MIN_CASES
    assert set(per_category) == set(LABELS)
    assert min(per_category.values()) >= MIN_PER_CATEGORY, per_category
    assert per_category["correct"] >= MIN_CORRECT


def test_labels_fit_their_category(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        assert case["label"] in LABELS[case["category"]], case["id"]
    injection = Counter(case["label"] for case in cases if case["category"] == "prompt_injection")
    assert injection["good"] >= 5 and injection["bad"] >= 5, injection


def test_tool_names_are_real(cases: list[dict[str, Any]]) -> None:
    from smolcrew.agents.specialists import SPECIALISTS

    real = {name for spec in SPECIALISTS.values() for name in spec.tool_names()}
    unknown = {(case["id"], tool) for case in cases for tool in case["tools"] if tool not in real}
    assert not unknown


def test_missing_citation_cases_rest_on_retrieval_with_cite_labels(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        if case["category"] == "missing_citation":
            assert RETRIEVAL_TOOLS.intersection(case["tools"]), case["id"]
            assert case["sources"], case["id"]
            assert all(any(label in out for out in case["tool_outputs"]) for label in case["sources"]), case["id"]


def test_rules_only_cascade_holds_its_measured_figures(cases: list[dict[str, Any]]) -> None:
    cascade = Cascade.from_settings(ValidationSettings(judge="none"))
    outcomes = {case["id"]: cascade.check(Evidence.from_dict(case)).outcome for case in cases}
    bad = [case["id"] for case in cases if case["label"] == "bad"]
    good = [case["id"] for case in cases if case["label"] == "good"]
    catch = sum(outcomes[i] != "pass" for i in bad) / len(bad)
    false_block = sum(outcomes[i] != "pass" for i in good) / len(good)
    missed = sorted(i for i in bad if outcomes[i] == "pass")
    blocked = sorted(i for i in good if outcomes[i] != "pass")
    assert catch >= RULES_MIN_CATCH_RATE, f"catch rate {catch:.1%} fell; missed: {missed}"
    assert false_block <= RULES_MAX_FALSE_BLOCK_RATE, f"false blocks {false_block:.1%} rose; blocked: {blocked}"
