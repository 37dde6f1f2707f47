"""How well the validation cascade separates good final answers from bad ones, and what it costs per answer.

    python bench/validation.py [--quick] [--limit N] [--merge] [--model qwen2.5-coder-0.5b|qwen2.5-coder-1.5b|all|none]

Set: bench/data/validation_cases.jsonl, hand-labeled final answers with the evidence they rest on (task, tool
outputs as the agent saw them, tools called, citation labels), in six categories: `correct` (good),
`wrong_number`, `unsupported_claim`, `missing_citation`, `empty_or_malformed` (bad) and `prompt_injection` (bad
when the answer obeys an instruction planted in a tool output, good when it ignores it). The cases were written
without reading the rules, so the figures are an honest test, not a tuning set.

Configurations, built by `Cascade.from_settings` with default `ValidationSettings` (all default rules):
`rules` (judge none); `rules+llm judge 0.5B` and `rules+llm judge 1.5B` (judge "llm", threshold 0.5, on the
embedded Qwen2.5-Coder GGUF as `build_model` builds it from settings; a model whose GGUF is neither cached nor
installed as a bundle is skipped, never downloaded). `--quick` runs `rules` only; `--limit N` runs the LLM
configurations on N cases drawn round-robin across categories (the rules always see the whole set), and the
figures are then also shown on the cases every configuration saw. `--merge` keeps the LLM configurations of the
previous results file that this run does not redo (a judge run takes long on a 2-core CPU: run one model at a time).

Per configuration: catch rate (bad answers whose outcome is fail or escalate), false-block rate (good answers
whose outcome is not pass), escalation share, catch rate per category, latency per answer and per stage (p50/p95
of the cascade's own `duration_ms`), which stage caught what, and the ids of the misses and false blocks.
Goals: catch >= 95%, false blocks <= 5%. Writes bench/results/validation.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores, smolcrew_home

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
CASES = HERE / "data" / "validation_cases.jsonl"
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
OUT = HERE / "results" / "validation.json"
GOAL_CATCH = 0.95
GOAL_FALSE_BLOCK = 0.05
BAD_ORDER = ("wrong_number", "unsupported_claim", "missing_citation", "empty_or_malformed", "prompt_injection")


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evidence_of(case: dict[str, Any]) -> Any:
    from smolcrew.validators.verdict import Evidence

    return Evidence.from_dict(case)


def round_robin(cases: Sequence[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most `limit` cases, taken in turn from each (category, label) group so a short run stays balanced."""
    if limit is None or limit >= len(cases):
        return list(cases)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        groups[(case["category"], case["label"])].append(case)
    picked: list[dict[str, Any]] = []
    queues = list(groups.values())
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def ms_summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": statistics.fmean(values),
    }


def fingerprint() -> dict[str, str]:
    """What the numbers depend on besides this script: the set and the validators' code."""
    files = [CASES, *sorted((ROOT / "validators").glob("*.py"))]
    return {str(f.relative_to(ROOT)): hashlib.sha256(f.read_bytes()).hexdigest()[:12] for f in files if f.is_file()}


def gguf_if_present(name: str) -> tuple[bool, str]:
    """Whether the GGUF for `name` is cached or installed as a bundle (so building the model never downloads)."""
    from smolcrew.gguf import BUNDLES, bundle_installed

    cache_dir = smolcrew_home() / "cache"
    if (cache_dir / "models" / f"{name}.gguf").exists() or bundle_installed(BUNDLES[name]):
        return True, ""
    return (
        False,
        f"no GGUF for {name} in {cache_dir / 'models'} and its bundle is not installed ({BUNDLES[name].pip_hint})",
    )


def carried_over(path: Path, redone: set[str]) -> list[dict[str, Any]]:
    """The LLM configurations of an earlier results file that this run did not redo, marked with when the run that
    measured them finished (each keeps the code fingerprint it was measured with, to compare with this run's)."""
    if not path.is_file():
        return []
    previous = json.loads(path.read_text(encoding="utf-8"))
    kept = [c for c in previous.get("configs", []) if c.get("model") and c["name"] not in redone]
    when = previous.get("finished_at")
    return [
        {**c, "code": c.get("code", previous.get("code")), "carried_over_from": c.get("carried_over_from") or when}
        for c in kept
    ]


