"""The stage contract (stage_contract.py) against every stage: rules with every rule on, the LLM judge on a
scripted model, the NLI judge on a tiny random cross-encoder loaded through the real pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.pool import PipelinePool
from smolcrew.validators.judge import LLMJudge, NLIJudge
from smolcrew.validators.rules import RULES, RuleCheck
from smolcrew.validators.verdict import Stage
from tests.validators.stage_contract import CONTRACT

STAGES = ["rules", "llm_judge", "nli_judge"]


@pytest.fixture(scope="module")
def nli_pool(tmp_path_factory: pytest.TempPathFactory) -> PipelinePool:
    pytest.importorskip("torch", reason="the NLI judge needs torch: pip install torch==2.13.0 'smolcrew[ml]'")
    from tests.tools.tiny_language import tiny_cross_encoder

    folder = tiny_cross_encoder(tmp_path_factory.mktemp("tiny-nli") / "nli")
    return PipelinePool(device="cpu", overrides={"nli": str(folder)})


def _judge_reply(messages: list[dict[str, Any]]) -> str:
    return "REASON: the answer matches the evidence.\nSCORE: 7"


@pytest.fixture(params=STAGES)
def stage(request: pytest.FixtureRequest) -> Stage:
    if request.param == "rules":
        return RuleCheck(RULES, banned=["forbidden"], answer_schema={"type": "string"}, max_length=50_000)
    if request.param == "llm_judge":
        return LLMJudge(ScriptedModel(_judge_reply), threshold=0.5)
    return NLIJudge(request.getfixturevalue("nli_pool"), threshold=0.3, chunk_words=40, overlap_words=8)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rule", CONTRACT, ids=lambda rule: rule.__name__)
def test_contract(rule: Callable[[Stage], None], stage: Stage) -> None:
    rule(stage)
