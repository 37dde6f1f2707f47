"""Corrections a chat message makes to the last request: the value it swaps in ("make it 3 instead of 5", "in
French instead", "I meant the second one", "not avg, the total", "same thing but smallest") or the narrowing it
adds ("just the groceries ones"). smolcrew/conversation.py rewrites the request with them."""

from __future__ import annotations

import re

from smolcrew.agents.replies import language_named

__all__ = ["language_asked", "substituted"]

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_SWAP_NUMBER = re.compile(
    rf"(?<![\w.])({_NUMBER})\s*%?\s+(?:instead of|not|rather than)\s+({_NUMBER})\s*%?(?![\w.])", re.I
)
_NEW_NUMBER = re.compile(rf"\b(?:i meant|make it|use|try|change it to|should be)\s+({_NUMBER})(?![\w.])", re.I)
_NEW_LANGUAGE = re.compile(
    r"\b(?:in|into|to|what about|how about|i meant)\s+([A-Za-z]+)\b|\b([A-Za-z]+)\s+instead\b|"
    r"^\W*(?:and|or|now|also|ok(?:ay)?|perfect|great|thanks)[\s,.!]+(?:(?:and|now|also)\s+)?(?!what\b|how\b)([A-Za-z]+)\b",
    re.I,
)


_ORDINAL = re.compile(r"(?<![\w/.-])(first|second|third|fourth|last)(?![\w/.-])", re.I)  # not in a file name
_NOT_THE = re.compile(r"\bnot\s+(?:the\s+)?$", re.I)
_NOT_BUT = re.compile(
    r"\bnot (?:the |an? )?(?P<old>[\w-]+),? (?:but )?(?:the |an? )?(?P<new>[\w-]+)\W*$|"
    r"^\W*(?:no\W+)?(?:the |an? )?(?P<now>[\w-]+),? not (?:the |an? )?(?P<was>[\w-]+)\W*$",
    re.I,
)
_SAME_BUT = re.compile(
    r"^\W*(?:the )?same(?: thing| again| question)?\W+(?:but|for|with)\s+(?:the\s+)?(?P<new>\w+)", re.I
)
_RANKS = re.compile(
    r"\b(?:largest|biggest|smallest|highest|lowest|cheapest|priciest|most|least|fewest|best|worst|oldest|youngest|"
    r"longest|shortest)\b",
    re.I,
)
_NARROWS = re.compile(r"^\W*(?:and\s+|but\s+|now\s+)?(?:just|only)\s+(?:the|for|those|in)\b", re.I)


def language_asked(message: str) -> str | None:
    """The language `message` asks for ("in French instead", "and German?"), or None."""
    languages = (language_named(word) for m in _NEW_LANGUAGE.finditer(message) for word in m.groups() if word)
    return next((language for language in languages if language), None)


def substituted(message: str, request: str) -> str | None:
    """`request` with the value `message` swaps in ("make it 3 instead of 5", "sorry, I meant 50", "in French
    instead"), or None when the correction swaps no value the request holds once."""
    swap = _SWAP_NUMBER.search(message)
    if swap is not None:
        new, old = swap.groups()
    else:
        numbers = re.findall(rf"(?<![\w.]){_NUMBER}(?![\w.])", request)
        found = _NEW_NUMBER.search(message)
        new, old = (found.group(1), numbers[0]) if found and len(numbers) == 1 else (None, None)
    if new is not None and old is not None and new != old:  # "sorry, I meant 10 miles in km": not a new number
        places = re.findall(rf"(?<![\w.]){re.escape(old)}(?![\w.])", request)
        return re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w.])", new, request) if len(places) == 1 else None
    for found in _NOT_BUT.finditer(message):  # "no wait not avg, the total": the word swapped
        old_word, new_word = found.group("old") or found.group("was"), found.group("new") or found.group("now")
        spots = re.findall(rf"(?<![\w-]){re.escape(old_word)}(?![\w-])", request, re.I)
        if len(spots) == 1 and old_word.lower() != new_word.lower() and not _ORDINAL.fullmatch(new_word):
            return re.sub(rf"(?<![\w-]){re.escape(old_word)}(?![\w-])", new_word, request, flags=re.I)
    same = _SAME_BUT.match(message)
    ranked = _RANKS.findall(request)
    if same and len(ranked) == 1 and _RANKS.fullmatch(same["new"]):  # "same thing but smallest"
        return _RANKS.sub(same["new"].lower(), request)
    if _NARROWS.match(message):  # "just the groceries ones": the same request, narrowed
        return f"{request.rstrip(' ?.!')}, {message.strip(' .!')}"
    places = [m for m in _ORDINAL.finditer(message) if not _NOT_THE.search(message[: m.start()])]
    given = _ORDINAL.findall(request)
    if places and len(given) == 1 and places[0].group(1).lower() != given[0].lower():  # "I meant the second one"
        return _ORDINAL.sub(places[0].group(1).lower(), request)
    wanted = language_asked(message)
    named = [m for m in _NEW_LANGUAGE.finditer(request) if m.group(1) and language_named(m.group(1))]
    if wanted is None or len(named) != 1:
        return None
    where = named[0].span(1)
    return f"{request[: where[0]]}{wanted}{request[where[1] :]}"
