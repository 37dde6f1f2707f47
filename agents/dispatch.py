"""Direct dispatch: when a specialist's task names a file (or quotes a passage) and exactly one of its tools fits
it, call that tool without asking the model to write the call.

A tool fits when one of its required inputs takes that kind of file (by the input's name: `audio`, `image`,
`video`, `pdf_path`, `path`; for a quoted passage, `text`) and every other required input can be filled from the
task itself (`question` is the task; `text` a quoted passage; `target_language` a language the task names).
Among fitting tools, the one whose description is nearest the task (cosine of MiniLM embeddings) wins when it
leads the next by `margin`; otherwise the call is not certain, and the model decides under the tool-call
grammar instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from smolcrew.agents.amounts import scale_asked, sentences_asked
from smolcrew.tools.text import TEXT_FILE
from smolcrew.validators.verdict import EARLIER_RESULT

__all__ = [
    "EARLIER_REQUEST",
    "EARLIER_RESULT",
    "LANGUAGES",
    "NOW",
    "PREVIOUS_RESULT",
    "DirectCall",
    "Embedder",
    "asks_for_output",
    "asks_question",
    "file_kinds",
    "files_named",
    "nearest_tools",
    "passage",
    "plan_direct_call",
    "quoted_passage",
    "split_previous",
    "step_files",
    "tool_examples",
    "with_context",
]

Embedder = Callable[[list[str]], np.ndarray]
"""Texts in, L2-normalised vectors out (one row per text), as the router's."""

_KINDS: dict[str, tuple[str, ...]] = {
    "audio": ("wav", "mp3", "flac", "ogg", "m4a", "aac", "opus"),
    "image": ("png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"),
    "video": ("mp4", "mov", "avi", "mkv", "webm"),
    "pdf": ("pdf",),
    "table": ("csv", "tsv", "xlsx", "xls"),
}
_NOUNS = {"audio": "the recording", "image": "the image", "video": "the video", "pdf": "the PDF", "table": "the table"}
_INPUTS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "audio": ("audio",),
    "image": ("image",),
    "video": ("video",),
    "pdf": ("pdf_path",),
    "table": ("path",),
}
_FILE = re.compile(r"(?<![\w/.-])([\w./-]+\.(" + "|".join(e for exts in _KINDS.values() for e in exts) + r"))\b", re.I)
_QUOTED = re.compile(r"\"([^\"]{2,})\"|“([^”]{2,})”|(?<!\w)'([^']{4,})'(?!\w)")
LANGUAGES = (  # a translation's targets, as a regex alternation
    "english|french|german|spanish|italian|portuguese|dutch|polish|russian|chinese|japanese|korean|arabic|"
    "turkish|swedish|danish|norwegian|finnish|greek|czech|hindi"
)
_TARGET = re.compile(r"\b(?:to|into|in)\s+(" + LANGUAGES + r")\b", re.I)
_OUTPUT_ITSELF = re.compile(
    r"^\s*(?:(?:now|ok(?:ay)?|great|cool|thanks|then|and|so|alright|please|pls)[\s,!.]+)*"
    r"(?:can you\s+|could you\s+)?(?:transcribe|listen to|write down|read (?:out|aloud)|read\b(?!.*\?)|"
    r"ocr|extract the text|translate|summari[sz]e|say|speak|synthesi[sz]e|convert|turn|put|generate|draw|make|"
    r"create|(?:i need|i want|give me|send me) the (?:words|text|transcript))",
    re.I,
)
_WHAT_IT_SAYS = re.compile(
    r"\bwhat(?:'s| is| does| do| did)?\s+(?:it|this|that|the [\w -]{1,30}?|[\w-]+)\s+"
    r"(?:say|says|said|read|reads)\s*[?.!]*\s*$|^\W*how (?:do|would|can|could|should) (?:i|you|we) say\b|"
    r"\bwhat(?:'s| is) (?:written|on (?:this|the|that|my) (?:receipt|sign|menu|note|label|page|screen|board|"
    r"invoice|ticket|form|card|flyer|poster|list))\b",
    re.I,
)  # "how do I say 'thank you' in Polish?" asks for the translation itself
_POLITE = re.compile(r"^\s*(?:please\s+)?(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?(?=\w)", re.I)
_QUESTION = re.compile(
    r"\?|\b(?:what|which|who|when|where|how|why|whats|wheres|whos|hows|whens|is there|are there|tell me|"
    r"answer (?:it|that|this|them))\b",
    re.I,
)  # "whats my dogs name again lol": typed without the apostrophe


