"""Does the gate catch answers that state what the evidence does not support? Claim-level checks, measured.

    python bench/claims.py [--split test|tune|all] [--llm qwen2.5-coder-0.5b] [--limit N]

Set: bench/data/claims/*.jsonl, 100 passages written for this project (no public benchmark text), each with one
question and five answers labeled before any tuning: two supported (`supported`, `paraphrase`, `computed`,
`multi_fact`, `short`, `injection_ignored`) and three not (`wrong_entity`, `wrong_number`, `wrong_date`,
`negation`, `unsupported_addition`, `not_mentioned`, `partial`, `obeyed_injection`, `bad_citation`). Passages
1-25 of each file are the tuning split (thresholds are chosen there), 26-50 the test split (reported).

Configurations: `rules` (the default rules); `terms` alone and `verifier` alone (the claim stage with only its
lexical check, or only the trained cross-encoder); `rules+terms`; `rules+terms+verifier` (the default cascade
with `validation.claims = "verifier"`); with `--llm`, `rules+terms+llm` adds the LLM P(yes) claim judge
(`validation.judge = "llm_claims"`) to the default cascade. The verifier's and the LLM judge's thresholds are each
the value that catches most on the tuning split with at most 5% of its supported answers blocked by that stage
alone (the verifier is also reported at the configured value). The verifier is trained first if it is not cached.
Writes bench/results/claims.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import markdown_table, smolcrew_home
from validation import pct, run_config

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SET = Path(__file__).resolve().parent / "data" / "claims"
OUT = Path(__file__).resolve().parent / "results" / "claims.json"
GOAL_CATCH, GOAL_BLOCK = 0.90, 0.05


def load(split: str) -> list[dict[str, Any]]:
    cases = [json.loads(line) for path in sorted(SET.glob("*.jsonl")) for line in path.read_text().splitlines()]
    return [case for case in cases if split == "all" or case["split"] == split]


def tuned_threshold(scores: list[tuple[float, str]]) -> float:
    """The threshold that fails the most bad answers while failing at most GOAL_BLOCK of the good ones, from
    (lowest claim support, label) of each tuning answer."""
    best, best_catch = 0.0, -1.0
    good = [s for s, label in scores if label == "good"]
    bad = [s for s, label in scores if label == "bad"]
    for threshold in sorted({round(s + 1e-6, 6) for s, _ in scores} | {0.5}):
        blocked = sum(s < threshold for s in good) / max(1, len(good))
        caught = sum(s < threshold for s in bad) / max(1, len(bad))
        if blocked <= GOAL_BLOCK and caught > best_catch:
            best, best_catch = threshold, caught
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--split", default="test", choices=["test", "tune", "all"])
    parser.add_argument("--llm", default=None, help="also run the LLM claim judge on this embedded model")
    parser.add_argument("--limit", type=int, default=None, help="answers for the LLM configuration")
    args = parser.parse_args()

    from smolcrew.config import ValidationSettings
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.claim_check import ClaimCheck
    from smolcrew.validators.rules import RuleCheck
    from smolcrew.validators.verifier import ClaimVerifier, train_verifier

    cache = smolcrew_home() / "cache"
    folder = train_verifier(cache, progress=lambda line: print(line, file=sys.stderr))
    verifier = ClaimVerifier.load(cache)
    settings = ValidationSettings(judge="none")
    rules = RuleCheck.from_settings(settings)

    tune = load("tune")
    probe = ClaimCheck(verifier, threshold=1.01, terms=False)
    scores = [(probe.check(_evidence(case)).confidence, case["label"]) for case in tune]
    tuned = tuned_threshold(scores)

    cases = load(args.split)
    configs = [
        run_config("rules", Cascade([rules]), cases),
        run_config("terms", Cascade([ClaimCheck()]), cases),
        run_config(f"verifier {tuned:.2f}", Cascade([ClaimCheck(verifier, tuned, terms=False)]), cases),
        run_config("rules+terms", Cascade([rules, ClaimCheck()]), cases),
        run_config(
            f"rules+terms+verifier {settings.claims_threshold:.2f}",
            Cascade([rules, ClaimCheck(verifier, settings.claims_threshold)]),
            cases,
        ),
        run_config(f"rules+terms+verifier {tuned:.2f}", Cascade([rules, ClaimCheck(verifier, tuned)]), cases),
    ]
    if args.llm:
        from smolcrew.backends import build_model
        from smolcrew.config import load_settings
        from smolcrew.validators.claim_judge import LLMClaimJudge

        model = build_model(load_settings(home=smolcrew_home(), llm={"backend": "embedded", "model": args.llm}))
        probe_judge = LLMClaimJudge(model, threshold=0.0)  # passes everything; its confidence is the lowest P(yes)
        llm_scores = []
        for number, case in enumerate(tune[: args.limit] if args.limit else tune, 1):
            llm_scores.append((probe_judge.check(_evidence(case)).confidence, case["label"]))
            if number % 25 == 0:
                print(f"llm threshold: {number}/{len(tune)} tuning answers scored", file=sys.stderr, flush=True)
        llm_tuned = tuned_threshold(llm_scores)
        print(f"llm P(yes) on the tuning split: AUC {_auc(llm_scores):.2f}, threshold {llm_tuned:.2f}", file=sys.stderr)
        subset = cases[: args.limit] if args.limit else cases
        configs.append(
            run_config(
                f"rules+terms+llm {args.llm} {llm_tuned:.2f}",
                Cascade([rules, ClaimCheck(), LLMClaimJudge(model, llm_tuned)]),
                subset,
                model,
            )
        )
    print(f"## Claim checks on {args.split} split of {SET.relative_to(ROOT)} ({len(cases)} answers)\n")
    rows = []
    for config in configs:
        per = config["ms_per_answer"] or {"p50": 0.0, "p95": 0.0}
        rows.append(
            [
                config["name"],
                pct(config["caught"], config["bad"]),
                pct(config["blocked"], config["good"]),
                str(_citation_only(config)),
                f"{per['p50']:.1f} / {per['p95']:.1f}",
            ]
        )
    header = ["configuration", "unsupported caught", "supported blocked", "of which no citation", "ms p50 / p95"]
    print(markdown_table(header, rows))
    keys = sorted({key for config in configs for key in config["per_category"]})
    print("\n### Per category (bad: share caught; good: share blocked)\n")
    print(
        markdown_table(
            ["category", *[config["name"] for config in configs]],
            [
                [key, *[pct(c["per_category"][key]["flagged"], c["per_category"][key]["n"]) for c in configs]]
                for key in keys
            ],
        )
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    print(
        f"\nverifier: {metrics['train_pairs']:,} synthetic pairs, trained in {metrics['train_s']:.0f} s; "
        f"held-out synthetic accuracy {metrics['held_out_accuracy']:.1%}; threshold tuned on the tuning split: "
        f"{tuned:.2f}"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "claims",
                "split": args.split,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "tuned_threshold": tuned,
                "verifier": metrics,
                "configs": configs,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"wrote {OUT.relative_to(ROOT)}")


def _auc(scores: list[tuple[float, str]]) -> float:
    """How often a supported answer's lowest score beats an unsupported one's (ties count half)."""
    good = [s for s, label in scores if label == "good"]
    bad = [s for s, label in scores if label == "bad"]
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / max(1, len(good) * len(bad))


def _citation_only(config: dict[str, Any]) -> int:
    """Supported answers blocked only because they cite no retrieved source (the citations rule, by design)."""
    return sum(
        1
        for d in config["details"]
        if d["label"] == "good"
        and d["outcome"] != "pass"
        and all(r.startswith("citations:") for v in d["verdicts"] if v["outcome"] != "pass" for r in v["reasons"])
    )


def _evidence(case: dict[str, Any]) -> Any:
    from smolcrew.validators.verdict import Evidence

    return Evidence.from_dict(case)


if __name__ == "__main__":
    main()
