"""Conversations: several turns with one Crew, each turn knowing what the earlier ones said and produced.

`ChatSession.send(message)` runs one turn:

- The conversation so far goes with it as a compact context (`conversation_context`): every fact the user stated
  in a turn answered without a tool ("my name is Ada", "the budget is 4,000"), however long ago, then the last
  `keep` turns with their answers and what their tools returned (the receipt's text, the transcript), each cut
  to a bounded length, so the prompt stays small however long the conversation runs.
- A message that wants no tool (agents/replies.py) is answered from that context in one model call.
- Otherwise "that", "it", "the transcript"... resolve to an object: the earlier result is appended to the
  request (`resolve_references`), so "now translate that into French" reaches the language specialist with
  the text to translate, and "read it aloud" the speech tool with the text to speak. A correction ("in French
  instead", "no, the second file") is sent with the request it corrects.

`Crew.chat(conversation_id)` picks a conversation up again from the journal (after a restart too).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from smolcrew.agents.calculation import asks_calculation
from smolcrew.agents.corrections import language_asked, substituted
from smolcrew.agents.dispatch import EARLIER_REQUEST, EARLIER_RESULT, asks_question
from smolcrew.agents.replies import ACKNOWLEDGED, LISTED, SENTENCE_BREAK, edited_list, new_words
from smolcrew.agents.steps import self_corrected
from smolcrew.answering import RELEVANT, REPLY_AGENT
from smolcrew.tools.arithmetic import conversion_in

if TYPE_CHECKING:
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunResult

__all__ = [
    "EARLIER_REQUEST",
    "EARLIER_RESULT",
    "ChatSession",
    "asks_of_result",
    "conversation_context",
    "corrects",
    "resolve_references",
]

ANSWER_CHARS = 400
TOOL_CHARS = 600
FACTS_KEPT = 30

_REFERS = re.compile(
    r"\b(?:(?:that|this)(?!\s+(?:week|month|year|morning|afternoon|evening|weekend|time|way)\b)|it|them|those|"
    r"these|the (?:transcript(?:ion)?|text|result|answer|summary|translation|"
    r"caption|description|list|number|total|sum|output|recording|audio|image|picture|photo|file|document)|"
    r"the (?:first|second|third|last) one|what you (?:just )?(?:\w+ed|read|wrote|found|said|gave me)|"
    r"your (?:summary|translation|transcript(?:ion)?|answer|reply|result))\b",
    re.IGNORECASE,
)
_ON_THE_RESULT = re.compile(
    r"\b(?:on|in|from|inside|according to)\s+(?:it|that|them|this|those)\s*(?:[?.!,]|$)|\b(?:on|in) it\b|"
    r"\b(?:of|about) (?:those|these|them)\b|\b(?:did|does|do|was|is|will|would|has|had)\s+(?:he|she)\b",
    re.I,
)  # a pronoun, not a determiner: "in that message" names its object, which the conversation may hold; "by when
# did he want it?" after a memo was read: the one in it
_OF_THE_ANSWER = re.compile(r"\b(?:is|was|are|were|does|did)\s+(?:that|it|this)\b(?!\W*$)", re.I)
"""The answer as the question's subject ("how much rent is that for a full year?"), not a tag ("…, is it?")."""
_THE_FILE = re.compile(r"\b(?:that|the|this|same) (?:file|document|table|spreadsheet|sheet|pdf|csv)\b", re.I)
_ASKS_CONTENT = re.compile(r"\b(?:say|says|said|mention\w*|about|according|state\w*|write|wrote)\b", re.I)
"""A question on what a document holds ("what does it say about expansion plans?"), asked of the document."""
_YOUR, _MADE_BY = re.compile(r"\byour (summary|translation|transcript)", re.I), {"summary": "summarize",
    "translation": "translate", "transcript": "transcribe"}  # fmt: skip
_WHICH = re.compile(r"^\W*(?:(?:and|so|ok(?:ay)?)\W+)?(?:which|who|whose)\b", re.I)
_ANSWER_QUOTE = re.compile(r"\"([^\"]{2,})\"|\u201c([^\u201d]{2,})\u201d")
_CORRECTS = re.compile(
    r"^\W*(?:no\b|nope\b|not\b|actually\b|sorry\b|i meant\b|instead\b)|\binstead\b|\bi meant\b|"
    r"\b(?:shorter|longer|simpler|more formal|less formal)\b|\d\s*%?\s+(?:not|rather than)\s+\d|"
    r"^\W*(?:and\s+|but\s+|now\s+)?(?:just|only)\s+(?:the|for|those|in)\b|,\s*not (?:the |an? )?[\w-]+\W*$|"
    r"^\W*(?:the )?same(?: thing| again| question)?\W+but\b",
    re.IGNORECASE,
)
"""A message that corrects the last request: "no, the second file", "in German instead", "use 15% not 10%"."""
_VARIES = re.compile(
    r"^\W*(?:hmm+\W+)?(?:and\s+|ok(?:ay)?\W+)?(?:what|how) about\b|"
    r"^\W*(?:(?:ok(?:ay)?|perfect|great|thanks)[\s,.!]+)?(?:and|or|now|also)\s+[A-Za-z]+\s*(?:[?,.!]|$)",
    re.I,
)
"""A message that asks the last request again with another value: "and what about Italian?" ("how about a
joke?" swaps nothing, and is a request of its own)."""