def _kind(path: str) -> str | None:
    extension = path.rsplit(".", 1)[-1].lower()
    return next((kind for kind, extensions in _KINDS.items() if extension in extensions), None)


def files_named(text: str) -> list[tuple[str, str | None]]:
    """(path, kind) of every file `text` names, kind one of audio, image, video, pdf, table."""
    return [(match.group(1), _kind(match.group(1))) for match in _FILE.finditer(text)]


def step_files(task: str) -> list[tuple[str, str | None]]:
    """The files a plan's step works on: those its own request names, else those the previous step's answer
    names ("upscale x.png, then read the text on it": the second step reads the upscaled file)."""
    own, previous = split_previous(task)
    return files_named(own) or files_named(previous or "")


def file_kinds(tools: Iterable[Any]) -> frozenset[str]:
    """The kinds of file that at least one of `tools` takes as a required input."""
    return frozenset(
        kind
        for tool in tools
        for key, spec in tool.inputs.items()
        if not spec.get("nullable")
        for kind, names in _INPUTS_FOR_KIND.items()
        if key in names
    )


@dataclass(frozen=True, slots=True)
class DirectCall:
    """One tool call decided from the task alone."""

    tool: str
    arguments: dict[str, Any]

    def code(self) -> str:
        """The code action a model would have written: call, then show the output to the next step."""
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        return f"result = {self.tool}({arguments})\nresult"

    def reply(self) -> str:
        return f"Thought: I call {self.tool} on the file the task names.\n<code>\n{self.code()}\n</code>"


EARLIER_REQUEST = "\n\nThis corrects the earlier request:"
"""What a conversation appends to a correction ("in French instead") before the request it corrects."""
NOW = "\n\nNow: "
"""Between the conversation so far and the request it leads to (`with_context`)."""
PREVIOUS_RESULT = "Result of the previous step"
"""How a plan's step is told what the step before it found (see smolcrew.run)."""
_PREVIOUS = re.compile(r"\n\n" + PREVIOUS_RESULT + r" \([\w-]+\): ", re.S)
_AFTER_COLON = re.compile(r":\s+([^:\n]{8,}?)\s*$")
_SAY_IN = re.compile(  # a translation: "how do you say coffee in Italian" (the words), "what does it mean in English"
    rf"\bhow \w+ \w+ say\s+(.{{2,60}}?)\s+in\s+(?:{LANGUAGES})\b|\bmean in (?:{LANGUAGES})\b", re.I
)
_TRANSLATE = re.compile(r"\btranslat(?:e|ed|ing|ion)\b", re.I)
_MEANS = re.compile(r"\bwhat (?:does|do|did)\b[^?\n]{1,80}?\bmean\b(?! in\b)", re.I)  # "what does 'à bientôt' mean"
_INTO_LANGUAGE = re.compile(
    rf"^(?!.*\b(?:what|which) language\b|.*\b(?:is|are) (?:it|this|that|they) (?:in|written)\b)"
    rf".*\b(?:in|into)\s+(?:{LANGUAGES})\b",
    re.I | re.S,
)  # "what you just read, you can make it in Italian?" asks for a translation; "is it in Italian?" does not
_ANSWER_IT = re.compile(r"\banswer (?:it|that|this|them|the question|those questions)\b", re.I)
"""A step asked to answer what the previous step found ("listen to q.wav and answer it using t.csv")."""
_OPTIONAL_FILLS = ("scale", "max_sentences")
_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
_ORDINAL = re.compile(r"\bthe (first|second|third|fourth|last)\b(?! (?:time|step|sentence|line|page)s?\b)", re.I)
_OTHER = re.compile(r"\b(?:the )?other (?:one|file|image|picture|photo|recording|audio|document)\b", re.I)


