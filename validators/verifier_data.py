"""Synthetic (evidence, claim, label) pairs for the claim verifier (a cross-encoder), made FactCC-style from passages.

The model learns "supported" from contrast: each true sentence (as is, lightly paraphrased, or inside a window of 2-4
sentences) comes with near-copies false in one way: a swapped name, number or date, a negation, an invented clause,
two names trading places. Claims reach the verifier after `unsupported_terms` (validators/claims.py) found all their
names and figures in the evidence, so swaps mostly reuse the passage's own: the right names in the wrong places.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple, TypeVar

import pysbd

__all__ = ["KINDS", "PASSAGES", "Pair", "load_passages", "sentences", "split_passages", "synthetic_pairs"]

PASSAGES = Path(__file__).resolve().parent / "data" / "verifier_passages.jsonl"
KINDS: tuple[str, ...] = ("copy", "paraphrase", "window", "entity_swap", "number_swap", "date_swap", "negation")
KINDS += ("relation_swap", "addition", "unrelated")  # the first three make positives (label 1), the rest negatives
_P = TypeVar("_P", bound=Mapping[str, str])


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: does `evidence` support `claim`? `kind` says how the pair was made."""

    evidence: str
    claim: str
    label: int
    kind: str


def load_passages(path: Path | None = None) -> list[dict[str, str]]:
    """The passages of a JSON-lines file (default `PASSAGES`), each with string fields `id`, `topic` and `text`."""
    lines = (path or PASSAGES).read_text(encoding="utf-8").splitlines()
    passages: list[dict[str, str]] = [json.loads(line) for line in lines if line.strip()]
    if bad := [p for p in passages if not all(isinstance(p.get(key), str) for key in ("id", "topic", "text"))]:
        raise ValueError(f"{path or PASSAGES}: a passage needs string fields id, topic and text: {bad[0]}")
    return passages


@cache
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def sentences(text: str) -> list[str]:
    """The sentences of `text` by pysbd's rule-based segmenter (abbreviations, initials, decimals), stripped."""
    return [part.strip() for part in _segmenter().segment(text) if part.strip()]


# --- what a claim is changed in: word lists ("key: words", a key may go on over lines; "_" is a space) -----------

_LEXICON: dict[str, list[str]] = {}
for _line in """
months: January February March April May June July August September October November December
days: Monday Tuesday Wednesday Thursday Friday Saturday Sunday
numbers: two three four five six seven eight nine ten eleven twelve
not_names: The A An In On At By For From To Of With After Before During Since Under When While Each Every Some All His
not_names: Her Its Their This These That Our Your It He She They We I Hi Hello Dear Subject Mr Mrs Ms Dr No UTC CET
org: Ltd Inc LLP GmbH AB Oy University Institute College Company Corporation Museum Records Press Bank Council Society
org: Foundation Trust Association Club Centre Center Services Authority Commission Committee Studio Studios Group
org: Hospital Practice Laboratories Cooperative Partners Editions Books Lines School Academy
place: River Lake Mount Island Sea Ocean Bay Desert Valley Park Street Road Lane Avenue Hills Crater Point Strait
place: Delta Canal Gardens Place Square Cathedral Hotel Station Airport Arena
antonyms: increased/decreased rose/fell won/lost accepted/rejected approved/rejected before/after north/south
antonyms: east/west northern/southern eastern/western largest/smallest first/last highest/lowest deepest/shallowest
antonyms: longest/shortest oldest/youngest larger/smaller higher/lower above/below more_than/less_than opened/closed
antonyms: included/excluded maximum/minimum faster/slower earlier/later older/younger driest/wettest male/female
synonyms: roughly/approximately approximately/roughly began/started started/began bought/purchased chose/selected
synonyms: nearly/almost almost/nearly largest/biggest main/principal died/passed_away
symmetric: and or with married met between shared both nor plus versus vs merged drew collided
voices: founded/founded designed/designed built/built wrote/written directed/directed published/published
voices: composed/composed painted/painted discovered/discovered acquired/acquired bought/bought
city: Vienna Lagos Osaka Valparaíso Tbilisi Winnipeg Gdańsk Hobart Marrakesh Tromsø
body: the_Orion_Trust the_Halcyon_Foundation the_Meridale_Group the_Atlas_Research_Fund
person: Clara_Westwood Dmitri_Volkov Amina_Diallo Henrik_Sand Lucia_Ferraro Kwame_Asante
money: 4.5_million_euros 12,000_pounds 780,000_US_dollars 2.3_billion_yen
""".strip().splitlines():
    _key, _, _words = _line.partition(": ")
    _LEXICON.setdefault(_key, []).extend(word.replace("_", " ") for word in _words.split())
