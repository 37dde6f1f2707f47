"""Replay a recorded run offline: the model's recorded replies and the tools' recorded results stand in for the
real ones, and every step is compared with the recording. `from_step` forks: steps before it are replayed, the
rest run live (the configured model and real tools). A recorded run that still replays the same is a regression
test (`smolcrew replay RUN` exits 1 on any divergence).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from smolcrew.errors import ModelUnavailableError, RunNotFoundError

if TYPE_CHECKING:
    from smolcrew.crew import Crew
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunResult

__all__ = ["Divergence", "ReplayModel", "ReplayReport", "replay"]

COMPARED = ("agent", "kind", "code", "calls", "observations", "error", "output", "to", "task")
"""What must match between a recorded step and its replay (ids, times and token counts may differ)."""


class ReplayModel(Model):
    """Answers each model call with the next recorded reply; once the recording runs out (or a fork point is
    passed) it asks `live`, or fails when there is none."""

    def __init__(self, replies: Sequence[str], *, live: Model | None = None) -> None:
        super().__init__(model_id="replay")
        self._replies = deque(replies)
        self._live = live
        self._lock = threading.Lock()
        self.replayed = 0
        self.live_calls = 0

    def __repr__(self) -> str:
        return f"ReplayModel({len(self._replies)} recorded replies left, live={self._live is not None})"

    def generate(self, messages: list[Any], stop_sequences: list[str] | None = None, **kwargs: Any) -> ChatMessage:
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
            if reply is not None:
                self.replayed += 1
        if reply is not None:
            return ChatMessage(role=MessageRole.ASSISTANT, content=reply, token_usage=TokenUsage(0, 0))
        if self._live is None:
            raise ModelUnavailableError(
                "the recording has no more model replies: the replay asked for more steps than the run took",
                backend="replay",
                fix="compare the divergences reported so far, or replay with --from-step to continue live",
            )
        self.live_calls += 1
        return self._live.generate(messages, stop_sequences=stop_sequences, **kwargs)


class _RecordedTools:
    """Recorded tool results, per tool name in call order; live calls (None) after the fork point."""

    def __init__(self, calls: Sequence[dict[str, Any]], *, live: bool) -> None:
        self.live = live
        self._by_tool: dict[str, deque[dict[str, Any]]] = {}
        for call in calls:
            self._by_tool.setdefault(str(call["tool"]), deque()).append(call)
        self._lock = threading.Lock()

    def __call__(self, tool: str, arguments: dict[str, Any]) -> Any:
        with self._lock:
            queue = self._by_tool.get(tool)
            call = queue.popleft() if queue else None
        if call is None and self.live:
            raise LookupError(tool)  # past the fork point: the recorder calls the real tool
        if call is None:
            raise ModelUnavailableError(
                f"the recording has no more results for tool {tool!r}: the replay called it more often than the run",
                backend="replay",
                fix="see the divergences; replay with --from-step to run the rest live",
            )
        if call.get("error"):
            raise RuntimeError(call["error"])
        return call["value"] if call.get("value") is not None else call.get("output")


@dataclass(frozen=True, slots=True)
class Divergence:
    seq: int
    field: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"step {self.seq}: {self.field} was {self.recorded!r:.80} now {self.replayed!r:.80}"


@dataclass(frozen=True)
class ReplayReport:
    run_id: str
    replay_run_id: str
    recorded_answer: Any
    answer: Any
    state: str
    divergences: tuple[Divergence, ...] = ()
    from_step: int | None = None
    replayed_replies: int = 0
    live_replies: int = 0
    result: RunResult | None = field(default=None, repr=False)

    @property
    def same(self) -> bool:
        return not self.divergences and self.answer == self.recorded_answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replay_run_id": self.replay_run_id,
            "same": self.same,
            "recorded_answer": self.recorded_answer,
            "answer": self.answer,
            "state": self.state,
            "from_step": self.from_step,
            "replayed_replies": self.replayed_replies,
            "live_replies": self.live_replies,
            "divergences": [
                {"seq": d.seq, "field": d.field, "recorded": d.recorded, "replayed": d.replayed}
                for d in self.divergences
            ],
        }


def _steps(records: Sequence[StepRecord]) -> list[StepRecord]:
    return [r for r in records if r.kind not in ("run_start", "run_end")]


def compare(recorded: Sequence[StepRecord], replayed: Sequence[StepRecord]) -> list[Divergence]:
    """Step-by-step differences in what the agents did (see COMPARED)."""
    found: list[Divergence] = []
    old, new = _steps(recorded), _steps(replayed)
    for number, (a, b) in enumerate(zip(old, new, strict=False)):
        for name in COMPARED:
            left = a.agent if name == "agent" else a.kind if name == "kind" else a.payload.get(name)
            right = b.agent if name == "agent" else b.kind if name == "kind" else b.payload.get(name)
            if left != right:
                found.append(Divergence(number, name, left, right))
    if len(old) != len(new):
        found.append(Divergence(min(len(old), len(new)), "steps", len(old), len(new)))
    return found


def replay(crew: Crew, run_id: str, *, from_step: int | None = None) -> ReplayReport:
    """Re-run `run_id` with its recorded model replies and tool results (see module docstring).

    `crew` gives the settings, journal and audit log; the replay runs in a new Crew built from its settings,
    and is itself recorded as a new run (a fork).

    Raises:
        RunNotFoundError: no journal for the run, or it was recorded without a run_start record.
    """
    from smolcrew.crew import Crew
    from smolcrew.run import journal_records

    records = journal_records(crew.mirror, run_id)
    start = next((r for r in records if r.kind == "run_start"), None)
    end = next((r for r in reversed(records) if r.kind == "run_end"), None)
    if start is None:
        raise RunNotFoundError(f"run {run_id!r} cannot be replayed: it has no run_start record (an older smolcrew)")
    cut = from_step if from_step is not None else len(records) + 1
    steps = _steps(records)
    replies = [
        str(r.payload["model_output"]) for r in steps[:cut] if r.kind == "action" and r.payload.get("model_output")
    ]
    calls = [e.body for e in crew.audit.entries(run_id) if e.kind == "tool_call"]
    cut_seq = steps[cut].seq if cut < len(steps) else None
    live = crew.model if from_step is not None else None
    tools = _RecordedTools(
        [c for c in calls if cut_seq is None or int(c.get("seq", 0)) < cut_seq], live=live is not None
    )
    model = ReplayModel(replies, live=live)
    settings = crew.settings.model_copy(deep=True)
    settings.routing.mode = start.payload.get("mode", settings.routing.mode)
    with Crew(settings, model=model, cascade=crew._cascade) as replaying:
        result = replaying.run(str(start.payload["task"]), tool_results=tools)
    recorded_answer = end.payload.get("answer") if end else None
    divergences = compare(records, result.steps)
    if from_step is not None:
        divergences = [d for d in divergences if d.seq < from_step]
    return ReplayReport(
        run_id=run_id,
        replay_run_id=result.run_id,
        recorded_answer=recorded_answer,
        answer=result.answer,
        state=result.state,
        divergences=tuple(divergences),
        from_step=from_step,
        replayed_replies=model.replayed,
        live_replies=model.live_calls,
        result=result,
    )