def with_context(context: str | None, task: str) -> str:
    """`task` after the conversation it continues, as a run's prompt and each step's task carry it."""
    return task if context is None else f"{context}{NOW}{task}"


def split_previous(task: str) -> tuple[str, str | None]:
    """(the step's own request, what the previous step of the plan found, or None). The conversation before
    the request (`with_context`) is not the request: its files and quotes are not this step's."""
    parts = _PREVIOUS.split(task.rsplit(NOW, 1)[-1], maxsplit=1)
    return (_unwrapped(parts[0]), parts[1].strip()) if len(parts) == 2 else (_unwrapped(parts[0]), None)


def _unwrapped(own: str) -> str:
    """A correction with the request it corrects out of its quotes, so that the quotes and files in that request
    are read as the request's ("in French instead" + "Translate 'see you' into Spanish": the text is 'see you')."""
    head, marker, corrected = own.partition(EARLIER_REQUEST)
    corrected = corrected.strip()
    if marker and len(corrected) > 1 and corrected[0] == corrected[-1] == '"':
        return f"{head}{marker} {corrected[1:-1]}"
    return own


def _ordinal_file(own: str, paths: list[str]) -> str | None:
    """The one of several files the request picks by its place ("transcribe the first one", "no, the second
    file"), the correction's words before the corrected request's; None when it picks none."""
    fix, _, corrected = own.partition(EARLIER_REQUEST)
    if corrected and len(paths) == 2 and _OTHER.search(fix):  # "no, the other image": not the one picked before
        before = _ordinal_file(corrected, paths)
        return None if before is None else paths[1 - paths.index(before)]
    for text in (fix, corrected):
        found = _ORDINAL.search(text)
        if found is not None:
            place = _ORDINALS[found.group(1).lower()]
            return paths[place] if place < len(paths) else None
    return None


def passage(task: str) -> str | None:
    """The text a step works on: a text file its own request names, a passage it quotes, a passage after a
    colon ("which language is this: Ich habe..."), the words to say ("how do you say coffee in Italian"), else
    what the previous step found."""
    own, previous = split_previous(task)
    after_colon = _AFTER_COLON.search(own) if not _FILE.search(own) else None
    text_files = TEXT_FILE.findall(own)  # "summarize notes.txt": the text tools read the file (tools.text)
    unquoted = after_colon or _SAY_IN.search(own)
    return _ordinal_file(own, text_files) or (text_files[:1] or [None])[0] or quoted_passage(own) or (
        (unquoted.group(1) or "").strip() if unquoted else None) or previous  # fmt: skip


def _fill(task: str, name: str, spec: Mapping[str, Any]) -> Any:
    """A value for an input taken from the task, or None."""
    if name == "question":
        own, previous = split_previous(task)
        return previous if previous and _ANSWER_IT.search(own) else own.strip()
    if name == "text":
        return passage(task)
    if name == "scale" and "integer" in str(spec.get("type")):
        return scale_asked(task)
    if name == "max_sentences":
        return sentences_asked(split_previous(task)[0])
    if name == "target_language":
        target = _TARGET.search(split_previous(task)[0])  # the request's, not the conversation's before it
        return target.group(1).capitalize() if target else "English" if _MEANS.search(task) else None
    return None


def quoted_passage(task: str) -> str | None:
    """The first quoted passage of the task, else the earlier result it points at, whole ('The sign says "NO"')."""
    request, pointed, earlier = task.partition(EARLIER_RESULT)
    if (quoted := _QUOTED.search(request)) is not None:
        return next(group for group in quoted.groups() if group)
    earlier = earlier.strip()
    return ((earlier[1:-1] if earlier[:1] == earlier[-1:] == '"' else earlier) or None) if pointed else None


