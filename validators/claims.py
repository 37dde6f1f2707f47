"""Claims, not answers: an answer split into atomic claims, each checked against the evidence on its own.

A fluent answer that gets one fact wrong ("Miloš Forman is from Great Britain") reads well as a whole; checked
claim by claim, the one wrong fact stands out, and the reason names it so the agent can fix exactly that.

- `split_claims(answer)`: sentences (memory/sentences.py) without citation lists and markup, then clauses (at
  ";" and at ", and" / ", but" / ", while" between two clauses of four words or more).
- `unsupported_terms(claim, support)`: the names, dates and numbers of a claim that the evidence does not hold.
  Names match without case, with inflections and demonyms ("Swedish" ~ "Sweden"), acronyms ("JFK" ~ "John F.
  Kennedy") and a part of a name ("Curie" ~ "Marie Curie"); numbers as `check_numbers` reads them, including
  numbers computed from two supported ones (a difference of years, a total, a share).
The stage that uses them is validators/claim_check.py; there the model verifier (validators/verifier.py) judges
the claims whose terms all check out: a swapped relation or a negation uses only words the evidence has.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from smolcrew.validators.grounding import without_reports
from smolcrew.validators.numbers import numbers_in, supported_number, values_in, worked_out

if TYPE_CHECKING:
    from smolcrew.validators.verdict import Evidence

__all__ = ["Claim", "Support", "split_claims", "support_of", "unescape", "unsupported_terms"]

_SOURCES_BLOCK = re.compile(r"\n\s*(?:sources?|references?)\s*:?\s*\n.*\Z", re.IGNORECASE | re.DOTALL)
_SOURCE_LINE = re.compile(r"^\s*\[\d{1,3}\]\s+\S.*$", re.MULTILINE)
_MARKER = re.compile(r"\s*\[\d{1,3}\]")
_MARKUP = re.compile(r"^[\s>*#-]+|\*\*|__|`", re.MULTILINE)
_CLAUSE = re.compile(r";\s+|,\s+(?=(?:and|but|while|whereas)\s)")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class Claim:
    """One atomic statement of an answer, as written (citation markers removed)."""

    text: str

    def __str__(self) -> str:
        return self.text


def split_claims(answer: str) -> list[Claim]:
    """The claims an answer makes: its sentences, split further at clause boundaries; citation lists, markers and
    markdown removed. A claim needs a word of three letters or more (a bare "Yes." claims nothing to check)."""
    text = _SOURCE_LINE.sub("", _SOURCES_BLOCK.sub("", answer))
    claims: list[Claim] = []
    # a report of an injected instruction the answer ignored states nothing about the task
    for sentence in (_MARKUP.sub("", _MARKER.sub("", part)).strip() for part in without_reports(text)):
        parts = [part.strip() for part in _CLAUSE.split(sentence) if part.strip()]
        if any(len(part.split()) < 4 for part in parts):
            parts = [sentence]
        claims += [Claim(part) for part in parts if _states_something(part)]
    return claims


_ADVICE = re.compile(r"(?:please|ask|check|contact|try|consider|see|make sure|you (?:can|could|should|may))\b", re.I)
"""Sentences that advise the user state no fact to check."""


def _states_something(part: str) -> bool:
    return bool(re.search(r"[^\W\d_]{3}|\d", part)) and not _ADVICE.match(part) and not _BARE_REPLY.match(part)


_BARE_REPLY = re.compile(r"^(?:yes|no|ok|okay|sure|done|thanks|thank you|correct|right)\W*$", re.IGNORECASE)


# --- names, dates and numbers ---------------------------------------------------------------------------------

_NAME = re.compile(
    r"(?<![\w'’])(?:[A-Z][\w'’.-]*|[A-Z]{2,})(?:\s+(?:(?:of|the|de|del|da|di|la|le|von|van|der|and|&|y)\s+)*"
    r"(?:[A-Z][\w'’.-]*))*"
)
_CONNECTORS = _words("of the de del da di la le von van der and & y")
_STARTERS = _words(
    "a an the it its it's this that that's these those there there's here he she they we you i his her their "
    "our my your yes "
    "no according after before during when while as by for from with in on at to of both each some most "
    "all one however also so then thus still yet but and or if because although though since until unlike "
    "like based answer summary sure unfortunately overall note please sorry certainly indeed sources "
    "source total altogether approximately about around nearly roughly only just "
    "you're you've you'll you'd we're we've we'll they're they've i'm i've i'll i'd he's she's let's "
    "hello hi hey dear welcome thanks thank glad oh ah well got noted what's where's who's how's when's why's"
)
_ALIASES = {
    "france": "french", "netherlands": "dutch", "holland": "dutch", "britain": "british", "england": "english",
    "wales": "welsh", "switzerland": "swiss", "spain": "spanish", "greece": "greek", "ireland": "irish",
    "denmark": "danish", "poland": "polish", "turkey": "turkish", "finland": "finnish", "scotland": "scottish",
    "peru": "peruvian", "norway": "norwegian", "portugal": "portuguese", "thailand": "thai", "iceland": "icelandic",
    "united states": "us", "america": "american", "uk": "united kingdom", "phd": "doctorate",
    "eur": "€", "euro": "€", "euros": "€", "usd": "$", "dollars": "$", "gbp": "£", "pounds": "£",
}  # fmt: skip
"""Irregular country/demonym pairs (the regular ones, Sweden ~ Swedish, match by stem)."""
_GENERIC = _words(
    "university college school institute museum hospital city town village river lake mount mountain "
    "island islands company inc ltd llc gmbh corporation corp group state republic kingdom street road "
    "avenue station airport church cathedral park hotel festival prize award"
)
"""Words that name the kind of thing, not which one: "Princeton University" is held by "Princeton"."""
_CALENDAR = {
    name: name[:3]
    for name in _words(
        "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
        "august september october november december"
    )
} | {"tuesday": "tues", "thursday": "thurs", "september": "sept"}
"""Day and month names, and the abbreviations schedules and invoices use for them."""
_SUFFIXES = ("ing", "ians", "ian", "ese", "ish", "ans", "an", "en", "ia", "i", "a", "'s", "’s", "s", "e")


def _fold(text: str) -> str:
    """Lowercase, accents off, curly quotes straight: "Miloš" ~ "Milos"."""
    plain = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(char for char in plain if not unicodedata.combining(char)).lower()


def _stem(word: str) -> str:
    for _ in range(2):  # "sweden's" -> "sweden" -> "swed", as "swedish" -> "swed"
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
    return word


@dataclass(frozen=True, slots=True)
class Support:
    """What claims may rest on: the evidence's and the task's text, words, stems, acronyms and numbers."""

    text: str
    words: frozenset[str]
    stems: frozenset[str]
    acronyms: frozenset[str]
    numbers: tuple[float, ...]

    @classmethod
    def of(cls, *texts: str) -> Support:
        joined = unescape("\n".join(texts))
        folded = " ".join(_fold(joined).split())  # a line break in the evidence is a space in the answer
        words = frozenset(  # amount_eur: amount, eur; 'quoted': quoted
            word.strip("'") for word in re.findall(r"[\w']+", folded.replace("_", " ")) if word.strip("'")
        )
        names = [match.group(0) for match in _NAME.finditer(joined)]
        acronyms = {"".join(w[0] for w in name.split() if w.lower() not in _CONNECTORS).lower() for name in names}
        acronyms |= {w.lower() for w in re.findall(r"\b[A-Z]{2,6}\b", joined)}
        values = sorted(set(values_in(joined)))
        return cls(
            folded, words, frozenset(map(_stem, words)), frozenset(a for a in acronyms if len(a) >= 2), tuple(values)
        )

    def holds_name(self, name: str) -> bool:
        folded = _fold(name).strip(" .,'")
        if re.search(rf"(?<!\w){re.escape(folded)}(?!\w)", self.text):
            return True
        alias = _ALIASES.get(folded) or next((k for k, v in _ALIASES.items() if v == folded), None)
        if alias and (alias in self.words | self.acronyms or (not alias.isalnum() and alias in self.text)):
            return True
        letters = folded.replace(".", "")
        if name.replace(".", "").isupper() and letters in self.acronyms:
            return True
        words = [w for w in re.findall(r"[\w']+", folded) if w not in _CONNECTORS and len(w) > 1]
        distinctive = [w for w in words if w not in _GENERIC] or words
        if len(words) >= 2 and "".join(w[0] for w in words) in self.acronyms:
            return True  # "United Nations" where the evidence says "UN"
        return bool(words) and all(self._holds_word(w) for w in distinctive)

    def _holds_word(self, word: str) -> bool:
        if word in self.words or _stem(word) in self.stems:
            return True
        short = _CALENDAR.get(word)
        if short is not None:
            return short in self.words or word[:3] in self.words
        return len(word) >= 3 and any(name.startswith(word) and name in self.words for name in _CALENDAR)


def unescape(text: str) -> str:
    """Tool outputs reach the gate as reprs: their line breaks and quotes escaped."""
    return text.replace("\\n", "\n").replace("\\'", "'").replace('\\"', '"')


def support_of(evidence: Evidence) -> Support:
    """The evidence of a run (tool outputs and the task) as claims are checked against it."""
    return Support.of(evidence.task, *evidence.tool_outputs, *evidence.sources)


@cache
def _common_words() -> frozenset[str]:
    """Lowercase English words (the packaged MiniLM's vocabulary): a capitalised one that starts a sentence is
    a word, not a name ("Mostly birds", "Saved the file"). Empty without the package: every such word is a name."""
    from pathlib import Path

    from smolcrew.errors import ModelUnavailableError
    from smolcrew.manifest import resolve_source

    try:
        vocabulary = Path(resolve_source("packaged:all-MiniLM-L6-v2")) / "vocab.txt"
        words = vocabulary.read_text(encoding="utf-8").split()
    except (ModelUnavailableError, OSError):
        return frozenset()
    return frozenset(word for word in words if word.isalpha() and word.islower())


def _is_common(word: str) -> bool:
    """A common word, or its -ing form ("Transcribing", "Reading"; "Beijing" stays a name)."""
    common = _common_words()
    if word in common:
        return True
    base = word[:-3] if word.endswith("ing") else ""
    doubled = base[-1:] == base[-2:-1] and base[:-1] in common  # "running"
    return len(base) >= 2 and (base in common or f"{base}e" in common or doubled)


_LIST_ITEM = re.compile(r"\s*(?:\d{1,2}[.)]|[-*•])\s+")
"""A numbered or bulleted list item's mark: the word after it starts a sentence ("1. Reading text aloud")."""


def _names(claim: str) -> list[str]:
    found = []
    for match in _NAME.finditer(claim):
        words = match.group(0).rstrip(".'’-").split()
        before = claim[: match.start()]
        opens = before.rstrip().endswith((":", '"', "(", "-", "—")) or _LIST_ITEM.fullmatch(before) is not None
        at_start = not before or opens
        while words and (words[0].lower() in _STARTERS and (at_start or words[0].lower() in _CONNECTORS)):
            words = words[1:]
            at_start = False
        if len(words) == 1 and (words[0].lower() in _STARTERS or len(words[0]) < 2 or words[0].startswith("I'")):
            continue
        if len(words) == 1 and at_start and _is_common(words[0].lower()):
            continue
        if words:
            found.append(" ".join(words))
    return found


def unsupported_terms(claim: Claim | str, support: Support, task: str = "") -> list[str]:
    """The names (with month and day names), and numbers of `claim` that `support` does not hold; numbers may be
    computed from two supported ones when the claim or the `task` says a figure is worked out."""
    text = str(claim)
    missing = [name for name in _names(text) if not support.holds_name(name)]
    derived = worked_out(text, task)
    missing += [
        written for written, read in numbers_in(text) if not supported_number(read, support.numbers, derived=derived)
    ]
    return missing
