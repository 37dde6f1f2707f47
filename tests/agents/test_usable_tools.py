"""Only tools whose model can load are offered to a specialist: a tool that can only fail is not a choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from smolcrew.agents.specialists import SPECIALISTS, tool_roles
from smolcrew.pool import PipelinePool


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.usefixtures("offline")
def test_offline_a_specialist_offers_the_tools_whose_models_are_here() -> None:
    pool = PipelinePool(device="cpu")
    vision = [tool.name for tool in SPECIALISTS["vision"].usable_tools(pool)]
    assert "read_text_in_image" in vision  # tesseract: no model role
    assert "classify_image_zero_shot" not in vision  # CLIP comes from the Hub only
    assert "classify_image" in vision  # EfficientNet-Lite0 ships in a package
    audio = [tool.name for tool in SPECIALISTS["audio"].usable_tools(pool)]
    assert "transcribe_speech" in audio  # whisper ships in a package
    for spec in SPECIALISTS.values():
        for tool in spec.usable_tools(pool):
            assert all(pool.can_load(role) for role in tool_roles(tool))


@pytest.mark.usefixtures("offline")
def test_a_model_set_to_a_local_folder_brings_its_tool_back(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    pool = PipelinePool(device="cpu", overrides={"image_text_matcher": str(folder)})
    assert "classify_image_zero_shot" in [tool.name for tool in SPECIALISTS["vision"].usable_tools(pool)]


@pytest.mark.usefixtures("offline")
def test_a_tool_that_can_use_the_chat_model_is_offered_with_one() -> None:
    from smolcrew.backends import ScriptedModel

    pool = PipelinePool(device="cpu")
    assert "translate_text" not in [tool.name for tool in SPECIALISTS["language"].usable_tools(pool)]
    offered = SPECIALISTS["language"].usable_tools(pool, chat_model=ScriptedModel([]))
    assert "translate_text" in [tool.name for tool in offered]
