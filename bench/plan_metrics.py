"""How close a predicted plan is to the gold one: TaskBench's node and link F1, and specialist order.

A plan is a list of steps; each step names its `tool`, its `specialist` and `depends_on`, the indexes of earlier
steps whose output it uses. The definitions follow TaskBench (Shen et al., 2023, "TaskBench: Benchmarking Large
Language Models for Task Automation", arXiv:2311.18760), as its scorer computes them (`taskbench/evaluate.py` in
microsoft/JARVIS, functions `flatten` and `evaluate`):

- node F1 (TaskBench's n-F1, `node_micro_f1_no_matching`): per request, the predicted tool names against the
  gold ones; the true positives, false positives and false negatives are pooled over all requests, then one
  precision, recall and F1 come from the pooled counts (micro). TaskBench does not average per-request F1: its
  "macro" figure averages over tool types. We report the pooled figure (`node_micro_*`, the one to compare with
  TaskBench) and, besides it, the plain average of per-request figures (`node_macro_*`, not a TaskBench figure).
  Two differences: TaskBench takes each request's names as a set, we take a multiset (a tool run twice where the
  gold runs it once is a false positive; the same figure when no tool repeats), and TaskBench ignores predicted
  names outside its tool graph, which here count as false positives (no catalog is given).
- link F1 (TaskBench's e-F1, `link_binary_f1`): the same over each request's set of edges, an edge being the pair
  (tool of the step depended on, tool of the dependent step) by name, so plans are compared independent of step
  order. Micro pools over every request, as TaskBench's overall figure does: a request whose gold plan has no edge
  adds nothing but its predicted edges, as false positives. The per-request average (`link_macro_*`) leaves those
  requests out (their F1 is undefined or only punishes invented edges), as TaskBench gives no e-F1 for its
  single-node requests; `link_requests` says how many remain.
- exact specialist order (not in TaskBench, whose nearest figure is an edit distance over tool names): the share
  of requests whose predicted sequence of specialists equals the gold sequence as it is; the `_collapsed` variant
  first merges consecutive repeats (vision, vision, language -> vision, language), so a plan that splits one
  specialist's work into two steps is not counted wrong.
- single-step specialist accuracy: over the requests whose gold plan has one step, the share whose predicted plan
  is exactly one step by that specialist (the rule of bench/routing.py: same names, same order).

A precision with nothing predicted, a recall with nothing to find, and an F1 with neither counts as 0 (sklearn's
`zero_division=0`, as TaskBench); a figure over no requests, or pooled from no items at all, is None.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from fractions import Fraction
from typing import Any, NamedTuple, NotRequired, TypedDict

__all__ = [
    "PRF",
    "Counts",
    "Plan",
    "PlanStep",
    "exact_order",
    "link_f1",
    "links",
    "node_f1",
    "score",
    "single_step_accuracy",
    "specialists",
]


class PlanStep(TypedDict):
    """One step of a plan, as the router plans it and the gold files write it."""

    tool: str
    """The name of the tool the step calls."""
    specialist: str
    """The specialist that carries the tool."""
    depends_on: NotRequired[Sequence[int]]
    """Indexes of earlier steps whose output this step uses; none when absent."""


Plan = Sequence[PlanStep]
"""A plan: its steps in the order they run."""


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float


class Counts(NamedTuple):
    """True positives, false positives and false negatives of one request, or pooled over several."""

    tp: int
    fp: int
    fn: int

    @property
    def empty(self) -> bool:
        """Nothing predicted and nothing to find."""
        return self.tp + self.fp + self.fn == 0

    def fractions(self) -> tuple[Fraction, Fraction, Fraction]:
        """(precision, recall, F1) exactly; F1 = 2tp / (2tp + fp + fn), the harmonic mean of the two."""
        tp, fp, fn = self
        return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)

    def prf(self) -> PRF:
        return PRF(*(float(value) for value in self.fractions()))


def _ratio(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def _counts(gold: Iterable[Hashable], predicted: Iterable[Hashable]) -> Counts:
    """Multiset counts: an item found k times where the gold has it g times gives min(k, g) true positives."""
    wanted, found = Counter(gold), Counter(predicted)
    tp = sum((wanted & found).values())
    return Counts(tp, found.total() - tp, wanted.total() - tp)


def links(plan: Plan) -> set[tuple[str, str]]:
    """The plan's edges by tool name: (tool of the step depended on, tool of the dependent step).

    Raises:
        ValueError: a step depends on itself, a later step or an index outside the plan.
    """
    edges = set()
    for index, step in enumerate(plan):
        for source in step.get("depends_on", ()):
            if not 0 <= source < index:
                raise ValueError(
                    f"step {index} ({step['tool']}) depends on step {source}; a step may only use earlier steps "
                    f"(0 to {index - 1})"
                )
            edges.add((plan[source]["tool"], step["tool"]))
    return edges


def specialists(plan: Plan, *, collapse: bool = False) -> list[str]:
    """The plan's specialists in order; with `collapse`, consecutive repeats merged into one."""
    names = [step["specialist"] for step in plan]
    if collapse:
        return [name for index, name in enumerate(names) if index == 0 or names[index - 1] != name]
    return names


