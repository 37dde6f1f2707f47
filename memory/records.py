"""One normalised record per agent step, built from smolagents' memory steps.

`StepRecord` is what every memory sink stores and what a `RunResult` reports. The schema is versioned:
bump `SCHEMA_VERSION` when a payload key changes meaning.
"""

from __future__ import annotations

import ast
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from smolagents.memory import ActionStep, FinalAnswerStep, MemoryStep, PlanningStep

__all__ = ["SCHEMA_VERSION", "StepRecord", "called_names", "record_from_json", "record_from_step", "record_to_json"]

SCHEMA_VERSION = 1
OBSERVATION_LIMIT = 4_000
MODEL_OUTPUT_LIMIT = 32_000


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of one agent in one run.

    `kind` is `action`, `planning`, `final_answer` or `delegation`. `payload` holds the rest: `step_number`,
    `code`, `calls` (tool and agent names the code called), `observations` (truncated), `error`,
    `input_tokens`, `output_tokens`, `duration_s`, `parent` (the delegation this step ran under), `model_output`
    (the LLM's reply, for resume and replay), ... The Crew adds `run_start` (task, mode, plan) and `run_end` (state,
    answer, verdicts, audit head) records around each run.
    """

    run_id: str
    seq: int
    agent: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def called_names(code: str | None, known: set[str]) -> list[str]:
    """Names from `known` that `code` calls, in order of appearance (a tool or a managed agent)."""
    if not code or not known:
        return []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    calls = [
        (node.lineno, node.col_offset, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in known
    ]
    return [name for _, _, name in sorted(calls)]


def _truncate(text: str | None, limit: int = OBSERVATION_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit:,} more characters]"


def _model_text(output: Any) -> str | None:
    """The model's reply as text, kept whole (up to MODEL_OUTPUT_LIMIT) so a run can be resumed and replayed."""
    if output is None:
        return None
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    return _truncate(text, MODEL_OUTPUT_LIMIT)


def record_from_step(
    step: MemoryStep, *, run_id: str, seq: int, agent: str, known: set[str], parent: str | None
) -> StepRecord:
    """Normalise a smolagents step. `known` holds the tool and agent names whose calls are recorded."""
    payload: dict[str, Any] = {"parent": parent}
    if isinstance(step, ActionStep):
        kind = "action"
        usage = step.token_usage
        payload |= {
            "step_number": step.step_number,
            "code": step.code_action,
            "model_output": _model_text(step.model_output),
            "calls": called_names(step.code_action, known),
            "observations": _truncate(step.observations),
            "error": str(step.error) if step.error else None,
            "is_final_answer": step.is_final_answer,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "duration_s": step.timing.duration if step.timing and step.timing.end_time else None,
        }
    elif isinstance(step, PlanningStep):
        kind = "planning"
        usage = step.token_usage
        payload |= {
            "plan": step.plan,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "duration_s": step.timing.duration if step.timing and step.timing.end_time else None,
        }
    elif isinstance(step, FinalAnswerStep):
        kind = "final_answer"
        payload |= {"output": _truncate(str(step.output))}
    else:
        kind = type(step).__name__
    return StepRecord(run_id=run_id, seq=seq, agent=agent, kind=kind, payload=payload)


def record_to_json(record: StepRecord) -> str:
    """One line of JSON. ASCII-escaped, so lone surrogates and odd bytes survive; unknown types become str."""
    return json.dumps(record.to_dict(), ensure_ascii=True, default=str, separators=(",", ":"))


def record_from_json(text: str) -> StepRecord:
    data: dict[str, Any] = json.loads(text)
    return StepRecord(
        run_id=str(data["run_id"]),
        seq=int(data["seq"]),
        agent=str(data["agent"]),
        kind=str(data["kind"]),
        payload=dict(data.get("payload") or {}),
        ts=float(data["ts"]),
        schema=int(data.get("schema", 1)),
    )
