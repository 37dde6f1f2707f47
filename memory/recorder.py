"""Collects the step records of one run, from the step callbacks of every agent in the crew.

Agents are built once per Crew and reused, so their callbacks look up the run in progress in a
`RecorderSlot` shared by the whole team. (Not a context variable: smolagents runs agent code in worker
threads, which do not inherit context.) A Crew runs one request at a time, so one slot per team suffices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from smolagents.memory import MemoryStep

from memory.records import StepRecord, record_from_step

__all__ = ["RecorderSlot", "RunRecorder"]

Listener = Callable[[StepRecord], None]


class RunRecorder:
    """The records of one run, in order, with the delegation each step ran under.

    Args:
        run_id: the run's id, stamped on every record.
        known: tool and agent names whose calls are picked out of each step's code.
        listeners: called with each record as it is made (live progress, memory sinks); a listener that
            raises is dropped from this run rather than breaking it.
    """

    def __init__(
        self,
        run_id: str,
        *,
        known: set[str],
        listeners: list[Listener] | None = None,
        conversation_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.conversation_id = conversation_id
        self.known = known
        self.records: list[StepRecord] = []
        self.listener_errors: list[str] = []
        self._listeners = list(listeners or [])
        self._stack: list[tuple[str, str | None]] = []  # (agent name, delegation id)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunRecorder({self.run_id!r}, {len(self.records)} records)"

    def _add(
        self, agent: str, kind: str, payload: dict[str, Any] | None = None, step: MemoryStep | None = None
    ) -> StepRecord:
        with self._lock:
            seq = len(self.records)
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
        return record

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

    def step_callback(self, step: MemoryStep, agent: Any = None) -> None:
        """Hand a finished step to the run in progress, if any."""
        if self.current is not None:
            self.current.on_step(step, getattr(agent, "name", None) or "manager")
