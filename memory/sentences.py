"""Sentences of real text: pysbd's rule-based segmenter (abbreviations, decimals, initials, quotes), after putting
back the space that PDF text and OCR often lose after a full stop ("genus.Chrysanthemums"), and with paths and
URLs kept whole. Retrieval answers (tools/rag.py) pick sentences with it; the validators split answers into
claims with it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pysbd

__all__ = ["sentences"]

_GLUED = re.compile(r"(?<=[a-z\d)\]][a-z)\]][.!?])(?=[A-Z][a-z])")
"""A sentence end with its space lost: "genus.Chrysanthemums" (two lowercase letters first, so "U.S.A" stays)."""


@cache
def _segmenter() -> pysbd.Segmenter:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


_PATH = re.compile(r"(?:https?://|~?/)[^\s'\"<>]+")
"""Paths and URLs: their dots end no sentence."""


def sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace collapsed; a blank line or a list item also ends a sentence."""
    paths: list[str] = []

    def hide(match: re.Match[str]) -> str:
        paths.append(match.group(0).rstrip(".,;:)"))
        return f"PATH{len(paths) - 1}X" + match.group(0)[len(paths[-1]) :]

    found: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d{1,2}[.)])\s)", _GLUED.sub(" ", _PATH.sub(hide, text))):
        block = " ".join(block.split())
        if block:
            found += [" ".join(part.split()) for part in _segmenter().segment(block) if part.strip()]
    return [re.sub(r"PATH(\d+)X", lambda m: paths[int(m.group(1))], part) for part in found]
