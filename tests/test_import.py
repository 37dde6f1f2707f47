"""Importing smolcrew and asking the CLI for help stay light: no torch, transformers or smolagents."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "smolagents", "sentence_transformers")


def _loaded_after(statement: str) -> list[str]:
    probe = f"import sys, json\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return list(json.loads(output.strip().splitlines()[-1]))


def test_import_smolcrew_is_light() -> None:
    assert _loaded_after("import smolcrew; smolcrew.load_settings; smolcrew.ConfigError") == []


def test_cli_help_is_light() -> None:
    assert _loaded_after("from smolcrew.cli.app import app") == []
    result = subprocess.run([sys.executable, "-m", "smolcrew.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "route" in result.stdout and "doctor" in result.stdout
