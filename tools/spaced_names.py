"""Files whose paths have spaces in them ("Scan 2024-05-01.png"), given to the agents by a name without.

A request names its files in running text, so every rule that finds a file name (routing, direct tool calls, the
grammar of a tool call) stops at a space: "what's on Scan 2024-05-01.png?" had the tools read "2024-05-01.png".
Rather than teach each of them where a name with spaces ends, the request is given a link to the file whose name
has none (`<folder>/<digest>/Scan_2024-05-01.png`). Only files that exist, under the run's folders, get one; the
link resolves to the file itself, so the folder checks of `tools.files.require_file` judge the file, not the link.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["without_spaces"]

_NAME_END = re.compile(
    r"\.(?:png|jpe?g|gif|bmp|webp|tiff?|wav|flac|ogg|mp3|m4a|aiff?|mp4|mov|avi|mkv|webm|pdf|csv|tsv|xlsx?|txt|md|"
    r"docx?|json)(?![\w.])",
    re.IGNORECASE,
)
_WORD_START = re.compile(r"(?:(?<=^)|(?<=[\s\"'“(\[{<:]))(?=\S)")
_LONGEST = 200
"""Characters before a file's extension in which its path may start."""


def without_spaces(text: str, roots: Sequence[Path] | None, folder: Path) -> str:
    """`text` with each existing file it names by a path with a space in it replaced by a link to that file in
    `folder` with no space in its name. `roots`: the folders the file must lie under (None: anywhere); a
    relative name is looked up in each of them."""
    if " " not in text or not _NAME_END.search(text):
        return text
    found: list[tuple[int, int, Path]] = []
    for end in _NAME_END.finditer(text):
        floor = max(0, end.end() - _LONGEST, found[-1][1] if found else 0)
        for start in (m.start() + floor for m in _WORD_START.finditer(text[floor : end.start()])):
            named = text[start : end.end()]
            if " " in named.strip() and (path := _existing(named.strip(), roots)) is not None:
                found.append((start, end.end(), path))
                break  # the longest name that is a file: "Scan 2024-05-01.png", not "2024-05-01.png"
    for start, stop, path in reversed(found):
        link = _link(path, folder)
        if link is not None:
            text = f"{text[:start]}{link}{text[stop:]}"
    return text


def _existing(named: str, roots: Sequence[Path] | None) -> Path | None:
    try:
        given = Path(named).expanduser()
        candidates = [given] if given.is_absolute() else [root.expanduser() / given for root in roots or (Path(),)]
        for candidate in candidates:
            path = candidate.resolve()
            inside = roots is None or any(path.is_relative_to(root.expanduser().resolve()) for root in roots)
            if inside and path.is_file():
                return path
    except (OSError, RuntimeError, ValueError):  # a name too long, a link loop, a NUL byte: not a file
        return None
    return None


def _link(path: Path, folder: Path) -> Path | None:
    """A link to `path` named without spaces, one per file (the same link on every turn that names it)."""
    link = folder / hashlib.sha256(str(path).encode()).hexdigest()[:12] / re.sub(r"\s+", "_", path.name)
    try:
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
    except OSError:  # a filesystem without links: the name stays as it was
        return None
    return link
