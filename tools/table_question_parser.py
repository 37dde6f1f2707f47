"""Reads a plain-language question against a table: the columns, values and numeric filters it names.

`read_question` matches the question's words to column names (across case, plurals, `_` and units, and the
general synonyms in `SYNONYMS`: "hottest" points at a temp column), to the table's text values ("printer paper"
becomes `item == Printer paper`), to comparisons ("fewer than 5 in stock", "30 or older") and to the vocabulary
in `WORDS` (total, average, how many, most...). What it cannot place (a number tied to no column, a name that is
no value, a median, a comparison between rows) it refuses with a ToolInputError that says what it understood and
names the columns. `table_questions` answers what it read.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from smolcrew.errors import ToolInputError
from smolcrew.tools.tables import is_numeric, scalar

__all__ = ["KNOWN", "MAX_WORDS", "MIN_WORDS", "STOP", "SYNONYMS", "WORDS", "Mention", "Question", "Token"]
__all__ += ["core", "describe", "is_text", "listed", "plain", "read_question", "singular", "words"]


_SYNONYMS = """\
temp: temperature hot hotter hottest warm warmer warmest cold colder coldest cool cooler coolest degree
salary pay wage income earning: earn earning earner paid pay salary wage income
amount cost spend spent expense total price: spend spent spending cost expense
price cost: expensive cheap cheaper cheapest pricey priciest price
rain precip: rain rainy rainfall wet wetter wettest dry drier driest precipitation
age: old older oldest young younger youngest aged
unit quantity qty sold sale revenue: sell sold selling sale
stock inventory qty quantity: stock inventory left remaining available
length duration minute hour: long longer longest short shorter shortest
weight: heavy heavier heaviest light lighter lightest
score rating grade point: score scored rating rated
revenue sale income: revenue
quantity qty unit: quantity qty"""
SYNONYMS = {
    word: tuple(stems.split()) for line in _SYNONYMS.splitlines() for stems, _, said in [line.partition(":")]
    for word in said.split()
}  # fmt: skip
"""A word of the question (singular) -> the starts of the numeric column names it points at, preferred first."""
_WORDS = """\
max: most highest max maximum largest top biggest greatest best hottest warmest wettest oldest longest heaviest priciest
min: least lowest min minimum smallest fewest cheapest coldest coolest driest youngest shortest lightest worst bottom
mean: average mean typical typically avg
sum: total sum altogether combined overall spend spent spending
count: people person employee staff worker item product order customer transaction day time member student row
count: record entry line
columns: column field header heading
unsupported: median mode percentile variance deviation std ratio percentage proportion share fraction growth change
unsupported: difference compare versus vs trend correlation increase decrease recent latest newest earliest date
unsupported: month week january february march april june july august september october november december
unsupported: minus plus divided multiplied
stop: a an the of in on at to for by with and or is are was were be been do does did what which who whom whose how
stop: many much it its this that these those there their they them we our us i me my you your from as per each all
stop: any have has had than not no s t please tell show list give find get can could would should will here if then
stop: so up out about into one ones where when name named just only wait ok okay
known: table file data dataset sheet spreadsheet csv tsv xlsx excel value number result answer everything everyone
known: anyone sold sell earn different distinct unique more less dollar euro pound count
known: reading measurement figure observation entry record
units: c f k mm cm m km kg g lb usd eur gbp pct percent h hr ml l
negations: not except excluding besides outside other without
prepositions: in for from at on about with to among within
less: less fewer lower smaller younger colder cooler cheaper shorter lighter slower worse earlier
not_measures: id year month day week zip code phone no
additive: unit qty quantity sale sold revenue amount total count spend spent cost hour order visit profit expense rain
additive: precip stock"""
WORDS: dict[str, set[str]] = {}
for _line in _WORDS.splitlines():
    WORDS.setdefault(_line.partition(":")[0], set()).update(_line.partition(":")[2].split())
"""The vocabulary by role: max/min (superlatives), mean, sum, count (nouns counted as rows), stop words, units..."""
STOP, MAX_WORDS, MIN_WORDS, LESS_WORDS = WORDS["stop"], WORDS["max"], WORDS["min"], WORDS["less"]
KNOWN = set(SYNONYMS).union(*[v for k, v in WORDS.items() if k not in ("unsupported", "not_measures")])
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
NUMBER_WORDS |= {"ten": 10, "twelve": 12, "dozen": 12, "twenty": 20, "fifty": 50, "hundred": 100, "thousand": 1000}
PHRASES = {  # comparison words before a number, longest first
    ("no", "more", "than"): "<=", ("not", "more", "than"): "<=", ("no", "less", "than"): ">=",
    ("not", "less", "than"): ">=", ("no", "fewer", "than"): ">=", ("at", "least"): ">=", ("at", "most"): "<=",
    ("up", "to"): "<=", ("equal", "to"): "==", ("over",): ">", ("above",): ">", ("exceeding",): ">",
    ("exceed",): ">", ("under",): "<", ("below",): "<", ("exactly",): "==", ("between",): "between",
    ("after",): ">", ("before",): "<", ("since",): ">=",
}  # fmt: skip
_TOKEN = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?(?:k\b)?|[^\W\d_]+")
_PATH = re.compile(r"\S*\.(?:csv|tsv|xlsx|xls)\b", re.IGNORECASE)


def singular(word: str) -> str:
    """A crude singular, applied alike to the question, column names and values ("cities" -> "city")."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-2] if word.endswith(("ches", "shes", "xes", "zes")) else word[:-1]


