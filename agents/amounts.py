"""Amounts a request asks for in words, read for a direct call's inputs: a factor ("4x", "twice"), a summary's
length ("in two sentences", "one line", "shorter")."""

from __future__ import annotations

import re

__all__ = ["scale_asked", "sentences_asked"]

_SCALE = re.compile(
    r"\b(?:(?P<n>[2-8])\s*(?:x|×|times)(?!\w)|(?P<word>twice|double|triple|three times|four times|quadruple))", re.I
)
_SCALE_WORDS = {"twice": 2, "double": 2, "triple": 3, "three times": 3, "four times": 4, "quadruple": 4}
_NUMBER_WORDS = {"a": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_SENTENCES = re.compile(r"\b(\d|a|one|single|two|three|four|five)[ -](?:sentences?|lines?)\b", re.I)


def scale_asked(task: str) -> int | None:
    """The factor a request asks for ("upscale it 4x", "twice as big"), or None."""
    if (found := _SCALE.search(task)) is None:
        return None
    return int(found.group("n")) if found.group("n") else _SCALE_WORDS[found.group("word").lower()]


def sentences_asked(request: str) -> int | None:
    """How many sentences a summary may have: "in two sentences", "one line", "shorter" (2), "even shorter" (1)."""
    request = re.sub(r"\S*[/\\]\S*|\S+\.\w{2,4}\b", " ", request)  # a path's words are no request ("x-shorter/a.txt")
    if (found := _SENTENCES.search(request)) is not None:
        return int(count) if (count := found.group(1).lower()).isdigit() else _NUMBER_WORDS[count]
    shorter = len(re.findall(r"\bshorter\b", request, re.I))
    return max(1, 3 - shorter - bool(re.search(r"\b(?:even|much) shorter\b", request, re.I))) if shorter else None