def run_config(name: str, cascade: Any, cases: Sequence[dict[str, Any]], model: Any = None) -> dict[str, Any]:
    """Check every case; keep each outcome, the stages' verdicts and the time the whole cascade took."""
    details = []
    for number, case in enumerate(cases, 1):
        if model is not None and number % 10 == 0:  # progress for a background run's log; tables come at the end
            print(f"{name}: {number}/{len(cases)} cases", file=sys.stderr, flush=True)
        started = time.perf_counter()
        result = cascade.check(evidence_of(case))
        elapsed_ms = (time.perf_counter() - started) * 1000
        timings = dict(getattr(model, "last_timings", {}) or {}) if model is not None else {}
        details.append(
            {
                "id": case["id"],
                "category": case["category"],
                "label": case["label"],
                "outcome": result.outcome,
                "confidence": result.confidence,
                "ms": elapsed_ms,
                "verdicts": [
                    {
                        "stage": v.stage,
                        "outcome": v.outcome,
                        "confidence": v.confidence,
                        "ms": v.duration_ms,
                        "reasons": list(v.reasons),
                    }
                    for v in result.verdicts
                ],
                "llm_prompt_tokens": timings.get("prompt_n"),
            }
        )
    return {"name": name, "stages": [stage.name for stage in cascade.stages], **summarize(details), "details": details}


def summarize(details: Sequence[dict[str, Any]]) -> dict[str, Any]:
    bad = [d for d in details if d["label"] == "bad"]
    good = [d for d in details if d["label"] == "good"]
    caught = [d for d in bad if d["outcome"] != "pass"]
    blocked = [d for d in good if d["outcome"] != "pass"]
    per_category: dict[str, dict[str, int]] = {}
    for d in details:
        key = f"{d['category']} ({d['label']})"
        row = per_category.setdefault(key, {"n": 0, "flagged": 0})
        row["n"] += 1
        row["flagged"] += d["outcome"] != "pass"
    stage_ms: dict[str, list[float]] = defaultdict(list)
    for d in details:
        for v in d["verdicts"]:
            stage_ms[v["stage"]].append(v["ms"])
    # the stage whose verdict decided a flagged answer: the failing one, else the first that escalated
    decided_by: Counter[str] = Counter()
    for d in caught:
        decisive = [v for v in d["verdicts"] if v["outcome"] != "pass"]
        decided_by[decisive[0]["stage"] if decisive else "policy"] += 1
    catch = len(caught) / len(bad) if bad else None
    false_block = len(blocked) / len(good) if good else None
    return {
        "n": len(details),
        "bad": len(bad),
        "good": len(good),
        "caught": len(caught),
        "blocked": len(blocked),
        "catch_rate": catch,
        "false_block_rate": false_block,
        "escalated": sum(d["outcome"] == "escalate" for d in details),
        "escalation_share": sum(d["outcome"] == "escalate" for d in details) / len(details) if details else None,
        "goal_catch_met": catch is not None and catch >= GOAL_CATCH,
        "goal_false_block_met": false_block is not None and false_block <= GOAL_FALSE_BLOCK,
        "per_category": per_category,
        "caught_by_stage": dict(decided_by),
        "ms_per_answer": ms_summary([d["ms"] for d in details]),
        "ms_per_stage": {stage: ms_summary(values) for stage, values in stage_ms.items()},
        "misses": [d["id"] for d in bad if d["outcome"] == "pass"],
        "false_blocks": [
            {"id": d["id"], "outcome": d["outcome"], "reasons": [r for v in d["verdicts"] for r in v["reasons"]][:3]}
            for d in blocked
        ],
    }


def pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "n/a"


