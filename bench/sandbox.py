"""What the code sandbox costs (agents/sandbox.py): a step that calls one tool, through the bubblewrap child vs
smolagents' in-process interpreter, and the time to start a child.

    python bench/sandbox.py [--repeats 200]

The tool is a real smolcrew tool (`calculate`, no model), so the figures are the overhead of the executor: for
the sandbox, the JSON round trip to the child and back for the code and for the tool call. Goal (issue 12): tool
call overhead through the confinement ≤ 5 ms p50.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from smolagents.local_python_executor import LocalPythonExecutor

from smolcrew.agents.sandbox import SandboxedExecutor, sandbox_problem
from smolcrew.tools.arithmetic import Calculate

CODE = "result = calculate(expression='86.40 / 4')\nresult"


def _timed(run: Any, repeats: int) -> list[float]:
    run(CODE)  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(CODE)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"| {name} | {statistics.median(ordered):.2f} | {p90:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if (problem := sandbox_problem()) is not None:
        raise SystemExit(f"no sandbox here: {problem}")
    tools = {"calculate": Calculate(), "final_answer": lambda answer: answer}
    local = LocalPythonExecutor([])
    local.send_tools(tools)
    folder = Path(tempfile.mkdtemp(prefix="smolcrew-sandbox-bench-"))
    sandboxed = SandboxedExecutor([], writable=folder / "runs", hidden=[folder / "home"])
    sandboxed.send_tools(tools)
    try:
        in_process = _timed(local, args.repeats)
        confined = _timed(sandboxed, args.repeats)
        starts = []
        for _ in range(10):
            fresh = SandboxedExecutor([], writable=folder / "runs", hidden=[folder / "home"])
            fresh.send_tools(tools)
            started = time.perf_counter()
            fresh("1")
            starts.append((time.perf_counter() - started) * 1000)
            fresh.cleanup()
    finally:
        sandboxed.cleanup()
    overhead = [c - statistics.median(in_process) for c in confined]
    print(f"one step calling one tool, ms, {args.repeats} repeats\n")
    print("| executor | median | p90 |\n|---|---:|---:|")
    print(_row("in process (smolagents LocalPythonExecutor)", in_process))
    print(_row("bubblewrap child (SandboxedExecutor)", confined))
    print(_row("overhead of the sandbox", overhead))
    print(_row("starting a child (once per agent per crew)", starts))


if __name__ == "__main__":
    main()
