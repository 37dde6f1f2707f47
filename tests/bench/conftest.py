"""Shared by the task suite's tests: small media files and step records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smolcrew.memory.records import StepRecord


def step(error: str | None = None, calls: list[str] | None = None, **payload: Any) -> StepRecord:
    """An agent's action step with this error (None: it ran fine), these called names and more payload."""
    return StepRecord("r1", 1, "vision", "action", {"error": error, "calls": calls or [], **payload})


CALL_STEP = step("Code execution failed at line 'final_answer(x)' due to: InterpreterError: The variable `x`")
TOOL_STEP = step(
    "Code execution failed at line 'answer_from_pdf(pdf_path=p, question=q)' due to: ModelUnavailableError: no",
    ["answer_from_pdf"],
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1.5 s and a 0.2 s WAV, a 200x100 and a 50x50 PNG."""
    import numpy as np
    import soundfile
    from PIL import Image

    folder = tmp_path_factory.mktemp("media")
    files = {"long.wav": 1.5, "short.wav": 0.2}
    for name, seconds in files.items():
        soundfile.write(folder / name, np.zeros(int(16_000 * seconds), dtype=np.float32), 16_000)
    Image.new("RGB", (200, 100)).save(folder / "big.png")
    Image.new("RGB", (50, 50)).save(folder / "small.png")
    return {name: folder / name for name in ("long.wav", "short.wav", "big.png", "small.png")}