def words(text: Any) -> list[str]:
    """Lower-case singular words and numbers of a name, value or question (split at case changes, `_`, ...)."""
    return [singular(w) for w in _TOKEN.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text)).lower())]


@dataclass
class Token:
    raw: str
    norm: str
    number: float | None
    capital: bool  # capitalised inside a sentence: a name


@dataclass
class Mention:
    start: int
    end: int
    column: str
    kind: str  # "column", "value" or "synonym"
    value: Any = None
    consumed: bool = False  # the column of a numeric filter, no longer a target


@dataclass
class Question:
    """A question as read so far: its words, what they name, the filters; `table_questions` adds the operation."""

    frame: Any
    toks: list[Token]
    mentions: list[Mention]
    used: set[int] = field(default_factory=set)  # token positions read as comparisons or numbers
    where: list[dict[str, Any]] = field(default_factory=list)
    understood: list[str] = field(default_factory=list)
    fallback: str | None = None  # the one column a numeric filter named: the target when no other is named
    op: str | None = None  # "sum", "mean", "count", "columns" or None (a lookup or list)
    target: str | None = None  # the numeric column asked about
    texts: list[str] = field(default_factory=list)  # text columns named (not filtered): group or list by them
    by: str | None = None  # "by region", "per department": one answer per group
    superlative: int | None = None  # where "most", "cheapest"... stands
    top: int | None = None  # "top 3"
    matched: int = 0
    scope: str = ""  # which rows: "3 rows where region == North"

    def find(self, vocabulary: set[str]) -> int | None:
        """The position of the first word from `vocabulary` outside values and comparisons."""
        inside = {i for m in self.mentions if m.kind == "value" for i in range(m.start, m.end)} | self.used
        hits = [i for i, t in enumerate(self.toks) if i not in inside and {t.raw, t.norm} & vocabulary]
        return hits[0] if hits else None

    def measure(self, problem: str, *, amount: bool = False) -> str:
        """The column to aggregate when the question names none: the one a filter named, or the only measure;
        `amount` ("which item do we have the fewest of"): else the only additive one (quantity, not price)."""
        plausible = [
            c for c in self.frame.columns if is_numeric(self.frame, c) and not set(words(c)) & WORDS["not_measures"]
        ]
        additive = [c for c in plausible if (core(c)[-1:] or [""])[0].startswith(tuple(WORDS["additive"]))]
        plausible = additive if amount and len(plausible) > 1 and len(additive) == 1 else plausible
        if self.fallback or len(plausible) == 1:
            self.understood.append(f"column {self.fallback or plausible[0]}")
            return str(self.fallback or plausible[0])
        self.refuse(problem)

    def covers(self, i: int, kinds: tuple[str, ...] = ("column", "value", "synonym")) -> bool:
        return any(m.start <= i < m.end and m.kind in kinds for m in self.mentions)

    def refuse(self, problem: str) -> NoReturn:
        seen = [f"column {m.column}" for m in self.mentions if m.kind != "value"] + [describe(self.where)]
        seen += [f"{m.column} {m.value}" for m in self.mentions if m.kind == "value" and not self.where]
        understood = "; ".join(dict.fromkeys(s for s in self.understood + seen if s)) or "nothing usable"
        columns = ", ".join(f"{c} ({'number' if is_numeric(self.frame, c) else 'text'})" for c in self.frame.columns)
        raise ToolInputError(
            f"cannot answer this from the table: {problem}. Understood: {understood}. Ask with query_table(path, "
            f"operation, column, where) or look first with describe_table(path); the columns are: {columns}"
        )


