from __future__ import annotations

from collections.abc import Iterator

import pytest

from smolcrew import manifest
from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools import language
from smolcrew.tools.context import use_tools
from smolcrew.tools.language import (
    AnswerFromText,
    CheckEntailment,
    CheckGrammar,
    ClassifyTextZeroShot,
    DetectLanguage,
    ExtractEntities,
    GenerateText,
    ReplyInConversation,
    SummarizeText,
    TagPartsOfSpeech,
    TranslateText,
)
from tests.tools import tiny_language as tiny

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # MarianTokenizer's hint

TOOLS = (
    AnswerFromText,
    CheckEntailment,
    CheckGrammar,
    ClassifyTextZeroShot,
    DetectLanguage,
    ExtractEntities,
    GenerateText,
    ReplyInConversation,
    SummarizeText,
    TagPartsOfSpeech,
    TranslateText,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-language")
    built = {
        "grammar": tiny.tiny_sequence_classifier(root / "cola"),
        "nli": tiny.tiny_cross_encoder(root / "nli"),
        "zero_shot": tiny.tiny_sequence_classifier(root / "mnli", ["entailment", "neutral", "contradiction"]),
        "ner": tiny.tiny_token_classifier(root / "ner", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]),
        "pos": tiny.tiny_token_classifier(root / "pos", ["NOUN", "VERB", "DET", "ADP", "PROPN"]),
        "extractive_qa": tiny.tiny_question_answerer(root / "squad"),
        "text_generator": tiny.tiny_text_generator(root / "gpt2"),
        "summarizer": tiny.tiny_bart_summarizer(root / "bart"),
        "translator": tiny.tiny_m2m100_translator(root / "m2m100"),
    }
    tiny.tiny_marian_translator(root / "opus-mt-en-de")
    return {role: str(folder) for role, folder in built.items()} | {"translator_opus": str(root / "opus-mt")}


@pytest.fixture(scope="module")
def tiny_pool(folders: dict[str, str]) -> PipelinePool:
    return PipelinePool(device="cpu", overrides=folders)


@pytest.fixture
def pool(tiny_pool: PipelinePool) -> Iterator[PipelinePool]:
    """The tiny models' pool, as the tools' context for the test."""
    with use_tools(pool=tiny_pool):
        yield tiny_pool


def test_roles_and_tool_names_are_unique_and_in_the_manifest() -> None:
    names = [tool.name for tool in TOOLS]
    assert len(set(names)) == len(names) == 11
    roles = manifest.manifest()
    assert {role.role for role in language.ROLES} <= set(roles)
    assert roles["zero_shot"].default == "facebook/bart-large-mnli"
    assert all(
        role.loader is not None
        for role in language.ROLES
        if role.task not in {"text-classification", "zero-shot-classification", "text-generation"}
    )


def test_check_grammar_one_text_and_a_batch(pool: PipelinePool, folders: dict[str, str]) -> None:
    tool = CheckGrammar()
    one = tool(text="the cat sleeps")
    assert one["label"] in {"acceptable", "unacceptable"} and 0 <= one["score"] <= 1
    assert one["model"] == folders["grammar"]
    many = tool(text=["the cat sleeps", "sleeps cat the", "a dog runs"])
    assert isinstance(many, list) and len(many) == 3 and all(r["label"] in {"acceptable", "unacceptable"} for r in many)
    with pytest.raises(ToolInputError, match="non-empty string"):
        tool(text="  ")
    with pytest.raises(ToolInputError, match="empty list"):
        tool(text=[])


def test_check_entailment_scores_every_label(pool: PipelinePool) -> None:
    tool = CheckEntailment()
    one = tool(premise="john lives in paris", hypothesis="john lives in a city")
    assert set(one["scores"]) == {"contradiction", "entailment", "neutral"}
    assert one["label"] == max(one["scores"], key=one["scores"].get)
    assert sum(one["scores"].values()) == pytest.approx(1, abs=1e-3)
    many = tool(premise="john lives in paris", hypothesis=["he lives in berlin", "he works", "mary reads"])
    assert len(many) == 3
    with pytest.raises(ToolInputError, match="equal"):
        tool(premise=["a", "b"], hypothesis=["a", "b", "c"])