class Talker(Protocol):
    """What a conversation needs of its crew (`Crew` is one)."""

    def wants_reply(self, request: str, stated: Sequence[str] = ()) -> bool: ...

    def recall(self, message: str, said: list[str], k: int = 2) -> list[str]: ...

    @property
    def run(self) -> Callable[..., RunResult]: ...  # Crew.run: the turn's request, and its options


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _said(message: str) -> str:
    """A turn's message as the user wrote it (without what `resolve_references` appended)."""
    return message.split(EARLIER_RESULT, 1)[0].split(EARLIER_REQUEST, 1)[0]


def _tool_outputs(result: RunResult) -> list[str]:
    outputs = []
    for record in result.steps:
        observed = record.payload.get("observations")
        if record.kind == "action" and record.agent != REPLY_AGENT and isinstance(observed, str) and observed.strip():
            outputs.append(observed)
    return outputs


def conversation_context(turns: list[tuple[str, RunResult]], keep: int = 4) -> str | None:
    """The conversation for the next turn's prompt: what the user stated in it, then the last `keep` turns."""
    if not turns:
        return None
    facts = stated(turns)[-FACTS_KEPT:]
    lines = []
    if facts:
        lines += ["What the user told you in this conversation:", *(f"- {_cut(fact, ANSWER_CHARS)}" for fact in facts)]
    lines.append("The last turns:")
    for message, result in turns[-keep:]:
        answer = str(result.answer) if result.state == "success" else ""
        lines.append(f"User: {_cut(_said(message), ANSWER_CHARS)}")
        if answer and not answer.startswith(ACKNOWLEDGED):  # the user's words said back, or a failed turn's "(no
            lines.append(f"Assistant: {_cut(answer, ANSWER_CHARS)}")  # answer: rejected)": a small model copies them
        for output in _tool_outputs(result)[-2:]:
            lines.append(f"  (a tool returned: {_cut(output, TOOL_CHARS)})")
        lines += [f"  (file written: {path})" for path in result.artifacts]
    return "\n".join(lines)


def stated(turns: list[tuple[str, RunResult]]) -> list[str]:
    """What the user told the assistant: the turns answered from the conversation that ask nothing, numbers in
    digits ("six thousand five hundred" -> 6500: a small model copies digits, and miscounts words). An update
    ("scratch that, it went up to 6500") also rewrites the number of the fact before it: a small model, shown
    both, often answers with the first."""
    from smolcrew.validators.numbers import in_digits

    said = [_said(message) for message, result in turns if result.mode == "reply"]
    facts: list[str] = []
    told = (" ".join(s for s in SENTENCE_BREAK.split(text) if not s.rstrip().endswith("?")) for text in said)
    for fact in (in_digits(text, threshold=3) for text in told if text):
        listed = next((i for i in reversed(range(len(facts))) if LISTED.match(facts[i])), None)
        if listed is not None and (edited := edited_list(facts[listed], fact)) is not None:
            facts[listed] = edited  # "add tomatoes", "take the rice off": the list as it is now, not its edits
            continue
        new = re.findall(_NUMBER, fact)
        numbered = [i for i, earlier in enumerate(facts) if re.search(_NUMBER, earlier)]
        if _UPDATES.search(fact) and len(new) == 1 and numbered:
            old = re.findall(_NUMBER, facts[numbered[-1]])  # "budget is 4,000" + "scratch that, it's 6500": now 6500
            if len(old) == 1:
                facts[numbered[-1]] = facts[numbered[-1]].replace(old[0], new[0])
        facts.append(fact)
    return facts


def bearing(message: str, facts: list[str], crew: Talker, latest: int = 2) -> list[str]:
    """The stated facts to put next to `message`: those closest in meaning, and the `latest` ones, which often
    only make sense after an earlier one ("also the room is B12", "scratch that, it went up to 6,500"); newest
    first, where a small model looks first (an update beats what it replaced)."""
    chosen = set(crew.recall(message, facts))
    return [
        fact for number, fact in reversed(list(enumerate(facts))) if fact in chosen or number >= len(facts) - latest
    ]