_LARGEST_SHARE = re.compile(r"\b(largest|biggest|smallest|highest|lowest|greatest) share of\b", re.I)
"""ranks groups: "which branch contributes the largest share of the total" is the largest total"""


def _scan(question: str) -> list[Token]:
    text, toks = _LARGEST_SHARE.sub(r"\1", _PATH.sub(" ", question)), []
    for match in _TOKEN.finditer(text):
        raw, before = match.group().lower(), text[: match.start()].rstrip()
        number = None
        if raw[0] in "0123456789":
            number = float(raw.rstrip("k").replace(",", "") or 0) * (1000 if raw.endswith("k") else 1)
        capital = match.group()[0].isupper() and bool(before) and before[-1] not in ".?!:;\"'(-"
        toks.append(Token(raw, singular(raw), number, capital))
    return toks


def is_text(frame: Any, column: str) -> bool:
    from pandas.api.types import is_string_dtype

    return not is_numeric(frame, column) and bool(is_string_dtype(frame[column]))


def core(column: str) -> list[str]:
    return [w for w in words(column) if w not in WORDS["units"] and w not in STOP]


def _mentions(frame: Any, toks: list[Token]) -> list[Mention]:
    """Columns and text values named in the question, longest phrases first; then synonyms of numeric columns."""
    index: dict[tuple[str, ...], tuple[tuple[int, int, int], str, str, Any]] = {}

    def add(phrase: tuple[str, ...], priority: int, order: int, column: str, kind: str, value: Any = None) -> None:
        rank = (priority, -len(words(column)), -order)
        if phrase and not set(phrase) <= STOP and (phrase not in index or rank > index[phrase][0]):
            index[phrase] = (rank, column, kind, value)

    vocabulary = KNOWN - WORDS["count"] - set(SYNONYMS)  # a value "Other" or "Total" is no name
    for order, column in enumerate(frame.columns):
        add(tuple(words(column)), 5, order, column, "column")
        add(tuple(named := core(column)), 4, order, column, "column")
        if len(named) > 1 and len(named[-1]) > 2:  # "price" names unit_price (its head word), "unit" does not
            add((named[-1],), 2, order, column, "column")
        for value in frame[column].dropna().unique()[:5000] if is_text(frame, column) else []:
            phrase = tuple(words(value))
            if 0 < len(phrase) <= 6 and not (len(phrase) == 1 and phrase[0] in vocabulary):
                add(phrase, 3, order, column, "value", value)
    found = []
    for i, length in itertools.product(range(len(toks)), range(1, 7)):
        if i + length <= len(toks) and (hit := index.get(tuple(t.norm for t in toks[i : i + length]))):
            found.append((length, hit[0], -i, hit))
    taken: set[int] = set()
    mentions = []
    for length, _, start, (_, column, kind, value) in sorted(found, key=lambda f: f[:3], reverse=True):
        if not taken & (span := set(range(-start, -start + length))):
            taken |= span
            mentions.append(Mention(-start, -start + length, column, kind, value))
    numeric = [c for c in frame.columns if is_numeric(frame, c)]
    for i, tok in enumerate(toks):
        for stem in SYNONYMS.get(tok.norm, SYNONYMS.get(tok.raw, ())) if i not in taken else ():
            if hits := [c for c in numeric if any(w.startswith(stem) for w in words(c))]:
                mentions.append(Mention(i, i + 1, min(hits, key=lambda c: len(words(c))), "synonym"))
                break
    return sorted(mentions, key=lambda m: m.start)


