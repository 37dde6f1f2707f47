"""Input files for the task suite, made fresh on each run from their description in bench/data/tasks.jsonl.

A task's `files` maps a file name to a spec `{"kind": ..., ...}`; `make_files(files, folder)` writes each one
into `folder` and returns {name: path}. Kinds:

- `speech`: `text` spoken by espeak-ng (`voice`, default "en"; `speed` in words per minute, default 150);
  `noise` adds white noise at that amplitude (0-1) and `pad_s` seconds of silence around the speech (so a
  noise reducer has quiet moments to measure); `tone_hz` makes a stereo "song": the voice in the centre and
  a tone of that pitch on the sides.
- `image`: `lines` of text drawn in black on white (`font_size`, default 32; `width`/`height` in pixels, default:
  what the text needs; `margin`, default 30).
- `pdf`: one page per string in `pages` (fpdf2, Helvetica; Latin-1 text only).
- `table`: `columns` and `rows`, written as CSV or XLSX by the file name's suffix.
- `text`: `text` in a UTF-8 file.

Nothing here is committed as binary: the suite's inputs are reproducible from the data file alone.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FILE_KINDS", "FileSpecError", "make_file", "make_files", "missing_programs"]

SAMPLE_RATE = 22_050  # espeak-ng's own rate


class FileSpecError(ValueError):
    """A file spec in the task data is malformed (unknown kind, missing field, wrong suffix)."""


def _require(spec: Mapping[str, Any], key: str, kind: type | tuple[type, ...], name: str) -> Any:
    if key not in spec:
        raise FileSpecError(f"file {name!r}: kind {spec.get('kind')!r} needs {key!r}")
    value = spec[key]
    if not isinstance(value, kind):
        raise FileSpecError(f"file {name!r}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _speech(path: Path, spec: Mapping[str, Any]) -> None:
    import numpy as np
    import soundfile

    text = _require(spec, "text", str, path.name)
    if path.suffix.lower() != ".wav":
        raise FileSpecError(f"file {path.name!r}: speech is written as .wav")
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed: apt-get install espeak-ng (or `make system-deps`)")
    raw = path.with_suffix(".espeak.wav")
    voice, speed = str(spec.get("voice", "en")), int(spec.get("speed", 150))
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True, timeout=60)
    samples, rate = soundfile.read(raw, dtype="float32")
    raw.unlink()
    pad = np.zeros(int(float(spec.get("pad_s", 0.0)) * rate), dtype=np.float32)
    samples = np.concatenate([pad, samples, pad])
    noise = float(spec.get("noise", 0.0))
    if noise:
        samples = samples + np.random.default_rng(7).normal(0.0, noise, samples.shape).astype(np.float32)
    if "tone_hz" in spec:
        t = np.arange(len(samples)) / rate
        tone = 0.2 * np.sin(2 * np.pi * float(spec["tone_hz"]) * t).astype(np.float32)
        samples = np.stack([samples + tone, samples - tone], axis=1)
    peak = float(np.max(np.abs(samples))) or 1.0
    soundfile.write(path, samples / max(peak, 1.0), rate, subtype="PCM_16")


def _image(path: Path, spec: Mapping[str, Any]) -> None:
    from PIL import Image, ImageDraw, ImageFont

    lines = _require(spec, "lines", list, path.name)
    size = int(spec.get("font_size", 32))
    margin = int(spec.get("margin", 30))
    font = ImageFont.load_default(size=size)  # Pillow's bundled scalable font: the same on every machine
    step = int(size * 1.5)
    widths = [font.getbbox(str(line))[2] for line in lines] or [0]
    width = int(spec.get("width", max(widths) + 2 * margin))
    height = int(spec.get("height", step * len(lines) + 2 * margin - (step - size)))
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    for number, line in enumerate(lines):
        draw.text((margin, margin + number * step), str(line), fill="black", font=font)
    picture.save(path)


def _pdf(path: Path, spec: Mapping[str, Any]) -> None:
    from fpdf import FPDF

    pages = _require(spec, "pages", list, path.name)
    document = FPDF()
    document.set_font("helvetica", size=12)
    for page in pages:
        document.add_page()
        document.multi_cell(0, 8, str(page))
    document.output(str(path))


def _table(path: Path, spec: Mapping[str, Any]) -> None:
    import pandas

    frame = pandas.DataFrame(
        _require(spec, "rows", list, path.name), columns=_require(spec, "columns", list, path.name)
    )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        raise FileSpecError(f"file {path.name!r}: tables are written as .csv or .xlsx, not {suffix or 'nothing'}")


def _text(path: Path, spec: Mapping[str, Any]) -> None:
    path.write_text(_require(spec, "text", str, path.name), encoding="utf-8")


FILE_KINDS: dict[str, Callable[[Path, Mapping[str, Any]], None]] = {
    "speech": _speech,
    "image": _image,
    "pdf": _pdf,
    "table": _table,
    "text": _text,
}
PROGRAMS = {"speech": "espeak-ng"}
"""Programs a kind runs (the others need only Python packages)."""


def make_file(name: str, spec: Mapping[str, Any], folder: Path) -> Path:
    """Write file `name` described by `spec` into `folder`; return its path.

    Raises:
        FileSpecError: the spec is malformed.
        FileNotFoundError: a program the kind needs (espeak-ng) is not installed.
    """
    if not name or "/" in name or name.startswith("."):
        raise FileSpecError(f"file name {name!r}: use a plain file name such as memo.wav")
    make = FILE_KINDS.get(str(spec.get("kind")))
    if make is None:
        raise FileSpecError(f"file {name!r}: unknown kind {spec.get('kind')!r}; use one of {sorted(FILE_KINDS)}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    make(path, spec)
    return path


def make_files(files: Mapping[str, Mapping[str, Any]], folder: Path) -> dict[str, Path]:
    """Write every file of a task into `folder`: {name: path}."""
    return {name: make_file(name, spec, folder) for name, spec in files.items()}


def missing_programs(kinds: set[str]) -> list[str]:
    """Programs that these file kinds need and that are not on PATH."""
    return sorted({PROGRAMS[k] for k in kinds if k in PROGRAMS and shutil.which(PROGRAMS[k]) is None})
