"""`smolcrew validate check` on one answer and its evidence files, and `validate train` when the verifier is
cached (training itself is tested in tests/validators/test_verifier.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.cli.app import app

runner = CliRunner()
TASK = "When was the Eiffel Tower finished?"


@pytest.fixture
def evidence_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMOLCREW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SMOLCREW_VALIDATION__CLAIMS", "terms")
    path = tmp_path / "page.txt"
    path.write_text("The Eiffel Tower in Paris was finished in March 1889 for the World's Fair.")
    return path


def test_a_supported_answer_passes(evidence_file: Path) -> None:
    result = runner.invoke(app, ["validate", "check", TASK, "It was finished in March 1889.", "-e", str(evidence_file)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pass")


def test_an_unsupported_claim_fails_and_is_named(evidence_file: Path) -> None:
    answer = "It was finished in March 1889 by Gustave Eiffel."
    result = runner.invoke(app, ["validate", "check", TASK, answer, "-e", str(evidence_file), "--json"])
    assert result.exit_code == 1
    verdict = json.loads(result.output)
    assert verdict["outcome"] == "fail"
    reasons = " ".join(verdict["reasons"])
    assert "'Gustave Eiffel'" in reasons and "by Gustave Eiffel" in reasons


def test_a_missing_evidence_file_is_a_clear_error(evidence_file: Path) -> None:
    result = runner.invoke(app, ["validate", "check", TASK, "1889.", "-e", str(evidence_file.with_name("nope.txt"))])
    assert result.exit_code == 2 and "nope.txt" in result.output
