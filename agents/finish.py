"""How a specialist finishes once a tool call worked: the answer is written from the task and the tool's output.

- A file the tool saved (an upscaled image, speech), for a task that asks no question: the answer says where it
  is and what it is, written here; there is nothing for a model to add.
- A task that asks for the output itself (a transcript, the text of a page): the answer is that text.
- A tool that answered the question itself (a table's computed `answer_text`): that answer.
- "The cheapest / most expensive ..." of a price list read from an image (a menu, a receipt): the item with the
  lowest or highest price, worked out here (`priced_answer`); a small model picks the wrong line.
- A question: the model answers it in one line from a short prompt holding only the question and the output's
  readable part (the transcript, the OCR'd text, a table's computed answer), not the whole agent prompt. A small
  model stays on the question this way, and prompt processing is a few hundred tokens instead of thousands.
"""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = [
    "ONE_LINE_GRAMMAR",
    "answer_messages",
    "computed",
    "counted_answer",
    "echoes",
    "language_answer",
    "output_text",
    "per_file_text",
    "priced_answer",
    "saved_file",
    "saved_summary",
    "sub_questions",
    "text_key",
    "tool_output",
]

ONE_LINE_GRAMMAR = "root ::= [^\\n]{1,300}"
"""The GBNF of a one-line answer."""
_SAVED_KEYS = ("path", "audio_path", "image_path", "video_path", "mask_path")
_TEXT_KEYS = ("answer_text", "text", "transcript", "translation", "summary", "reply")
_OUTPUT_LIMIT = 3_000
"""Characters of a tool's output shown to the model."""
_SHOWN_SCALARS = 6
_ANSWER_PROMPT = (
    "You answer the user's question from a tool's output. Reply with the answer only, in one short sentence "
    "that answers every part of the question. "
    "Copy numbers, names, dates and codes exactly as the output writes them; do not do arithmetic unless the "
    "question asks for it. If the output does not contain the answer, say what it does contain."
)
_LOG_HEAD = re.compile(r"^\s*(?:Observation:\s*)?(?:Execution logs:\s*)?(?:Last output from code snippet:\s*)?", re.S)


def tool_output(observation: str) -> Any:
    """The last output of a code step as a Python value when it prints as a literal (a dict, a list, a string, a
    number), else its text. Only literals are read (`ast.literal_eval`): the output is untrusted."""
    text = observation.split("Last output from code snippet:", 1)[-1].strip() or _LOG_HEAD.sub("", observation)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def saved_file(output: Any) -> str | None:
    """The path of the file a tool saved, if its output names one."""
    if not isinstance(output, dict):
        return None
    return next((output[key] for key in _SAVED_KEYS if isinstance(output.get(key), str) and output[key]), None)


def saved_summary(output: dict[str, Any]) -> str:
    """'Saved PATH (width 172, height 88, scale 2)': the file and the output's other plain facts."""
    path = saved_file(output)
    facts = [
        f"{key.replace('_', ' ')} {value}"
        for key, value in output.items()
        if key not in _SAVED_KEYS and key != "model" and isinstance(value, int | float | str) and len(str(value)) < 40
    ][:_SHOWN_SCALARS]
    return f"Saved {path}" + (f" ({', '.join(facts)})" if facts else "")


def text_key(output: Any) -> str | None:
    """The key of the output that holds its text (a transcript, the OCR'd text), if any."""
    if not isinstance(output, dict):
        return None
    return next((key for key in _TEXT_KEYS if isinstance(output.get(key), str) and output[key].strip()), None)


_OPERATIONS = {"mean": r"average|mean", "sum": r"total|sum|altogether", "count": r"how many|number of"}


def computed(question: str, output: Any) -> bool:
    """Whether a tool already worked out what `question` asks ("the average English score": the table tool's
    mean), so no calculation follows: only the words of its own operation ask for one."""
    operation = output.get("operation") if isinstance(output, dict) and "answer_text" in output else None
    if operation in ("max", "min", "top", "list", "lookup") and re.match(
        r"^\W*(?:and\s+)?(?:which|who)\b", question, re.I
    ):
        return True  # "which branch contributes the largest share?": the table named it, nothing to work out
    words = _OPERATIONS.get(str(operation))
    if words is None:
        return False
    rest = re.sub(rf"\b(?:{words})\b", " ", question, flags=re.I)
    return not re.search(
        r"%|\b(?:percent|per|each|split|share|divid\w*|times|plus|minus|average|mean|total)\b", rest, re.I
    )


def per_file_text(output: Any) -> str | None:
    """'a.png: Meeting moved to room 204' then 'b.png: Dentist on Tuesday': the outputs of one call on each file
    (keyed by file name), a line each; None when the output is not that."""
    if not isinstance(output, dict) or len(output) < 2 or not all(_FILE_KEY.fullmatch(str(k)) for k in output):
        return None
    return "\n".join(f"{name}: {' '.join(output_text(value).split())}" for name, value in output.items())


_FILE_KEY = re.compile(r"[\w.-]+\.[A-Za-z][A-Za-z0-9]{1,4}")


def output_text(output: Any) -> str:
    """What the model is shown of an output: its text when it has one (with a computed answer's rows or a
    document's passages), else the whole value, cut to a few thousand characters."""
    if isinstance(output, dict):
        parts = [str(output[key]) for key in _TEXT_KEYS if isinstance(output.get(key), str) and output[key].strip()]
        passages = output.get("passages") or output.get("sources")
        if isinstance(passages, list):
            parts += [str(p.get("chunk", p)) if isinstance(p, dict) else str(p) for p in passages]
        found = output.get("answer")  # None: the tool found no answer, only passages ("answer: None" was copied)
        if found not in (None, "") and not any(str(found) in part for part in parts):
            parts.insert(0, f"answer: {found}")
        text = "\n".join(parts) if parts else repr(output)
    else:
        text = output if isinstance(output, str) else repr(output)
    return text if len(text) <= _OUTPUT_LIMIT else text[:_OUTPUT_LIMIT] + " …(cut)"


