"""What a run returns: `RunResult`, and the states a run can end in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from smolcrew.errors import AnswerRejected

if TYPE_CHECKING:
    from smolcrew.agents.router import RoutePlan
    from smolcrew.memory.records import StepRecord

__all__ = ["RunMode", "RunResult", "RunState"]

RunState = Literal["success", "max_steps_error", "error", "rejected", "pending_approval", "cancelled"]
RunMode = Literal["manager", "router", "reply"]
"""success: the answer passed validation (or a person approved it); max_steps_error: the agents ran out of
steps (a failed validation, never an answer); error: a model or agent error; rejected: the validation cascade
or a person rejected the answer; pending_approval: a person must decide (`smolcrew approvals`), then
`Crew.resume(run_id)` finishes the run; cancelled: someone asked the run to stop (`POST /v1/runs/{id}/cancel`) and it
stopped at its next step."""


@dataclass(frozen=True)
class RunResult:
    """What one run produced and how.

    `answer` is None unless `state` is "success": a run that ran out of steps or failed has no answer.
    """

    answer: Any
    run_id: str
    state: RunState
    mode: RunMode
    """router: the plan's steps went to their specialists; manager: the manager's agent loop; reply: answered
    from the conversation in one model call (no tool: chit-chat, facts the user stated)."""
    agents: tuple[str, ...]
    """Specialists that were delegated to, in order (repeats removed)."""
    tools: tuple[str, ...]
    """Tools the agents called, in order (repeats removed)."""
    delegations: tuple[tuple[str, str, str], ...]
    """(from, to, task) for each delegation."""
    steps: tuple[StepRecord, ...]
    input_tokens: int
    output_tokens: int
    duration_s: float
    route: RoutePlan | None = None
    error: str | None = None
    cause: str | None = None
    """Why the run failed (rejected, tool, call, model, steps, error: see smolcrew.failures); None on success."""
    artifacts: tuple[str, ...] = ()
    """Files the tools wrote during the run (under `<home>/runs/<run_id>/artifacts/`)."""
    warnings: tuple[str, ...] = ()
    """Problems that did not stop the run (e.g. a step listener that failed)."""
    verdicts: tuple[dict[str, Any], ...] = ()
    """The validation cascade's verdicts on the final answer (stage, outcome, confidence, reasons)."""
    approval_id: str | None = None
    """The approval a person was asked for, when the cascade escalated."""
    audit_head: str | None = None
    """Hash of the last entry of the run's audit log (check it with `smolcrew audit verify RUN`)."""

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def raise_for_state(self) -> RunResult:
        """Return self when the run succeeded, else raise AnswerRejected with the reason."""
        if not self.ok:
            raise AnswerRejected((self.error or self.state,), run_id=self.run_id)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer if isinstance(self.answer, (str, int, float, bool, type(None))) else str(self.answer),
            "run_id": self.run_id,
            "state": self.state,
            "mode": self.mode,
            "agents": list(self.agents),
            "tools": list(self.tools),
            "delegations": [{"from": a, "to": b, "task": t} for a, b, t in self.delegations],
            "steps": [step.to_dict() for step in self.steps],
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "duration_s": round(self.duration_s, 3),
            "route": self.route.to_dict() if self.route else None,
            "error": self.error,
            "cause": self.cause,
            "artifacts": list(self.artifacts),
            "warnings": list(self.warnings),
            "verdicts": list(self.verdicts),
            "approval_id": self.approval_id,
            "audit_head": self.audit_head,
        }

    def __repr__(self) -> str:
        answer = repr(self.answer)
        answer = answer if len(answer) < 60 else answer[:57] + "..."
        return (
            f"RunResult({self.state}, answer={answer}, agents={list(self.agents)}, tools={list(self.tools)}, "
            f"steps={len(self.steps)}, tokens={self.input_tokens}+{self.output_tokens}, {self.duration_s:.2f}s)"
        )
