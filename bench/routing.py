"""Routing accuracy of the semantic router, alone, with the LLM tie-breaker, and with the learned tool planner.

    python bench/routing.py [--model qwen2.5-coder-0.5b|qwen2.5-coder-1.5b|all|none] [--margin 0.06] [--quick]
                            [--planner]

Sets: bench/data/routing_eval.jsonl (the dev set the router was tuned on), bench/data/routing_test.jsonl
(written blind, but the router's splitting rules were adjusted after its errors were seen once),
bench/data/routing_holdout.jsonl (written blind after the router and its example bank were frozen: the
honest figure), and bench/data/routing_blind.jsonl (210 requests labeled with tool-level plans, written from the
tools' descriptions alone; never used for training or tuning). A request is correct when the plan's specialists
equal the label exactly (same names, same order); on the blind set, plans that name tools are also scored as
TaskBench scores them (bench/plan_metrics.py: tool node F1 and link F1, pooled over requests).
Configurations: embeddings only; embeddings + `llm_chooser` on the 0.5B and on the 1.5B GGUF (`--model`
picks which; default all; a model whose GGUF is not present is skipped); `--planner` adds the learned
tool-level planner (agents/planner.py), trained first into the home's cache when it is not there (as
`smolcrew route --train` does). `--quick` runs embeddings only (and the planner with `--planner`).
The router is built as `Crew.router` builds it (MiniLM from the pipeline pool on CPU, the example bank, the
cached example vectors). Writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores, smolcrew_home
from plan_metrics import score

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HERE = Path(__file__).resolve().parent
SETS = {
    "eval (dev)": HERE / "data" / "routing_eval.jsonl",
    "test (seen once)": HERE / "data" / "routing_test.jsonl",
    "holdout (blind)": HERE / "data" / "routing_holdout.jsonl",
    "tool plans (blind)": HERE / "data" / "routing_blind.jsonl",
}
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


def fingerprint() -> dict[str, Any]:
    """What the numbers depend on besides this script: the router's code and its example bank."""
    import hashlib

    files = [
        ROOT / "agents" / "router.py",
        ROOT / "agents" / "specialists.py",
        *sorted((ROOT / "agents" / "data").glob("*.jsonl")),
    ]
    digests = {str(f.relative_to(ROOT)): hashlib.sha256(f.read_bytes()).hexdigest()[:12] for f in files if f.is_file()}
    return {"files": digests, "examples": None}


