"""One conversation through the Python API (`crew.chat()`), the CLI (`smolcrew chat`) and the HTTP API (which
the web chat calls too): every turn gets the same routing, the same resolved request and prompt, and the same
answer. The crews are built from the same settings (router mode, the real MiniLM router, a scripted model), each
in its own home; what each run did is read back from that home's journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs fastapi: pip install fastapi uvicorn python-multipart")

from typer.testing import CliRunner

from smolcrew.cli import app
from smolcrew.config import load_settings
from smolcrew.crew import Crew
from tests.conftest import code, home_with_shared_cache
from tests.smolcrew.test_api import send, serve, sse

TURNS = [
    "My name is Ada and I live in Lisbon.",  # a statement: said back, no model
    "What is my name?",  # answered from the conversation: the model's first reply
    'Count the words in "the cat sat on the mat"',  # the language specialist: a tool, then its answer
    "thanks, that's all",  # chit-chat: the model's reply
]
SCRIPT = [
    "Your name is Ada.",
    code('result = count_words(text="the cat sat on the mat")\nresult'),
    code('final_answer("There are 6 words.")'),
    "You're welcome!",
]
pytestmark = pytest.mark.usefixtures("minilm_available")


def _settings(home: Path) -> dict[str, Any]:
    return {"home": str(home), "llm": {"backend": "scripted", "script": SCRIPT}, "routing": {"mode": "router"}}


def _turns(home: Path) -> list[tuple[Any, ...]]:
    """(mode, task, prompt, state, answer) of each turn the home's journal holds, in the order they ran."""
    starts, ends = {}, {}
    for path in (home / "journal").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            payload = record["payload"]
            if record["kind"] == "run_start" and payload.get("parent") is None:
                starts[record["run_id"]] = (record["ts"], payload["mode"], payload["task"], payload["prompt"])
            elif record["kind"] == "run_end" and payload.get("parent") is None:
                ends[record["run_id"]] = (payload["state"], payload["answer"])
    return [(*start[1:], *ends[run_id]) for run_id, start in sorted(starts.items(), key=lambda item: item[1][0])]


def test_the_python_api_the_cli_and_the_http_api_have_the_same_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python_home, cli_home, http_home = (home_with_shared_cache(tmp_path / name) for name in ("py", "cli", "http"))

    with Crew.from_config(**_settings(python_home)) as crew:
        chat = crew.chat()
        answers = [chat.send(turn).answer for turn in TURNS]
    assert answers == [
        "Got it: your name is Ada and you live in Lisbon.",
        "Your name is Ada.",
        "There are 6 words.",
        "You're welcome!",
    ]
    expected = _turns(python_home)
    assert [turn[0] for turn in expected] == ["reply", "reply", "router", "reply"]
    assert all(turn[3] == "success" for turn in expected), expected

    monkeypatch.setenv("SMOLCREW_HOME", str(cli_home))
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps(SCRIPT))
    monkeypatch.setenv("SMOLCREW_ROUTING__MODE", "router")
    typed = CliRunner().invoke(app, ["chat"], input="\n".join([*TURNS, "/exit"]) + "\n")
    assert typed.exit_code == 0, typed.output
    assert _turns(cli_home) == expected

    with serve(load_settings(**_settings(http_home)), lambda settings: Crew(settings)) as client:
        conversation = client.post("/v1/conversations").json()["id"]
        for turn in TURNS:
            assert sse(client, send(client, conversation, turn)["events_url"])[-1]["event"] == "run_end"
    assert _turns(http_home) == expected