_MONTHS, _DAYS, _NUMBER_WORDS = _LEXICON["months"], _LEXICON["days"], _LEXICON["numbers"]
_NOT_NAMES = frozenset(_LEXICON["not_names"] + _MONTHS + _DAYS)  # capitalised, but no name on their own
_KIND_WORDS = {word: kind for kind in ("org", "place") for word in _LEXICON[kind]}
_ANTONYMS = {a: b for pair in _LEXICON["antonyms"] for a, b in (pair.split("/"), pair.split("/")[::-1])}
_SYNONYMS = {a: b for a, b in (pair.split("/") for pair in _LEXICON["synonyms"])}
_SYMMETRIC = frozenset(_LEXICON["symmetric"])  # between two names, these make swapping them harmless
_ACTIVE, _PASSIVE = ([pair.split("/")[i] for pair in _LEXICON["voices"]] for i in (0, 1))
_VOICE = dict(zip(_ACTIVE, _PASSIVE, strict=True)) | dict(zip(_PASSIVE, _ACTIVE, strict=True))  # wrote <-> written
_ADDITIONS = ", after studying in {city}|, funded by {body}|, a record {pct} percent rise|, with help from {person}|"
_ADDITIONS += ", according to a {year} report by {body}|, two years after a visit to {city}|, at a cost of {money}|"
_ADDITIONS += ", on the advice of {person}|, watched by {count} people|, in partnership with {body}|, as {person} said"
_BOUNDS = (("more than", "over", "at least", "above"), ("less than", "fewer than", "under", "below"))
_MONTH = "|".join(_MONTHS)
_DAY_END = rf"(?=(?:\s*(?:to|and|-|–)\s*\d{{1,2}})?\s+(?:{_MONTH})\b)"  # "18 to 20 July": days, not numbers
_TAIL = r"((?: (?:in|on|at|for|from|after)\b|[,.;]).*)$"
_CAP = r"(?:[A-Z][a-z]?\.(?=\s+[A-Z])|[A-ZÀ-ÖØ-Þ](?:[\w-]|['’](?!s\b))*)"
_ENTITY = re.compile(rf"(?<![\w'’-]){_CAP}(?:(?:\s+(?:of|de|des|du|del|da|di|van|von|der|am|la|le|bin|&))*\s+{_CAP})*")
_NUMBER = re.compile(r"(?<![\w.,:/'’-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w:/-]|[.,]\d)")
_YEAR = re.compile(r"(?<![\w.,:/'’-])(?:1\d{3}|20\d{2})(?![\w:/-]|[.,]\d)")
_DATE = re.compile(rf"(?P<year>{_YEAR.pattern})|\b(?:(?P<month>{_MONTH})|(?P<weekday>{'|'.join(_DAYS)})|(?P<day>"
                   rf"[1-9]|[12]\d|3[01]){_DAY_END}|(?<!:)(?P<hour>[01]\d|2[0-3])(?=:[0-5]\d\b))\b")  # fmt: skip
