from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from smolagents.models import ChatMessage, MessageRole

from smolcrew.backends import LlamaCppModel, ScriptedModel, build_model, check_openai_server
from smolcrew.config import load_settings
from smolcrew.errors import ConfigError, ModelUnavailableError


def _user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": text}])


def test_scripted_model_replies_in_order_and_counts_tokens() -> None:
    model = ScriptedModel(["first reply", "second"])
    reply = model.generate([_user("one two three")])
    assert reply.content == "first reply"
    assert reply.token_usage is not None
    assert (reply.token_usage.input_tokens, reply.token_usage.output_tokens) == (3, 2)
    assert model.generate([_user("x")]).content == "second"
    with pytest.raises(ModelUnavailableError, match="no replies left after 2 calls"):
        model.generate([_user("x")])
    assert len(model.calls) == 3


def test_scripted_model_with_a_function_sees_the_messages() -> None:
    model = ScriptedModel(lambda messages: f"echo {len(messages)}")
    assert model.generate([_user("a"), _user("b")]).content == "echo 2"


def test_a_responder_sees_each_message_as_chat_message_dict_gives_it() -> None:
    from smolagents.models import ChatMessageToolCall, ChatMessageToolCallFunction
    from smolagents.monitoring import TokenUsage

    call = ChatMessageToolCall(ChatMessageToolCallFunction("calculate", {"expression": "2+2"}), "c1", "function")
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": "be brief"}]),
        ChatMessage(role=MessageRole.ASSISTANT, content="ok", tool_calls=[call], token_usage=TokenUsage(3, 1)),
        {"role": "user", "content": "hi"},
    ]
    seen: list[list[dict[str, object]]] = []

    def respond(given: list[dict[str, object]]) -> str:
        seen.append(given)
        return "done"

    ScriptedModel(respond).generate(messages)
    assert seen == [[messages[0].dict(), messages[1].dict(), {"role": "user", "content": "hi"}]]


def test_scripted_backend_needs_a_script() -> None:
    with pytest.raises(ConfigError, match=r"llm\.script is empty") as caught:
        build_model(load_settings(llm={"backend": "scripted"}))
    assert caught.value.field == "llm.script"
    model = build_model(load_settings(llm={"backend": "scripted", "script": ["<code>final_answer(1)</code>"]}))
    assert isinstance(model, ScriptedModel)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_openai_backend_unreachable_url_says_how_to_fix() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(ModelUnavailableError, match="unreachable") as caught:
        build_model(load_settings(llm={"backend": "openai", "api_base": url, "model": "m"}))
    assert caught.value.backend == "openai"
    assert "SMOLCREW_LLM__API_BASE" in str(caught.value)


def test_openai_backend_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="api_base is not set"):
        build_model(load_settings(llm={"backend": "openai"}))


@pytest.fixture
def models_server() -> Iterator[str]:
    """A real local HTTP server that answers GET /v1/models like an OpenAI-compatible server."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.headers.get("Authorization") != "Bearer wrong" else 401
            body = json.dumps({"data": [{"id": "tiny"}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_backend_builds_against_a_live_server(models_server: str) -> None:
    check_openai_server(models_server)
    model = build_model(load_settings(llm={"backend": "openai", "api_base": models_server, "model": "tiny"}))
    assert model.model_id == "tiny"
    with pytest.raises(ModelUnavailableError, match="refused the API key"):
        check_openai_server(models_server, api_key="wrong")


def test_embedded_backend_with_missing_file(tmp_path: Path) -> None:
    settings = load_settings(llm={"backend": "embedded", "model_path": str(tmp_path / "nope.gguf")})
    with pytest.raises(ModelUnavailableError, match="does not exist") as caught:
        build_model(settings)
    assert "SMOLCREW_LLM__MODEL_PATH" in caught.value.fix


def test_embedded_backend_with_unknown_bundle() -> None:
    with pytest.raises(ModelUnavailableError, match="unknown embedded model 'gpt-5'"):
        build_model(load_settings(llm={"backend": "embedded", "model": "gpt-5"}))


def test_llama_cpp_rejects_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"not a model" * 100)
    with pytest.raises(ModelUnavailableError, match="could not load"):
        LlamaCppModel(path, n_ctx=512)
