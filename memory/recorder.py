"""Collects the step records of one run, from the step callbacks of every agent in the crew.

Agents are built once per Crew and reused, so their callbacks look up the run in progress in a
`RecorderSlot` shared by the whole team. (Not a context variable: smolagents runs agent code in worker
threads, which do not inherit context.) A Crew runs one request at a time, so one slot per team suffices.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from smolagents.memory import MemoryStep

from smolcrew.errors import RunCancelled
from smolcrew.memory.records import StepRecord, record_from_step

__all__ = ["RecorderSlot", "RunRecorder", "ToolCall"]

Listener = Callable[[StepRecord], None]
TOOL_OUTPUT_LIMIT = 8_000


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of one tool: in which step, who called it, with what, and what came back (as text)."""

    seq: int
    agent: str
    tool: str
    arguments: dict[str, Any]
    output: str | None
    error: str | None
    duration_ms: float
    value: Any = None
    """The result itself when it is plain JSON data (a dict, a list, text, a number): what a replay returns."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "agent": self.agent,
            "tool": self.tool,
            "arguments": {
                key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
                for key, value in self.arguments.items()
            },
            "output": self.output,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "value": self.value,
        }


def _plain_data(value: Any) -> Any:
    """`value` when JSON holds it exactly and it is not huge, else None."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return json.loads(text) if len(text) <= TOOL_OUTPUT_LIMIT and json.loads(text) == value else None


ToolResults = Callable[[str, dict[str, Any]], Any]
"""`results(tool_name, arguments)`: a recorded result to return instead of calling the tool (replay); raising
LookupError means "nothing recorded: call the tool"."""


