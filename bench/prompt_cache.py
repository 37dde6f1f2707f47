"""Prompt cache on disk: the first step of each agent in a fresh process, with and without the saved prompts.

    python bench/prompt_cache.py [--agents manager,audio,...] [--max-tokens N] [--repeat N] [--e2e]

Each phase runs in its own fresh process, building the crew as `Crew.from_config` does (embedded 0.5B, the real
manager and specialist prompts; memory off), and makes each agent's first model call: its system prompt and a
new task, through the agent's own model (specialists: their grammar-steered model), with the agent's stop
sequences. Per call: wall time, llama.cpp's `prompt_n` / `prompt_ms`, what the cache did.
1. `cold`: an empty cache folder (today's fresh process); saves one file per agent;
2. `fresh` (`--repeat` times): a new process on that folder: round 1 restores each agent's prompt from disk
   (fresh-process first step); round 2 repeats the same calls in the same process after the others ran (warm
   first step: the slot held another agent's prompt, so it restores again in-process); then each agent twice
   in a row (the slot keeps the prompt: the lower bound);
3. `off`: a new process with the cache off (`llm.prompt_cache_mb = 0`): round 1 cold, round 2 warm (llama.cpp's
   own in-RAM prompt cache only).
Goal: fresh ÷ warm first-step time ≤ 1.5 per agent (medians over the fresh processes; also shown for the
prefill alone, the step minus generation, which is what the cache changes). Other processes' CPU use is
printed per phase: on a shared machine, compare numbers only where it is near zero.
Writes bench/results/prompt_cache.json.

`--e2e`: instead, `crew.run("Transcribe <an espeak-ng wav>")` twice per process, in three fresh processes (an
empty prompt cache, the saved one, the cache off); writes bench/results/prompt_cache_e2e.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores, smolcrew_home

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AGENTS = ("manager", "audio", "vision", "language", "generation", "research")
TASKS = {
    "manager": ("Transcribe the meeting recording and list its action items.", "What is 17*23+5?"),
    "audio": ("What can you find out from a voice recording?", "Which languages can you transcribe?"),
    "vision": ("What can you tell about a photo of a street?", "How do you read text in a picture?"),
    "language": ("Summarize: the meeting moved the launch to May.", "What is 17*23+5?"),
    "generation": ("Draw a red circle on a white background.", "Make a short jingle about coffee."),
    "research": ("What did we decide about the launch date last week?", "Find notes about the budget."),
}
GOAL_RATIO = 1.5
E2E = ("e2e-cold", "e2e-fresh", "e2e-off")


def _first_step_messages(agent: Any, task: str, *, managed: bool) -> list[Any]:
    from smolagents.agents import populate_template
    from smolagents.memory import SystemPromptStep, TaskStep

    if managed:
        template = agent.prompt_templates["managed_agent"]["task"]
        task = populate_template(template, variables={"name": agent.name, "task": task})
    agent.memory.reset()
    agent.memory.system_prompt = SystemPromptStep(system_prompt=agent.system_prompt)
    agent.memory.steps = [TaskStep(task=task)]
    return list(agent.write_memory_to_messages())


def _call(crew: Any, name: str, task: str) -> dict[str, Any]:
    from smolcrew.agents.specialist_model import SpecialistModel

    team = crew.team
    agent = team.manager if name == "manager" else team.specialists[name]
    messages = _first_step_messages(agent, task, managed=name != "manager")
    stops = ["Observation:", "Calling tools:", agent.code_block_tags[1]]
    llm = crew.model
    extra: dict[str, Any] = {}
    if isinstance(agent.model, SpecialistModel):  # its grammar, but always the model (no direct call)
        extra["grammar"] = agent.model.grammar(agent.model.plan_step(messages)[1])
    llm.last_timings = {}
    started = time.perf_counter()
    message = llm.generate(messages, stop_sequences=stops, **extra)
    wall = time.perf_counter() - started
    cache = llm.prompt_cache
    timings = dict(llm.last_timings)
    return {
        "agent": name,
        "task": task,
        "wall_s": wall,
        "prompt_n": timings.get("prompt_n"),
        "prompt_ms": timings.get("prompt_ms"),
        "predicted_n": timings.get("predicted_n"),
        "predicted_ms": timings.get("predicted_ms"),
        "prompt_tokens": (message.token_usage.input_tokens if message.token_usage else None),
        "event": cache.last_event if cache else "off",
        "key": cache.last_key if cache else None,
        "restore_ms": (cache.last_restore.get("timings") or {}).get("restore_ms") if cache else None,
        "reply": message.content,
    }


def child(phase: str, home: Path, gguf: Path, agents: list[str], max_tokens: int) -> dict[str, Any]:
    """One fresh process: build the crew, make the phase's calls, report them."""
    from smolcrew import Crew

    started = time.perf_counter()
    llm = {"backend": "embedded", "model_path": str(gguf), "max_tokens": max_tokens}
    if phase == "off":
        llm["prompt_cache_mb"] = 0
    crew = Crew.from_config(home=str(home), llm=llm, memory={"enabled": False}, validation={"enabled": False})
    crew.team  # noqa: B018 - builds the model and the agents before the clock starts
    built = time.perf_counter() - started
    rounds: dict[str, list[dict[str, Any]]] = {}
    if phase == "cold":
        rounds["first"] = [_call(crew, name, TASKS[name][0]) for name in agents]
    else:
        rounds["first"] = [_call(crew, name, TASKS[name][1]) for name in agents]
        rounds["warm"] = [_call(crew, name, TASKS[name][1]) for name in agents]
    if phase == "fresh":
        twice = []
        for name in agents:
            _call(crew, name, TASKS[name][0])
            twice.append(_call(crew, name, TASKS[name][1]))
        rounds["same_agent_twice"] = twice
    cache = crew.model.prompt_cache
    files = {}
    if cache is not None:
        files = {p.name: p.stat().st_size for p in sorted(cache.folder.glob("*.bin"))}
    return {
        "phase": phase,
        "build_s": built,
        "load_s": crew.model.load_seconds,
        "rounds": rounds,
        "files": files,
        "stats": repr(cache.stats) if cache else None,
    }


