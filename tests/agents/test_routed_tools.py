"""One routed run per specialist, end to end: the router picks the specialist, the scripted LLM writes the
code a model would, and the specialist's real tool runs (tools here need no model download: Tesseract,
espeak-ng, lingua, pandas, PIL). Tesseract and espeak-ng are Debian programs (`make system-deps`): without
one, its test skips with the command that installs it (in CI it fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from smolcrew.crew import Crew
from tests.conftest import code, require_program

pytestmark = pytest.mark.usefixtures("minilm_available")


def _run(crew: Crew, request: str) -> tuple[str, dict]:
    result = crew.run(request)
    assert result.ok, result.error
    return result.agents[0], result.to_dict()


def test_language_request_runs_detect_language(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [code('r = detect_language(text="Guten Morgen, wie geht es dir heute?")\nfinal_answer(r["language"])')]
    )
    agent, data = _run(crew, "Which language is this: 'Guten Morgen, wie geht es dir heute?'")
    assert agent == "language" and data["tools"] == ["detect_language"]
    assert data["answer"] == "de"


def test_research_request_runs_query_table(scripted_crew: Callable[..., Crew], tmp_path: Path) -> None:
    table = tmp_path / "orders.csv"
    table.write_text("id,status,total\n1,refunded,10\n2,paid,20\n3,refunded,5\n")
    where = '[{"column": "status", "op": "==", "value": "refunded"}]'
    query = f'r = query_table(path="{table}", operation="count", where={where})'
    crew = scripted_crew([code(f'{query}\nfinal_answer(r["matched_rows"])')])
    agent, data = _run(crew, f"How many rows in {table.name} have status refunded?")
    assert (agent, data["tools"], data["answer"]) == ("research", ["query_table"], 2)


def test_vision_request_reads_text_in_an_image(scripted_crew: Callable[..., Crew], tmp_path: Path) -> None:
    require_program("tesseract", "apt-get install -y tesseract-ocr tesseract-ocr-eng (or: make system-deps)")
    sign = tmp_path / "sign.png"
    image = Image.new("RGB", (640, 160), "white")
    ImageDraw.Draw(image).text((20, 40), "EXIT ONLY", fill="black", font=ImageFont.load_default(size=72))
    image.save(sign)
    crew = scripted_crew([code(f'r = read_text_in_image(image="{sign}")\nfinal_answer(r["text"])')])
    agent, data = _run(crew, f"What does the sign in {sign.name} say?")
    assert agent == "vision" and data["tools"] == ["read_text_in_image"]
    assert "EXIT" in data["answer"]


def test_audio_request_writes_speech_into_the_run_folder(scripted_crew: Callable[..., Crew]) -> None:
    require_program("espeak-ng", "apt-get install -y espeak-ng (or: make system-deps)")
    crew = scripted_crew([code('r = synthesize_speech(text="Your table is ready.")\nfinal_answer(r["path"])')])
    agent, data = _run(crew, "Read this aloud for me: 'Your table is ready.'")
    assert agent == "audio" and data["tools"] == ["synthesize_speech"]
    assert data["artifacts"] == [data["answer"]]
    assert f"/runs/{data['run_id']}/artifacts/" in data["answer"] and Path(data["answer"]).stat().st_size > 1000


def test_generation_request_upscales_an_image(scripted_crew: Callable[..., Crew], tmp_path: Path) -> None:
    photo = tmp_path / "tiny.png"
    Image.new("RGB", (40, 30), "teal").save(photo)
    crew = scripted_crew([code(f'r = upscale_image(image="{photo}", scale=2)\nfinal_answer(r)')])
    agent, data = _run(crew, f"Upscale {photo.name} to twice its size")
    assert agent == "generation" and data["tools"] == ["upscale_image"]
    assert len(data["artifacts"]) == 1
    with Image.open(data["artifacts"][0]) as bigger:
        assert bigger.size == (80, 60)
    assert json.dumps(data)  # the whole result is JSON-serialisable