def test_classify_text_zero_shot(pool: PipelinePool) -> None:
    tool = ClassifyTextZeroShot()
    one = tool(text="the dog runs in the city", candidate_labels=["sports", "animals", "travel"])
    assert sorted(one["labels"]) == ["animals", "sports", "travel"]
    assert sum(one["scores"]) == pytest.approx(1, abs=1e-3) and one["scores"] == sorted(one["scores"], reverse=True)
    multi = tool(text="the dog runs", candidate_labels=["a", "b"], multi_label=True)
    assert all(0 <= s <= 1 for s in multi["scores"])
    many = tool(text=["the dog runs", "mary reads a book"], candidate_labels=["x", "y"])
    assert len(many) == 2 and all(len(r["labels"]) == 2 for r in many)
    with pytest.raises(ToolInputError, match="candidate_labels"):
        tool(text="the dog runs", candidate_labels=[])


def test_detect_language_is_real_and_offline() -> None:
    tool = DetectLanguage()
    german = tool(text="Der Hund schläft im Haus und die Katze spielt im Garten.")
    assert german["language"] == "de" and 0.5 < german["confidence"] <= 1 and german["model"] == "lingua"
    assert german["name"] == "German"  # what an answer says, so the gate finds it in the tool output
    many = tool(text=["The weather is lovely today, isn't it?", "Le chat dort sur la voiture rouge."])
    assert [r["language"] for r in many] == ["en", "fr"]
    with pytest.raises(ToolInputError, match="no letters"):
        tool(text="1234 !!")


def test_answer_from_text_chunks_a_long_passage(pool: PipelinePool) -> None:
    tool = AnswerFromText()
    passage = " ".join(["mary reads a good book by the river ."] * 12 + ["john lives in paris ."])
    result = tool(question="where does john live ?", passage=passage)
    assert result["answer"] == passage[result["start"] : result["end"]] and result["answer"]
    assert 0 <= result["score"] <= 1 and result["start"] < result["end"]
    tokenizer = pool.get("extractive_qa").tokenizer
    assert len(tokenizer("where does john live ?", passage)["input_ids"]) > 64  # more than one chunk
    with pytest.raises(ToolInputError, match="passage"):
        tool(question="where does john live ?", passage="")


@pytest.mark.parametrize("tool_class", [ExtractEntities, TagPartsOfSpeech])
def test_token_tags_have_character_offsets(pool: PipelinePool, tool_class: type) -> None:
    tool = tool_class()
    text = "John lives in Paris and works in Berlin ."
    result = tool(text=text)
    assert result["model"] == pool.model_for(tool.role)
    for entity in result["entities"]:
        assert set(entity) == {"text", "label", "start", "end", "score"}
        assert entity["text"] == text[entity["start"] : entity["end"]] and 0 <= entity["score"] <= 1
    many = tool(text=[text, "mary reads a book"])
    assert len(many) == 2 and all(isinstance(r["entities"], list) for r in many)


def test_generate_text_is_repeatable_with_a_seed(pool: PipelinePool) -> None:
    tool = GenerateText()
    first = tool(prompt="the cat", max_new_tokens=5, temperature=1.0, seed=7)
    again = tool(prompt="the cat", max_new_tokens=5, temperature=1.0, seed=7)
    assert first == again and isinstance(first["text"], str) and first["model"] == pool.model_for("text_generator")
    assert isinstance(tool(prompt="the cat", max_new_tokens=3)["text"], str)
    with pytest.raises(ToolInputError, match="temperature"):
        tool(prompt="the cat", temperature=5.0)


def test_reply_in_conversation_uses_the_chat_template(pool: PipelinePool) -> None:
    tool = ReplyInConversation()
    messages = [{"role": "system", "content": "be good"}, {"role": "user", "content": "where is the cat ?"}]
    result = tool(messages=messages, max_new_tokens=4)
    assert isinstance(result["reply"], str) and result["model"] == pool.model_for("text_generator")
    with pytest.raises(ToolInputError, match="role"):
        tool(messages=[{"role": "robot", "content": "hi"}])
    with pytest.raises(ToolInputError, match="no 'user'"):
        tool(messages=[{"role": "system", "content": "hi"}])