class RunRecorder:
    """The records of one run, in order, with the delegation each step ran under.

    Args:
        run_id: the run's id, stamped on every record.
        known: tool and agent names whose calls are picked out of each step's code.
        listeners: called with each record as it is made (live progress, memory sinks); a listener that
            raises is dropped from this run rather than breaking it.
        cancelled: asked after each step is recorded; True stops the run there (raises RunCancelled).
    """

    def __init__(
        self,
        run_id: str,
        *,
        known: set[str],
        listeners: list[Listener] | None = None,
        conversation_id: str | None = None,
        on_tool_call: Callable[[ToolCall], object] | None = None,
        tool_results: ToolResults | None = None,
        records: list[StepRecord] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.run_id = run_id
        self.conversation_id = conversation_id
        self.known = known
        self.records: list[StepRecord] = list(records or [])
        """Records so far (a resumed run starts with its journaled ones; new records continue their seq)."""
        self.listener_errors: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.answer_checks: dict[str, Callable[..., bool]] = {}
        """Extra final-answer checks for this run, by agent name (the validation cascade; see agents/team.py)."""
        self._on_tool_call = on_tool_call
        self._tool_results = tool_results
        self._listeners = list(listeners or [])
        self._cancelled = cancelled
        self._stack: list[tuple[str, str | None]] = []  # (agent name, delegation id)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunRecorder({self.run_id!r}, {len(self.records)} records)"

    def _add(
        self, agent: str, kind: str, payload: dict[str, Any] | None = None, step: MemoryStep | None = None
    ) -> StepRecord:
        with self._lock:
            seq = self.records[-1].seq + 1 if self.records else 0
            parent = self._stack[-1][1] if self._stack else None
            if step is not None:
                record = record_from_step(
                    step, run_id=self.run_id, seq=seq, agent=agent, known=self.known, parent=parent
                )
            else:
                record = StepRecord(self.run_id, seq, agent, kind, {"parent": parent, **(payload or {})})
            if self.conversation_id is not None:
                record.payload["conversation_id"] = self.conversation_id
            self.records.append(record)
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception as exc:  # a broken listener must never break the agent loop
                self._listeners.remove(listener)
                self.listener_errors.append(f"{getattr(listener, '__name__', listener)}: {exc!r}")
        if record.kind not in ("run_start", "run_end") and self._cancelled is not None and self._cancelled():
            raise RunCancelled(f"run {self.run_id} was cancelled at step {record.seq}")  # once recorded: none lost
        return record

    def mark(self, kind: str, payload: dict[str, Any]) -> StepRecord:
        """A crew-level record (`run_start`, `run_end`): not a step of any agent."""
        return self._add("crew", kind, payload)

    def step(self, kind: str, payload: dict[str, Any]) -> StepRecord:
        """A step of the agent now running that no smolagents loop made (a direct reply)."""
        return self._add(self.current_agent, kind, payload)

    @property
    def current_agent(self) -> str:
        return self._stack[-1][0] if self._stack else "user"

    def _recorded(self, name: str, arguments: dict[str, Any], call: Callable[[], Any]) -> Any:
        if self._tool_results is None:
            return call()
        try:
            return self._tool_results(name, arguments)
        except LookupError:
            return call()

    def call_tool(self, tool: Any, arguments: dict[str, Any], call: Callable[[], Any]) -> Any:
        """Run (or, in a replay, look up) one tool call and record it."""
        started = time.perf_counter()
        seq = self.records[-1].seq + 1 if self.records else 0  # the step this call belongs to
        output: Any = None
        error: str | None = None
        try:
            output = self._recorded(tool.name, arguments, call)
            return output
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            text = None if output is None else str(output)
            if text is not None and len(text) > TOOL_OUTPUT_LIMIT:
                text = text[:TOOL_OUTPUT_LIMIT] + f"... [{len(text) - TOOL_OUTPUT_LIMIT:,} more characters]"
            took_ms = (time.perf_counter() - started) * 1000
            record = ToolCall(
                seq, self.current_agent, tool.name, dict(arguments), text, error, took_ms, _plain_data(output)
            )
            self.tool_calls.append(record)
            if self._on_tool_call is not None:
                try:
                    self._on_tool_call(record)
                except Exception as exc:  # like step listeners: never break the agent loop
                    self._on_tool_call = None
                    self.listener_errors.append(f"tool call listener: {exc!r}")

    def on_step(self, step: MemoryStep, agent_name: str) -> None:
        self._add(agent_name, "", step=step)

    @contextmanager
    def agent(self, name: str) -> Iterator[None]:
        """Mark `name` as the agent now running at top level (the manager, or the router)."""
        self._stack.append((name, self._stack[-1][1] if self._stack else None))
        try:
            yield
        finally:
            self._stack.pop()

    @contextmanager
    def delegation(self, to: str, task: str) -> Iterator[StepRecord]:
        """Record that the agent now running hands `task` to `to`; steps inside run under this delegation."""
        by = self._stack[-1][0] if self._stack else "user"
        record = self._add(by, "delegation", {"to": to, "task": task})
        delegation_id = f"{self.run_id}:{record.seq}"
        self._stack.append((to, delegation_id))
        try:
            yield record
        finally:
            self._stack.pop()

    def delegations(self) -> list[tuple[str, str, str]]:
        """(from, to, task) for every delegation, in order."""
        return [(r.agent, r.payload["to"], r.payload["task"]) for r in self.records if r.kind == "delegation"]


class RecorderSlot:
    """Holds the recorder of the run in progress; its `step_callback` is what every team agent carries."""

    def __init__(self) -> None:
        self.current: RunRecorder | None = None

    def __repr__(self) -> str:
        return f"RecorderSlot({self.current!r})"

    @contextmanager
    def recording(self, recorder: RunRecorder) -> Iterator[RunRecorder]:
        self.current = recorder
        try:
            yield recorder
        finally:
            self.current = None

    def around_tool_call(self, tool: Any, arguments: dict[str, Any], call: Callable[[], Any]) -> Any:
        """The `around_call` hook of every team tool: records the call in the run in progress."""
        if self.current is None:
            return call()
        return self.current.call_tool(tool, arguments, call)

    def answer_check(self, agent_name: str) -> Callable[..., bool]:
        """A smolagents final-answer check for `agent_name` that applies the run's own checks, if any."""

        def check(answer: Any, memory: Any = None, agent: Any = None) -> bool:
            run_check = self.current.answer_checks.get(agent_name) if self.current else None
            return True if run_check is None else run_check(answer, memory, agent=agent)

        check.__name__ = f"validate_{agent_name}"
        return check

    def step_callback(self, step: MemoryStep, agent: Any = None) -> None:
        """Hand a finished step to the run in progress, if any."""
        if self.current is not None:
            self.current.on_step(step, getattr(agent, "name", None) or "manager")
