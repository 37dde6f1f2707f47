"""The final gate: every answer of every run passes the validation cascade here, in the Crew's own code.

The agents' final-answer checks already let an agent correct a rejected answer (validators/correct.py), but
code the agents write runs in their executor and could in principle get around a check there; this gate runs
after the agents have returned, where no agent code runs, so nothing reaches the user without a verdict. An
escalation asks a person through the approval queue and waits up to `validation.approval_timeout_s`; a run
still waiting ends as `pending_approval` and `Crew.resume()` settles it once the person has answered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smolcrew.errors import SmolcrewError

if TYPE_CHECKING:
    from smolcrew.audit import AuditLog
    from smolcrew.memory.recorder import ToolCall
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunState
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.human import Approval, ApprovalQueue

__all__ = ["Decision", "Gate", "trail_gaps"]


def trail_gaps(steps: Sequence[dict[str, Any]], tool_calls: Sequence[ToolCall]) -> list[str]:
    """The tool calls this process made (counted where agents' code cannot reach) that no step of the run's audit
    trail (`steps`: the bodies of its `step` entries) shows, as "agent: tool". A trail with gaps was cut short or
    tampered with (its listeners switched off), so the run fails closed."""
    shown = {
        (step.get("agent"), name)
        for step in steps
        if step.get("kind") == "action"
        for name in (step.get("payload") or {}).get("calls") or ()
    }
    return list(dict.fromkeys(f"{c.agent}: {c.tool}" for c in tool_calls if (c.agent, c.tool) not in shown))


@dataclass(frozen=True, slots=True)
class Decision:
    """How a run ends once its answer has been judged."""

    state: RunState
    answer: Any
    error: str | None = None
    verdicts: tuple[dict[str, Any], ...] = ()
    approval_id: str | None = None


class Gate:
    """Judges a run's answer with `cascade`, records every verdict and approval in `audit`.

    Args:
        cascade: the checks; None lets answers through unchecked (validation disabled in config).
        approvals: opens the approval queue on first escalation (Redis); raising when it cannot.
        audit: the run's audit log.
        wait_s: how long to wait for a person before returning `pending_approval`.
    """

    def __init__(
        self,
        cascade: Cascade | None,
        approvals: Callable[[], ApprovalQueue],
        audit: AuditLog,
        *,
        wait_s: float = 0.0,
    ) -> None:
        self.cascade = cascade
        self._approvals = approvals
        self.audit = audit
        self.wait_s = wait_s

    def __repr__(self) -> str:
        return f"Gate({self.cascade!r}, wait_s={self.wait_s})"

    def judge(
        self,
        run_id: str,
        task: str,
        answer: Any,
        state: RunState,
        records: Sequence[StepRecord],
        tool_calls: Sequence[ToolCall] = (),
    ) -> Decision:
        """The end of a run whose agents finished in `state` with `answer`."""
        if state == "max_steps_error":
            verdict: dict[str, Any] = {
                "stage": "steps",
                "outcome": "fail",
                "confidence": 0.0,
                "reasons": ["the agents used all their steps without a validated answer"],
            }
            self.audit.append(run_id, "verdict", verdict)
            return Decision("max_steps_error", None, verdict["reasons"][0], (verdict,))
        trail = [entry.body for entry in self.audit.entries(run_id) if entry.kind == "step"]
        gaps = trail_gaps(trail, tool_calls) if state == "success" else []
        if gaps:
            reason = f"the run's trail does not show every tool call it made ({', '.join(gaps)}); failing closed"
            self.audit.append(run_id, "verdict", {"stage": "trail", "outcome": "fail", "confidence": 0.0,
                                                  "reasons": [reason]})  # fmt: skip
            return Decision("rejected", None, reason)
        if state != "success" or self.cascade is None:
            return Decision(state, answer if state == "success" else None)
        from smolcrew.validators.verdict import Evidence

        result = self.cascade.check(Evidence.from_records(task, answer, records, tool_calls))
        verdicts = tuple(verdict.to_dict() for verdict in result.verdicts)
        for verdict in verdicts:
            self.audit.append(run_id, "verdict", verdict)
        if result.outcome == "pass":
            return Decision("success", answer, verdicts=verdicts)
        if result.outcome == "fail" and not (result.unchecked and self.cascade.unchecked == "escalate"):
            return Decision("rejected", None, "validation failed: " + "; ".join(result.reasons), verdicts)
        try:
            approval = self._approvals().request(
                run_id,
                task=task,
                answer=str(answer),
                reasons=list(result.reasons),
                evidence={"verdicts": list(verdicts), "tools": [r.payload.get("calls") for r in records]},
            )
        except SmolcrewError as exc:  # fail closed: no person can be asked, so the answer does not pass
            return Decision("rejected", None, f"the answer needs a person's approval, but {exc}", verdicts)
        self.audit.append(run_id, "approval", {"approval_id": approval.id, "status": "requested"})
        return self.settle(run_id, approval, answer, verdicts)

    def settle(
        self, run_id: str, approval: Approval, answer: Any, verdicts: tuple[dict[str, Any], ...] = ()
    ) -> Decision:
        """Wait (up to `wait_s`) for a person's decision on `approval` and end the run by it."""
        if approval.status == "pending" and self.wait_s > 0:
            approval = self._approvals().wait(approval.id, self.wait_s)
        if approval.status == "pending":
            return Decision("pending_approval", None, f"waiting for approval {approval.id}", verdicts, approval.id)
        self.audit.append(
            run_id,
            "approval",
            {"approval_id": approval.id, "status": approval.status, "by": approval.decided_by, "note": approval.note},
        )
        if approval.status == "approved":
            return Decision("success", answer, None, verdicts, approval.id)
        reason = f"rejected by {approval.decided_by}: {approval.note or 'no reason given'}"
        return Decision("rejected", None, reason, verdicts, approval.id)