def corrects(message: str, turns: list[tuple[str, RunResult]]) -> bool:
    """Whether `message` corrects the last turn's request ("no, the second file", "in French instead")."""
    if turns and _VARIES.search(message):
        request, result = _said(turns[-1][0]), turns[-1][1]
        new_language = language_asked(message) is not None and language_asked(request) is None  # "now spanish"
        return substituted(message, request) is not None or (new_language and result.mode != "reply")
    if not turns or not _CORRECTS.search(message):
        return False  # a reply's request is corrected only by a swapped value: "no, I'm Bob" is a new fact
    return turns[-1][1].mode != "reply" or substituted(message, _said(turns[-1][0])) is not None


def asks_of_result(message: str, turns: list[tuple[str, RunResult]]) -> bool:
    """Whether `message` asks a question of an earlier tool result ("how much was the bagel on it?" after the
    receipt was read): the tools answer it, given that result, rather than a reply from the conversation."""
    recent = [result for _, result in turns[-2:] if result.mode != "reply" and result.state == "success"]
    return bool(recent) and asks_question(message) and _ON_THE_RESULT.search(message) is not None


def resolve_references(message: str, turns: list[tuple[str, RunResult]]) -> str:
    """`message` with what it refers to appended: the request it corrects, the earlier result it points at, or
    the earlier file it names by a word of its name. A message that names its own file or quotes its own text is
    left as it is."""
    from smolcrew.agents.dispatch import files_named, quoted_passage

    if not turns or files_named(message) or '"' in message or quoted_passage(message) is not None:
        return message  # "what language is this: 'Het regent...'": "this" is its own quote
    if conversion_in(message) is not None:
        return message  # "do that again for 10.5 km, but to miles": all it needs is in it
    if corrects(message, turns):
        previous = turns[-1][0]  # itself a correction ("shorter", then "even shorter"): the same request again
        fix, _, request = previous.partition(EARLIER_REQUEST)
        corrected = f"{request.strip()[1:-1]}; then: {_said(fix)}" if request else _said(previous)
        rewritten = substituted(message, corrected)
        if rewritten is not None or language_asked(message) is None or language_asked(corrected) is not None:
            return rewritten or f'{message}{EARLIER_REQUEST} "{corrected}"'
        message = f"{message.rstrip()} (translate it into {language_asked(message)})"  # "now spanish" says no verb
        # else "in French instead" after a summary, which names no language to swap: the summary, in French
    elif not _REFERS.search(message):  # "according to the report": a file named turns ago, by a word of its name
        path = _file_meant(message, turns)
        return message if path is None else f"{message} ({path})"
    elif _THE_FILE.search(message):  # "the average score in that file": the file, not the last answer
        named = next((files for m, _ in reversed(turns) if (files := _documents(_said(m)))), [])
        if len(named) == 1:
            return f"{message} ({named[0]})"
    done = [(m, r) for m, r in reversed(turns) if r.state == "success" and r.answer]
    # "that invoice" points at what a tool gave, not at the "you're welcome" after it; "your summary" at a summary
    yours = _YOUR.search(message)
    made = [(m, r) for m, r in done if yours and any(t.startswith(_MADE_BY[yours[1].lower()]) for t in r.tools)]
    earlier = next(iter(made), next(((m, r) for m, r in done if r.mode != "reply"), done[0] if done else None))
    if earlier is None:
        return message
    documents = _documents(_said(earlier[0]))
    table = len(documents) == 1 and documents[0].lower().endswith((".csv", ".xlsx", ".xls", ".tsv"))
    beyond = (
        len(new_words(message, str(earlier[1].answer))) >= 2
        and not asks_calculation(message)
        and not _OF_THE_ANSWER.search(message)
    )
    if (
        len(documents) == 1
        and asks_question(message)
        and (_ASKS_CONTENT.search(message) or (table and _WHICH.match(message)) or beyond)
    ):
        # the report, not its summary; "which branch ... of that total?" after a table's total: the table again;
        # "and water damage isn't covered either, is it?" after the warranty's length: the terms again
        return f"{message} ({documents[0]})"
    return f'{message}{EARLIER_RESULT} "{_cut(_referred(message, *earlier), 2000)}"'


def _files(message: str) -> list[tuple[str, str | None]]:
    """(path, kind) of every file `message` names, text files (kind "text") too."""
    from smolcrew.agents.dispatch import files_named
    from smolcrew.tools.text import TEXT_FILE

    return [*files_named(message), *((path, "text") for path in TEXT_FILE.findall(message))]


def _documents(message: str) -> list[str]:
    """The documents `message` names: PDFs, tables and text files (a question about "it" is asked of them)."""
    return list(dict.fromkeys(path for path, kind in _files(message) if kind in ("pdf", "table", "text")))


