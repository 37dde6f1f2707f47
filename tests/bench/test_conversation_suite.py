"""The conversation suite's CI subset (bench/conversations.py `ci_subset`) through the real Crew with the embedded
0.5B: at least 90% of its turns right, each checked on its own, restarts included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.conversations import CATEGORIES, ci_subset, load_conversations, run_conversation


def test_the_ci_subset_is_fixed_dev_only_and_covers_every_category() -> None:
    chosen = ci_subset(load_conversations())
    assert len(chosen) >= 8 and {c["split"] for c in chosen} == {"dev"}
    assert {c["category"] for c in chosen} == set(CATEGORIES)
    assert [c["id"] for c in chosen] == [c["id"] for c in ci_subset(load_conversations())]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("minilm_available")
def test_the_ci_conversations_are_right_with_the_embedded_model(
    embedded_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    from smolcrew import Crew
    from tests.conftest import home_with_shared_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a model that is not here fails at once, not after retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    home = home_with_shared_cache(tmp_path / "home")

    def make_crew() -> Any:
        return Crew.from_config(
            home=str(home),
            llm={"backend": "embedded", "model_path": str(embedded_gguf)},
            memory={"sinks": []},
            files={"roots": [str(tmp_path)]},
        )

    turns: list[dict[str, Any]] = []
    crew = make_crew()
    try:
        for conversation in ci_subset(load_conversations()):
            records, crew = run_conversation(conversation, make_crew, crew, tmp_path / "files")
            turns += [{"id": conversation["id"], **record} for record in records]
    finally:
        crew.close()
    failed = [f"{t['id']} turn {t['turn']} {t['say']!r}: {t.get('answer')!r} {t.get('checks')}" for t in turns]
    assert sum(t["passed"] for t in turns) >= 0.9 * len(turns), "\n".join(
        line for line, turn in zip(failed, turns, strict=True) if not turn["passed"]
    )
