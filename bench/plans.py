"""Tool-level plans on the blind set: how far a step->tool classifier learned from generated data gets.

    python bench/plans.py [--examples 3000] [--c 10]

The classifier: the packaged MiniLM's sentence embeddings (frozen, as the router uses them) and a logistic
regression, trained on the step texts of `agents/plan_data.generate(examples)` (no request of the blind set; the
generator's test checks there is no overlap). It is SetFit's head without SetFit's contrastive fine-tuning of the
body: the floor a learned classifier starts from. Plans: today's router splits the request into steps, the
classifier names each step's tool (and so its specialist; `calculate` keeps the router's specialist), and each
step depends on the one before it. Scored with bench/plan_metrics.py (TaskBench's node and link F1, pooled over
requests) on bench/data/routing_blind.jsonl, and, for the single-tool requests, the classifier on the whole
request. Writes bench/results/plans.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import markdown_table
from plan_metrics import score
from routing import load_set

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BLIND = Path(__file__).resolve().parent / "data" / "routing_blind.jsonl"
OUT = Path(__file__).resolve().parent / "results" / "plans.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="generated (request, plan) examples to train on")
    parser.add_argument("--c", type=float, default=10.0, help="the logistic regression's inverse regularisation")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from smolcrew.agents.plan_data import generate
    from smolcrew.agents.specialists import SPECIALISTS
    from smolcrew.crew import Crew
    from smolcrew.pool import PipelinePool

    model = PipelinePool().get("embeddings")

    def embed(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=64, show_progress_bar=False, normalize_embeddings=True)

    started = time.perf_counter()
    steps = [(step.text or example.request, step.tool) for example in generate(args.examples) for step in example.steps]
    classifier = LogisticRegression(C=args.c, max_iter=3000).fit(embed([t for t, _ in steps]), [y for _, y in steps])
    train_s = time.perf_counter() - started
    owner: dict[str, str] = {}
    for name, specialist in SPECIALISTS.items():
        for factory in specialist.tool_factories:
            owner.setdefault(factory.name, name)

    blind = load_set(BLIND)
    single = [row for row in blind if len(row["steps"]) == 1]
    whole = classifier.predict(embed([row["request"] for row in single]))
    tool_right = sum(tool == row["steps"][0]["tool"] for tool, row in zip(whole, single, strict=True))
    specialist_right = sum(
        owner[str(tool)] == row["steps"][0]["specialist"] or tool == row["steps"][0]["tool"] == "calculate"
        for tool, row in zip(whole, single, strict=True)
    )

    with tempfile.TemporaryDirectory() as home:
        crew = Crew.from_config(home=home, memory={"sinks": []}, llm={"backend": "scripted", "script": []})
        router = crew.router
        predicted, elapsed = [], []
        for row in blind:
            begun = time.perf_counter()
            plan = router.route(row["request"])
            tools = classifier.predict(embed([step.task for step in plan.steps]))
            predicted.append(
                [
                    {
                        "tool": str(tool),
                        "specialist": step.specialist if tool == "calculate" else owner[str(tool)],
                        "depends_on": [i - 1] if i else [],
                    }
                    for i, (step, tool) in enumerate(zip(plan.steps, tools, strict=True))
                ]
            )
            elapsed.append((time.perf_counter() - begun) * 1000)
        crew.close()
    scores = score([row["steps"] for row in blind], predicted)

    print(f"## Tool-level plans on {BLIND.relative_to(ROOT)} ({len(blind)} requests, {len(single)} single-tool)\n")
    rows = [
        ["single-tool requests: tool (classifier on the whole request)", f"{tool_right}/{len(single)}"],
        ["single-tool requests: its specialist (the same)", f"{specialist_right}/{len(single)}"],
        ["single-tool: specialist (router split + classifier)", _pct(scores["single_step_specialist_accuracy"])],
        ["exact specialist order, all requests", _pct(scores["exact_specialist_order"])],
        ["node F1 (TaskBench n-F1, pooled)", _pct(scores["node_micro_f1"])],
        ["link F1 (TaskBench e-F1, pooled)", _pct(scores["link_micro_f1"])],
        ["ms per request, median (router + classifier)", f"{sorted(elapsed)[len(elapsed) // 2]:.1f}"],
        ["training (generate, embed, fit)", f"{len(steps):,} step texts, {train_s:.0f} s"],
    ]
    print(markdown_table(["measure", "value"], rows))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "plans", "examples": args.examples, "c": args.c, **scores}, indent=2))
    print(f"\nwrote {OUT.relative_to(ROOT)}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
