"""Why a run failed, told from its own records: recorded in its `run_end` (`cause`) and in `RunResult.cause`.

- `rejected`: the validation cascade or a person refused the answer;
- `tool`: a tool could not work (its model is missing, it crashed, it ran out of time);
- `call`: the agents' code did not parse or run (an unknown name, bad arguments to a tool, an exception);
- `steps`: the agents ran out of steps without such errors;
- `model`: the model backend failed;
- `error`: anything else.
Whether the plan picked the right specialists, or a successful answer was right, only a check written with the
task can tell (bench/task_checks.py adds `routing` and `answer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CALL_ERRORS", "RUN_RECORDS", "TOOL_ERRORS", "error_kinds", "failure_cause", "symptoms"]

CALL_ERRORS = {
    "InterpreterError",
    "ToolInputError",
    "SyntaxError",
    "IndentationError",
    "NameError",
    "TypeError",
    "AgentParsingError",
    "AgentToolCallError",
}
"""Exception types that mean the agent's code was wrong, wherever they were raised."""
TOOL_ERRORS = {"ModelUnavailableError"}
"""Exception types that mean a tool could not work, wherever they were raised."""
RUN_RECORDS = {"run_start", "run_end", "delegation"}
"""Record kinds the crew adds around the agents' steps."""
_FAILED_LINE = re.compile(r"Code execution failed at line '(?P<line>.*?)' due to: (?P<type>\w+)", re.DOTALL)
_PARSE = re.compile(r"Code parsing failed|Error in code parsing|Error while parsing|regex pattern .* was not found")
_MODEL = re.compile(r"Error in generating model output|Error in generating final LLM output")
_TIMEOUT = re.compile(r"exceeded the maximum execution time")
_REJECTED = re.compile(r"^(Check \w+ failed with error|validation failed)")


def error_kinds(error: str, tools: Iterable[str]) -> str:
    """`call`, `tool`, `model`, `rejected` or `steps` for one step's error message; `tools` are the tool names the
    step called."""
    if error.strip().startswith("Reached max steps"):
        return "steps"
    if _REJECTED.search(error.strip()):
        return "rejected"
    if _MODEL.search(error):
        return "model"
    if _PARSE.search(error):
        return "call"
    tools = list(tools)
    if _TIMEOUT.search(error):
        return "tool" if tools else "call"  # a slow tool, or the agent's own code looping
    failed = _FAILED_LINE.search(error)
    kind = failed.group("type") if failed else next(iter(re.findall(r"\b(\w+(?:Error|Exception))\b", error)), "")
    if kind in TOOL_ERRORS:
        return "tool"
    if kind in CALL_ERRORS or failed is None:
        return "call"
    line = failed.group("line")
    return "tool" if any(re.search(rf"\b{re.escape(name)}\s*\(", line) for name in tools) else "call"


def symptoms(steps: Sequence[Any], specialists: Iterable[str]) -> dict[str, int]:
    """How many steps failed of each kind (`error_kinds`), over a run's records; calls of `specialists` (the
    manager's delegations) are not tool calls."""
    specialists = set(specialists)
    counts: dict[str, int] = {}
    for step in steps:
        if getattr(step, "kind", "action") in RUN_RECORDS:
            continue  # the run's own error (in run_end) repeats what its steps said
        payload = getattr(step, "payload", None) or {}
        error = payload.get("error")
        if not error:
            continue
        tools = [name for name in payload.get("calls") or [] if name not in specialists and name != "final_answer"]
        kind = error_kinds(str(error), tools)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def failure_cause(state: str, counted: dict[str, int]) -> str | None:
    """The cause of a run that ended in `state` with these step `symptoms`; None for a success."""
    if state in ("success", "cancelled"):
        return None  # a cancelled run did not fail: someone stopped it
    if counted.get("tool"):
        return "tool"
    if state in ("rejected", "pending_approval"):
        return "rejected"
    if counted.get("call"):
        return "call"
    if counted.get("model"):
        return "model"
    if state == "max_steps_error":
        return "steps"
    return "error"