def _file_meant(message: str, turns: list[tuple[str, RunResult]]) -> str | None:
    """The one file an earlier turn named that `message` names by a word of its name ("what was Q3 revenue
    according to the report?" three turns after "in report.pdf, how many ..."); None when none or several."""
    words = set(re.findall(r"[a-z]{3,}", message.lower()))
    meant: dict[str, None] = {}
    for earlier, _ in turns:
        for path, _kind in _files(_said(earlier)):
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
            if words & set(re.findall(r"[a-z]{3,}", stem)):
                meant[path] = None
    return next(iter(meant)) if len(meant) == 1 else None


def _referred(message: str, earlier_message: str, earlier: RunResult) -> str:
    """What "it" in `message` is of an earlier turn: the file it wrote (for "play the audio"); the text a label
    was about ("translate it" after "what language is 'Dziękuję bardzo'?" is the phrase, not "Polish"); the
    passage its answer quotes ('The sign says "PROHIBIDO FUMAR"'); else its answer."""
    from smolcrew.agents.dispatch import quoted_passage
    from smolcrew.agents.planner import tool_tasks

    lines, place = _PER_FILE_LINE.findall(str(earlier.answer)), _PLACE.search(message)
    if place and len(lines) >= 2 and (index := _PLACES[place.group(1).lower()]) < len(lines):
        return lines[index]  # "translate the second one" after "read a.png and b.png": b.png's text
    if earlier.artifacts and re.search(r"\b(?:audio|image|picture|photo|recording|file)\b", message, re.IGNORECASE):
        return str(earlier.artifacts[-1])
    tasks = tool_tasks()
    labelled = earlier.tools and all(tasks.get(tool, "").endswith("classification") for tool in earlier.tools)
    if labelled and (passage := quoted_passage(earlier_message)) is not None:
        return passage
    quoted = _ANSWER_QUOTE.findall(str(earlier.answer))
    return next(group for group in quoted[0] if group) if len(quoted) == 1 else str(earlier.answer)


_PLACE = re.compile(r"\bthe (first|second|third|last) (?:one|file|image|picture|photo|recording|document)\b", re.I)
_PLACES = {"first": 0, "second": 1, "third": 2, "last": -1}
_PER_FILE_LINE = re.compile(r"^[\w.-]+\.[A-Za-z][A-Za-z0-9]{1,4}: (.+)$", re.M)
"""An answer's line per file ("b.png: Dentist on Tuesday"), as one call on each file answers (agents/finish.py)."""
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_UPDATES = re.compile(
    r"\b(?:scratch that|actually|correction|update[ds]?|changed?|went (?:up|down)|bumped|raised|lowered|"
    r"increased|decreased|instead|misremembered|no wait|now)\b",
    re.I,
)


@dataclass
class ChatSession:
    """Several turns with one Crew (see the module's docstring). `keep`: the turns shown in full to the next."""

    crew: Talker
    keep: int = 4
    turns: list[tuple[str, RunResult]] = field(default_factory=list)
    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __repr__(self) -> str:
        return f"ChatSession({self.conversation_id!r}, {len(self.turns)} turns)"

    def history(self) -> list[StepRecord]:
        """The step records of the last `keep` turns (the manager continues from them in manager mode)."""
        return [record for _, result in self.turns[-self.keep :] for record in result.steps]

    def send(self, message: str, **kwargs: Any) -> RunResult:
        """Run one turn; the result joins the conversation."""
        message = self_corrected(message)  # "5 miles, no wait, make that 6 miles"
        context = conversation_context(self.turns, self.keep)
        facts = stated(self.turns)  # "how much is my share of the rent?" works on the figures said earlier
        if (
            not corrects(message, self.turns)
            and not asks_of_result(message, self.turns)
            and self.crew.wants_reply(message, facts)
        ):
            task = message  # answered from the conversation: nothing to resolve
            relevant = bearing(message, facts, self.crew)
            if context is not None and relevant:  # next to the question, where a small model looks
                context += f"\n\n{RELEVANT}\n" + "\n".join(f"- {fact}" for fact in relevant)
        else:
            task = resolve_references(message, self.turns)
        result = self.crew.run(
            task, conversation_id=self.conversation_id, history=self.history(), context=context, **kwargs
        )
        self.turns.append((task, result))
        return result

    def settle(self, result: RunResult, task: str | None = None) -> None:
        """The turn of `result`'s run takes its settled result (after an approval, or a resume elsewhere), so
        later turns see it; a run this session lacks is appended as the turn `task`, when given."""
        for index, (text, earlier) in enumerate(self.turns):
            if earlier.run_id == result.run_id:
                self.turns[index] = (text, result)
                return
        if task is not None:
            self.turns.append((task, result))

    def reset(self) -> None:
        self.turns.clear()
