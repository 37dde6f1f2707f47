from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.config import ValidationSettings
from smolcrew.errors import ConfigError
from smolcrew.pool import PipelinePool
from smolcrew.validators.cascade import Cascade, CascadeResult
from smolcrew.validators.judge import LLMJudge, NLIJudge
from smolcrew.validators.rules import RuleCheck
from smolcrew.validators.verdict import Evidence, Outcome, Verdict

EVIDENCE = Evidence(task="What is the total?", answer="42", tool_outputs=("42",), tools=("python_interpreter",))


@dataclass
class Fixed:
    """A stage that records its calls and returns a fixed outcome (or raises, or returns nonsense)."""

    name: str
    outcome: Outcome = "pass"
    confidence: float = 1.0
    reasons: tuple[str, ...] = ()
    calls: list[str] = field(default_factory=list)
    error: Exception | None = None
    returns: tuple[Any, ...] = ()
    """When set, `check` returns `returns[0]` as is (a stage that returns nonsense)."""

    def check(self, evidence: Evidence) -> Verdict:
        self.calls.append(self.name)
        if self.error is not None:
            raise self.error
        if self.returns:
            return self.returns[0]
        return Verdict(self.name, self.outcome, self.confidence, self.reasons)


def test_stages_run_in_order_and_the_lowest_confidence_counts() -> None:
    calls: list[str] = []
    stages = [
        Fixed("a", calls=calls),
        Fixed("b", confidence=0.7, reasons=("b: fine",), calls=calls),
        Fixed("c", calls=calls),
    ]
    result = Cascade(stages).check(EVIDENCE)
    assert calls == ["a", "b", "c"]
    assert result.passed and result.confidence == 0.7 and result.reasons == ("b: fine",)
    assert [verdict.stage for verdict in result.verdicts] == ["a", "b", "c"]
    assert all(verdict.duration_ms > 0 for verdict in result.verdicts)  # filled in when a stage left it at 0


def test_the_first_fail_stops_the_cascade() -> None:
    calls: list[str] = []
    stages = [Fixed("a", calls=calls), Fixed("b", "fail", 0.0, ("b: wrong number",), calls), Fixed("c", calls=calls)]
    result = Cascade(stages).check(EVIDENCE)
    assert calls == ["a", "b"]
    assert result.outcome == "fail" and not result.passed
    assert result.confidence == 0.0 and result.reasons == ("b: wrong number",)


def test_rules_failing_means_the_judge_is_never_asked() -> None:
    model = ScriptedModel(["SCORE: 10"])
    result = Cascade([RuleCheck(), LLMJudge(model)]).check(Evidence(task="t", answer=""))
    assert result.outcome == "fail" and model.call_count == 0


def test_a_stage_that_raises_escalates_naming_the_error_and_later_stages_still_run() -> None:
    calls: list[str] = []
    stages = [Fixed("broken", error=RuntimeError("boom"), calls=calls), Fixed("after", calls=calls)]
    result = Cascade(stages).check(EVIDENCE)
    assert calls == ["broken", "after"]
    assert result.outcome == "escalate" and result.confidence == 0.0
    assert result.verdicts[0].outcome == "escalate"
    assert "broken: the check broke (RuntimeError: boom)" in result.reasons[0]


def test_a_fail_after_a_broken_stage_is_still_a_fail() -> None:
    stages = [Fixed("broken", error=ValueError("x")), Fixed("rules", "fail", 0.0, ("rules: empty",))]
    result = Cascade(stages).check(EVIDENCE)
    assert result.outcome == "fail" and result.reasons == ("rules: empty",)


@pytest.mark.parametrize(
    "returned",
    [
        None,
        "pass",
        Verdict("odd", "pass", 1.5),
        Verdict("odd", "pass", float("nan")),
        Verdict("odd", "fail", 0.0),  # a fail must say why
        Verdict("odd", "maybe", 1.0),  # type: ignore[arg-type]
    ],
)
def test_a_stage_returning_nonsense_escalates(returned: Any) -> None:
    result = Cascade([Fixed("odd", returns=(returned,))]).check(EVIDENCE)
    assert result.outcome == "escalate" and "TypeError" in result.reasons[0]


def test_a_stage_escalation_escalates() -> None:
    result = Cascade([Fixed("judge", "escalate", 0.0, ("judge: unreadable",))]).check(EVIDENCE)
    assert result.outcome == "escalate" and result.reasons == ("judge: unreadable",)


