"""The validation cascade: stages run cheapest first, the first fail stops it, a broken stage escalates.

```python
cascade = Cascade.from_settings(settings.validation, model=model, pool=pool)
result = cascade.check(Evidence(task=task, answer=answer, tool_outputs=outputs, tools=tools))
strict = cascade.with_stages(LLMJudge(model, 0.7))   # a specialist's or a single run's own cascade
```

Outcomes: `fail` when a stage fails (its reasons tell the agent what to fix); `escalate` (a person decides) when a
stage escalates or breaks, when the lowest confidence is below `escalate_below`, or when the run called one of
`approval_tools`; else `pass`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from smolcrew.errors import ConfigError
from smolcrew.validators.verdict import Evidence, Outcome, Stage, Verdict

if TYPE_CHECKING:
    from pathlib import Path

    from smolagents.models import Model

    from smolcrew.config import ValidationSettings
    from smolcrew.pool import PipelinePool

__all__ = ["Cascade", "CascadeResult"]

_OUTCOMES = frozenset(get_args(Outcome))


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """What the cascade decided about one answer.

    `confidence` is the lowest confidence of the stages that ran (1.0 when none ran); `reasons` are the failing
    stage's reasons on a fail, else every stage's reasons and notes plus why the cascade escalated.
    """

    outcome: Outcome
    confidence: float
    verdicts: tuple[Verdict, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    @property
    def unchecked(self) -> bool:
        """Failed only because no tool output backs the answer (the `evidence` rule)."""
        from smolcrew.validators.grounding import UNCHECKED

        return self.outcome == "fail" and all(reason.startswith(f"{UNCHECKED}:") for reason in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        stages = ", ".join(f"{v.stage}={v.outcome}" for v in self.verdicts) or "no stages"
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"CascadeResult({self.outcome} {self.confidence:.2f} [{stages}]{why})"

    @classmethod
    def broken(cls, where: str, error: BaseException) -> CascadeResult:
        """An escalation for a check that could not run at all (e.g. the evidence could not be gathered)."""
        verdict = _broken_verdict(where, error, 0.0)
        return cls("escalate", 0.0, (verdict,), verdict.reasons)


def _broken_verdict(name: str, error: BaseException, elapsed_ms: float) -> Verdict:
    why = f"{name}: the check broke ({type(error).__name__}: {error}); the answer is unchecked: a person must check it"
    return Verdict(name, "escalate", 0.0, (why,), elapsed_ms)


def _well_formed(verdict: Any) -> bool:
    return (
        isinstance(verdict, Verdict)
        and verdict.outcome in _OUTCOMES
        and isinstance(verdict.confidence, int | float)
        and not math.isnan(verdict.confidence)
        and 0.0 <= verdict.confidence <= 1.0
        and (verdict.passed or bool(verdict.reasons))
    )


class Cascade:
    """Validation stages in order, with the escalation policy.

    Args:
        stages: objects with `name` and `check(evidence) -> Verdict` (see validators.verdict.Stage).
        escalate_below: escalate when the lowest stage confidence is below this (0: never for low confidence).
        approval_tools: escalate runs that called any of these tools (or specialists).
        unchecked: what the gate at the end of a run does with an answer whose only fault is that no tool output
            backs it (the `evidence` rule): "fail" it, or "escalate" it to a person. The agent retries either way.

    A cascade is immutable: `with_stages(...)` returns a new one with more stages, the same policy.
    """

    def __init__(
        self,
        stages: Iterable[Stage] = (),
        *,
        escalate_below: float = 0.0,
        approval_tools: Iterable[str] = (),
        unchecked: Literal["fail", "escalate"] = "escalate",
    ) -> None:
        if not 0.0 <= escalate_below <= 1.0:
            raise ValueError(f"escalate_below must be between 0 and 1, got {escalate_below}")
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.escalate_below = escalate_below
        self.approval_tools: frozenset[str] = frozenset(approval_tools)
        self.unchecked = unchecked

    def __repr__(self) -> str:
        names = ", ".join(stage.name for stage in self.stages) or "no stages"
        extra = f", escalate_below={self.escalate_below}" if self.escalate_below else ""
        extra += f", approval_tools={sorted(self.approval_tools)}" if self.approval_tools else ""
        return f"Cascade([{names}]{extra})"

    def with_stages(self, *stages: Stage) -> Cascade:
        """A new cascade: these stages run after this one's, under the same escalation policy."""
        return Cascade(
            (*self.stages, *stages),
            escalate_below=self.escalate_below,
            approval_tools=self.approval_tools,
            unchecked=self.unchecked,
        )

    @classmethod
    def from_settings(
        cls,
        validation: ValidationSettings,
        *,
        model: Model | None = None,
        pool: PipelinePool | None = None,
        cache_dir: Path | None = None,
    ) -> Cascade:
        """Rules, then the claim check, then the configured judge (the claim verifier's weights are looked for under
        `cache_dir`, by default the configured home's). With `validation.enabled` off, no stage runs, but runs that
        call an approval tool still wait for a person.

        Raises:
            ConfigError: judge "llm" without a model, or invalid rule settings (banned regex, schema).
        """
        from smolcrew.validators.judge import LLMJudge, NLIJudge
        from smolcrew.validators.rules import RuleCheck

        if not validation.enabled:
            return cls((), approval_tools=validation.approval_tools)
        stages: list[Stage] = [RuleCheck.from_settings(validation)]
        if validation.claims != "off":
            from smolcrew.validators.claim_check import ClaimCheck

            verifier = None
            if validation.claims == "verifier":
                from smolcrew.validators.verifier import ClaimVerifier

                if cache_dir is None:
                    from smolcrew.config import Settings

                    cache_dir = Settings().cache_dir
                verifier = ClaimVerifier.load(cache_dir)
            stages.append(ClaimCheck(verifier, validation.claims_threshold))
        if validation.judge == "llm":
            if model is None:
                raise ConfigError(
                    "validation.judge is 'llm' but no LLM was given to judge with: set llm.backend "
                    "(SMOLCREW_LLM__BACKEND), or set validation.judge to 'nli' or 'none'",
                    field="validation.judge",
                )
            stages.append(LLMJudge(model, validation.judge_threshold))
        elif validation.judge == "llm_claims":
            from smolcrew.validators.claim_judge import LLMClaimJudge

            if model is None:
                raise ConfigError(
                    "validation.judge is 'llm_claims' but no LLM was given to judge with: set llm.backend",
                    field="validation.judge",
                )
            stages.append(LLMClaimJudge(model, validation.judge_threshold))
        elif validation.judge == "nli":
            from smolcrew.pool import PipelinePool

            stages.append(NLIJudge(pool if pool is not None else PipelinePool(), validation.judge_threshold))
        return cls(
            stages,
            escalate_below=validation.escalate_below,
            approval_tools=validation.approval_tools,
            unchecked=validation.unchecked,
        )

    def check(self, evidence: Evidence) -> CascadeResult:
        """Run the stages in order; never raises (a stage that raises or returns nonsense escalates)."""
        verdicts: list[Verdict] = []
        for stage in self.stages:
            name = str(getattr(stage, "name", type(stage).__name__))
            started = time.perf_counter()
            try:
                verdict: Any = stage.check(evidence)
                if not _well_formed(verdict):
                    raise TypeError(f"returned {verdict!r}, not a Verdict with an outcome, a 0-1 confidence, reasons")
            except Exception as exc:  # fail closed: a broken check must never let an answer through
                verdict = _broken_verdict(name, exc, (time.perf_counter() - started) * 1000)
            if not verdict.duration_ms:
                verdict = replace(verdict, duration_ms=(time.perf_counter() - started) * 1000)
            verdicts.append(verdict)
            if verdict.outcome == "fail":
                return CascadeResult("fail", verdict.confidence, tuple(verdicts), verdict.reasons)
        confidence = min((verdict.confidence for verdict in verdicts), default=1.0)
        reasons = [reason for verdict in verdicts for reason in verdict.reasons]
        escalate = any(verdict.outcome == "escalate" for verdict in verdicts)
        if confidence < self.escalate_below:
            escalate = True
            reasons.append(
                f"confidence {confidence:.2f} is below validation.escalate_below ({self.escalate_below:.2f}): "
                "a person must approve the answer"
            )
        called = sorted(self.approval_tools.intersection(evidence.tools))
        if called:
            escalate = True
            reasons.append(f"the run called {', '.join(called)}, which needs a person's approval (approval_tools)")
        return CascadeResult("escalate" if escalate else "pass", confidence, tuple(verdicts), tuple(reasons))
