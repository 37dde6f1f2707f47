"""How a request splits into steps: at sequencing words ("then", "after that"), new sentences and "and <verb>",
never inside quotes (the router scores each step; agents/router.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from smolcrew.agents.grammar import FILE_NAME

__all__ = ["FIRST", "Segment", "remark", "request_segments", "self_corrected", "split_steps", "step_text"]

_SEQUENCE_WORDS = (
    r"and then|then|after that|afterwards|after this|once (?:that(?:'s| is)|it(?:'s| is)|you(?:'re| are)) done|"
    r"once done|when (?:that(?:'s| is)|it(?:'s| is)|you(?:'re| are)) done|next|finally|followed by|"
    r"and finally|lastly|secondly"
)
# Verbs that start a new piece of work: "transcribe x and translate it", "caption it, read it aloud".
_ACTION_VERBS = (
    r"translate|summari[sz]e|transcribe|read|narrate|voice|record|speak|say|generate|create|make|draw|paint|"
    r"render|design|illustrate|caption|describe|detect|count|classify|identify|label|tell|answer|explain|"
    r"write|turn|convert|check|search|find|look|compare|analy[sz]e|extract|pull|ocr|list|save|email|send|"
    r"use|put|add|remove|denoise|clean|animate|rewrite|correct|fix|proofread|draft|compose|come up"
)
_ACTION = re.compile(rf"\b(?:{_ACTION_VERBS})\b", re.I)
_SPLIT = re.compile(
    r"(?P<strong>(?i:(?:[,;]\s*|\s+)(?:" + _SEQUENCE_WORDS + r")\b[,:]?\s*))"
    r"|(?P<sentence>(?<=[.!?;])['\"”]?\s+(?=[A-Z]))"
    r"|(?P<verb>(?i:,?\s+and\s+(?=(?:" + _ACTION_VERBS + r")\b)|,\s+(?=(?:" + _ACTION_VERBS + r")\b)))"
)
_QUOTES = re.compile(r"\"[^\"]*\"|“[^”]*”|(?<!\w)'[^']+'(?!\w)")
FIRST = re.compile(r"^\s*(?:first(?:ly)?|to start|start by)\b[,:]?\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Segment:
    start: int
    end: int
    strong: bool
    """True when a sequencing word ("then", "after that") opened it; False for a new sentence or "and <verb>"."""


def request_segments(request: str) -> list[Segment]:
    """Where the request's steps start and end. Quoted text is never split."""
    hidden = _QUOTES.sub(lambda match: "\x00" * len(match.group(0)), request)
    segments: list[Segment] = []
    start, strong = 0, True
    for match in _SPLIT.finditer(hidden):
        segments.append(Segment(start, match.start(), strong))
        start, strong = match.end(), match.lastgroup != "sentence"
    segments.append(Segment(start, len(request), strong))
    kept = [segment for segment in segments if len(request[segment.start : segment.end].split()) >= 2]
    merged: list[Segment] = []
    for segment in kept:  # "I have two files, a.txt and b.txt. Summarize the first one": one step, with its files
        if merged and not segment.strong and _only_names_files(request[merged[-1].start : merged[-1].end]):
            segment = Segment(merged.pop().start, segment.end, segment.strong)
        merged.append(segment)
    return merged or [Segment(0, len(request), True)]


def _only_names_files(text: str) -> bool:  # names files, asks nothing of them: the next step says what to do
    return bool(FILE_NAME.search(text)) and not _ACTION.search(FILE_NAME.sub(" ", text)) and "?" not in text


def remark(text: str) -> bool:
    """Whether `text` asks nothing and names nothing to work on ("Oops, I pasted the wrong one"): said by the way."""
    return not _ACTION.search(text) and "?" not in text and not FILE_NAME.search(text) and not _QUOTES.search(text)


def step_text(request: str, start: int, end: int) -> str:
    return FIRST.sub("", request[start:end]).strip(" ,.;")


def split_steps(request: str) -> list[str]:
    """Split a request at its sequencing words and sentences, leaving quoted text whole."""
    return [step_text(request, segment.start, segment.end) for segment in request_segments(request)]


_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_TAKEN_BACK = re.compile(
    rf"(?<![\w.])(?P<old>{_NUMBER})(?P<between>[^\d]{{0,40}}?)[\s,;.]+(?:no wait|wait no|no|sorry|i mean|er+|um+|"
    rf"actually|scratch that)[\s,;.]+(?:(?:no|wait|actually)[\s,;.]+)*(?:make (?:that|it)|i mean|it'?s|rather)?\s*"
    rf"(?P<new>{_NUMBER})(?![\w.])",
    re.I,
)


_UNIT_TAKEN_BACK = re.compile(
    r"\b(?:in|to|into) [\w ]{1,20}?,\s*(?:er+|um+|no|sorry|actually|wait)\b.*?\b(?P<new>(?:in|to|into) \w+)\W*$", re.I
)


def self_corrected(message: str) -> str:
    """`message` with a figure the user took back in the same breath replaced ("how many km is 5 miles, no
    wait, make that 6 miles" -> "how many km is 6 miles"): the small model worked on the first figure."""
    unit = _UNIT_TAKEN_BACK.search(message)  # "13.1 miles in km, er, actually give me that in metres"
    if unit is not None:
        message = f"{message[: unit.start()]}{unit['new']}"
    found = _TAKEN_BACK.search(message)
    if found is None:
        return message
    rest, between = message[found.end() :], found["between"].rstrip()
    if between.strip() and rest.lower().startswith(between.lower()):
        rest = rest[len(between) :]  # "5 miles, no wait, 6 miles": the unit once
    return f"{message[: found.start()]}{found['new']}{found['between'].rstrip()}{rest}"