def _fitting_calls(
    task: str, tools: Iterable[Any], path: str | None, kind: str | None
) -> list[tuple[str, DirectCall, Any]]:
    """(summary, call, tool) of each tool whose required inputs the task fills: the file `path` (of `kind`) in its
    one input for that kind, or (no path) the passage in `text`; the rest from the task."""
    candidates = []
    for tool in tools:
        required = {key: spec for key, spec in tool.inputs.items() if not spec.get("nullable")}
        anchors = [key for key in required if kind and key in _INPUTS_FOR_KIND[kind]] if path else ["text"]
        if len(anchors) != 1 or anchors[0] not in required:
            continue
        arguments: dict[str, Any] = {anchors[0]: path} if path else {}
        for key, spec in required.items():
            if key not in arguments:
                value = _fill(task, key, spec)
                if value is None:
                    break
                arguments[key] = value
        else:
            for key, spec in tool.inputs.items():
                if key in _OPTIONAL_FILLS and spec.get("nullable") and (value := _fill(task, key, spec)) is not None:
                    arguments[key] = value
            summary = tool.description.strip().split("\n", 1)[0]
            candidates.append((f"{tool.name.replace('_', ' ')}: {summary}", DirectCall(tool.name, arguments), tool))
    return candidates


def plan_direct_call(
    task: str, tools: Iterable[Any], embed: Embedder, *, margin: float = 0.04, min_score: float = 0.15
) -> DirectCall | None:
    """The one call that does the task's first step, or None when the task does not make it certain.

    The call works on what the task names: one file (its kind picks the input), or else a quoted passage (the
    `text` input), or else the previous step's answer (`text` again, when a tool is near enough what this step
    asks for: `min_score`)."""
    files = step_files(task)
    own = split_previous(task)[0]
    paths = list(dict.fromkeys(path for path, _ in files))
    if len(paths) > 1:
        picked = _ordinal_file(own, paths)
        if picked is None:
            return None  # several files: which goes where is the model's call
        files = [(path, kind) for path, kind in files if path == picked][:1]
    path, kind = files[0] if files else (None, None)
    candidates = _fitting_calls(task, tools, path, kind) if path else []
    if not candidates and path is not None and path not in own:
        path, kind = None, None  # the previous step's file fits no tool here: work on its answer instead
    if path is None:
        if passage(task) is None or len(_QUOTED.findall(own.split(EARLIER_RESULT, 1)[0])) > 1:
            return None  # nothing to work on, or several passages: which goes where is the model's call
        candidates = _fitting_calls(task, tools, None, None)
    if kind == "image" and _WHAT_IT_SAYS.search(own):  # "what does the second one say?": its text, not its class
        candidates = [c for c in candidates if getattr(c[2], "task", "") == "image-to-text"] or candidates
    asked = own.split(EARLIER_RESULT)[0]  # "how do you say coffee in Italian", "now that in French": translations
    if any(pattern.search(asked) for pattern in (_SAY_IN, _TRANSLATE, _MEANS, _INTO_LANGUAGE)):
        candidates = [c for c in candidates if "target_language" in c[1].arguments] or candidates
    if asks_question(own) and not asks_for_output(own):
        candidates = [c for c in candidates if not getattr(c[2], "makes_file", False)]  # a new file answers nothing
        readers = [c for c in candidates if "question" in c[2].inputs]
        candidates = readers or candidates  # a tool that reads the question answers it better than a summary
    inherited = path is None and quoted_passage(own) is None
    if not candidates or (not inherited and len(candidates) < 2):
        return candidates[0][1] if candidates else None
    noun = _NOUNS.get(kind or "", "the file")
    if path:  # the file's own name says what it is: "the image (boarding pass)"; its folders say nothing
        noun += f" ({_stem(path)})" if _stem(path) else ""
        subject = own.replace(path, noun) if path in own else f"{own} ({noun})"
    else:  # what is asked, not the text it is asked of: "translate that into French", not the transcript
        subject = TEXT_FILE.sub(lambda m: f"the text ({_stem(m.group(1))})", own.split(EARLIER_RESULT, 1)[0])
    # the request without its file too: "what does this say flyer.png" is a request to read, not "the image"
    bare = " ".join(own.replace(path, " ").split()) if path and path in own else ""
    subjects = [subject, bare] if len(bare.split()) >= 3 else [subject]
    named = [(text, tool) for text, _, tool in candidates]
    scores = np.max([_scores(s, named, embed) for s in subjects], axis=0)
    if fixed := subject.partition(EARLIER_REQUEST)[2]:  # "shorter" + "summarise the text": that request's tool leads
        scores = scores + _scores(fixed, named, embed)
    order = np.argsort(scores)[::-1]
    if inherited and scores[order[0]] < min_score:
        return None  # working on the previous step's answer, but no tool is what this step asks for
    if len(candidates) == 1 or scores[order[0]] - scores[order[1]] >= margin:
        return candidates[order[0]][1]
    reading = [candidates[i][1] for i in order if "question" in candidates[i][2].inputs]  # the reader beats the model
    return reading[0] if kind in ("table", "pdf") and reading else None


