"""Turns journaled step records back into what agents remember: smolagents memory steps, or a transcript.

Two uses, one path: a conversation continues with the manager's memory of earlier turns (`reset=False`), and a
run that stopped half-way (a crash, a killed process) is resumed from its journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smolagents.memory import ActionStep, MemoryStep, TaskStep
from smolagents.monitoring import AgentLogger, LogLevel, Timing
from smolagents.utils import AgentExecutionError

from smolcrew.memory.records import StepRecord

__all__ = ["agent_steps", "runs_of", "transcript"]

_QUIET = AgentLogger(level=LogLevel.OFF)


def runs_of(records: Sequence[StepRecord]) -> list[list[StepRecord]]:
    """Split records of several runs into runs, keeping their order."""
    runs: dict[str, list[StepRecord]] = {}
    for record in records:
        runs.setdefault(record.run_id, []).append(record)
    return list(runs.values())


def _action(record: StepRecord) -> ActionStep:
    payload = record.payload
    error = payload.get("error")
    return ActionStep(
        step_number=int(payload.get("step_number") or record.seq),
        timing=Timing(start_time=record.ts, end_time=record.ts),
        model_output=payload.get("model_output"),
        code_action=payload.get("code"),
        observations=payload.get("observations"),
        error=AgentExecutionError(str(error), _QUIET) if error else None,
        is_final_answer=bool(payload.get("is_final_answer")),
    )


def agent_steps(records: Sequence[StepRecord], agent: str = "manager") -> list[MemoryStep]:
    """The memory `agent` had after these runs: per run, its task and its top-level action steps.

    A run's task is the prompt recorded in its `run_start` record; runs without one are skipped (they did not
    go through the manager).
    """
    steps: list[MemoryStep] = []
    for run in runs_of(records):
        start = next((r for r in run if r.kind == "run_start"), None)
        prompt = start.payload.get("prompt") if start else None
        if not prompt:
            continue
        steps.append(TaskStep(task=str(prompt)))
        steps.extend(_action(r) for r in run if r.kind == "action" and r.agent == agent and not r.payload.get("parent"))
    return steps


def transcript(records: Sequence[StepRecord], *, keep: int = 6) -> str | None:
    """'User: ... / Assistant: ...' lines for the last `keep` finished runs, or None when there are none."""
    lines: list[str] = []
    for run in runs_of(records)[-keep:]:
        start = next((r for r in run if r.kind == "run_start"), None)
        end = next((r for r in reversed(run) if r.kind == "run_end"), None)
        if start is None or end is None:
            continue
        state = end.payload.get("state")
        answer: Any = end.payload.get("answer") if state == "success" else f"(no answer: {state})"
        lines += [f"User: {start.payload.get('task')}", f"Assistant: {answer}"]
    return "Conversation so far:\n" + "\n".join(lines) if lines else None
