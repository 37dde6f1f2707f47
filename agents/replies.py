"""Which messages want a plain reply rather than a tool: chit-chat, facts the user states about themselves,
questions about those facts or about the conversation ("what's my name?", "what was the budget again?").

`ReplyDetector` compares a message with example banks by the router's own embeddings: its mean similarity to the
three nearest messages that want a reply (`data/reply_examples.jsonl`, `reply: true`) against the best of the
router's specialist scores (the same measure over the specialists' example bank, priors included) and of the
follow-up commands that act on an earlier result ("now double it", "read it aloud", "in French instead":
`reply: false`). A message that names a file or quotes text to work on is never a reply: it has something for
a tool. The run then answers from the conversation in one model call
(smolcrew/answering.py) instead of sending a specialist round its agent loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smolcrew.agents.calculation import asks_calculation
from smolcrew.agents.dispatch import asks_question, files_named, quoted_passage
from smolcrew.tools.arithmetic import conversion_in
from smolcrew.tools.text import TEXT_FILE

if TYPE_CHECKING:
    from smolcrew.agents.router import Embedder, Router

__all__ = [
    "LISTED",
    "SENTENCE_BREAK",
    "ReplyDetector",
    "acknowledgement",
    "language_named",
    "load_reply_examples",
    "missed_fact",
    "new_words",
    "only_thanks",
    "said_back",
]

_QUOTED = ('"', "“", "«")
_ABOUT_THE_USER = re.compile(
    r"^(?!.*\b(?:it|that|this|them|those|these)\b).*(?:\b(?:did|do|have|had|was|were|am)\s+(?:i|we)\b|\b(?:my|our)\b)"
    r".*\?\s*$|^\W*remind me\b",
    re.IGNORECASE,
)
"""A question about what the user said ("where did I park?", "what's my name?"), with nothing of an earlier
result in it ("what's 15% of it?" wants the calculator)."""
_TOOL_VERB = re.compile(r"\b(?:translat|transcri|summari[sz]|convert|synthesi[sz])\w*", re.I)
_A_TOOLS_OBJECT = re.compile(
    r"\b(?:the|that|this) (?:doc|document|report|pdf|receipt|spreadsheet|recording|audio|transcript|voicemail|"
    r"memo|lease|contract|invoice|menu|notes)\b",
    re.I,
)  # "does the doc say anything about pets? I have a cat.": asked of what a tool read
_OUR_TALK = re.compile(r"\b(?:(?:our|this) (?:conversation|chat)|what we (?:said|talked about|discussed))\b", re.I)
_CAPABILITY = re.compile(
    r"^\W*(?:\w+[.!,]\s*)?(?:(?:can|could) you|are you able to|do you)\s+(?:also\s+|even\s+|still\s+)?\w+\s+"
    r"(?:(?:any|other|more)\s+)?(?:pdfs|images|photos|pictures|audio|recordings|videos|spreadsheets|tables|"
    r"documents|files|languages|french|german|spanish|italian|english)\b(?:\s+(?:too|as well|also))?\W*$",
    re.IGNORECASE,
)
"""A question about what the assistant can do, with no file or text to do it on ("can you also read PDFs?")."""


_INTO = re.compile(r"\b(?:in|into|to)\s+([A-Z]?[a-z]+)\b")


def language_named(word: str) -> str | None:
    """The language `word` names ("french" -> "French"), or None: a major language (ISO 639-1) by its own name
    (ISO 639-3 also names languages "To", "Are", "Even")."""
    import pycountry

    try:
        found = pycountry.languages.lookup(word)
    except LookupError:
        return None
    major = getattr(found, "alpha_2", None) is not None
    return str(found.name) if major and found.name.lower() == word.lower() else None


def _names_language(message: str) -> bool:
    """Whether `message` asks for a language ("in Spanish", "into french")."""
    return any(language_named(found.group(1)) for found in _INTO.finditer(message))


def load_reply_examples() -> tuple[list[str], list[str]]:
    """(messages that want a reply, follow-up commands that want a tool) from `data/reply_examples.jsonl`."""
    text = (Path(__file__).parent / "data" / "reply_examples.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [row["text"] for row in rows if row["reply"]], [row["text"] for row in rows if not row["reply"]]


class ReplyDetector:
    """`detector(message)`: whether `message` wants a reply from the conversation rather than a tool.

    Args:
        embed: the router's embedder (texts in, L2-normalised rows out).
        router: the router whose specialist scores a reply must beat.
        examples: (messages that want a reply, follow-ups that want a tool); default: the packaged banks.
        margin: how far the reply score must lead the best specialist's.
        top_k: nearest examples averaged, as the router does.
    """

    def __init__(
        self,
        embed: Embedder,
        router: Router,
        examples: tuple[list[str], list[str]] | None = None,
        *,
        margin: float = 0.0,
        top_k: int = 3,
    ) -> None:
        self._embed = embed
        self.router = router
        self.replies, self.follow_ups = examples if examples is not None else load_reply_examples()
        self.margin = margin
        self.top_k = top_k
        self._replies = router.vectors(self.replies)  # cached with the router's own example bank
        self._follow_ups = router.vectors(self.follow_ups)

    def __repr__(self) -> str:
        return f"ReplyDetector({len(self.replies)} replies, {len(self.follow_ups)} follow-ups, margin={self.margin})"

    def score(self, message: str) -> tuple[float, float]:
        """(reply score, best task score: a specialist's or a follow-up command's) of `message`."""
        vector = self._embed([message])

        def nearest(bank: np.ndarray) -> float:
            return float(np.sort(vector @ bank.T, axis=1)[0, ::-1][: self.top_k].mean())

        task = max(float(self.router.scores([message])[0].max()), nearest(self._follow_ups))
        return nearest(self._replies), task

    def nearest(self, message: str, texts: list[str], k: int = 2, floor: float = 0.2) -> list[str]:
        """The `k` of `texts` closest in meaning to `message` (at least `floor` cosine), in their own order."""
        if not texts:
            return []
        similarity = (self._embed([message]) @ self._embed(texts).T)[0]
        chosen = sorted(int(i) for i in np.argsort(similarity)[::-1][:k] if similarity[i] >= floor)
        return [texts[i] for i in chosen]

    def __call__(self, message: str, stated: Sequence[str] = ()) -> bool:
        """`stated`: what the user stated earlier in the conversation (a question on its figures is worked out)."""
        if files_named(message) or TEXT_FILE.search(message) or any(mark in message for mark in _QUOTED):
            return False
        if quoted_passage(message) is not None and (_names_language(message) or asks_question(message)):
            return False  # "how do I say 'where is the station' in Spanish?", "how many words are in: '...'"
        if acknowledgement(message) is not None or _CAPABILITY.match(message) or only_thanks(message):
            return True
        if edits_a_list(message, stated):
            return True
        if asks_calculation(message, stated=stated):
            return False  # the calculator works it out, from the facts of the conversation too
        if (_TOOL_VERB.search(message) or (_A_TOOLS_OBJECT.search(message) and asks_question(message))) and not (
            _OUR_TALK.search(message)
        ):
            return False  # "ugh my laptop restarted. can you translate the audio into German?": a task on a result
        if (_ABOUT_THE_USER.search(message) and not _names_language(message)) or asks_about_stated(message, stated):
            return True
        reply, task = self.score(message)
        return reply > task + self.margin


_OPENER = re.compile(
    r"^\s*(?:(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))(?:\s+there)?|ok(?:ay)?|so|well|oh|also|btw|"
    r"alright|all right|y'all|guys|folks|everyone|"
    r"actually|and|oh and|update|by the way|fyi|just so you know|for the record|scratch that|correction|background|"
    r"context(?: for (?:this|the) (?:thread|chat|conversation))?)\b[\s,.!:;-]*)+",
    re.IGNORECASE,
)
_REMEMBER = re.compile(
    r"^(?:please\s+)?(?:remember|note|keep in mind|don'?t forget|make a note)(?:\s+(?:that|this))?\b[\s:,-]*",
    re.IGNORECASE,
)
_ASKS = re.compile(
    r"\?|\b(?:you|your|yours)\b|^\s*(?:what|which|who|whose|when|where|why|how|can|could|would|will|do|does|did|"
    r"is|are|should|tell|give|show|find|write|make|translate|transcribe|read|summari[sz]e|calculate)\b|"
    r"\b(?:i|we)(?:'d| would)? (?:need|want|like|wish|require)\b|\b(?:i'm|we're) (?:looking for|after)\b|"
    r"\b(?:help|let) (?:me|us)\b|\b(?:i|we) (?:have|got) to\b",
    re.IGNORECASE,
)
"""A sentence that asks something: a question, a word to the assistant, an order, or a need ("I need a
voice-over that says: ...")."""
_SPEAKER = re.compile(r"(?:i|i'm|i've|i'd|i'll|my|we|we're|we've|we'll|we'd|our)\b", re.IGNORECASE)
_THING = re.compile(r"(?:the|this|that|it|it's|there|these|those)\b", re.IGNORECASE)
_COPULA = re.compile(r"(?:[\w'-]+\s+){1,3}(?:is|are|was|were)\s", re.IGNORECASE)
"""A fact stated of a thing ("client is Halvorsen Logistics, main contact Priya Nair")."""
_INTRODUCES = re.compile(r"[A-Z][\w'-]+(?: [A-Z][\w'-]+)? here$")
_SWAPS = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're", "i've": "you've",
    "i'll": "you'll", "i'd": "you'd", "we": "you", "us": "you", "our": "your", "ours": "yours",
    "ourselves": "yourselves", "we're": "you're", "we've": "you've", "we'll": "you'll", "we'd": "you'd", "am": "are",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_LOWERED_FIRST = frozenset({*_SWAPS.values(), "the", "a", "an", "this", "that", "it", "there", "were"})
_ASIDE = re.compile(
    r"[\s,]*\b(?:(?:(?:please\s+)?(?:remember|note|keep) (?:it|that|this)(?: in mind)?)?(?:\s*for (?:me|us))?"
    r"(?:\s*please)?|thanks|thank you)\W*$",
    re.IGNORECASE,
)


_NUMBER_WORDS = (
    "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|"
    "thousand|million|billion|dozen"
)
_NOTICE = re.compile(
    r"(?:ok(?:ay)?[, ]+)?(?:just so you know|fyi|for the record|for later|for future reference|heads up)"
    r"(?:,?\s*for (?:later|the future|future reference))?",
    re.IGNORECASE,
)
_TYPED_IM = re.compile(r"\b([Ii])m\b")
"""'im Ravi': "I'm" as people type it in a chat."""
LISTED = re.compile(r"^(?P<head>[^:]*?\blist\b[^:]*?)(?:\s*:|\s+is\b)\s*(?P<items>\S.*)$", re.I)
"""A list the user states ("shopping list: apples, rice, coffee"): a fact to keep, as its edits later are."""
ACKNOWLEDGED = "Got it: "
"""How an acknowledgement starts (a conversation's context leaves these answers out: a small model copies them)."""


_ADDS = re.compile(r"^\W*(?:(?:oh|and|also|ok(?:ay)?|please)\W+)*(?:add|put|plus)\s+(?P<items>[^.;!?]+)", re.I)
_REMOVES = re.compile(
    r"\b(?:take|cross|strike)\s+(?P<items>[^,.;!?]+?)\s+off\b|\b(?:remove|delete|drop)\s+(?P<other>[^,.;!?]+)", re.I
)
_TO_THE_LIST = re.compile(r"\s+(?:to|from|on|off)\s+(?:the|my|our)\s+\w*\s*list\b.*$|\s+too$|\s+as well$", re.I)


def edits_a_list(message: str, facts: Sequence[str]) -> bool:
    """Whether `message` adds to or takes from a list the user stated ("oh and add tomatoes"): a fact, not a task."""
    return list_acknowledged(message, facts) is not None


def _items(text: str) -> list[str]:
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+", _TO_THE_LIST.sub("", text.strip(" .!")))
    return [re.sub(r"^(?:the|some|a|an)\s+", "", part.strip(), flags=re.I) for part in parts if part.strip()]


def edited_list(listing: str, message: str) -> str | None:
    """`listing` ("shopping list: apples, rice") after `message` adds to it or takes from it ("oh and add
    tomatoes", "take the rice off"); None when `message` does neither."""
    found = LISTED.match(listing)
    added, removed = _ADDS.search(message), _REMOVES.search(message)
    if found is None or (added is None and removed is None):
        return None
    items = _items(found["items"])
    if removed is not None:
        gone = {item.lower().removesuffix("s") for item in _items(removed["items"] or removed["other"])}
        items = [item for item in items if item.lower().removesuffix("s") not in gone]
    if added is not None:
        items += [item for item in _items(added["items"]) if item.lower() not in {i.lower() for i in items}]
    return f"{found['head'].strip()}: {', '.join(items)}"


def list_acknowledged(message: str, facts: Sequence[str]) -> str | None:
    """ "Got it: shopping list: apples, coffee, tomatoes." for an edit of the list the user stated last (a small
    model, asked, replied anything, and copied that reply later); None when `message` edits no list."""
    listed = next((fact for fact in reversed(facts) if LISTED.match(fact)), None)
    edited = edited_list(listed, message) if listed is not None else None
    return f"{ACKNOWLEDGED}{edited}." if edited is not None else None


def acknowledgement(message: str) -> str | None:
    """The reply to a message that only tells something about the user ("my name is Ada and I live in Lisbon",
    "our budget is 12,500, remember that"): the facts said back in the second person, written here. A small
    model asked to acknowledge them embellishes ("Lisbon, in the heart of Portugal") or plays the user ("I'm
    Tomasz, a baker"). None when the message asks anything or has a sentence that states no fact (neither about
    the speaker nor with a figure or a name in it): the model replies to that."""
    text = _OPENER.sub("", _TYPED_IM.sub(r"\1'm", message.replace("\u2019", "'").strip()), count=1)
    if conversion_in(text) is not None:
        return None  # "a half marathon is 13.1 miles, so in metres": a conversion asked
    facts: list[str] = []
    for sentence in re.split(r"(?<=[.!;])\s+|\n+", text):
        if _NOTICE.fullmatch(sentence.strip().rstrip(".!; ")):
            continue  # "just so you know for later": says why, states nothing
        if _ASKS.search(sentence):
            return None
        sentence = sentence.strip().rstrip(".!; ")
        fact = _ASIDE.sub("", _REMEMBER.sub("", sentence, count=1)).strip(" ,:-")
        if not fact and sentence:
            continue  # "remember that for me": the request to remember, not a fact
        figure_or_name = re.search(rf"\d|\s[A-Z]|\b(?:{_NUMBER_WORDS})\b", fact) is not None
        specific = figure_or_name or len(fact.split()) >= 4  # "I love it" notes nothing
        if LISTED.match(fact):
            facts.append(_second_person(fact))
            continue
        introduced = _INTRODUCES.match(fact) is not None  # "Tomasz here."
        named_thing = figure_or_name and (_THING.match(fact) or _COPULA.match(fact) or bool(facts))
        if not (introduced or (specific and (_SPEAKER.match(fact) or named_thing))):
            return None  # a sentence that says nothing of the user, or an order ("remind me of it")
        facts.append(_second_person(fact))
    return f"{ACKNOWLEDGED}{'; '.join(facts)}." if facts else None


def _second_person(sentence: str) -> str:
    """`sentence` with the speaker's pronouns turned to the listener's ("I was" becomes "you were"), in lower
    case, its first word too unless that is a name."""
    words: list[str] = []

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        swapped = "were" if word.lower() == "was" and words[-1:] == ["i"] else _SWAPS.get(word.lower())
        words.append(word.lower())
        return word if swapped is None else swapped

    said = _WORD.sub(swap, sentence)
    first = said.split(maxsplit=1)[0]
    return said[0].lower() + said[1:] if first.lower() in _LOWERED_FIRST else said


_PLAIN = re.compile(r"[a-z0-9]+")
_QUESTION_WORDS = (
    "what whats which who whose when where why how is are was were do does did the a an my our i we me you your "
    "again remind tell of to on in at it that this and or any under over for with from about by"
)
_ASKING_WORDS = frozenset(_QUESTION_WORDS.split())


def _content_words(text: str) -> set[str]:
    return {w.removesuffix("s") for w in _PLAIN.findall(text.lower().replace("'s", "")) if w not in _ASKING_WORDS}


_THANKS = re.compile(r"\b(?:thanks?|thx|ty|thank you|cheers|bye|goodbye|see you)\b", re.I)
_ASKS_A_TASK = re.compile(
    r"\b(?:translate|transcribe|read|summari[sz]e|write|make|draw|generate|calculate|convert|count|detect|describe|"
    r"play|say|tell|show|find|check|can|could|would|will|please|what|how|why|who|which|where|when)\b|\?",
    re.I,
)


def only_thanks(message: str) -> bool:
    """Whether `message` thanks or says goodbye and asks for nothing ("thx for listening lol"; not "thanks, now
    translate it"): the model replies to it, whatever the nearest examples say."""
    return bool(_THANKS.search(message)) and len(message.split()) <= 8 and not _ASKS_A_TASK.search(message)


def asks_about_stated(question: str, facts: Sequence[str]) -> bool:
    """Whether `question` asks back a fact the user stated: most of its words (two at least) are in one of
    `facts` ("what name is the table under?" after "table under the name Okonkwo")."""
    if not asks_question(question):
        return False
    asked = _content_words(question)
    return any(len(asked & _content_words(fact)) >= max(2, 2 * len(asked) / 3) for fact in facts)


def said_back(question: str, facts: list[str], *, closest: bool = True) -> str | None:
    """The stated fact that shares most words with `question`, said back ("what day is my flight?" + "my flight
    to Lisbon is on the 12th of March" -> "You told me your flight to Lisbon is on the 12th of March."); None
    when no fact shares a word. What a reply falls back on when the model, given that fact, says it does not
    know or answers as itself. `closest` False: the first fact, shared words or not ("what do I do for work?"
    after "Tomasz here. Nurse, night shifts"), for a question about the user: a reply is given the facts that bear
    on it, latest first."""

    asked = _content_words(question)
    shared = [(len(asked & _content_words(fact)), -number) for number, fact in enumerate(facts)]
    best = max(shared, default=(0, 0))
    told = [number for number, fact in enumerate(facts) if not _ASKS.search(fact)]  # not "tell me a joke"
    if not closest and told and re.search(r"\b(?:i|my|me|mine|we|our|us)\b", question, re.I):
        best = (1, -told[0])
    return f"You told me {_second_person(facts[-best[1]].rstrip('.!; '))}." if best[0] else None


_CLAUSE = re.compile(r"[,;.!?:]|\b(?:and|but)\b", re.I)
_DIGITS = re.compile(r"\d[\d,.]*")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
"""Where a sentence ends and the next begins."""
_FILLER_WORDS = (
    "not too much so if all ever must very just really be been it its is that this there have has had would could "
    "should can will kind bother sorry thank thanks please hope still know again remember some any also as than then "
    "up out no yes ok okay mind keep trouble"
)
_FILLER = frozenset(_FILLER_WORDS.split())
"""Words a polite question and a fact's asides share ("not too much to keep in mind") that say nothing."""


def missed_fact(question: str, answer: str, facts: list[str]) -> str | None:
    """The stated fact said back when a reply to `question` leaves out what that fact says: the clauses of `facts`
    that share most words with the question ("Contract value?" + "..., main contact Priya Nair, contract value
    48,000 USD") have words the question lacks ("48,000 USD"), and the reply has none of them ("You are Priya
    Nair."). None when the reply has them, or states a figure no fact or the question holds (it worked one out:
    "how old will I be next year?" + "I'm 34" -> "You'll be 35.")."""
    asked, said = _content_words(question) - _FILLER, _content_words(answer)
    sentences = [sentence for fact in facts for sentence in SENTENCE_BREAK.split(fact)]
    clauses = [(len(asked & _content_words(part)), sentence, _content_words(part) - asked - _FILLER)
               for sentence in sentences for part in _CLAUSE.split(sentence)]  # fmt: skip
    most = max((shared for shared, _, _ in clauses), default=0)
    closest = [(sentence, news) for shared, sentence, news in clauses if shared == most and news]
    told = "".join(facts) + question
    worked_out = any(figure.rstrip(".,") not in told for figure in _DIGITS.findall(answer))
    if not most or not closest or any(said & news for _, news in closest) or worked_out:
        return None
    return f"You told me {_second_person(closest[0][0].rstrip('.!; '))}."


def new_words(question: str, text: str) -> set[str]:
    """The words of `question` that say something and that `text` lacks ("water damage isn't covered either, is
    it?" after "24 months from the date of purchase": water, damage, covered)."""
    return _content_words(question) - _FILLER - _content_words(text)
