"""The embedded backend on the real packaged GGUF (Qwen2.5-Coder-0.5B-Instruct Q4_K_M), offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from smolagents.models import ChatMessage, MessageRole

from smolcrew.backends import LlamaCppModel
from smolcrew.crew import Crew
from tests.conftest import SHARED_CACHE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(embedded_gguf: Path) -> LlamaCppModel:
    return LlamaCppModel(embedded_gguf, n_ctx=4096, max_tokens=64)


def test_generates_with_token_counts(model: LlamaCppModel) -> None:
    reply = model.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "Say hello."}])])
    assert isinstance(reply.content, str) and reply.content.strip()
    assert reply.token_usage is not None and reply.token_usage.output_tokens > 0
    assert model.last_timings["predicted_per_second"] > 1


def test_json_schema_constrains_the_reply(model: LlamaCppModel) -> None:
    schema = {"type": "object", "properties": {"pick": {"enum": ["red", "blue"]}}, "required": ["pick"]}
    reply = model.generate(
        [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "Pick a colour."}])],
        response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
    )
    assert reply.content is not None and any(colour in reply.content for colour in ("red", "blue"))


def test_without_a_translation_model_translate_text_asks_the_chat_model(
    model: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smolcrew.pool import PipelinePool
    from smolcrew.tools.context import use_tools
    from smolcrew.tools.language import TranslateText

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with use_tools(pool=PipelinePool(device="cpu"), chat_model=model):
        result = TranslateText()(text="good night", target_language="Spanish")
    assert "noches" in result["translation"].lower() and result["model"].endswith("(chat model)")


@pytest.mark.usefixtures("minilm_available")
def test_crew_answers_the_arithmetic_request_offline(embedded_gguf: Path) -> None:
    with Crew.from_config(
        home=str(SHARED_CACHE / "home"), llm={"backend": "embedded", "model_path": str(embedded_gguf)}
    ) as crew:
        result = crew.run("What is 17*23+5? Use the language specialist if needed.")
    assert result.ok, result.error
    assert str(result.answer).split("=")[-1].strip() == "396"  # worked out by `calculate`
    assert result.agents == ("language",)
    assert result.output_tokens > 0