_SPELLED = re.compile(rf"\b(?:{'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)
_ANTONYM = re.compile(rf"\b(?:{'|'.join(sorted(_ANTONYMS, key=len, reverse=True))})\b", re.IGNORECASE)
_AUX = re.compile(r"\b(?P<aux>is|are|was|were|can|will|must|should|does|did|(?:has|have|had)(?=\s+(?:not\s+|never\s+)?"
                  r"(?:\w+(?:ed|en|wn|ne|lt|ught|ost|ade)|been|since|also)\b))(?P<neg> (?:not|never)\b)?")  # fmt: skip
_PAST = re.compile(r"\b(?:[A-Z][\w'’-]*|he|she|they|it) ([a-z]{3,}ed|won|made|took|became|began|built|wrote|sold)\b")
_Span = tuple[int, int, str, str]  # a name in a sentence: start, end, text, kind (org, place, name, word, code)


class _Source(NamedTuple):  # what a negative draws on besides its sentence
    text: str
    names: list[_Span]
    pool: Mapping[str, list[str]]
    others: list[list[str]]


def _like(word: str, model: str) -> str:
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def _splice(text: str, site: tuple[int, int, str]) -> str:
    return text[: site[0]] + site[2] + text[site[1] :]


def _entities(sentence: str, passage: str) -> list[_Span]:
    """Capitalised names, without leading `_NOT_NAMES`; a lone first word only if the passage has it mid-sentence."""
    found = []
    for match in _ENTITY.finditer(sentence):
        start, words = match.start(), match.group().split(" ")
        while words and words[0].rstrip(".") in _NOT_NAMES:
            start += len(words.pop(0)) + 1
        text = " ".join(words).rstrip(".")
        if not text or (start == 0 and len(words) == 1 and not re.search(rf"[a-z,]\s+{re.escape(text)}\b", passage)):
            continue
        kind = next(filter(None, map(_KIND_WORDS.get, words)), "code" if re.search(r"\d|^[A-Z]+$", text) else "")
        if not kind and re.search(r"\b(?:in|at|near|from|to|across)\s+(?:the\s+)?$", sentence[:start]):
            kind = "place"
        found.append((start, start + len(text), text, kind or ("name" if len(words) > 1 else "word")))
    return found


def _changed(old: float, new: float, before: str) -> bool:
    """`new` is 5% to 5x off `old`, and a bound just `before` ("more than", "under") does not still hold it."""
    bounded = (before.endswith(_BOUNDS[0]) and new < old) or (before.endswith(_BOUNDS[1]) and new > old)
    return 0 < old != new and not bounded and 0.05 <= abs(new / old - 1) <= 4


def _number_swap(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """A number rescaled in its format (1,250 -> 1,560) or to an alike one of the passage; a number word; no dates."""
    sites, known = [], [m for m in _NUMBER.finditer(source.text) if not _YEAR.fullmatch(m.group())]
    for m in _NUMBER.finditer(sentence):
        if _YEAR.fullmatch(m.group()) or re.match(_DAY_END, sentence[m.end() :]):
            continue
        old, places, before = float(m.group().replace(",", "")), len(m[2] or ".") - 1, sentence[: m.start()].rstrip()
        alike = {n.group() for n in known if ("," in n[1], len(n[2] or ".") - 1) == ("," in m[1], places)}
        options = [n for n in sorted(alike) if _changed(old, float(n.replace(",", "")), before.lower())]
        if not options or rng.random() < 0.5:
            zeros = len(m[1]) - len(m[1].rstrip("0")) if old and not places else 0  # 2,000 rounds to thousands
            scaled = [round(old * factor, places - zeros) for factor in (0.5, 0.6, 0.75, 0.8, 1.2, 1.25, 1.5, 2, 3)]
            comma = "," if "," in m[1] or old < 1000 else ""  # 439 -> 1,317, but 17025 -> 21281
            options = [f"{new:{comma}.{places}f}" for new in scaled if _changed(old, new, before.lower())]
        if options:
            sites.append((m.start(), m.end(), rng.choice(options)))
    for m in _SPELLED.finditer(sentence):
        other = rng.choice([word for word in _NUMBER_WORDS if word != m.group().lower()])
        sites.append((m.start(), m.end(), _like(other, m.group())))
    return _splice(sentence, rng.choice(sites)) if sites else None


def _date_swap(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """A year moved 1-30 or (half the time) to another of the passage; or a month, weekday, day or hour changed."""
    sites, years = [], list(dict.fromkeys(_YEAR.findall(source.text)))
    for m in _DATE.finditer(sentence):
        group, old = m.lastgroup or "", m.group()
        if group == "hour":
            options = [f"{(int(old) + shift) % 24:02d}" for shift in (-5, -3, -2, -1, 1, 2, 3, 5)]
        elif group == "year" and (rng.random() < 0.5 or len(years) < 2):
            options = [str(int(old) + rng.choice([-1, 1]) * rng.randint(1, 30))]
        else:
            options = {"month": _MONTHS, "weekday": _DAYS, "day": [str(d) for d in range(1, 29)], "year": years}[group]
        if options := [option for option in options if not re.search(rf"\b{option}\b", sentence)]:  # not in a list
            sites.append((m.start(), m.end(), rng.choice(options)))
    return _splice(sentence, rng.choice(sites)) if sites else None


def _negation(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """An antonym swapped in, "not" put after an auxiliary or "not"/"never" taken out, else "never" before a verb."""
    sites = [(m.start(), m.end(), _like(_ANTONYMS[m.group().lower()], m.group())) for m in _ANTONYM.finditer(sentence)]
    for m in _AUX.finditer(sentence):
        if m["neg"] or not re.search(r"\b[Nn]o\b", sentence[: m.start()]):  # not "no wire is not needed"
            sites.append((m.start(), m.end(), m["aux"] + ("" if m["neg"] else " not")))
    sites += [(m.start(), m.end(), "") for m in re.finditer(r"\b[Nn]ever\s+(?!been\b)", sentence)]
    sites = sites or [(m.start(1), m.start(1), "never ") for m in _PAST.finditer(sentence)][:1]
    return _like(_splice(sentence, rng.choice(sites)), "A") if sites else None


def _addition(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """The sentence with an invented clause naming a place, body, person or figure: a fact the passage lacks."""
    values = {key: rng.choice(_LEXICON[key]) for key in ("city", "body", "person", "money")}
    values |= {"pct": str(rng.randint(12, 60)), "year": str(rng.randint(1950, 2024))}
    end, values["count"] = len(sentence.rstrip(".!?\"')]")), f"{rng.randint(2, 90)},000"
    return _splice(sentence, (end, end, rng.choice(_ADDITIONS.split("|")).format(**values)))


def _relation_swap(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """ "A acquired B" -> "B acquired A", alike names first; not in lists or symmetric relations ("A and B")."""
    spans = _entities(sentence, source.text)
    pairs = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[2] not in b[2] and b[2] not in a[2]]
    pairs = [(a, b) for a, b in pairs if (between := set(re.findall(r"[a-z]+", sentence[a[1] : b[0]])))
             and not _SYMMETRIC & between]  # fmt: skip
    if not pairs:
        return None
    a, b = rng.choice([(a, b) for a, b in pairs if a[3] == b[3]] or pairs)
    return sentence[: a[0]] + b[2] + sentence[a[1] : b[0]] + a[2] + sentence[b[1] :]


def _entity_swap(sentence: str, source: _Source, rng: random.Random) -> str | None:
    """A name replaced by one of its kind from the same passage (2 in 3: a relation error) or from another one."""
    if not (spans := _entities(sentence, source.text)):
        return None
    start, end, old, kind = rng.choice(spans)
    same = [s[2] for s in source.names if s[3] == kind and s[2] not in sentence + old and old not in s[2]]
    foreign = [name for name in source.pool.get(kind, []) if name not in source.text]
    choices = list(dict.fromkeys(same)) if same and rng.random() < 2 / 3 else foreign or same
    return _splice(sentence, (start, end, rng.choice(choices))) if choices else None


_MAKERS: dict[str, Callable[[str, _Source, random.Random], str | None]] = {
    "entity_swap": _entity_swap, "number_swap": _number_swap, "date_swap": _date_swap, "negation": _negation,
    "relation_swap": _relation_swap, "addition": _addition,
    "unrelated": lambda _, source, rng: rng.choice(rng.choice(source.others)) if source.others else None,
}  # fmt: skip
_REWRITES: list[tuple[str, Callable[[re.Match[str]], str]]] = [
    (rf"^(In|On|By) ((?:early |late )?(?:\d{{1,2}} )?(?:(?:{_MONTH}) )?\d{{4}}s?),? ([^,;]+?)([.!?])$",
     lambda m: f"{_like(m[3], 'A')} {m[1].lower()} {m[2]}{m[4]}"),  # "In 1887, X did Y." -> "X did Y in 1887."
    (r"^(?:After|Although|While|When|Because|According to|Under) [^,]{3,80}, (.+)$", lambda m: _like(m[1], "A")),
    (r"^(?!(?:After|When|If|Because|Since|In|On|By|During|Under)\b)(.+?), (?:(?:the|a|an|who|which|whose|then|now) "
     r"(?:(?! and | or )[^,;]){3,80},(?= [a-z])|(?:who|which|whose) [^,;]{3,80}(?=[.!?]$))", lambda m: m[1]),  # asides
    (rf"^(?:(The|A|An|Its|His|Her|Their) )?(.+?) was ({'|'.join(_PASSIVE)}) by ([^,.;]+?){_TAIL}",  # "The X was
     lambda m: f"{_like(m[4], 'A')} {_VOICE[m[3]]} {m[1].lower() + ' ' if m[1] else ''}{m[2]}{m[5]}"),  # built by Y"
    (rf"^(?!(?:{'|'.join(_NOT_NAMES)})\b)((?:[A-Z][\w'’-]* ){{1,4}})({'|'.join(_ACTIVE)}) ([^,.;]+?){_TAIL}",
     lambda m: f"{_like(m[3], 'A')} was {_VOICE[m[2]]} by {m[1].strip()}{m[4]}"),  # <-> "Y built the X"
    (rf"\b(?:{'|'.join(_SYNONYMS)})\b", lambda m: _SYNONYMS[m[0]]),
    (r"(?<=\d) percent\b|(?<=\d)%", lambda m: "%" if m[0] != "%" else " percent"),
    (rf"(?<!\d to )(?<![\d–-])\b(\d{{1,2}}) ({_MONTH}) (\d{{4}})\b", lambda m: f"{m[2]} {m[1]}, {m[3]}"),  # May 4, 1980
]  # fmt: skip


def _paraphrase(sentence: str, rng: random.Random) -> str | None:
    """The facts reworded by the first of `_REWRITES`, in a random order, that changes the sentence."""
    for pattern, rewrite in rng.sample(_REWRITES, len(_REWRITES)):
        if (new := re.sub(pattern, rewrite, sentence, count=1)) != sentence:
            return new
    return None


def synthetic_pairs(passages: Sequence[Mapping[str, str]], *, seed: int = 0, per_sentence: int = 3) -> list[Pair]:
    """Per sentence: a positive (itself or a paraphrase), a window positive, and `per_sentence` or one fewer negatives
    of different kinds, tried in a random order ("unrelated" half the time). Shuffled; fixed by `seed`."""
    rng, split = random.Random(seed), [sentences(passage["text"]) for passage in passages]
    names = [[span for part in split[i] for span in _entities(part, p["text"])] for i, p in enumerate(passages)]
    pool: dict[str, list[str]] = {}
    for name, kind in dict.fromkeys(span[2:] for found in names for span in found):
        pool.setdefault(kind, []).append(name)
    pairs: list[Pair] = []
    for index, (passage, parts) in enumerate(zip(passages, split, strict=True)):
        others = [found for i, found in enumerate(split) if i != index and found]
        source = _Source(passage["text"], names[index], pool, others)
        for position, sentence in enumerate(parts):
            paraphrase = _paraphrase(sentence, rng) if rng.random() < 0.6 else None
            pairs.append(Pair(source.text, paraphrase or sentence, 1, "paraphrase" if paraphrase else "copy"))
            if len(parts) > 1:
                size = rng.randint(2, min(4, len(parts)))
                first = rng.randint(max(0, position - size + 1), min(position, len(parts) - size))
                pairs.append(Pair(" ".join(parts[first : first + size]), sentence, 1, "window"))
            made, limit, kinds = 0, rng.randint(max(per_sentence - 1, 1), per_sentence), rng.sample(KINDS[3:], 7)
            for kind in kinds if rng.random() < 0.5 else [kind for kind in kinds if kind != "unrelated"]:
                claim = _MAKERS[kind](sentence, source, rng) if made < limit else None
                if claim and claim != sentence and claim not in source.text:
                    pairs.append(Pair(source.text, claim, 0, kind))
                    made += 1
    rng.shuffle(pairs)
    return pairs


def split_passages(passages: Sequence[_P], *, held_out: float = 0.15, seed: int = 0) -> tuple[list[_P], list[_P]]:
    """(train, held-out) by passage id: a `held_out` share of the ids, drawn by `seed`; input order kept."""
    ids = sorted({passage["id"] for passage in passages})
    random.Random(seed).shuffle(ids)
    chosen = set(ids[: round(len(ids) * held_out)])
    return [p for p in passages if p["id"] not in chosen], [p for p in passages if p["id"] in chosen]
