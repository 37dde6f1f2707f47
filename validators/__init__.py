"""Checks that gate final answers: a cascade of stages, cheapest first (rules, then a model judge), used as a
smolagents final-answer check so the agent corrects a rejected answer itself. See validators.cascade."""

from smolcrew.validators.cascade import Cascade, CascadeResult
from smolcrew.validators.correct import FinalAnswerCheck, final_answer_check
from smolcrew.validators.judge import LLMJudge, NLIJudge
from smolcrew.validators.rules import RuleCheck, require_answer
from smolcrew.validators.verdict import RETRIEVAL_TOOLS, Evidence, Outcome, Stage, Verdict

__all__ = [
    "RETRIEVAL_TOOLS",
    "Cascade",
    "CascadeResult",
    "Evidence",
    "FinalAnswerCheck",
    "LLMJudge",
    "NLIJudge",
    "Outcome",
    "RuleCheck",
    "Stage",
    "Verdict",
    "final_answer_check",
    "require_answer",
]