def load_set(path: Path) -> list[dict[str, Any]]:
    """The rows of a set; a row labeled with a tool-level plan (`steps`) is also labeled with its specialists."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        row if "specialists" in row else {**row, "specialists": [s["specialist"] for s in row["steps"]]} for row in rows
    ]


class CountingChooser:
    """Wraps an LLM chooser: counts calls and their time, remembers what it was asked and what it said."""

    def __init__(self, choose: Callable[[str, Sequence[str]], str]) -> None:
        self._choose = choose
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: str, candidates: Sequence[str]) -> str:
        started = time.perf_counter()
        choice = self._choose(request, candidates)
        self.calls.append(
            {"part": request, "candidates": list(candidates), "choice": choice, "s": time.perf_counter() - started}
        )
        return choice


def gguf_if_present(name: str) -> tuple[Path | None, str]:
    """The verified GGUF for `name` when it is cached or installed as a bundle (never downloads)."""
    from smolcrew.errors import ModelUnavailableError
    from smolcrew.gguf import BUNDLES, bundle_installed, resolve_gguf

    cache_dir = smolcrew_home() / "cache"
    bundle = BUNDLES[name]
    if not (cache_dir / "models" / f"{name}.gguf").exists() and not bundle_installed(bundle):
        return None, f"no GGUF for {name} in {cache_dir / 'models'} and its bundle is not installed"
    try:
        return resolve_gguf(name, cache_dir=cache_dir), ""
    except ModelUnavailableError as exc:
        return None, str(exc)


def evaluate(router: Any, rows: list[dict[str, Any]], chooser: CountingChooser | None) -> dict[str, Any]:
    details = []
    for row in rows:
        before = len(chooser.calls) if chooser else 0
        started = time.perf_counter()
        plan = router.route(row["request"])
        elapsed = time.perf_counter() - started
        details.append(
            {
                "id": row["id"],
                "expected": row["specialists"],
                "got": plan.specialists,
                "correct": plan.specialists == row["specialists"],
                "multi": len(row["specialists"]) > 1,
                "ms": elapsed * 1000,
                "llm_calls": (len(chooser.calls) - before) if chooser else 0,
                "decided_by": [step.decided_by for step in plan.steps],
                "confident": plan.confident,
                "tools": [list(step.tools) for step in plan.steps],
                "plan": [
                    {"tool": ",".join(step.tools), "specialist": step.specialist, "depends_on": list(step.depends_on)}
                    for step in plan.steps
                ],
            }
        )
    single = [d for d in details if not d["multi"]]
    multi = [d for d in details if d["multi"]]
    times = [d["ms"] for d in details]
    tool_level = all("steps" in row for row in rows) and all(all(d["tools"]) for d in details)
    return {
        "plan_scores": score([row["steps"] for row in rows], [d["plan"] for d in details]) if tool_level else None,
        "n": len(details),
        "single": {"correct": sum(d["correct"] for d in single), "n": len(single)},
        "multi": {"correct": sum(d["correct"] for d in multi), "n": len(multi)},
        "overall": {"correct": sum(d["correct"] for d in details), "n": len(details)},
        "ms_mean": statistics.fmean(times),
        "ms_median": statistics.median(times),
        "llm_calls": sum(d["llm_calls"] for d in details),
        "llm_steps_decided": sum(x == "llm" for d in details for x in d["decided_by"]),
        "details": details,
    }


def _f1(scores: dict[str, Any] | None, key: str) -> str:
    """A TaskBench F1 in percent; '-' for a configuration that plans no tools or a set without tool labels."""
    return "-" if scores is None or scores.get(key) is None else f"{100 * scores[key]:.1f}"


def share(counts: dict[str, int]) -> str:
    if not counts["n"]:
        return "n/a"
    return f"{counts['correct']}/{counts['n']} ({100 * counts['correct'] / counts['n']:.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all", choices=[*MODELS, "all", "none"], help="LLM tie-breaker(s)")
    parser.add_argument("--margin", type=float, default=0.06, help="the router's confidence margin")
    parser.add_argument("--quick", action="store_true", help="embeddings only")
    parser.add_argument(
        "--planner",
        action="store_true",
        help="also the learned tool-level planner (trained first, a few minutes, when it is not cached)",
    )
    args = parser.parse_args()
    models = [] if args.quick or args.model == "none" else list(MODELS) if args.model == "all" else [args.model]

    from smolcrew.agents.chooser import llm_chooser
    from smolcrew.agents.router import Router
    from smolcrew.agents.specialists import SPECIALISTS, load_examples
    from smolcrew.pool import PipelinePool

    cpu_start = cpu_snapshot()
    started_all = time.perf_counter()
    code_before = fingerprint()
    sets = {name: load_set(path) for name, path in SETS.items()}
    descriptions = {name: spec.description for name, spec in SPECIALISTS.items()}
    examples = load_examples()
    code_before["examples"] = len(examples)

    started = time.perf_counter()
    pool = PipelinePool(device="cpu")
    encoder = pool.get("embeddings")
    encoder_load_s = time.perf_counter() - started

    def embed(texts: list[str]) -> Any:
        return encoder.encode(texts, normalize_embeddings=True, batch_size=32)

    def build_router(choose: CountingChooser | None) -> Any:
        return Router.for_specialists(
            embed,
            choose=choose,
            margin=args.margin,
            cache_dir=smolcrew_home() / "cache",
            embedder_id=pool.model_for("embeddings"),
        )

    started = time.perf_counter()
    plain = build_router(None)
    router_build_s = time.perf_counter() - started
    for row in sets["eval (dev)"][:8]:  # warm-up: the first encoder calls are slow
        plain.route(row["request"])

    # held-out hygiene: how close each request is to its nearest example in the router's bank
    import numpy as np

    bank = getattr(plain, "_examples", None)
    if bank is None:
        bank = embed([text for _, text in examples])
    nearest: dict[str, Any] = {}
    for set_name, rows in sets.items():
        similarity = np.asarray(embed([row["request"] for row in rows])) @ np.asarray(bank).T
        best_sim, best_idx = similarity.max(axis=1), similarity.argmax(axis=1)
        close = [
            {
                "id": rows[i]["id"],
                "cos": round(float(best_sim[i]), 3),
                "request": rows[i]["request"],
                "example": examples[int(best_idx[i])][1],
            }
            for i in np.argsort(-best_sim)
            if best_sim[i] >= 0.9
        ]
        nearest[set_name] = {
            "median_nearest_cos": float(np.median(best_sim)),
            "n_at_least_0.9": len(close),
            "n_at_least_0.95": sum(c["cos"] >= 0.95 for c in close),
            "close": close,
        }

    configs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    configs.append({"name": f"embeddings only (margin {args.margin:g})", "model": None, "sets": {}})
    for set_name, rows in sets.items():
        configs[0]["sets"][set_name] = evaluate(plain, rows, None)
    if args.planner:
        from smolcrew.agents.planner_train import load_planner, train_planner

        started = time.perf_counter()
        folder = train_planner(smolcrew_home() / "cache", progress=print)
        planner = load_planner(smolcrew_home() / "cache")
        planned = Router.for_specialists(embed, margin=args.margin, planner=planner)
        for row in sets["eval (dev)"][:8]:
            planned.route(row["request"])
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        config = {"name": "learned tool planner", "model": None, "training": metrics, "sets": {}}
        config["load_or_train_s"] = time.perf_counter() - started
        for set_name, rows in sets.items():
            config["sets"][set_name] = evaluate(planned, rows, None)
        configs.append(config)

    for model_name in models:
        path, reason = gguf_if_present(model_name)
        if path is None:
            skipped[model_name] = reason
            continue
        from smolcrew.backends import LlamaCppModel

        model = LlamaCppModel(path, n_ctx=8192)  # as Crew builds it: temperature 0, max_tokens 512
        chooser = CountingChooser(llm_chooser(model, descriptions))
        chooser("translate this sentence into French and read it aloud", ["language", "audio"])  # warm-up
        chooser.calls.clear()
        router = build_router(chooser)
        config = {
            "name": f"embeddings + LLM tie-break ({model_name.removeprefix('qwen2.5-coder-').upper()})",
            "model": model_name,
            "load_seconds": model.load_seconds,
            "sets": {},
        }
        for set_name, rows in sets.items():
            first = len(chooser.calls)
            config["sets"][set_name] = evaluate(router, rows, chooser)
            calls = chooser.calls[first:]
            config["sets"][set_name]["llm_call_s_mean"] = statistics.fmean(c["s"] for c in calls) if calls else None
            config["sets"][set_name]["llm_choices"] = calls
        configs.append(config)
        del router, chooser, model
        gc.collect()
    elapsed = time.perf_counter() - started_all
    code_after = fingerprint()
    code_after["examples"] = len(load_examples())
    foreign = other_cores(cpu_start, cpu_snapshot())

    rows_out = []
    for config in configs:
        for set_name, result in config["sets"].items():
            rows_out.append(
                [
                    config["name"],
                    set_name,
                    share(result["single"]),
                    share(result["multi"]),
                    share(result["overall"]),
                    f"{result['ms_mean']:.1f} / {result['ms_median']:.1f}",
                    str(result["llm_calls"]),
                    _f1(result["plan_scores"], "node_micro_f1"),
                    _f1(result["plan_scores"], "link_micro_f1"),
                ]
            )
    print(f"## Routing accuracy (exact specialist list and order; {os.cpu_count()} CPUs)\n")
    print(
        markdown_table(
            [
                "configuration",
                "set",
                "single-specialist",
                "multi-step (exact order)",
                "overall",
                "ms/request (mean / median)",
                "LLM calls",
                "tool node F1",
                "link F1",
            ],
            rows_out,
        )
    )
    for model_name, reason in skipped.items():
        print(f"\nskipped {model_name}: {reason}")

    test_name = "test (seen once)"
    best = max(configs, key=lambda c: c["sets"][test_name]["overall"]["correct"])  # ties: the first, cheapest
    misses = [d for d in best["sets"][test_name]["details"] if not d["correct"]]
    test_rows = {row["id"]: row for row in sets[test_name]}
    print(f"\nMisrouted on the test set by the best configuration, {best['name']} ({len(misses)}):\n")
    print(
        markdown_table(
            ["id", "expected", "got", "request"],
            [
                [
                    d["id"],
                    " → ".join(d["expected"]),
                    " → ".join(d["got"]),
                    test_rows[d["id"]]["request"].replace("|", "\\|")[:110],
                ]
                for d in misses
            ],
        )
    )
    print(
        "\nnearest example in the router's bank ("
        + "; ".join(
            f"{name}: median cos {v['median_nearest_cos']:.2f}, {v['n_at_least_0.9']} requests ≥ 0.90, "
            f"{v['n_at_least_0.95']} ≥ 0.95"
            for name, v in nearest.items()
        )
        + ")"
    )
    print(
        f"router code and bank: {code_before['examples']} examples, "
        + ", ".join(f"{Path(k).name} {v}" for k, v in code_before["files"].items())
    )
    if code_after != code_before:
        print("WARNING: the router's code or example bank changed while this ran; the numbers mix versions")
    print(
        f"\nencoder load {encoder_load_s:.1f} s, router build {router_build_s:.2f} s, total {elapsed:.0f} s; "
        + (f"CPU cores busy with other processes (avg): {foreign:.2f}" if foreign is not None else "")
    )

    out = HERE / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "routing",
        "quick": args.quick,
        "margin": args.margin,
        "sets": {name: str(path.relative_to(ROOT)) for name, path in SETS.items()},
        "encoder": pool.model_for("embeddings"),
        "encoder_load_s": encoder_load_s,
        "router_build_s": router_build_s,
        "elapsed_s": elapsed,
        "cpu_count": os.cpu_count(),
        "other_processes_cores": foreign,
        "code": code_before,
        "code_changed_during_run": code_after != code_before,
        "nearest_example": nearest,
        "configs": configs,
        "skipped": skipped,
        "best_on_test": best["name"],
        "misrouted_best_on_test": [
            {"id": d["id"], "expected": d["expected"], "got": d["got"], "request": test_rows[d["id"]]["request"]}
            for d in misses
        ],
    }
    out.write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