SPEECH = "Hello team. The launch moves to May. Alice will update the budget by Friday."


def e2e_child(phase: str, home: Path, gguf: Path, max_tokens: int) -> dict[str, Any]:
    """One fresh process: the crew on a one-tool request (a real espeak-ng wav), twice; every model call timed."""
    from smolcrew import Crew

    wav = home / "meeting.wav"
    if not wav.exists():
        subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True)
    llm: dict[str, Any] = {"backend": "embedded", "model_path": str(gguf), "max_tokens": max_tokens}
    if phase == "e2e-off":
        llm["prompt_cache_mb"] = 0
    started = time.perf_counter()
    crew = Crew.from_config(home=str(home), llm=llm, memory={"enabled": False})
    model = crew.model
    calls: list[dict[str, Any]] = []
    complete = model.complete

    def timed(request: dict[str, Any]) -> dict[str, Any]:
        began = time.perf_counter()
        response = complete(request)
        timings = response.get("timings", {})
        cache = model.prompt_cache
        calls.append(
            {
                "wall_s": time.perf_counter() - began,
                "prompt_n": timings.get("prompt_n"),
                "prompt_ms": timings.get("prompt_ms"),
                "predicted_ms": timings.get("predicted_ms"),
                "event": cache.last_event if cache else "off",
            }
        )
        return response

    model.complete = timed  # type: ignore[method-assign]
    built = time.perf_counter() - started
    runs = []
    for _ in range(2):
        first = len(calls)
        began = time.perf_counter()
        result = crew.run(f"Transcribe {wav}")
        runs.append(
            {
                "wall_s": time.perf_counter() - began,
                "state": result.state,
                "agents": list(result.agents),
                "answer": str(result.answer)[:200],
                "calls": calls[first:],
            }
        )
    crew.close()
    return {"phase": phase, "build_s": built, "load_s": model.load_seconds, "runs": runs}


