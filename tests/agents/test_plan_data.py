"""The router's training-data generator: deterministic, covering every tool, valid plans, no eval leakage."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from smolcrew.agents.plan_data import (
    PlanExample,
    PlanStep,
    compatible,
    compatible_pair,
    generate,
    normalize,
    validate,
    write_jsonl,
)
from smolcrew.agents.specialists import SPECIALISTS

BLIND = Path(__file__).resolve().parents[2] / "bench" / "data" / "routing_blind.jsonl"
N = 3000


@pytest.fixture(scope="module")
def examples() -> list[PlanExample]:
    return generate(N, seed=0)


def test_same_seed_same_examples_other_seed_other_examples(examples: list[PlanExample]) -> None:
    assert generate(300, seed=0) == examples[:300]
    assert generate(300, seed=1) != examples[:300]


def test_enough_distinct_examples(examples: list[PlanExample]) -> None:
    """n examples, none equal to another once case and spacing are ignored."""
    assert len(examples) == N
    assert len({normalize(example.request) for example in examples}) == N


def test_normalize_ignores_case_and_spacing() -> None:
    assert normalize("  Caption  cat.JPG\tthen\nread it ALOUD ") == normalize("caption cat.jpg then read it aloud")


def test_every_tool_of_every_specialist_appears_alone_and_in_plans(examples: list[PlanExample]) -> None:
    offered = {(spec.name, tool) for spec in SPECIALISTS.values() for tool in spec.tool_names()}
    single = {(e.steps[0].specialist, e.steps[0].tool) for e in examples if len(e.steps) == 1}
    multi = {(s.specialist, s.tool) for e in examples if len(e.steps) > 1 for s in e.steps}
    # calculate alone goes to language; under vision and research it follows their outputs
    assert offered - {("vision", "calculate"), ("research", "calculate")} <= single
    assert offered <= multi


def test_step_counts_cover_one_to_five(examples: list[PlanExample]) -> None:
    counts = Counter(len(example.steps) for example in examples)
    assert set(counts) == {1, 2, 3, 4, 5}
    assert all(counts[k] >= 30 for k in (1, 2, 3, 4, 5)), counts


def test_plans_are_valid_and_dependencies_type_compatible(examples: list[PlanExample]) -> None:
    for example in examples:
        validate(example)
        for index, step in enumerate(example.steps):
            assert all(0 <= dep < index for dep in step.depends_on)
            producers = [example.steps[dep].tool for dep in step.depends_on]
            if len(producers) == 1:
                assert compatible(producers[0], step.tool), example
            elif len(producers) == 2:
                assert compatible_pair(producers[0], producers[1], step.tool), example
            assert step.text and step.text in example.request, example


def test_shapes_include_chains_fan_out_fan_in_and_independent_steps(examples: list[PlanExample]) -> None:
    def shape(example: PlanExample) -> set[str]:
        used = Counter(dep for step in example.steps for dep in step.depends_on)
        found = set()
        if any(len(step.depends_on) == 2 for step in example.steps):
            found.add("fan-in")
        if any(count >= 2 for count in used.values()):
            found.add("fan-out")
        if any(step.depends_on == (i - 1,) for i, step in enumerate(example.steps) if i):
            found.add("chain")
        if len(example.steps) > 1 and all(not step.depends_on for step in example.steps):
            found.add("independent")
        return found

    seen = Counter(kind for example in examples for kind in shape(example))
    assert all(seen[kind] >= 50 for kind in ("chain", "fan-out", "fan-in", "independent")), seen


def test_calculate_runs_under_the_specialist_of_its_input(examples: list[PlanExample]) -> None:
    for example in examples:
        for step in example.steps:
            if step.tool == "calculate":
                producers = [example.steps[dep].specialist for dep in step.depends_on]
                offering = [p for p in producers if p in ("vision", "research", "language")]
                assert step.specialist == (offering[0] if offering else "language"), example


def test_validate_rejects_broken_plans(examples: list[PlanExample]) -> None:
    chained = next(e for e in examples if len(e.steps) == 2 and e.steps[1].depends_on == (0,))
    forward = replace(chained, steps=(replace(chained.steps[0], depends_on=(1,)), chained.steps[1]))
    unknown = replace(chained, steps=(replace(chained.steps[0], tool="fly_drone"), chained.steps[1]))
    wrong_owner = replace(chained, steps=(replace(chained.steps[0], specialist="audio"), *chained.steps[1:]))
    if chained.steps[0].specialist == "audio":
        wrong_owner = replace(chained, steps=(replace(chained.steps[0], specialist="vision"), *chained.steps[1:]))
    incompatible = PlanExample(
        "draw a cat, then transcribe it",
        (
            PlanStep("generation", "generate_image", "text-to-image", (), "draw a cat"),
            PlanStep("audio", "transcribe_speech", "automatic-speech-recognition", (0,), "transcribe it"),
        ),
    )
    for broken in (forward, unknown, wrong_owner, incompatible):
        with pytest.raises(ValueError):
            validate(broken)


def test_write_jsonl_round_trips(tmp_path: Path, examples: list[PlanExample]) -> None:
    path = tmp_path / "plans.jsonl"
    assert write_jsonl(path, examples[:50]) == 50
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["request"] for row in rows] == [e.request for e in examples[:50]]
    assert rows[0]["steps"][0].keys() == {"specialist", "tool", "task", "depends_on", "text"}


def _blind_requests() -> list[str]:
    """Every string field of at least three words in the blind set (whatever the field is called)."""
    requests = []
    for line in BLIND.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            values = row.values() if isinstance(row, dict) else [row]
            requests += [value for value in values if isinstance(value, str) and len(value.split()) >= 3]
    return requests


def _ngrams(text: str, size: int = 8) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


@pytest.mark.skipif(not BLIND.exists(), reason=f"{BLIND} is not in this checkout")
def test_no_blind_request_leaks_into_the_generated_data(examples: list[PlanExample]) -> None:
    """Neither a whole blind request nor any 8-word run of one appears in the generated requests."""
    blind = _blind_requests()
    assert blind, "the blind set has no requests to compare with"
    generated = {normalize(example.request) for example in examples}
    assert not generated & {normalize(request) for request in blind}
    generated_grams = set().union(*(_ngrams(example.request) for example in examples))
    leaked = sum(bool(_ngrams(request) & generated_grams) for request in blind)
    assert leaked == 0, f"{leaked} blind requests share an 8-word run with the generated data"