_PRICED_LINE = re.compile(
    r"^\s*(?P<item>[^\W\d][^\n\d]{1,60}?)[\s.:·…$€£-]*(?P<price>\d{1,6}[.,]\d{2})\s*(?:[$€£]|eur|usd|gbp)?\s*$",
    re.I | re.M,
)
_PRICED_PAIR = re.compile(r"(?P<item>[^\W\d][^\d]{1,40}?)[\s.:·…$€£-]*(?P<price>\d{1,6}[.,]\d{2})(?![\d])")
"""An item and its price within one line: a receipt's lines run together ("Latte 3.80 Bagel 2.50")."""
_NOT_ITEMS = re.compile(r"\b(?:sub-?total|total|tax|vat|tip|change|cash|card|balance|amount|due|paid|discount)\b", re.I)
_LOWEST = re.compile(r"\b(?:cheapest|least expensive|lowest[- ]priced|lowest price|least costly|cheaper)\b", re.I)
_PRICE_ASKED = re.compile(r"\bhow much\b|\bprice\b|\bcost\b", re.I)
_HIGHEST = re.compile(r"\b(?:priciest|most expensive|highest[- ]priced|highest price|most costly|dearest)\b", re.I)


def priced_answer(question: str, output: Any) -> str | None:
    """'Apple pie (5.50), the lowest price listed': the answer to a cheapest / most expensive question about a
    price list in a tool's text (OCR of a menu or a receipt), or 'Bagel: 3.25' to how much one item listed cost;
    None when the question or the text is not that."""
    text = output.get("text") if isinstance(output, dict) else output
    lowest, highest = bool(_LOWEST.search(question)), bool(_HIGHEST.search(question))
    if not isinstance(text, str) or (lowest and highest):
        return None
    items = [
        (match["item"].strip(" .:-"), match["price"])
        for match in (_PRICED_LINE if "\n" in text.strip() else _PRICED_PAIR).finditer(text)
        if not _NOT_ITEMS.search(match["item"])
    ]
    if not (lowest or highest):  # "how much was the bagel?": the price on the bagel's line
        asked = _words(question)
        named = [(item, price) for item, price in items if _words(item) & asked]
        return f"{named[0][0]}: {named[0][1]}" if len(named) == 1 and _PRICE_ASKED.search(question) else None
    if len(items) < 2:
        return None
    pick = (min if lowest else max)(items, key=lambda item: float(item[1].replace(",", ".")))
    return f"{pick[0]} ({pick[1]}), the {'lowest' if lowest else 'highest'} price listed"  # no number of its own


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


_HOW_MANY = re.compile(r"\bhow many (\w+)", re.I)


def counted_answer(question: str, output: Any) -> str | None:
    """'7 words': a "how many words / sentences / characters" question, answered by the count of that name in a
    tool's output (count_words gives all of them; the 0.5B picked the sentences); None otherwise."""
    asked = _HOW_MANY.search(question)
    if asked is None or not isinstance(output, dict):
        return None
    noun = asked.group(1).lower()
    value = output.get(noun)
    return f"{value} {noun}" if isinstance(value, int | float) and not isinstance(value, bool) else None


_AND_WH = re.compile(
    r"^(?P<first>.*\b(?:what|which|when|where|who|how)\b.*?),?\s+and\s+(?P<wh>where|when|who|what time|which|how much|"
    r"how many|how long|how)\b(?P<rest>[^?]*)\??\s*$",
    re.I | re.S,
)


def sub_questions(question: str) -> list[str]:
    """A question that asks two things ("what day is it on and where?") as two questions ("what day is it on?",
    "where is it?"): a small model answers one part and drops the other. Otherwise [question]."""
    found = _AND_WH.match(question.strip())
    if found is None:
        return [question]
    rest = found["rest"].strip() or "is it"
    return [found["first"].strip() + "?", f"{found['wh']} {rest}?"]


def language_answer(question: str, output: Any) -> str | None:
    """The language a detector named, said plainly, when the request asks which language it is or asks nothing
    ("I meant this: 'Jag skulle vilja...'"); None for any other question on it, or any other output."""
    if not isinstance(output, dict) or not {"language", "name", "candidates"} <= output.keys():
        return None
    if "?" in question and not re.search(r"\blanguage\b", question, re.I):
        return None
    return f"It is {output['name']} ({output['language']})."


def echoes(answer: str, question: str) -> bool:
    """Whether `answer` says the question back instead of answering it (the 0.5B, given a request it cannot
    read as a question, copies it, with the earlier result it points at)."""
    asked = " ".join(_WORD.findall(question.lower()))
    return bool(asked) and len(asked) >= 12 and asked in " ".join(_WORD.findall(answer.lower()))


_WORD = re.compile(r"[^\W_]+")


def answer_messages(question: str, output: Any, previous: str | None = None) -> list[dict[str, Any]]:
    """The short prompt the model answers a question from."""
    body = f"Tool output:\n{output_text(output)}\n\n"
    if previous:
        body += f"Found earlier: {previous}\n\n"
    body += f"Question: {question.strip()}"
    return [
        {"role": "system", "content": [{"type": "text", "text": _ANSWER_PROMPT}]},
        {"role": "user", "content": [{"type": "text", "text": body}]},
    ]