def e2e(gguf: Path, max_tokens: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="smolcrew-bench-prompt-cache-e2e-"))
    try:
        phases = [run_phase(phase, home, gguf, [], max_tokens) for phase in ("e2e-cold", "e2e-fresh", "e2e-off")]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    header = ["process", "run", "wall s", "model calls (cache)", "prompt tokens", "prompt s", "generation s"]
    rows = []
    for phase in phases:
        for index, run in enumerate(phase["runs"]):
            calls = run["calls"]
            rows.append(
                [
                    phase["phase"],
                    f"{'1 (fresh process)' if index == 0 else '2 (warm)'}: {run['state']}",
                    fmt(run["wall_s"]),
                    f"{len(calls)} ({', '.join(c['event'] for c in calls)})",
                    str(sum(c["prompt_n"] or 0 for c in calls)),
                    fmt(sum(c["prompt_ms"] or 0 for c in calls) / 1000),
                    fmt(sum(c["predicted_ms"] or 0 for c in calls) / 1000),
                ]
            )
    print(f"## Prompt cache: `crew.run('Transcribe meeting.wav')` ({platform.machine()}, {os.cpu_count()} CPUs)\n")
    print(markdown_table(header, rows))
    print("\nother processes' cores: " + ", ".join(f"{p['phase']} {fmt(p['other_processes_cores'])}" for p in phases))
    out = Path(__file__).resolve().parent / "results" / "prompt_cache_e2e.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "prompt_cache_e2e", "phases": phases}, indent=2, default=str))


