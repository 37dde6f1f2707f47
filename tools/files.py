"""Files in and out of tools: images and audio by path (or in memory), outputs in a per-run folder.

Every loader raises `ToolInputError` with a message the agent can act on: a missing file, a file outside the
folders the run may read, a file that is not an image, an audio format that cannot be decoded. Which folders a
run may read is the run's business (`ToolContext.roots`, see tools/context.py); the check is here, in
`require_file`, the one door every file-taking tool goes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.context import current_roots
from smolcrew.tools.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["Workspace", "check_root", "load_audio", "load_image", "require_file"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


def check_root(path: Path, name: str, roots: Sequence[Path], given: Any = None) -> None:
    """ToolInputError naming the allowed folders unless `path` (symlinks already resolved) lies under one of
    `roots` (each resolved here too). `given`: the path as the agent wrote it, for the message."""
    allowed = list(dict.fromkeys(root.expanduser().resolve() for root in roots))
    if any(path.is_relative_to(root) for root in allowed):
        return
    listed = ", ".join(str(root) for root in allowed) or "(none)"
    shown = str(path) if given is None or str(given).strip() == str(path) else f"{str(given).strip()[:120]} ({path})"
    raise ToolInputError(
        f"`{name}`: {shown} is outside the folders this run may read: {listed}; copy the file into one of them "
        "or add its folder to `files.roots`"
    )


def require_file(value: Any, name: str, suffixes: set[str] | None = None) -> Path:
    """`value` as an existing file path that this run may read, or ToolInputError saying what is wrong.

    Every tool that takes a file path comes through here (or through `load_image` / `load_audio`, which do).
    Inside a crew's run the path, its symlinks resolved first, must lie under one of the run's folders
    (`tools.context.current_roots()`: the run's workspace plus the current directory and `files.roots`, or for
    the HTTP API the conversation's uploads); the resolved path is returned. A tool used on its own, outside a
    crew (no roots in its context), reads any path, as before.
    """
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ToolInputError(f"`{name}` must be a file path (a string)")
    roots = current_roots()
    try:
        path = Path(str(value).strip()).expanduser()
        if roots is not None:
            path = path.resolve(strict=path.exists())  # `..` and every symlink resolved before the check
        exists = path.is_file()
    except (RuntimeError, OSError, ValueError) as exc:  # "~nobody/x", a NUL byte, a name too long, a link loop
        raise ToolInputError(f"`{name}`: {str(value)[:80]!r} is not a usable file path ({exc})") from exc
    if roots is not None:
        check_root(path, name, roots, value)  # before saying whether the file exists: nothing outside can be probed
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