def test_low_confidence_escalates_below_the_threshold() -> None:
    stage = Fixed("judge", confidence=0.6, reasons=("judge: 6/10",))
    assert Cascade([stage], escalate_below=0.5).check(EVIDENCE).passed
    result = Cascade([stage], escalate_below=0.7).check(EVIDENCE)
    assert result.outcome == "escalate"
    assert result.reasons == (
        "judge: 6/10",
        "confidence 0.60 is below validation.escalate_below (0.70): a person must approve the answer",
    )


def test_approval_tools_escalate_and_the_reason_names_them() -> None:
    evidence = Evidence(task="t", answer="sent", tools=("search_documents", "send_email", "delete_file"))
    result = Cascade([Fixed("rules")], approval_tools=["delete_file", "send_email", "unused"]).check(evidence)
    assert result.outcome == "escalate"
    assert result.reasons == (
        "the run called delete_file, send_email, which needs a person's approval (approval_tools)",
    )
    failing = Cascade([Fixed("rules", "fail", 0.0, ("rules: empty",))], approval_tools=["send_email"])
    assert failing.check(evidence).outcome == "fail"  # a wrong answer is corrected before anyone is asked


def test_no_stages_pass() -> None:
    result = Cascade().check(EVIDENCE)
    assert result.passed and result.confidence == 1.0 and result.verdicts == ()


def test_with_stages_returns_a_new_cascade_with_the_same_policy() -> None:
    base = Cascade([Fixed("rules")], escalate_below=0.4, approval_tools=["send_email"])
    strict = base.with_stages(Fixed("judge", "fail", 0.0, ("judge: 1/10",)))
    assert [stage.name for stage in base.stages] == ["rules"]
    assert [stage.name for stage in strict.stages] == ["rules", "judge"]
    assert strict.escalate_below == 0.4 and strict.approval_tools == {"send_email"}
    assert base.check(EVIDENCE).passed and strict.check(EVIDENCE).outcome == "fail"
    assert repr(strict) == "Cascade([rules, judge], escalate_below=0.4, approval_tools=['send_email'])"


def test_escalate_below_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Cascade(escalate_below=1.5)


def test_result_reads_well_and_serialises() -> None:
    result = Cascade([Fixed("rules", "fail", 0.0, ("numbers: 45 is not in the tool output",))]).check(EVIDENCE)
    assert repr(result) == "CascadeResult(fail 0.00 [rules=fail]: numbers: 45 is not in the tool output)"
    data = result.to_dict()
    assert data["outcome"] == "fail" and data["verdicts"][0]["stage"] == "rules"
    assert data["verdicts"][0]["reasons"] == ("numbers: 45 is not in the tool output",)
    broken = CascadeResult.broken("evidence", KeyError("records"))
    assert broken.outcome == "escalate" and "evidence: the check broke (KeyError" in broken.reasons[0]


# --- from_settings -----------------------------------------------------------------------------------------


def test_from_settings_defaults_to_rules_then_claims() -> None:
    cascade = Cascade.from_settings(ValidationSettings())
    assert [stage.name for stage in cascade.stages] == ["rules", "claims"]
    assert cascade.escalate_below == 0.0 and cascade.approval_tools == frozenset()


def test_from_settings_llm_judge_needs_a_model() -> None:
    with pytest.raises(ConfigError, match=r"set llm\.backend") as caught:
        Cascade.from_settings(ValidationSettings(judge="llm"))
    assert caught.value.field == "validation.judge"
    settings = ValidationSettings(judge="llm", judge_threshold=0.7, escalate_below=0.8, approval_tools=["send_email"])
    cascade = Cascade.from_settings(settings, model=ScriptedModel(["SCORE: 9"]))
    judge = cascade.stages[-1]
    assert isinstance(judge, LLMJudge) and judge.threshold == 0.7
    assert cascade.escalate_below == 0.8 and cascade.approval_tools == {"send_email"}


def test_from_settings_nli_judge_uses_the_pool_role() -> None:
    pool = PipelinePool(device="cpu")
    judge = Cascade.from_settings(ValidationSettings(judge="nli", judge_threshold=0.6), pool=pool).stages[-1]
    assert isinstance(judge, NLIJudge) and judge.pool is pool and judge.role == "nli" and judge.threshold == 0.6
    assert pool.loaded() == []  # nothing loads until an answer is checked


def test_from_settings_disabled_runs_no_stage_but_keeps_approvals() -> None:
    cascade = Cascade.from_settings(ValidationSettings(enabled=False, approval_tools=["send_email"]))
    assert cascade.stages == ()
    assert cascade.check(Evidence(task="t", answer="", tools=("send_email",))).outcome == "escalate"