@pytest.mark.usefixtures("minilm_available")
def test_summarize_text_extractive_keeps_original_order(pool: PipelinePool) -> None:
    text = (
        "The city council approved the new bridge on Monday. The bridge will cross the river near the old mill. "
        "My cat likes tuna. Construction of the bridge starts next spring and takes two years. "
        "The council said the bridge will cut traffic in the city center."
    )
    result = SummarizeText()(text=text, max_sentences=2)
    indexes = [s["index"] for s in result["sentences"]]
    assert len(indexes) == 2 and indexes == sorted(indexes) and 2 not in indexes  # the off-topic sentence goes
    assert result["summary"] == " ".join(s["text"] for s in result["sentences"])
    assert result["mode"] == "extractive" and "MiniLM" in result["model"]
    assert indexes[0] == 0  # the lead, which says what the text is about


@pytest.mark.usefixtures("minilm_available")
def test_a_one_line_summary_is_the_lead_past_a_greeting(pool: PipelinePool) -> None:
    memo = "The warehouse in Denver will close early on Wednesday. All shipments must leave before noon."
    assert SummarizeText()(text=memo, max_sentences=1)["summary"] == memo.split(". ")[0] + "."
    greeted = "Hi all! The budget review moves to Thursday. Coffee will be provided."
    assert SummarizeText()(text=greeted, max_sentences=1)["summary"] == "The budget review moves to Thursday."
    notes = "Team meeting, 4 March. Attendees: Rosa, Kwame, Lin. The launch moves from September to October."
    assert SummarizeText()(text=notes, max_sentences=1)["summary"] == "The launch moves from September to October."


def test_summarize_text_abstractive(pool: PipelinePool, folders: dict[str, str]) -> None:
    tool = SummarizeText()
    result = tool(
        text="the cat sleeps on the red car . john reads a book .",
        mode="abstractive",
        min_new_tokens=2,
        max_new_tokens=6,
    )
    assert isinstance(result["summary"], str) and result["model"] == folders["summarizer"]
    with pytest.raises(ToolInputError, match="mode"):
        tool(text="the cat", mode="poem")
    with pytest.raises(ToolInputError, match="above"):
        tool(text="the cat", mode="abstractive", min_new_tokens=9, max_new_tokens=3)


def test_translate_text_opus_pair_then_m2m100_for_others(pool: PipelinePool, folders: dict[str, str]) -> None:
    tool = TranslateText()
    marian = tool(text="the cat sleeps", source_language="en", target_language="de", max_new_tokens=5)
    assert marian["model"] == folders["translator_opus"] + "-en-de" and isinstance(marian["translation"], str)
    assert not marian["detected"]
    m2m = tool(text="Le chat dort sur la voiture rouge dans la rue.", target_language="it", max_new_tokens=5)
    assert m2m["detected"] and m2m["source_language"] == "fr" and m2m["model"] == folders["translator"]
    with pytest.raises(ToolInputError, match="unknown language code 'xx'"):
        tool(text="the cat", source_language="en", target_language="xx")
    with pytest.raises(ToolInputError, match="ISO 639-1"):
        tool(text="the cat", target_language="Elvish")
    english = tool(text="Le chat dort sur la voiture rouge dans la rue.", target_language="English", max_new_tokens=5)
    assert english["target_language"] == "en"  # a small model writes the language's name


def test_translate_text_falls_back_on_the_crews_chat_model_when_no_translation_model_is_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smolcrew.backends import ScriptedModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no opus-mt, no M2M100: neither ships offline
    asked: list[str] = []

    def translator(messages: list[dict]) -> str:
        asked.append(" ".join(part["text"] for m in messages for part in m["content"]))
        return '"Buenas noches."'

    offline = PipelinePool(device="cpu", overrides={"glossary": "/nonexistent/dictd"})
    with use_tools(pool=offline, chat_model=ScriptedModel(translator, model_id="qwen")):
        result = TranslateText()(text="good night", target_language="Spanish")
    assert result["translation"] == "Buenas noches."  # the quotes the model added are gone
    assert result["model"] == "qwen (chat model)" and result["target_language"] == "es"
    assert "into Spanish" in asked[0] and "good night" in asked[0] and "Dictionary" not in asked[0]
    with use_tools(pool=offline), pytest.raises(ModelUnavailableError):
        TranslateText()(text="good night", target_language="es")  # no chat model either: the model is missing


def test_a_missing_model_raises_model_unavailable(folders: dict[str, str]) -> None:
    pool = PipelinePool(device="cpu", overrides={"extractive_qa": folders["grammar"] + "-missing"})
    with use_tools(pool=pool), pytest.raises(ModelUnavailableError, match="extractive_qa"):
        AnswerFromText()(question="who ?", passage="john")
