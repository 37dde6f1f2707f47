"""Plan metrics (bench/plan_metrics.py): each figure on small plans worked out by hand, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from bench.plan_metrics import PlanStep, link_f1, links, node_f1, score, single_step_accuracy, specialists


def step(tool: str, specialist: str, *depends_on: int) -> PlanStep:
    return {"tool": tool, "specialist": specialist, "depends_on": depends_on}


CAPTION, DETECT = step("caption_image", "vision"), step("detect_objects", "vision")
CLASSIFY = step("classify_image", "vision")
TRANSCRIBE, TRANSLATE = step("transcribe_speech", "audio"), step("translate_text", "language")

PERFECT = [TRANSCRIBE, step("translate_text", "language", 0)]
CHAIN = [CAPTION, step("translate_text", "language", 0), step("synthesize_speech", "audio", 1)]
MISSING = CHAIN[:2]
EXTRA = [CLASSIFY, CAPTION]


def figures(prefix: str, tp: int, fp: int, fn: int, micro: tuple[float, ...], macro: tuple[Any, ...]) -> dict[str, Any]:
    named = {f"{prefix}_tp": tp, f"{prefix}_fp": fp, f"{prefix}_fn": fn}
    for position, name in enumerate(("precision", "recall", "f1")):
        named[f"{prefix}_micro_{name}"] = micro[position]
        named[f"{prefix}_macro_{name}"] = macro[position]
    return named


def assert_has(result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {key: result[key] for key in expected} == expected


def test_a_perfect_plan_scores_one_everywhere() -> None:
    assert score([PERFECT], [PERFECT]) == {
        "requests": 1,
        **figures("node", 2, 0, 0, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
        **figures("link", 1, 0, 0, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
        "link_requests": 1,
        "exact_specialist_order": 1.0,
        "exact_specialist_order_collapsed": 1.0,
        "single_step_specialist_accuracy": None,
        "single_step_requests": 0,
    }


def test_a_missing_node_costs_recall_and_its_edge() -> None:
    """Gold caption -> translate -> speak; predicted caption -> translate."""
    result = score([CHAIN], [MISSING])
    assert_has(result, figures("node", 2, 0, 1, (1.0, 2 / 3, 0.8), (1.0, 2 / 3, 0.8)))
    assert_has(result, figures("link", 1, 0, 1, (1.0, 0.5, 2 / 3), (1.0, 0.5, 2 / 3)))
    assert result["exact_specialist_order"] == result["exact_specialist_order_collapsed"] == 0.0


def test_an_extra_node_costs_precision_and_collapsing_forgives_the_repeat() -> None:
    """Gold classify (one step); predicted classify, caption: both vision."""
    result = score([[CLASSIFY]], [EXTRA])
    assert_has(result, figures("node", 1, 1, 0, (0.5, 1.0, 2 / 3), (0.5, 1.0, 2 / 3)))
    assert_has(result, figures("link", 0, 0, 0, (None,) * 3, (None,) * 3))
    assert result["link_requests"] == 0
    assert result["exact_specialist_order"] == 0.0
    assert result["exact_specialist_order_collapsed"] == 1.0
    assert (result["single_step_specialist_accuracy"], result["single_step_requests"]) == (0.0, 1)


def test_an_invented_edge_on_a_single_step_request_counts_only_in_micro() -> None:
    result = link_f1([[CLASSIFY]], [[CLASSIFY, step("caption_image", "vision", 0)]])
    assert result == {**figures("link", 0, 1, 0, (0.0, 0.0, 0.0), (None,) * 3), "link_requests": 0}


def test_a_reversed_edge_matches_no_edge() -> None:
    """Gold transcribe -> summarize; predicted summarize -> transcribe: the same nodes, the edge turned round."""
    gold = [TRANSCRIBE, step("summarize_text", "language", 0)]
    predicted = [step("summarize_text", "language"), step("transcribe_speech", "audio", 0)]
    result = score([gold], [predicted])
    assert_has(result, figures("node", 2, 0, 0, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)))
    assert_has(result, figures("link", 0, 1, 1, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    assert result["exact_specialist_order"] == 0.0


def test_links_are_compared_by_tool_name_not_step_order() -> None:
    gold = [CAPTION, DETECT, step("translate_text", "language", 0)]
    predicted = [DETECT, CAPTION, step("translate_text", "language", 1)]
    assert links(gold) == links(predicted) == {("caption_image", "translate_text")}
    assert link_f1([gold], [predicted])["link_micro_f1"] == 1.0


def test_a_tool_used_twice_counts_twice() -> None:
    """Nodes are a multiset: a second translation missed is a false negative, one too many a false positive
    (TaskBench, taking names as a set, would score both 1.0)."""
    twice = [TRANSLATE, TRANSLATE]
    assert node_f1([twice], [[TRANSLATE]]) == figures("node", 1, 0, 1, (1.0, 0.5, 2 / 3), (1.0, 0.5, 2 / 3))
    assert node_f1([[TRANSLATE]], [twice]) == figures("node", 1, 1, 0, (0.5, 1.0, 2 / 3), (0.5, 1.0, 2 / 3))
    result = score([twice], [[TRANSLATE]])
    assert (result["exact_specialist_order"], result["exact_specialist_order_collapsed"]) == (0.0, 1.0)


def test_an_empty_prediction_scores_zero() -> None:
    result = score([CHAIN], [[]])
    assert_has(result, figures("node", 0, 0, 3, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    assert_has(result, figures("link", 0, 0, 2, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    assert result["exact_specialist_order"] == 0.0


def test_micro_pools_counts_and_macro_averages_requests() -> None:
    """Perfect (nodes 2/0/0), missing (2/0/1) and extra (1/1/0): micro 5/6 each; macro precision (1 + 1 + 1/2)/3,
    recall (1 + 2/3 + 1)/3, F1 (1 + 4/5 + 2/3)/3. Links only in the first two requests."""
    result = score([PERFECT, CHAIN, [CLASSIFY]], [PERFECT, MISSING, EXTRA])
    assert result == {
        "requests": 3,
        **figures("node", 5, 1, 1, (5 / 6, 5 / 6, 5 / 6), (5 / 6, 8 / 9, 37 / 45)),
        **figures("link", 2, 0, 1, (1.0, 2 / 3, 0.8), (1.0, 0.75, 5 / 6)),
        "link_requests": 2,
        "exact_specialist_order": 1 / 3,
        "exact_specialist_order_collapsed": 2 / 3,
        "single_step_specialist_accuracy": 0.0,
        "single_step_requests": 1,
    }


def test_single_step_accuracy_needs_the_one_specialist_alone() -> None:
    gold = [[CLASSIFY], [TRANSLATE], PERFECT]
    predicted = [[CAPTION], [CAPTION], [TRANSCRIBE]]
    assert single_step_accuracy(gold, predicted) == (0.5, 2)


def test_specialists_collapse_only_consecutive_repeats() -> None:
    plan = [CAPTION, DETECT, TRANSLATE, CLASSIFY]
    assert specialists(plan) == ["vision", "vision", "language", "vision"]
    assert specialists(plan, collapse=True) == ["vision", "language", "vision"]


def test_no_requests_give_no_figures() -> None:
    result = score([], [])
    assert result["requests"] == 0
    assert result["node_micro_f1"] is result["node_macro_f1"] is result["exact_specialist_order"] is None


@pytest.mark.parametrize("depends_on", [1, 2, -1])
def test_a_step_may_depend_only_on_earlier_steps(depends_on: int) -> None:
    with pytest.raises(ValueError, match="only use earlier steps"):
        links([CAPTION, step("translate_text", "language", depends_on)])


def test_plans_are_paired_one_to_one() -> None:
    with pytest.raises(ValueError, match="2 gold plans but 1 predicted"):
        score([PERFECT, CHAIN], [PERFECT])
