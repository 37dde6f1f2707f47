"""The model judges: the LLM judge on scripted replies (and on the real GGUF, with its grammar), the NLI judge's
mechanics on tiny random cross-encoders (their scores are random: tests check mechanics, never meanings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from smolagents.models import ChatMessage, MessageRole, Model

from smolcrew.backends import ScriptedModel
from smolcrew.errors import ModelUnavailableError, StageError
from smolcrew.pool import PipelinePool
from smolcrew.validators.cascade import Cascade
from smolcrew.validators.judge import JUDGE_GRAMMAR, LLMJudge, NLIJudge, evidence_text, parse_judgement
from smolcrew.validators.verdict import Evidence
from tests.tools.tiny_language import tiny_sequence_classifier

EVIDENCE = Evidence(
    task="What was the total?",
    answer="The total was 45.",
    tool_outputs=("Last output from code snippet:\n42",),
    tools=("python_interpreter",),
)


# --- parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("REASON: matches the tool output.\nSCORE: 8", 8.0),
        ("Score = 7/10. Mostly right.", 7.0),
        ("**Score:** 6.5\nReason: partial", 6.5),
        ("  9  ", 9.0),
        ("SCORE: 10", 10.0),
        ("SCORE: 4\n(final) score: 4", 4.0),
        ("REASON: a score of 9 would be too generous.\nSCORE: 3", 3.0),
    ],
)
def test_parse_reads_one_score(reply: str, score: float) -> None:
    parsed = parse_judgement(reply)
    assert parsed is not None and parsed[0] == score and parsed[1]


@pytest.mark.parametrize(
    "reply", ["", "The answer looks fine to me.", "SCORE: 11", "SCORE: 3 ... no wait, SCORE: 8", "SCORE: high"]
)
def test_parse_refuses_missing_ambiguous_or_out_of_range_scores(reply: str) -> None:
    assert parse_judgement(reply) is None


def test_parse_keeps_the_reason_line() -> None:
    assert parse_judgement("REASON: says 45, the tool says 42.\nSCORE: 2") == (2.0, "says 45, the tool says 42.")


# --- the LLM judge -----------------------------------------------------------------------------------------


def test_a_good_score_passes_with_score_over_ten_as_confidence() -> None:
    verdict = LLMJudge(ScriptedModel(["REASON: it matches.\nSCORE: 8"]), threshold=0.5).check(EVIDENCE)
    assert verdict.passed and verdict.stage == "llm_judge"
    assert verdict.confidence == pytest.approx(0.8)
    assert verdict.reasons == ("llm_judge: scored 8/10: it matches.",)


def test_a_bad_score_fails_with_the_judges_reason() -> None:
    model = ScriptedModel(["REASON: the answer says 45 but the tool output says 42.\nSCORE: 2"])
    verdict = LLMJudge(model, threshold=0.5).check(EVIDENCE)
    assert verdict.outcome == "fail" and verdict.confidence == pytest.approx(0.2)
    assert "scored the answer 2/10 (needs 5)" in verdict.reasons[0] and "says 45 but" in verdict.reasons[0]


def test_the_threshold_is_inclusive() -> None:
    assert LLMJudge(ScriptedModel(["SCORE: 5"]), threshold=0.5).check(EVIDENCE).passed
    assert not LLMJudge(ScriptedModel(["SCORE: 5"]), threshold=0.51).check(EVIDENCE).passed


@pytest.mark.parametrize("reply", ["Looks good!", "SCORE: 12", "", "SCORE: 9 or maybe SCORE: 3"])
def test_an_unreadable_reply_escalates_never_passes(reply: str) -> None:
    verdict = LLMJudge(ScriptedModel([reply]), threshold=0.0).check(EVIDENCE)
    assert verdict.outcome == "escalate" and verdict.confidence == 0.0
    assert "no readable 0-10 score" in verdict.reasons[0]


def test_the_prompt_shows_rubric_task_evidence_and_answer() -> None:
    model = ScriptedModel(["SCORE: 7"])
    LLMJudge(model, rubric="Be strict.").check(EVIDENCE)
    system, user = model.calls[-1]
    assert system["role"] == "system" and "Be strict." in system["content"][0]["text"]
    text = user["content"][0]["text"]
    assert (
        "What was the total?" in text and "Last output from code snippet:\n42" in text and "The total was 45." in text
    )


def test_a_failing_model_is_a_stage_error_and_the_cascade_escalates() -> None:
    judge = LLMJudge(ScriptedModel([]))  # no replies left: the model raises
    with pytest.raises(StageError, match="the judge model failed") as caught:
        judge.check(EVIDENCE)
    assert caught.value.stage == "llm_judge"
    result = Cascade([judge]).check(EVIDENCE)
    assert result.outcome == "escalate" and "StageError" in result.reasons[0]


class _RecordingModel(Model):
    def __init__(self) -> None:
        super().__init__(model_id="recording")
        self.options: list[dict[str, Any]] = []

    def generate(self, messages: list[Any], stop_sequences: Any = None, **kwargs: Any) -> ChatMessage:
        self.options.append(kwargs)
        return ChatMessage(role=MessageRole.ASSISTANT, content="REASON: fine\nSCORE: 9")


def test_the_grammar_is_sent_only_when_on() -> None:
    model = _RecordingModel()
    LLMJudge(model).check(EVIDENCE)
    LLMJudge(model, grammar=True).check(EVIDENCE)
    assert model.options[0] == {}
    assert model.options[1] == {"grammar": JUDGE_GRAMMAR, "max_tokens": 160}


def test_evidence_text_clips_long_outputs_and_cleans_bad_text() -> None:
    evidence = Evidence(task="t", answer="a", tool_outputs=("x" * 5_000, "caf\udce9", "  "))
    text = evidence_text(evidence, limit=10_000, per_output=100)
    assert "[... 4,900 more characters]" in text and "caf?" in text and text.count("\n\n") == 1


@pytest.mark.slow
def test_the_embedded_model_replies_in_the_grammar(embedded_gguf: Path) -> None:
    from smolcrew.backends import LlamaCppModel

    judge = LLMJudge(LlamaCppModel(embedded_gguf, n_ctx=2048), threshold=0.5)
    assert judge.grammar is True
    verdict = judge.check(EVIDENCE)
    assert verdict.outcome in ("pass", "fail")  # parsed: never the escalation of an unreadable reply
    assert "/10" in verdict.reasons[0]


# --- the NLI judge -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch", reason="the NLI judge needs torch: pip install torch==2.13.0 'smolcrew[ml]'")
    root = tmp_path_factory.mktemp("tiny-nli")
    return {
        "upper": tiny_sequence_classifier(root / "upper", ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]),
        "one_logit": tiny_sequence_classifier(root / "one", ["entailment"]),
        "sentiment": tiny_sequence_classifier(root / "sentiment", ["NEGATIVE", "POSITIVE"]),
    }


def _pool(folder: Path) -> PipelinePool:
    return PipelinePool(device="cpu", overrides={"nli": str(folder)})


PREMISE = "the cat sleeps on the red car . john lives in paris and works in berlin ."


def _manual(folder: Path, premises: list[str], hypothesis: str, index: int | None) -> list[float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = tokenizer(premises, [hypothesis] * len(premises), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    scores = logits[:, 0].sigmoid() if index is None else logits.softmax(-1)[:, index]
    return [float(score) for score in scores]


def test_nli_finds_the_entailment_label_case_insensitively(models: dict[str, Path]) -> None:
    judge = NLIJudge(_pool(models["upper"]))
    got = judge.entailment([PREMISE, "mary reads a book"], "the cat sleeps")
    assert got == pytest.approx(_manual(models["upper"], [PREMISE, "mary reads a book"], "the cat sleeps", 2), abs=1e-5)


def test_nli_with_one_logit_uses_its_sigmoid(models: dict[str, Path]) -> None:
    judge = NLIJudge(_pool(models["one_logit"]))
    got = judge.entailment([PREMISE], "john lives in paris")
    assert got == pytest.approx(_manual(models["one_logit"], [PREMISE], "john lives in paris", None), abs=1e-5)


def test_nli_verdict_follows_the_threshold(models: dict[str, Path]) -> None:
    evidence = Evidence(task="where does john live ?", answer="john lives in paris", tool_outputs=(PREMISE,))
    lenient = NLIJudge(_pool(models["upper"]), threshold=0.0).check(evidence)
    strict = NLIJudge(_pool(models["upper"]), threshold=1.0).check(evidence)
    assert lenient.passed and lenient.stage == "nli_judge" and 0.0 < lenient.confidence < 1.0
    assert strict.outcome == "fail" and strict.confidence == pytest.approx(lenient.confidence)
    assert "does not support the answer" in strict.reasons[0] and "best of 1 passage" in strict.reasons[0]


def test_long_evidence_is_chunked_and_the_best_chunk_counts(models: dict[str, Path]) -> None:
    judge = NLIJudge(_pool(models["upper"]), threshold=0.0, chunk_words=12, overlap_words=3, max_chunks=4)
    premise = " ".join([PREMISE] * 6)  # 102 words: 11 windows of 12, stride 9
    windows = judge.chunks(premise)
    assert len(windows) == 11 and all(len(window.split()) <= 12 for window in windows)
    assert windows[0].split()[-3:] == windows[1].split()[:3]  # they overlap
    verdict = judge.check(Evidence(task="t", answer="the cat sleeps", tool_outputs=(premise,)))
    assert verdict.confidence == pytest.approx(max(judge.entailment(windows[:4], "the cat sleeps")), abs=1e-6)
    assert "best of 4 passages; 7 later passages not checked" in verdict.reasons[0]


def test_nli_accepts_a_loaded_pipeline(models: dict[str, Path]) -> None:
    from transformers import pipeline

    build: Any = pipeline
    judge = NLIJudge(build("text-classification", model=str(models["upper"]), device="cpu"), threshold=0.0)
    verdict = judge.check(Evidence(task="t", answer="the cat sleeps", tool_outputs=(PREMISE,)))
    assert verdict.passed and 0.0 < verdict.confidence < 1.0


def test_nli_without_an_entailment_label_is_a_stage_error(models: dict[str, Path]) -> None:
    judge = NLIJudge(_pool(models["sentiment"]))
    with pytest.raises(StageError, match=r"labels \['negative', 'positive'\] have no entailment class"):
        judge.check(Evidence(task="t", answer="the cat sleeps", tool_outputs=(PREMISE,)))


def test_nli_escalates_without_evidence_and_fails_an_empty_answer(models: dict[str, Path]) -> None:
    judge = NLIJudge(_pool(models["upper"]), threshold=0.0)
    nothing = judge.check(Evidence(task="t", answer="the cat sleeps"))
    assert nothing.outcome == "escalate" and "no tool output" in nothing.reasons[0]
    empty = judge.check(Evidence(task="t", answer="  ", tool_outputs=(PREMISE,)))
    assert empty.outcome == "fail" and "empty" in empty.reasons[0]


def test_nli_model_missing_raises_model_unavailable(tmp_path: Path) -> None:
    judge = NLIJudge(_pool(tmp_path / "no-such-model"))
    with pytest.raises(ModelUnavailableError, match=r"models\.nli"):
        judge.check(Evidence(task="t", answer="the cat sleeps", tool_outputs=(PREMISE,)))