def _number(q: Question, i: int) -> float | None:
    if not 0 <= i < len(q.toks) or i in q.used or q.covers(i, ("value",)):
        return None
    tok = q.toks[i]
    return tok.number if tok.number is not None else NUMBER_WORDS.get(tok.raw)


def _comparison_column(q: Question, start: int, end: int, after: int, value: float) -> str:
    """The numeric column a comparison applies to: one named in it, right after its number or right before it;
    else the one column named whose values could hold the number, or the one column whose values span it."""
    numeric = [m for m in q.mentions if m.kind != "value" and is_numeric(q.frame, m.column) and not m.consumed]
    linked = start > 0 and q.toks[start - 1].raw in {"is", "was", "are", "were", "of", "be"}  # "salary is above"
    for near in (
        [m for m in numeric if start <= m.start < end],  # "older than 30"
        [m for m in numeric if after <= m.start <= after + 2],  # "fewer than 5 in stock"
        [m for m in numeric if m.end == start or (linked and m.end == start - 1)],  # "earn more than"
    ):
        if near:
            near[0].consumed = True
            return near[0].column
    frame, named = q.frame, list(dict.fromkeys(m.column for m in numeric))
    spans = [c for c in frame.columns if is_numeric(frame, c) and frame[c].min() <= value <= frame[c].max()]
    if len(named) == 1 and (named[0] in spans or not spans):  # "total revenue of orders over 100": revenue
        return named[0]
    if len(spans) == 1:  # "salary of people under 30": age; "started after 2020": start_year
        return str(spans[0])
    return q.measure(f"'{' '.join(t.raw for t in q.toks[start:after])}' does not say of which column")


def _comparative(raws: list[str]) -> tuple[str, int] | None:
    """'fewer than', 'hotter than' or 'more expensive than': the comparison and how many words it takes."""
    first = raws[0] if raws else ""
    if first not in LESS_WORDS | {"more"} and (not first.endswith("er") or first in {"other", "rather", "whether"}):
        return None
    for k in (1, 2):
        if len(raws) > k and raws[k] == "than" and (k == 1 or first in LESS_WORDS | {"more"}):
            return ("<" if first in LESS_WORDS else ">"), k + 1
    return None


def _comparisons(q: Question) -> None:
    """Numeric filters: "fewer than 5 in stock", "salary above 50k", "between 3 and 8", "30 or over"."""
    toks, i = q.toks, 0
    while i < len(toks):
        raws = [t.raw for t in toks[i : i + 3]]
        phrase = next((p for p in PHRASES if tuple(raws[: len(p)]) == p), None)
        op, end = (PHRASES[phrase], i + len(phrase)) if phrase else (None, i)
        if op is None and (comparative := _comparative(raws)):
            op, end = comparative[0], i + comparative[1]
        j = end + (end < len(toks) and toks[end].raw in {"a", "an", "the"})
        if op is None or (value := _number(q, j)) is None:
            odd = j < len(toks) and not q.covers(j) and not {toks[j].raw, toks[j].norm} & (KNOWN - WORDS["mean"])
            if op and ("than" in raws[: end - i] or odd):  # "more than Tom", "below freezing", "over average"
                q.refuse(f"'{' '.join(t.raw for t in toks[i : j + 1])}' compares with something that is no number")
            i += 1
            continue
        bounds = [(op, value)]
        if op == "between":
            if j + 2 >= len(toks) or toks[j + 1].raw != "and" or (high := _number(q, j + 2)) is None:
                q.refuse("'between' needs two numbers")
            bounds, j = [(">=", value), ("<=", high)], j + 2
        q.used |= set(range(i, j + 1))
        column = _comparison_column(q, i, end, j + 1, value)
        q.where += [{"column": column, "op": o, "value": plain(v)} for o, v in bounds]
        i = j + 1
    for j, tok in enumerate(toks[:-1]):  # "5 or more", "30 or older", "10 or under"
        nxt = toks[j + 1].raw
        more = nxt in {"more", "above", "over"} or (nxt.endswith("er") and nxt not in LESS_WORDS | {"other", "under"})
        if (
            tok.raw == "or"
            and (more or nxt in LESS_WORDS | {"below", "under"})
            and (n := _number(q, j - 1)) is not None
        ):
            q.used |= {j - 1, j, j + 1}
            column = _comparison_column(q, j - 1, j + 2, j + 2, n)
            q.where.append({"column": column, "op": ">=" if more else "<=", "value": plain(n)})


