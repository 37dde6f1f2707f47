"""The claim verifier: trained here from the passages in validators/data (on a tiny plan, for its mechanics:
training, caching by digest, loading, scoring), and the trained default on fixed pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smolcrew.errors import ModelUnavailableError
from smolcrew.validators.verifier import ClaimVerifier, TrainingPlan, train_verifier, verifier_folder

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("minilm_available")]

TINY = TrainingPlan(pairs=32, batch_size=16, max_length=64)


def test_a_verifier_is_trained_once_cached_by_its_plan_and_loaded(tmp_path: Path) -> None:
    lines: list[str] = []
    folder = train_verifier(tmp_path, TINY, progress=lines.append)
    assert folder == verifier_folder(tmp_path, TINY) and folder.parent.name == "claim-verifier"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train_pairs"] == 32 and metrics["held_out_pairs"] > 100 and 0 <= metrics["held_out_accuracy"] <= 1
    assert "training the claim verifier" in lines[0] and "held-out synthetic accuracy" in lines[-1]
    assert train_verifier(tmp_path, TINY, progress=lines.append) == folder and len(lines) == 2  # cached
    assert verifier_folder(tmp_path, TrainingPlan(pairs=64)) != folder  # another plan, another model

    verifier = ClaimVerifier.load(tmp_path, TINY)
    scores = verifier.support(["Paris is in France.", "Rome is in Peru."], ["Paris is the capital of France."])
    assert len(scores) == 2 and all(0.0 <= score <= 1.0 for score in scores)
    assert verifier.support(["anything"], []) == [0.0]


def test_an_untrained_verifier_says_how_to_train_it(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="smolcrew validate train"):
        ClaimVerifier.load(tmp_path)
