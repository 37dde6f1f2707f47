"""Files in and out of tools: images and audio by path (or in memory), outputs in a per-run folder.

Every loader raises `ToolInputError` with a message the agent can act on: a missing file, a file that is not
an image, an audio format that cannot be decoded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["Workspace", "load_audio", "load_image", "require_file"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


@dataclass
class Workspace:
    """Where tools write their outputs: `root/<run_id>/artifacts/`. The Crew sets `run_id` for each run."""

    root: Path
    run_id: str = "adhoc"
    written: list[Path] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, run_id={self.run_id!r}, {len(self.written)} files)"

    @property
    def folder(self) -> Path:
        return self.root / self.run_id / "artifacts"

    def new_path(self, stem: str, suffix: str) -> Path:
        """A fresh path for an output file (the folder is created)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"
        self.written.append(path)
        return path


def require_file(value: Any, name: str, suffixes: set[str] | None = None) -> Path:
    """`value` as an existing file path, or ToolInputError saying what is wrong."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ToolInputError(f"`{name}` must be a file path (a string)")
    try:
        path = Path(str(value).strip()).expanduser()
        exists = path.is_file()
    except (RuntimeError, OSError, ValueError) as exc:  # "~nobody/x", a NUL byte, a name too long
        raise ToolInputError(f"`{name}`: {str(value)[:80]!r} is not a usable file path ({exc})") from exc
    if not exists:
        raise ToolInputError(f"`{name}`: no file at {path}; check the path (files must exist on this machine)")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ToolInputError(
            f"`{name}`: {path.suffix or 'no extension'} is not supported; use one of {sorted(suffixes)}"
        )
    return path


def load_image(value: Any, name: str = "image") -> Image.Image:
    """A PIL image in RGB from a PIL image or a path; ToolInputError for anything else."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    path = require_file(value, name)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ToolInputError(f"`{name}`: {path} is not a readable image ({exc}); pass a JPEG or PNG file") from exc


def load_audio(value: Any, name: str = "audio", *, sampling_rate: int = 16_000) -> np.ndarray:
    """Mono float32 samples at `sampling_rate` from a path or a numpy array (assumed already at that rate)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        samples = value.astype(np.float32)
        return samples.mean(axis=1) if samples.ndim == 2 else samples
    path = require_file(value, name, AUDIO_SUFFIXES)
    try:
        import soundfile
    except ImportError as exc:
        raise ToolInputError("reading audio needs soundfile: pip install 'smolcrew[audio]'") from exc
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ToolInputError(f"`{name}`: {path} could not be decoded ({exc}); convert it to WAV or FLAC") from exc
    mono = samples.mean(axis=1)
    if rate != sampling_rate:
        from math import gcd

        from scipy.signal import resample_poly

        divisor = gcd(rate, sampling_rate)
        mono = resample_poly(mono, sampling_rate // divisor, rate // divisor).astype(np.float32)
    return mono
