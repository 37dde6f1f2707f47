"""What the validation stages look at (`Evidence`) and what each one decides (`Verdict`).

Every stage of the cascade is a `Stage`: a name and `check(evidence) -> Verdict`. Stages never raise on a bad
answer; they return a verdict with reasons a person (and the agent, on retry) can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from smolcrew.memory.recorder import ToolCall
    from smolcrew.memory.records import StepRecord

__all__ = ["EARLIER_RESULT", "RETRIEVAL_TOOLS", "Evidence", "Outcome", "Stage", "Verdict"]

EARLIER_RESULT = "\n\nThe earlier result this refers to:"
"""What a conversation appends to a message before the result it points at ("now translate that": the
transcript; see smolcrew.conversation): the message says what to do, the result is what to do it on. That result
came from a tool in an earlier turn, so an answer may rest on it (`Evidence.from_records`)."""

Outcome = Literal["pass", "fail", "escalate"]

RETRIEVAL_TOOLS = frozenset({"search_documents", "answer_with_citations", "recall_memory"})
"""Tools whose output is retrieved text: an answer built on them must cite its sources."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One stage's decision on one answer.

    `confidence` (0..1) is how sure the stage is that the answer is good: a rule that passes says 1.0, a
    judge says its score. The cascade escalates to a person when the confidence is below its threshold.
    """

    stage: str
    outcome: Outcome
    confidence: float
    reasons: tuple[str, ...] = ()
    duration_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        why = f", {'; '.join(self.reasons)}" if self.reasons else ""
        return f"Verdict({self.stage}: {self.outcome} {self.confidence:.2f}{why})"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A final answer and what it rests on.

    Args:
        task: the request the answer answers.
        answer: the final answer as the agent gave it (any type).
        tool_outputs: observations of the steps that called tools, in order (the judge checks the answer
            against them; numbers in the answer are looked for in them).
        tools: names of the tools (and specialists) the run called, in order.
        sources: citation labels found in retrieved text (e.g. "report.pdf p.3"), when retrieval was used.
    """

    task: str
    answer: Any
    tool_outputs: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def retrieved(self) -> bool:
        """Whether the answer came from retrieval (a retrieval tool was called)."""
        return any(name in RETRIEVAL_TOOLS for name in self.tools)

    @property
    def answer_text(self) -> str:
        return "" if self.answer is None else str(self.answer)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        """Evidence from plain data with the field names as keys (a labeled case, a stored approval)."""
        return cls(
            task=str(data["task"]),
            answer=data.get("answer"),
            tool_outputs=tuple(data.get("tool_outputs") or ()),
            tools=tuple(data.get("tools") or ()),
            sources=tuple(data.get("sources") or ()),
        )

    @classmethod
    def from_records(
        cls, task: str, answer: Any, records: Sequence[StepRecord], tool_calls: Sequence[ToolCall] = ()
    ) -> Evidence:
        """Evidence from a run's step records: every action step that called something gives its output.

        `tool_calls` (the run's recorded calls) add each tool's own result: longer than a step's truncated
        observations, and already there while the step that will answer is still running."""
        outputs: list[str] = []
        tools: list[str] = []
        for record in records:
            calls = [name for name in record.payload.get("calls") or [] if name != "final_answer"]
            if record.kind == "action" and calls and record.payload.get("observations"):
                outputs.append(str(record.payload["observations"]))
            tools.extend(calls)
        for call in tool_calls:
            if call.output is not None:
                outputs.append(call.output)
            if call.tool not in tools:
                tools.append(call.tool)
        earlier = task.partition(EARLIER_RESULT)[2].strip()
        if earlier:  # "what was the total on that invoice?": the invoice's text, as a tool read it a turn ago
            outputs.append(earlier)
        return cls(task=task, answer=answer, tool_outputs=tuple(outputs), tools=tuple(tools))


class Stage(Protocol):
    """One check of the cascade."""

    name: str

    def check(self, evidence: Evidence) -> Verdict: ...