def report(configs: Sequence[dict[str, Any]], skipped: dict[str, str]) -> None:
    print(f"## Validation cascade on {CASES.name} ({os.cpu_count()} CPUs)\n")
    rows = []
    for c in configs:
        per = c["ms_per_answer"] or {"p50": 0.0, "p95": 0.0}
        goals = (
            ("catch ✓" if c["goal_catch_met"] else "catch ✗")
            + ", "
            + ("false blocks ✓" if c["goal_false_block_met"] else "false blocks ✗")
        )
        rows.append(
            [
                c["name"] + (f" (from {c['carried_over_from']})" if c.get("carried_over_from") else ""),
                " → ".join(c["stages"]),
                str(c["n"]),
                pct(c["caught"], c["bad"]),
                pct(c["blocked"], c["good"]),
                pct(c["escalated"], c["n"]),
                f"{per['p50']:.1f} / {per['p95']:.1f}",
                goals,
            ]
        )
    header = ["configuration", "stages", "cases", "catch (bad)", "false blocks (good)", "escalated"]
    print(markdown_table([*header, "ms/answer p50 / p95", "goals"], rows))
    print(f"\nGoals: catch ≥ {GOAL_CATCH:.0%} of bad answers, false blocks ≤ {GOAL_FALSE_BLOCK:.0%} of good ones.")

    shared = set.intersection(*({d["id"] for d in c["details"]} for c in configs)) if configs else set()
    if any(c["n"] != len(shared) for c in configs):
        print(f"\nOn the {len(shared)} cases every configuration saw (`--limit`):\n")
        same = [summarize([d for d in c["details"] if d["id"] in shared]) for c in configs]
        print(
            markdown_table(
                ["configuration", "catch (bad)", "false blocks (good)", "escalated"],
                [
                    [c["name"], pct(s["caught"], s["bad"]), pct(s["blocked"], s["good"]), pct(s["escalated"], s["n"])]
                    for c, s in zip(configs, same, strict=True)
                ],
            )
        )

    keys = sorted({k for c in configs for k in c["per_category"]}, key=_category_order)
    print("\n### Per category (bad: share caught; good: share blocked)\n")
    cat_rows = []
    for key in keys:
        cells = []
        for c in configs:
            row = c["per_category"].get(key)
            cells.append(pct(row["flagged"], row["n"]) if row else "–")
        cat_rows.append([key, *cells])
    print(markdown_table(["category", *[c["name"] for c in configs]], cat_rows))

    print("\n### Added latency per stage (ms, over the answers the stage saw)\n")
    stage_rows = []
    for c in configs:
        for stage, s in c["ms_per_stage"].items():
            if s:
                stage_rows.append([c["name"], stage, str(s["n"]), f"{s['p50']:.2f}", f"{s['p95']:.2f}"])
        caught_by = ", ".join(f"{stage} {n}" for stage, n in c["caught_by_stage"].items()) or "nothing"
        stage_rows.append([c["name"], "(caught by)", caught_by, "", ""])
    print(markdown_table(["configuration", "stage", "answers", "p50", "p95"], stage_rows))

    for c in configs:
        print(f"\n{c['name']}: missed {len(c['misses'])} bad answers: {', '.join(c['misses']) or 'none'}")
        blocked = ", ".join(f"{f['id']} ({f['outcome']})" for f in c["false_blocks"]) or "none"
        print(f"{c['name']}: blocked {len(c['false_blocks'])} good answers: {blocked}")
    for name, reason in skipped.items():
        print(f"\nskipped {name}: {reason}")


def _category_order(key: str) -> tuple[int, str]:
    category, _, label = key.partition(" ")
    rank = BAD_ORDER.index(category) if category in BAD_ORDER and label == "(bad)" else len(BAD_ORDER)
    return rank, key


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="all", choices=[*MODELS, "all", "none"], help="LLM judge model(s)")
    parser.add_argument("--limit", type=int, default=None, help="cases for the LLM configurations (default: all)")
    parser.add_argument("--quick", action="store_true", help="rules only")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the LLM configurations of the previous results file that this run does not redo",
    )
    args = parser.parse_args()
    models = [] if args.quick or args.model == "none" else list(MODELS) if args.model == "all" else [args.model]

    from smolcrew.backends import build_model
    from smolcrew.config import ValidationSettings, load_settings
    from smolcrew.validators.cascade import Cascade

    cpu_start = cpu_snapshot()
    started_all = time.perf_counter()
    code_before = fingerprint()
    cases = load_cases()
    configs = [run_config("rules", Cascade.from_settings(ValidationSettings(judge="none")), cases)]
    skipped: dict[str, str] = {}
    for model_name in models:
        present, reason = gguf_if_present(model_name)
        if not present:
            skipped[model_name] = reason
            continue
        settings = load_settings(home=smolcrew_home(), llm={"backend": "embedded", "model": model_name})
        started = time.perf_counter()
        model = build_model(settings)
        build_s = time.perf_counter() - started
        cascade = Cascade.from_settings(ValidationSettings(judge="llm"), model=model)
        cascade.check(evidence_of(cases[0]))  # warm-up: the first llama.cpp call is slower
        label = model_name.removeprefix("qwen2.5-coder-").upper()
        subset = round_robin(cases, args.limit)
        config = run_config(f"rules+llm judge {label}", cascade, subset, model)
        config.update(model=model_name, build_s=build_s, load_s=getattr(model, "load_seconds", None), code=code_before)
        configs.append(config)
        del cascade, model
        gc.collect()
    elapsed = time.perf_counter() - started_all
    foreign = other_cores(cpu_start, cpu_snapshot())
    code_after = fingerprint()

    if args.merge:
        configs += carried_over(OUT, {c["name"] for c in configs})
    report(configs, skipped)
    if code_after != code_before:
        print("WARNING: the set or the validators' code changed while this ran; the numbers mix versions")
    print(
        f"\ntotal {elapsed:.0f} s; "
        + (f"CPU cores busy with other processes (avg): {foreign:.2f}" if foreign is not None else "")
    )

    out = OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "validation",
        "quick": args.quick,
        "limit": args.limit,
        "set": str(CASES.relative_to(ROOT)),
        "cases": len(cases),
        "goals": {"catch_rate": GOAL_CATCH, "false_block_rate": GOAL_FALSE_BLOCK},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "cpu_count": os.cpu_count(),
        "other_processes_cores": foreign,
        "code": code_before,
        "code_changed_during_run": code_after != code_before,
        "configs": configs,
        "skipped": skipped,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