def _numbers(q: Question) -> int | None:
    """The numbers left: "top 3" (returned), "aged 30" or a value of one column or year (filters); else refuse."""
    top, frame = None, q.frame
    for i, tok in enumerate(q.toks):
        if {tok.raw, tok.norm} & (MAX_WORDS | MIN_WORDS) and i not in q.used:
            for j in (i + 1, i - 1):
                if (n := _number(q, j)) is not None and n == int(n) and top is None:
                    top = int(n)
                    q.used.add(j)
    mentioned = [m for m in q.mentions if m.kind != "value" and is_numeric(frame, m.column) and not m.consumed]
    for i, tok in enumerate(q.toks):
        if tok.number is None or _number(q, i) is None or q.covers(i):
            continue
        link = i > 1 and q.toks[i - 1].raw in {"of", "is", "was", "at"}
        near = [m for m in mentioned if m.end == i or m.start == i + 1 or (link and m.end == i - 1)]
        holding = [c for c in frame.columns if is_numeric(frame, c) and (frame[c] == tok.number).any()]
        dated = [c for c in frame.columns if is_text(frame, c) and re.fullmatch(r"(19|20)\d\d", tok.raw)]
        dated = [c for c in dated if frame[c].astype(str).str.contains(tok.raw, regex=False).any()]
        if near:
            near[0].consumed = True
            q.where.append({"column": near[0].column, "op": "==", "value": plain(tok.number)})
        elif len(holding) == 1:
            q.where.append({"column": holding[0], "op": "==", "value": plain(tok.number)})
        elif len(dated) == 1:
            q.where.append({"column": dated[0], "op": "contains", "value": tok.raw})
        else:
            q.refuse(f"the number {tok.raw} is tied to no column")
        q.used.add(i)
    return top


def _value_filters(q: Question) -> None:
    """Values named in the question: `column == value`, `in` for several, `!=` after "not", "except"..."""
    chosen: dict[tuple[str, bool], list[Any]] = {}
    for m in q.mentions:
        if m.kind == "value":
            negated = bool({t.raw for t in q.toks[max(0, m.start - 2) : m.start]} & WORDS["negations"])
            chosen.setdefault((m.column, negated), []).append(scalar(m.value))
    for (column, negated), found in chosen.items():
        values = list(dict.fromkeys(found))
        op = ("!=" if negated else "==") if len(values) == 1 else ("not in" if negated else "in")
        q.where.append({"column": column, "op": op, "value": values[0] if len(values) == 1 else values})


def _check_words(q: Question) -> None:
    """Refuse rather than ignore: names that are no value ("in Antarctica", "on coffee"), dates, medians, "than"."""
    after_value = {m.end for m in q.mentions if m.kind == "value"}
    for i, tok in enumerate(q.toks):
        if i in q.used or q.covers(i) or tok.number is not None:
            continue
        if {tok.raw, tok.norm} & WORDS["unsupported"] or (
            tok.raw == "than" and q.toks[i - 1].raw not in {"other", "rather"}
        ):
            q.refuse(f"'{tok.raw}' asks for something this tool does not compute (dates, medians, comparisons)")
        named = (tok.capital and i not in after_value) or (i and q.toks[i - 1].raw in WORDS["prepositions"])
        if named and not {tok.raw, tok.norm} & KNOWN:
            q.refuse(f"'{tok.raw}' is neither a column nor a value of the table")


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def plain(value: Any) -> Any:
    value = scalar(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def describe(where: list[dict[str, Any]]) -> str:
    return " and ".join(f"{c['column']} {c['op']} {', '.join(map(str, listed(c['value'])))}" for c in where)


def read_question(frame: Any, question: str) -> Question:
    """What `question` asks of `frame` (whose column names are strings); ToolInputError for what cannot be placed."""
    q = Question(frame, toks := _scan(question), _mentions(frame, toks))
    if q.find(WORDS["columns"]) is not None and not any(q.covers(i) for i in range(len(toks))):
        q.op = "columns"
        return q
    _comparisons(q)
    q.top = _numbers(q)
    _value_filters(q)
    _check_words(q)
    return q
