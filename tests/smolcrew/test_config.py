from __future__ import annotations

from pathlib import Path

import pytest

from smolcrew.config import load_settings
from smolcrew.errors import ConfigError


def test_defaults_run_the_embedded_model_through_the_router(isolated_env: Path) -> None:
    settings = load_settings()
    assert settings.llm.backend == "embedded"
    assert settings.llm.model == "qwen2.5-coder-0.5b"
    assert settings.routing.mode == "router"
    assert settings.home == isolated_env
    assert settings.cache_dir == isolated_env / "cache"


def test_environment_overrides_file_and_keywords_override_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "smolcrew.toml").write_text('[llm]\nbackend = "openai"\nmax_tokens = 64\n[agents]\nmax_steps = 3\n')
    monkeypatch.setenv("SMOLCREW_AGENTS__MAX_STEPS", "9")
    settings = load_settings()
    assert settings.llm.backend == "openai"
    assert settings.llm.max_tokens == 64
    assert settings.agents.max_steps == 9
    assert load_settings(agents={"max_steps": 2}).agents.max_steps == 2


def test_explicit_config_path_and_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.toml"
    path.write_text('device = "cpu"\n[routing]\nmode = "manager"\n')
    assert load_settings(path).routing.mode == "manager"
    monkeypatch.setenv("SMOLCREW_CONFIG", str(path))
    assert load_settings().device == "cpu"


def test_invalid_value_names_the_field_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "gpt-9")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.field == "llm.backend"
    message = str(caught.value)
    assert "SMOLCREW_LLM__BACKEND" in message and "'gpt-9'" in message and "scripted" in message


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "smolcrew.toml").write_text("[agents]\nmax_stepz = 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting `agents.max_stepz`"):
        load_settings()


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`agents.max_steps`.*greater than or equal to 1") as caught:
        load_settings(agents={"max_steps": 0})
    assert caught.value.field == "agents.max_steps"


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm\nbackend=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
