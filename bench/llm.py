"""Embedded LLM speed: raw llama.cpp calls vs the same model inside a smolagents CodeAgent loop.

    python bench/llm.py [--model qwen2.5-coder-0.5b|qwen2.5-coder-1.5b|all] [--quick]

For each model: load it (`LlamaCppModel(path, n_ctx=8192, max_tokens=128)`), then
1. warm-up: one agent run on the first task; its exact request (system prompt + task, stop sequences, so
   also the CodeAgent reply grammar) is captured and becomes the fixed raw prompt;
2. cold prompt: that request with `cache_prompt: false` and `max_tokens: 1`, for prompt tokens/s;
3. raw: `model.complete(request)` N times after 1 warm-up, taking turns with
4. agent, same prompt: the CodeAgent on the first task N times after 1 warm-up (isolates the agent loop's
   overhead; both sides find the prompt cached, and a passing load on the machine hits both alike);
5. agent, task mix: the CodeAgent once on each task (the system prompt stays cached, the task is new; a
   task that fails step 1 adds smolagents' max-steps fallback call, whose different prompt is not cached).
Tokens/s are compared on two bases: wall clock (completion tokens / wall seconds of `complete` or of
`generate`), and llama.cpp's own decode timings (predicted_n / predicted_ms) on both sides.
Writes bench/results/llm.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores, smolcrew_home

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
TASKS = (
    "What is 17*23+5?",
    "What is 2**10 - 24?",
    "Write a four-line poem about autumn leaves.",
    "List the first ten prime numbers.",
    "Convert 98.6 degrees Fahrenheit to Celsius.",
)
GOAL_RATIO = 0.9


def fingerprint() -> dict[str, str]:
    """What the numbers depend on besides this script: the backend and the agent prompt."""
    import hashlib

    files = [
        ROOT / "smolcrew" / "backends.py",
        ROOT / "agents" / "team.py",
        ROOT / "agents" / "prompts" / "compact_system.jinja",
    ]
    return {str(f.relative_to(ROOT)): hashlib.sha256(f.read_bytes()).hexdigest()[:12] for f in files if f.is_file()}


def rate(tokens: float, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def summarize(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate tokens/s over calls: total tokens / total time (wall and llama.cpp decode)."""
    tokens = sum(c["completion_tokens"] for c in calls)
    wall = sum(c["wall_s"] for c in calls)
    predicted_n = sum(c["timings"].get("predicted_n", 0) for c in calls)
    predicted_ms = sum(c["timings"].get("predicted_ms", 0.0) for c in calls)
    prompt_n = sum(c["timings"].get("prompt_n", 0) for c in calls)
    prompt_ms = sum(c["timings"].get("prompt_ms", 0.0) for c in calls)
    overhead_ms = [
        c["wall_s"] * 1000 - c["timings"].get("prompt_ms", 0.0) - c["timings"].get("predicted_ms", 0.0) for c in calls
    ]
    return {
        "calls": len(calls),
        "completion_tokens": tokens,
        "wall_s": wall,
        "wall_tokens_per_s": rate(tokens, wall),
        "decode_tokens_per_s": rate(predicted_n, predicted_ms / 1000),
        "prompt_tokens_evaluated": prompt_n,
        "prompt_tokens_per_s": rate(prompt_n, prompt_ms / 1000),
        "median_overhead_ms": statistics.median(overhead_ms) if overhead_ms else float("nan"),
        "per_call_wall_tokens_per_s": [rate(c["completion_tokens"], c["wall_s"]) for c in calls],
    }


