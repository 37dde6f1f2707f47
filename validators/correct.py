"""Auto-correction: the cascade as a smolagents final-answer check, so the agent fixes a rejected answer itself.

```python
check = final_answer_check(cascade, evidence_for, max_retries=settings.validation.max_retries)
agent = CodeAgent(tools=..., model=..., final_answer_checks=[check])
```

On a failing cascade result the check raises `AnswerRejected`; smolagents records the message as the step's
error and shows it to the model, which tries again. After `max_retries` rejections in one run the check stops
rejecting, so the run ends; `check.last` then holds the failing result and the Crew's final gate (outside the
agent's executor) fails the run. Escalations pass this check: the gate sends them to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smolcrew.errors import AnswerRejected
from smolcrew.validators.cascade import Cascade, CascadeResult
from smolcrew.validators.verdict import Evidence

__all__ = ["FinalAnswerCheck", "final_answer_check"]

EvidenceFor = Callable[[Any], Evidence]
"""Builds the evidence for a proposed final answer (the Crew reads the run's steps so far)."""


class FinalAnswerCheck:
    """A smolagents final-answer check: `check(answer, memory, agent=None) -> bool`.

    Rejections are counted per run: a new task in `memory` (a new TaskStep) starts the count again, and so does
    `reset()`. `results` keeps every cascade result of the current run, `last` the latest.
    """

    def __init__(self, cascade: Cascade, evidence_for: EvidenceFor, max_retries: int = 2) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self.__name__ = "validate_final_answer"  # smolagents names the check by it in the error it records
        self.cascade = cascade
        self.evidence_for = evidence_for
        self.max_retries = max_retries
        self.rejections = 0
        self.results: list[CascadeResult] = []
        self._task_step: Any = None

    def __repr__(self) -> str:
        return f"FinalAnswerCheck({self.cascade!r}, rejections={self.rejections}/{self.max_retries})"

    @property
    def last(self) -> CascadeResult | None:
        return self.results[-1] if self.results else None

    @property
    def gave_up(self) -> bool:
        """True when the latest answer failed but was let through because the retries were spent."""
        return self.last is not None and self.last.outcome == "fail" and self.rejections >= self.max_retries

    def reset(self) -> None:
        self.rejections = 0
        self.results = []

    def __call__(self, answer: Any, memory: Any = None, agent: Any = None) -> bool:
        """Validate `answer`. Returns True to accept it (pass, escalate, or retries spent).

        Raises:
            AnswerRejected: the cascade failed it and retries remain; the message lists what to fix.
        """
        self._follow_run(memory)
        try:
            evidence = self.evidence_for(answer)
        except Exception as exc:  # no evidence, no judgement: fail closed by escalating, never by passing
            result = CascadeResult.broken("evidence", exc)
        else:
            result = self.cascade.check(evidence)
        self.results.append(result)
        if result.outcome != "fail" or self.rejections >= self.max_retries:
            return True
        self.rejections += 1
        raise _rejection(result, self.rejections, self.max_retries)

    def _follow_run(self, memory: Any) -> None:
        """Start counting afresh when the agent's memory holds a new task (a new run, or a follow-up)."""
        steps = getattr(memory, "steps", None)
        if not isinstance(steps, list):
            return
        from smolagents.memory import TaskStep

        task_step = next((step for step in reversed(steps) if isinstance(step, TaskStep)), None)
        if task_step is not self._task_step:
            self._task_step = task_step
            self.reset()


def _rejection(result: CascadeResult, attempt: int, max_retries: int) -> AnswerRejected:
    reasons = result.reasons or ("the validation cascade failed the answer",)
    error = AnswerRejected(reasons)
    # AnswerRejected's message is the bare reasons; the model also needs to hear that it must try again
    error.args = (
        f"your final answer was rejected (rejection {attempt} of at most {max_retries}): {'; '.join(reasons)}. "
        "Fix this, then call final_answer() again with the corrected answer; do not repeat the rejected one.",
    )
    return error


def final_answer_check(cascade: Cascade, evidence_for: EvidenceFor, max_retries: int = 2) -> FinalAnswerCheck:
    """The cascade as a smolagents final-answer check (see FinalAnswerCheck)."""
    return FinalAnswerCheck(cascade, evidence_for, max_retries)