def run_phase(phase: str, home: Path, gguf: Path, agents: list[str], max_tokens: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", phase, "--home", str(home), "--gguf", str(gguf)]
    command += ["--agents", ",".join(agents), "--max-tokens", str(max_tokens)]
    started, cpu_start = time.perf_counter(), cpu_snapshot()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    result["other_processes_cores"] = other_cores(cpu_start, cpu_snapshot())
    return result


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def prefill_s(call: dict[str, Any]) -> float:
    """Everything but generation: restore, prompt processing, Python and HTTP overheads."""
    return float(call["wall_s"] - (call["predicted_ms"] or 0.0) / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--max-tokens", type=int, default=512, help="as the crew (llm.max_tokens)")
    parser.add_argument("--repeat", type=int, default=2, help="fresh processes on the saved cache (medians)")
    parser.add_argument("--e2e", action="store_true", help="the whole crew on a one-tool request instead")
    parser.add_argument("--child", choices=["cold", "fresh", "off", *E2E], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--gguf", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    agents = [a for a in args.agents.split(",") if a]
    if args.child in E2E:
        print(json.dumps(e2e_child(args.child, args.home, args.gguf, args.max_tokens), default=str))
        return
    if args.child:
        print(json.dumps(child(args.child, args.home, args.gguf, agents, args.max_tokens), default=str))
        return

    from smolcrew.gguf import resolve_gguf

    gguf = resolve_gguf("qwen2.5-coder-0.5b", cache_dir=smolcrew_home() / "cache")
    if args.e2e:
        e2e(gguf, args.max_tokens)
        return
    load_before = os.getloadavg()
    cpu_start = cpu_snapshot()
    home = Path(tempfile.mkdtemp(prefix="smolcrew-bench-prompt-cache-"))
    try:
        cold_phase = run_phase("cold", home, gguf, agents, args.max_tokens)
        fresh_phases = [run_phase("fresh", home, gguf, agents, args.max_tokens) for _ in range(args.repeat)]
        off_phase = run_phase("off", home, gguf, agents, args.max_tokens)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    busy = other_cores(cpu_start, cpu_snapshot())

    def by_agent(phase: dict[str, Any], round_: str) -> dict[str, dict[str, Any]]:
        return {call["agent"]: call for call in phase["rounds"][round_]}

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    cold, off, off_warm = by_agent(cold_phase, "first"), by_agent(off_phase, "first"), by_agent(off_phase, "warm")
    fresh = [by_agent(phase, "first") for phase in fresh_phases]
    warm = [by_agent(phase, "warm") for phase in fresh_phases]
    files = cold_phase["files"]
    rows, summary = [], {}
    for name in agents:
        size = next((s for f, s in files.items() if f.split(".")[0] in _keys_of(cold_phase, name)), None)
        wall_ratio = median([f[name]["wall_s"] / w[name]["wall_s"] for f, w in zip(fresh, warm, strict=True)])
        prefill_ratio = median([prefill_s(f[name]) / prefill_s(w[name]) for f, w in zip(fresh, warm, strict=True)])
        first = fresh[0][name]
        summary[name] = {"wall_ratio": wall_ratio, "prefill_ratio": prefill_ratio}
        rows.append(
            [
                name,
                f"{cold[name]['prompt_n']} → {first['prompt_n']} ({first['event']})",
                f"{fmt(cold[name]['prompt_ms'] / 1000)} / {fmt(median([f[name]['prompt_ms'] / 1000 for f in fresh]))}",
                fmt(median([f[name]["restore_ms"] or 0.0 for f in fresh])),
                fmt(size / 2**20, 1) if size else "n/a",
                f"{fmt(prefill_s(cold[name]))} / {fmt(median([prefill_s(f[name]) for f in fresh]))} / "
                f"{fmt(median([prefill_s(w[name]) for w in warm]))}",
                f"{fmt(median([f[name]['wall_s'] for f in fresh]))} / {fmt(median([w[name]['wall_s'] for w in warm]))}",
                f"{wall_ratio:.2f} {'✅' if wall_ratio <= GOAL_RATIO else '❌'}",
                f"{prefill_ratio:.2f}",
                f"{off[name]['wall_s'] / off_warm[name]['wall_s']:.2f}",
            ]
        )
    header = [
        "agent",
        "prompt tokens: cold → restored",
        "prompt s: cold / restored",
        "restore ms",
        "file MiB",
        "prefill s: cold / fresh / warm",
        "step s: fresh / warm",
        f"fresh ÷ warm (≤{GOAL_RATIO})",
        "fresh ÷ warm, prefill",
        "cache off: fresh ÷ warm",
    ]
    print(f"## Prompt cache: first step per agent ({platform.machine()}, {os.cpu_count()} CPUs)\n")
    print(markdown_table(header, rows))
    cold_total = sum(prefill_s(c) for c in cold.values())
    fresh_total = median([sum(prefill_s(c) for c in f.values()) for f in fresh])
    print(
        f"\nprefill of all {len(agents)} first steps: cold {cold_total:.1f} s, fresh process with the cache "
        f"{fresh_total:.1f} s; {len(files)} files, {sum(files.values()) / 2**20:.1f} MiB; "
        f"fresh ÷ warm over {args.repeat} fresh processes (medians); prefill = step wall minus generation"
    )
    load_after = os.getloadavg()
    phase_busy = ", ".join(
        f"{p['phase']} {fmt(p['other_processes_cores'])}" for p in (cold_phase, *fresh_phases, off_phase)
    )
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}; other processes' cores by phase:")
    print(phase_busy)
    out = Path(__file__).resolve().parent / "results" / "prompt_cache.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "prompt_cache",
        "agents": agents,
        "max_tokens": args.max_tokens,
        "repeat": args.repeat,
        "goal_ratio": GOAL_RATIO,
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "other_processes_cores": busy,
        "summary": summary,
        "phases": {"cold": cold_phase, "fresh": fresh_phases, "off": off_phase},
    }
    out.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def _keys_of(phase: dict[str, Any], name: str) -> set[str]:
    return {call["key"] for call in phase["rounds"]["first"] if call["agent"] == name and call.get("key")}


if __name__ == "__main__":
    main()