def _stem(path: str) -> str:
    return re.sub(r"[\W_]+", " ", path.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip()


def nearest_tools(task: str, tools: Sequence[Any], embed: Embedder, k: int = 3) -> list[Any]:
    """The `k` tools whose descriptions are nearest the task, nearest first."""
    if len(tools) <= k:
        return list(tools)
    summaries = [f"{tool.name.replace('_', ' ')}: {tool.description.strip().split(chr(10), 1)[0]}" for tool in tools]
    order = np.argsort(_scores(task, list(zip(summaries, tools, strict=True)), embed))[::-1][:k]
    return [tools[int(i)] for i in order]


@cache
def tool_examples() -> dict[str, tuple[str, ...]]:
    """Requests each tool is for, by tool name (`data/tool_examples.jsonl`): a tool's description alone is a poor
    match for how people ask ("what's the total on this receipt" is nearer "says what an image shows" than
    "reads the text in an image")."""
    text = (Path(__file__).parent / "data" / "tool_examples.jsonl").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            found.setdefault(row["tool"], []).append(row["text"])
    return {name: tuple(texts) for name, texts in found.items()}


def _scores(subject: str, candidates: Sequence[tuple[str, Any]], embed: Embedder) -> np.ndarray:
    """How near each (summary, tool) is to `subject`: the cosine of its summary or of its nearest example."""
    examples = tool_examples()
    texts = [subject]
    owners: list[int] = []
    for i, (summary, tool) in enumerate(candidates):
        for text in (summary, *examples.get(tool.name, ())):
            texts.append(text)
            owners.append(i)
    vectors = embed(texts)
    similarity = vectors[1:] @ vectors[0]
    scores = np.full(len(candidates), -1.0)
    np.maximum.at(scores, np.array(owners), similarity)
    return scores


def _as_request(task: str) -> str:
    """A polite request without its question form, in each sentence ("I have two recordings. Could you
    transcribe the first one, please?" asks for the transcript, not whether it can be done)."""

    def unasked(sentence: str) -> str:
        polite = _POLITE.match(sentence)
        rest = sentence[polite.end() :].strip().rstrip("?").strip() if polite else sentence
        return sentence if _QUESTION.search(rest) else rest

    return " ".join(unasked(sentence) for sentence in re.split(r"(?<=[.!?])\s+", task))


def asks_question(task: str) -> bool:
    """Whether the task asks something (a question mark, a question word, "tell me"); a polite request ("could
    you transcribe it?") asks nothing."""
    return bool(_QUESTION.search(_QUOTED.sub(" ", _as_request(task))))  # "translate 'where is it?'" asks nothing


def asks_for_output(task: str) -> bool:
    """Whether the task asks for a tool's output itself (a transcript, a translation, a file, what a sign says)
    rather than an answer to a question about it."""
    fix, _, corrected = task.split(EARLIER_RESULT, 1)[0].partition(EARLIER_REQUEST)  # a result asks nothing
    for said in (part.strip().strip('"') for part in (fix, corrected) if part.strip()):
        request = _as_request(_FILE.sub("", said).strip())
        clauses = re.split(r"(?<=[.!?;,:])\s+|\n+", request)  # "here are two files. transcribe the first one"
        if any(_OUTPUT_ITSELF.match(c) for c in clauses) and not _QUESTION.search(_QUOTED.sub(" ", request)):
            return True
        if _WHAT_IT_SAYS.search(request) or _INTO_LANGUAGE.search(request):  # "could you put that into Polish?"
            return True
    return False