def bench_model(name: str, *, n: int, tasks: tuple[str, ...], same_prompt_runs: int) -> dict[str, Any]:
    from smolagents import CodeAgent
    from smolagents.memory import ActionStep
    from smolagents.monitoring import LogLevel

    from smolcrew.agents.team import compact_prompts
    from smolcrew.backends import LlamaCppModel
    from smolcrew.gguf import resolve_gguf

    class TimedLlamaCppModel(LlamaCppModel):
        """Records each `generate` call as the agent sees it: wall time, tokens, llama.cpp timings."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.generate_calls: list[dict[str, Any]] = []
            self.last_request: dict[str, Any] | None = None

        def _prepare_completion_kwargs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            request = super()._prepare_completion_kwargs(*args, **kwargs)
            self.last_request = request  # what llama.cpp receives (complete() copies it before adding the grammar)
            return request

        def generate(self, messages: Any, stop_sequences: Any = None, **kwargs: Any) -> Any:
            started = time.perf_counter()
            message = super().generate(messages, stop_sequences=stop_sequences, **kwargs)
            wall = time.perf_counter() - started
            usage = (message.raw or {}).get("usage", {})
            self.generate_calls.append(
                {
                    "wall_s": wall,
                    "completion_tokens": int(usage.get("completion_tokens", 0)),
                    "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                    "timings": dict(self.last_timings),
                    "text": message.content,
                    "request": self.last_request,
                }
            )
            return message

    path = resolve_gguf(name, cache_dir=smolcrew_home() / "cache")
    cpu_start = cpu_snapshot()
    bench_started = time.perf_counter()
    model = TimedLlamaCppModel(path, n_ctx=8192, max_tokens=128)
    agent = CodeAgent(
        tools=[], model=model, max_steps=1, verbosity_level=LogLevel.OFF, prompt_templates=compact_prompts()
    )

    def run_agent(task: str) -> dict[str, Any]:
        first = len(model.generate_calls)
        started = time.perf_counter()
        result = agent.run(task, return_full_result=True)
        wall = time.perf_counter() - started
        steps = sum(isinstance(step, ActionStep) for step in agent.memory.steps)
        calls = model.generate_calls[first:]
        return {
            "task": task,
            "wall_s": wall,
            "steps": steps,
            "generate_calls": len(calls),
            "state": result.state,
            "output": result.output if isinstance(result.output, (int, float, str, type(None))) else str(result.output),
            "calls": calls,
        }

    # 1. warm-up agent run; its first request (the step-1 prompt) becomes the raw prompt
    warm_up = run_agent(tasks[0])
    request = model.generate_calls[0]["request"]
    model.generate_calls.clear()

    # 2. cold prompt: nothing cached, one generated token
    cold: list[dict[str, Any]] = []
    for _ in range(2 if n > 2 else 1):
        started = time.perf_counter()
        response = model.complete({**request, "cache_prompt": False, "max_tokens": 1})
        cold.append({"wall_s": time.perf_counter() - started, "timings": response.get("timings", {})})
    cold_prompt_tps = statistics.median(c["timings"].get("prompt_per_second", float("nan")) for c in cold)
    cold_prompt_n = cold[0]["timings"].get("prompt_n", 0)

    # 3 and 4, interleaved so that a passing load on the machine hits both sides alike: raw llama.cpp on the
    # fixed request, then the agent on the same task (same prompt, so both find it cached); round 0 warms up.
    raw_calls: list[dict[str, Any]] = []
    same_runs: list[dict[str, Any]] = []
    for index in range(max(n, same_prompt_runs) + 1):
        if index <= n:
            started = time.perf_counter()
            response = model.complete(dict(request))
            wall = time.perf_counter() - started
            usage = response.get("usage", {})
            call = {
                "wall_s": wall,
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "timings": dict(response.get("timings", {})),
                "text": response["choices"][0]["message"].get("content"),
            }
            if index > 0:
                raw_calls.append(call)
        if index <= same_prompt_runs:
            run = run_agent(tasks[0])
            if index > 0:
                same_runs.append(run)

    # 5. the agent on the task mix
    task_runs = [run_agent(task) for task in tasks]

    for run in [*same_runs, *task_runs]:
        for call in run["calls"]:
            call.pop("request", None)
    raw = summarize(raw_calls)
    same = summarize([c for r in same_runs for c in r["calls"]]) if same_runs else None
    mix = summarize([c for r in task_runs for c in r["calls"]])
    total_steps = sum(r["steps"] for r in task_runs)
    result = {
        "model": name,
        "other_processes_cores": other_cores(cpu_start, cpu_snapshot()),
        "gguf": str(path),
        "load_seconds": model.load_seconds,
        "first_agent_run_s": warm_up["wall_s"],
        "bench_seconds": time.perf_counter() - bench_started,
        "n_threads_default": max(1, min(os.cpu_count() or 1, 8)),
        "request": {"messages": request["messages"], "stop": request.get("stop"), "grammar": "CODE_REPLY_GRAMMAR"},
        "cold_prompt": {"prompt_tokens": cold_prompt_n, "prompt_tokens_per_s": cold_prompt_tps, "runs": cold},
        "raw": {**raw, "runs": raw_calls},
        "agent_same_prompt": {**same, "runs": same_runs} if same else None,
        "agent_tasks": {
            **mix,
            "runs": task_runs,
            "agent_run_wall_s": sum(r["wall_s"] for r in task_runs),
            "steps": total_steps,
            "seconds_per_step": sum(r["wall_s"] for r in task_runs) / total_steps if total_steps else float("nan"),
            "fallback_calls": sum(r["state"] == "max_steps_error" for r in task_runs),  # provide_final_answer
            "answered_in_step_1": sum(r["state"] == "success" and r["generate_calls"] == 1 for r in task_runs),
        },
        "ratio_wall_same_prompt": same["wall_tokens_per_s"] / raw["wall_tokens_per_s"] if same else None,
        "ratio_decode_same_prompt": same["decode_tokens_per_s"] / raw["decode_tokens_per_s"] if same else None,
        "ratio_wall_tasks": mix["wall_tokens_per_s"] / raw["wall_tokens_per_s"],
        "ratio_decode_tasks": mix["decode_tokens_per_s"] / raw["decode_tokens_per_s"],
    }
    return result


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def ratio_cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} {'✅' if value >= GOAL_RATIO else '❌'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", choices=[*MODELS, "all"])
    parser.add_argument("--quick", action="store_true", help="N=2, two tasks: a smoke test")
    args = parser.parse_args()
    names = list(MODELS) if args.model == "all" else [args.model]
    n = 2 if args.quick else 5
    tasks = TASKS[:2] if args.quick else TASKS
    same_prompt_runs = 2 if args.quick else n

    code = fingerprint()
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = []
    skipped: dict[str, str] = {}
    from smolcrew.errors import ModelUnavailableError

    for name in names:
        try:
            results.append(bench_model(name, n=n, tasks=tasks, same_prompt_runs=same_prompt_runs))
            gc.collect()  # frees the model before the next one loads
        except ModelUnavailableError as exc:
            skipped[name] = str(exc)
    elapsed = time.perf_counter() - started

    header = ["metric", *(r["model"] for r in results)]

    def row(label: str, key: Any) -> list[str]:
        return [label, *(key(r) for r in results)]

    rows = [
        row("model load (s)", lambda r: fmt(r["load_seconds"], 2)),
        row("first agent run after load (s, warm-up)", lambda r: fmt(r["first_agent_run_s"], 2)),
        row(
            "prompt tok/s (cold, whole prompt)",
            lambda r: f"{fmt(r['cold_prompt']['prompt_tokens_per_s'])} ({r['cold_prompt']['prompt_tokens']} tok)",
        ),
        row(f"raw complete: wall tok/s (N={n})", lambda r: fmt(r["raw"]["wall_tokens_per_s"])),
        row("raw complete: llama.cpp decode tok/s", lambda r: fmt(r["raw"]["decode_tokens_per_s"])),
        row("agent, same prompt: wall tok/s of generate", lambda r: fmt(r["agent_same_prompt"]["wall_tokens_per_s"])),
        row("agent, same prompt: llama.cpp decode tok/s", lambda r: fmt(r["agent_same_prompt"]["decode_tokens_per_s"])),
        row(f"agent, {len(tasks)} tasks: wall tok/s of generate", lambda r: fmt(r["agent_tasks"]["wall_tokens_per_s"])),
        row(
            f"agent, {len(tasks)} tasks: llama.cpp decode tok/s", lambda r: fmt(r["agent_tasks"]["decode_tokens_per_s"])
        ),
        row(
            f"agent, {len(tasks)} tasks: prompt tok/s (cached prefix)",
            lambda r: (
                f"{fmt(r['agent_tasks']['prompt_tokens_per_s'])} ({r['agent_tasks']['prompt_tokens_evaluated']} tok)"
            ),
        ),
        row("ratio agent ÷ raw, wall, same prompt (≥0.9)", lambda r: ratio_cell(r["ratio_wall_same_prompt"])),
        row("ratio agent ÷ raw, decode, same prompt (≥0.9)", lambda r: ratio_cell(r["ratio_decode_same_prompt"])),
        row("ratio agent ÷ raw, wall, task mix (≥0.9)", lambda r: ratio_cell(r["ratio_wall_tasks"])),
        row("ratio agent ÷ raw, decode, task mix (≥0.9)", lambda r: ratio_cell(r["ratio_decode_tasks"])),
        row(
            "overhead ms/call beyond llama.cpp: raw / agent",
            lambda r: f"{fmt(r['raw']['median_overhead_ms'])} / {fmt(r['agent_tasks']['median_overhead_ms'])}",
        ),
        row(
            "completion tokens/call: raw / agent tasks",
            lambda r: (
                f"{fmt(r['raw']['completion_tokens'] / r['raw']['calls'])} / "
                f"{fmt(r['agent_tasks']['completion_tokens'] / r['agent_tasks']['calls'])}"
            ),
        ),
        row(
            f"agent, {len(tasks)} tasks: generate calls (max-steps fallbacks)",
            lambda r: f"{r['agent_tasks']['calls']} ({r['agent_tasks']['fallback_calls']})",
        ),
        row("agent: s per step (agent.run wall / steps)", lambda r: fmt(r["agent_tasks"]["seconds_per_step"], 2)),
        row("agent: answered in step 1", lambda r: f"{r['agent_tasks']['answered_in_step_1']}/{len(tasks)}"),
        row("CPU cores busy with other processes (avg)", lambda r: fmt(r["other_processes_cores"], 2)),
    ]
    print(f"## Embedded LLM: raw llama.cpp vs CodeAgent loop ({platform.machine()}, {os.cpu_count()} CPUs)\n")
    if results:
        print(markdown_table(header, rows))
    for name, reason in skipped.items():
        print(f"\nskipped {name}: {reason}")
    load_after = os.getloadavg()
    print(f"\nload average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}; total {elapsed:.0f} s")

    out = Path(__file__).resolve().parent / "results" / "llm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "llm",
        "quick": args.quick,
        "n": n,
        "tasks": list(tasks),
        "goal_ratio": GOAL_RATIO,
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "elapsed_s": elapsed,
        "code": code,
        "code_changed_during_run": fingerprint() != code,
        "models": results,
        "skipped": skipped,
    }
    out.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