def _pairs(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan]) -> list[tuple[Plan, Plan]]:
    if len(gold_plans) != len(predicted_plans):
        raise ValueError(f"{len(gold_plans)} gold plans but {len(predicted_plans)} predicted; pair them one to one")
    return list(zip(gold_plans, predicted_plans, strict=True))


def _mean(values: Sequence[Fraction]) -> float | None:
    return float(sum(values, Fraction(0)) / len(values)) if values else None


def _f1_figures(prefix: str, per_request: list[Counts], averaged: list[Counts]) -> dict[str, Any]:
    """Pooled counts and micro figures over `per_request`; macro figures averaged over `averaged`."""
    pooled = Counts(*(sum(values) for values in zip(*per_request, strict=True))) if per_request else Counts(0, 0, 0)
    micro: Sequence[float | None] = (None, None, None) if pooled.empty else pooled.prf()
    each = [counts.fractions() for counts in averaged]
    figures: dict[str, Any] = {f"{prefix}_tp": pooled.tp, f"{prefix}_fp": pooled.fp, f"{prefix}_fn": pooled.fn}
    for position, name in enumerate(("precision", "recall", "f1")):
        figures[f"{prefix}_micro_{name}"] = micro[position]
        figures[f"{prefix}_macro_{name}"] = _mean([values[position] for values in each])
    return figures


def node_f1(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan]) -> dict[str, Any]:
    """Node precision, recall and F1 over the tool names: `node_micro_*` pooled (TaskBench's n-F1), `node_macro_*`
    averaged over the requests (but any with no step in either plan), and the pooled `node_tp`, `node_fp`,
    `node_fn`."""
    counts = [
        _counts([step["tool"] for step in gold], [step["tool"] for step in predicted])
        for gold, predicted in _pairs(gold_plans, predicted_plans)
    ]
    return _f1_figures("node", counts, [each for each in counts if not each.empty])


def link_f1(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan]) -> dict[str, Any]:
    """Link precision, recall and F1 over the edges by tool name: `link_micro_*` pooled over every request
    (TaskBench's e-F1), `link_macro_*` averaged over the `link_requests` whose gold plan has an edge."""
    pairs = [(links(gold), links(predicted)) for gold, predicted in _pairs(gold_plans, predicted_plans)]
    counts = [_counts(gold, predicted) for gold, predicted in pairs]
    averaged = [each for each, (gold, _) in zip(counts, pairs, strict=True) if gold]
    return {**_f1_figures("link", counts, averaged), "link_requests": len(averaged)}


def exact_order(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan], *, collapse: bool = False) -> float | None:
    """The share of requests whose predicted specialists equal the gold ones in order (with `collapse`, after
    merging consecutive repeats on both sides); None for no requests."""
    hits = [
        Fraction(int(specialists(gold, collapse=collapse) == specialists(predicted, collapse=collapse)))
        for gold, predicted in _pairs(gold_plans, predicted_plans)
    ]
    return _mean(hits)


def single_step_accuracy(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan]) -> tuple[float | None, int]:
    """(accuracy, requests): over the requests whose gold plan has one step, the share predicted as one step by the
    same specialist; None when there are none."""
    hits = [
        Fraction(int(specialists(predicted) == specialists(gold)))
        for gold, predicted in _pairs(gold_plans, predicted_plans)
        if len(gold) == 1
    ]
    return _mean(hits), len(hits)


def score(gold_plans: Sequence[Plan], predicted_plans: Sequence[Plan]) -> dict[str, Any]:
    """Every figure of this module for predicted plans paired in order with gold plans, and the counts behind
    them: `requests`, node and link figures (see `node_f1`, `link_f1`), `exact_specialist_order`,
    `exact_specialist_order_collapsed`, `single_step_specialist_accuracy` and `single_step_requests`.

    Raises:
        ValueError: the two lists differ in length, or a step depends on a step that is not before it.
    """
    accuracy, single = single_step_accuracy(gold_plans, predicted_plans)
    return {
        "requests": len(_pairs(gold_plans, predicted_plans)),
        **node_f1(gold_plans, predicted_plans),
        **link_f1(gold_plans, predicted_plans),
        "exact_specialist_order": exact_order(gold_plans, predicted_plans),
        "exact_specialist_order_collapsed": exact_order(gold_plans, predicted_plans, collapse=True),
        "single_step_specialist_accuracy": accuracy,
        "single_step_requests": single,
    }
