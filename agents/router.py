"""Semantic pre-router: which specialist(s) a request needs, in which order, with scores.

How it decides, cheapest first:
1. The request is split into steps at sequencing words ("then", "after that", a new sentence...), never
   inside quotes. Each step is routed alone; neighbours that go to the same specialist merge.
2. A step's score per specialist is the mean cosine similarity (local MiniLM embeddings) of its three
   nearest example requests of that specialist, plus small priors from what the step mentions: an image,
   audio, video or document file, or quoted text to work on.
3. A step that names a file goes to a specialist with a tool that takes that kind of file (`accepts`), when
   one has: "what day is the review, according to meeting.wav?" is a question, but only audio tools hear it.
4. When the best specialist does not lead the runner-up by `margin`, the LLM picks between the top
   candidates, its output constrained to their names (a JSON schema), if an LLM chooser was given.
With a trained tool-level planner (`agents/planner.py`, `smolcrew route --train`) the planner decides instead:
one step per tool, with its task tag and the steps whose output it uses. Nothing here runs a tool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from smolcrew.agents.dispatch import EARLIER_RESULT, LANGUAGES, file_kinds, files_named, quoted_passage
from smolcrew.agents.grammar import FILE_NAME
from smolcrew.agents.steps import FIRST, remark, request_segments, split_steps, step_text

if TYPE_CHECKING:
    from smolcrew.agents.planner import ToolPlanner

__all__ = ["RoutePlan", "RouteStep", "Router", "split_steps"]

Embedder = Callable[[list[str]], np.ndarray]
"""Texts in, L2-normalised vectors out (one row per text)."""
Chooser = Callable[[str, Sequence[str]], str]
"""(request, candidate names best first) -> the chosen name."""

_EXTENSIONS: dict[str, dict[str, float]] = {
    r"jpe?g|png|gif|bmp|webp|tiff?|heic": {"vision": 0.05, "generation": 0.03},
    r"wav|mp3|flac|ogg|m4a|aac|opus": {"audio": 0.10},
    r"mp4|mov|avi|mkv|webm": {"vision": 0.08},
    r"pdf|docx?|pptx?|csv|xlsx?|tsv|parquet|html?|json": {"research": 0.06},
    r"txt|md": {"language": 0.04},  # plain text: the language tools read it (summaries, answers from it)
}
_FILE = re.compile(r"\b[\w\-./]+\.(" + "|".join(_EXTENSIONS) + r")\b", re.IGNORECASE)
_FOLDERS = re.compile(r"(?<![\w./~-])[~.]?/?(?:[\w.-]+/)+(?=[\w-]+\.\w{2,5}\b)")
_INTO_A_LANGUAGE = re.compile(rf"\b(?:into|(?:put|say|write|give|have)\b[^.?!]{{0,40}}\bin) (?:{LANGUAGES})\b", re.I)
_QUOTED = re.compile(r"\"[^\"]{8,}\"|“[^”]{8,}”|'[^']{12,}'|:\s*\S.{20,}$")
_DIRECTIVE = re.compile(
    r"\s*\b(?:please\s+)?(?:use|ask|call|try|consult|with)\s+(?:the\s+)?(\w+)\s+(?:specialist|agent|expert)\b"
    r"[^.!?;\n]*[.!?;]?",
    re.IGNORECASE,
)
"""A routing directive ("Use the language specialist if needed."): honoured by the router, then removed
from the task so the specialist does not puzzle over it."""
_LEADING_VERBS: dict[str, str] = {
    **dict.fromkeys(("draw", "paint", "render", "illustrate", "sketch", "animate"), "generation"),
    **dict.fromkeys(("transcribe", "narrate", "dictate", "denoise"), "audio"),
    **dict.fromkeys(
        ("write", "translate", "summarize", "summarise", "explain", "paraphrase", "rewrite", "proofread", "draft"),
        "language",
    ),
    **dict.fromkeys(("caption", "ocr"), "vision"),
}
"""A step that opens with one of these verbs leans to that specialist (a small prior, not a rule)."""
_ASKING = re.compile(
    r"^\s*(?:(?:hey|hi|ok(?:ay)?|so)\b[,!]?\s*)?(?:(?:can|could|would|will) (?:you|u)\b\s*|please\b\s*|pls\b\s*)+",
    re.IGNORECASE,
)
"""A polite opening ("can you please summarise ..."): the leading verb comes after it."""
PLANNER_SURE = 0.5  # a planned step whose tool has a lower mean probability is marked not confident
_MEMORY = re.compile(
    r"\b(?:past|earlier|previous|last) (?:runs?|time|week|conversations?|sessions?)\b"
    r"|\bour (?:notes|docs|documents|files|wiki)\b|\bknowledge base\b",
    re.IGNORECASE,
)
"""Mentions of the crew's memory or the team's documents lean to research."""


def _reads_text(tools: Sequence[Any]) -> bool:
    """Whether one of `tools` works on text alone (a passage, a prompt, a query), no file needed."""
    return any(not file_kinds([tool]) and {"text", "prompt", "query"} & set(tool.inputs) for tool in tools)


@dataclass(frozen=True, slots=True)
class RouteStep:
    specialist: str
    task: str
    """The part of the request this specialist should do."""
    scores: dict[str, float]
    """Every specialist's score for this step, highest first."""
    decided_by: Literal["embeddings", "llm", "planner"]
    confident: bool
    tools: tuple[str, ...] = ()  # the tools it calls, when the tool-level planner (agents/planner.py) planned it
    tool_tasks: tuple[str, ...] = ()  # the Hugging Face task tag of each of `tools`
    depends_on: tuple[int, ...] = ()  # the earlier steps whose output it uses


@dataclass(frozen=True, slots=True)
class RoutePlan:
    request: str
    steps: tuple[RouteStep, ...]
    tools: dict[str, list[str]] = field(default_factory=dict)
    """The tools each planned specialist carries."""

    @property
    def specialists(self) -> list[str]:
        return [step.specialist for step in self.steps]

    @property
    def confident(self) -> bool:
        return all(step.confident for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "specialists": self.specialists,
            "confident": self.confident,
            "steps": [asdict(step) for step in self.steps],
            "tools": self.tools,
        }

    def hint(self) -> str:
        """The plan in words, for the manager's prompt."""
        lines = [f"Router's plan (confident: {'yes' if self.confident else 'no'}):"]
        for number, step in enumerate(self.steps, start=1):
            ranked = ", ".join(f"{name} {score:.2f}" for name, score in list(step.scores.items())[:3])
            tools = f" tools: {', '.join(step.tools)};" if step.tools else ""
            uses = f" uses step {', '.join(str(d + 1) for d in step.depends_on)}'s output;" if step.depends_on else ""
            lines.append(f"{number}. {step.specialist}(task={step.task!r}){tools}{uses}  [scores: {ranked}]")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RoutePlan({' -> '.join(self.specialists)}, confident={self.confident})"


class Router:
    """Routes requests to specialists by embedding similarity, with an optional LLM tie-breaker.

    Args:
        embed: texts -> normalised vectors (e.g. the pool's MiniLM).
        descriptions: specialist name -> description.
        examples: (specialist, example request) pairs.
        tools: specialist name -> tool names, reported in plans.
        accepts: specialist name -> kinds of file its tools take (see `smolcrew.agents.dispatch.file_kinds`).
        needs_file: the specialists whose every tool reads a file (none of them works on text alone).
        choose: the tie-breaker; None routes on embeddings alone.
        margin: the lead the top score needs over the runner-up to skip the tie-breaker.
        cache_dir: where the example embeddings are cached between processes.
        planner: a trained tool-level planner (`agents/planner.py`); when given, it plans every request that
            names no specialist itself, at the level of tools, and the embeddings only score its steps.
    """

    def __init__(
        self,
        embed: Embedder,
        descriptions: dict[str, str],
        examples: Sequence[tuple[str, str]],
        *,
        tools: dict[str, list[str]] | None = None,
        accepts: dict[str, frozenset[str]] | None = None,
        needs_file: frozenset[str] = frozenset(),
        choose: Chooser | None = None,
        margin: float = 0.06,
        top_k: int = 3,
        cache_dir: Path | None = None,
        embedder_id: str = "",
        planner: ToolPlanner | None = None,
    ) -> None:
        self.names = list(descriptions)
        unknown = {name for name, _ in examples} - set(self.names)
        if unknown:
            raise ValueError(f"examples name unknown specialists: {sorted(unknown)}")
        self.descriptions = descriptions
        self.tools = tools or {}
        self.accepts = accepts or {}
        self.needs_file = needs_file
        self.choose = choose
        self.margin = margin
        self.top_k = top_k
        self.planner = planner
        self.embed = embed
        self.cache_dir, self.embedder_id = cache_dir, embedder_id
        self._labels = np.array([self.names.index(name) for name, _ in examples])
        self._examples = self.vectors([text for _, text in examples])

    @classmethod
    def for_specialists(cls, embed: Embedder, specialists: dict[str, Any] | None = None, **options: Any) -> Router:
        """The router over `specialists` (default: the crew's five): their descriptions, example bank, tools
        and the kinds of file their tools take; `options` as for the constructor."""
        from smolcrew.agents.specialists import SPECIALISTS, load_examples

        chosen = specialists or SPECIALISTS
        return cls(
            embed,
            {name: spec.description for name, spec in chosen.items()},
            [(name, text) for name, text in load_examples() if name in chosen],
            tools={name: spec.tool_names() for name, spec in chosen.items()},
            accepts={name: file_kinds(spec.tool_factories) for name, spec in chosen.items()},
            needs_file=frozenset(name for name, spec in chosen.items() if not _reads_text(spec.tool_factories)),
            **options,
        )

    def __repr__(self) -> str:
        planner, llm = "learned" if self.planner else "none", self.choose is not None
        return f"Router({len(self.names)} specialists, {len(self._labels)} examples, llm={llm}, planner={planner})"

    def vectors(self, texts: list[str]) -> np.ndarray:
        """`texts` embedded, cached under `cache_dir` when given (an example bank is embedded once per machine)."""
        if self.cache_dir is None:
            return self.embed(texts)
        digest = hashlib.sha256(json.dumps([self.embedder_id, texts]).encode()).hexdigest()[:16]
        path = self.cache_dir / f"router-examples-{digest}.npy"
        if path.is_file():
            return np.load(path)
        vectors = self.embed(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors

    def scores(self, texts: list[str]) -> np.ndarray:
        """Score matrix (texts x specialists)."""
        # a path's folders are no part of the request ("/tmp/chats/day-summary/update.txt" -> "update.txt")
        similarity = self.embed([_FOLDERS.sub("", text) for text in texts]) @ self._examples.T
        out = np.zeros((len(texts), len(self.names)))
        for column in range(len(self.names)):
            mine = np.sort(similarity[:, self._labels == column], axis=1)[:, ::-1][:, : self.top_k]
            out[:, column] = mine.mean(axis=1)
        for row, text in enumerate(texts):
            out[row] += self._priors(text)
            out[row] -= self._unable(text)
        return out

    def _unable(self, text: str) -> np.ndarray:
        """1 for each specialist with no tool for the kinds of file `text` names, when another has one."""
        kinds = {kind for _, kind in files_named(text) if kind}
        able = np.array([bool(kinds & self.accepts.get(name, frozenset())) for name in self.names])
        return (~able).astype(float) if kinds and able.any() else np.zeros(len(self.names))

    def _priors(self, text: str) -> np.ndarray:
        prior = np.zeros(len(self.names))
        for match in _FILE.finditer(text):
            extension = match.group(1).lower()
            for pattern, bonus in _EXTENSIONS.items():
                if re.fullmatch(pattern, extension):
                    for name, value in bonus.items():
                        if name in self.names:
                            prior[self.names.index(name)] = max(prior[self.names.index(name)], value)
        if not _FILE.search(text) and _QUOTED.search(text) and "language" in self.names:
            prior[self.names.index("language")] += 0.05
        if _INTO_A_LANGUAGE.search(text) and "language" in self.names:  # "into German", "put your summary in German"
            prior[self.names.index("language")] += 0.05
        if _MEMORY.search(text) and "research" in self.names:
            prior[self.names.index("research")] += 0.05
        words = _ASKING.sub("", FIRST.sub("", text)).lower().split()
        leaning = _LEADING_VERBS.get(words[0].strip(",.:;!?")) if words else None
        if leaning in self.names:
            prior[self.names.index(leaning)] += 0.05
        return prior

    def route(self, request: str) -> RoutePlan:
        """Plan which specialists handle `request`, in order. Runs no tool."""
        if not request.strip():
            raise ValueError("cannot route an empty request")
        # "read it aloud" + the earlier result it points at: the words say who acts (when they say it with
        # confidence), the result is the material
        message, marker, referenced = request.partition(EARLIER_RESULT)
        named = {match.group(1).lower() for match in _DIRECTIVE.finditer(message)} & set(self.names)
        stripped = _DIRECTIVE.sub("", message).strip() or message.strip()
        # "the cheapest thing on it?" + a receipt's text, "how many words are in 'we will meet at noon'": the material
        # is text and no file is named, so a specialist that only reads files has nothing to work on (one step: in
        # several, a later one may look at an image an earlier one made)
        quoted = quoted_passage(message) is not None and len(request_segments(stripped)) == 1
        text = bool(marker or quoted) and not FILE_NAME.search(request)
        unable = self.needs_file if text else frozenset()
        planned = self._planned(self.planner, request, stripped) if self.planner and not named else None
        if planned is None:
            planned = self._routed(request, stripped, named, unable)
        if not marker:
            return planned
        if not planned.confident:  # "now double it": the words alone say little, the result (a sum) says more
            return self._routed(request, _DIRECTIVE.sub("", request).strip(), named, unable)
        first = dataclasses.replace(planned.steps[0], task=f"{planned.steps[0].task}{marker}{referenced}")
        return dataclasses.replace(planned, steps=(first, *planned.steps[1:]))

    def _routed(self, request: str, stripped: str, named: set[str], unable: frozenset[str] = frozenset()) -> RoutePlan:
        """The embedding router's plan: segments scored, grouped by specialist, chained in order; `named`
        specialists lead, `unable` ones trail."""
        bonus = np.array([0.3 if name in named else -1.0 if name in unable else 0.0 for name in self.names])
        segments = request_segments(stripped)
        rows = self.scores([step_text(stripped, s.start, s.end) for s in segments]) + bonus
        # A segment joins the one before on the same specialist, or opened by a new sentence or "and <verb>" unsure
        groups: list[tuple[int, int, int]] = []  # (start, end, top specialist index)
        for number, (segment, row) in enumerate(zip(segments, rows, strict=True)):
            top = int(np.argmax(row))
            if groups and (top == groups[-1][2] or (not segment.strong and not self._sure(row))):
                groups[-1] = (groups[-1][0], segment.end, groups[-1][2])
            elif number == 1 and not segment.strong and remark(stripped[: segments[0].end]) and not self._sure(rows[0]):
                groups[-1] = (groups[-1][0], segment.end, top)  # "Oops, I pasted the wrong one. I meant this: '...'"
            else:
                groups.append((segment.start, segment.end, top))
        tasks = [step_text(stripped, start, end) or stripped for start, end, _ in groups]
        if len(groups) < len(segments):
            rows = self.scores(tasks) + bonus
        steps: list[RouteStep] = []
        for task, row in zip(tasks, rows, strict=True):
            step = self._decide(task, row)
            if steps and steps[-1].specialist == step.specialist:
                previous = steps.pop()
                step = dataclasses.replace(
                    previous, task=f"{previous.task}, then {task}", confident=previous.confident and step.confident
                )
            steps.append(step)
        if len(steps) == 1:
            steps[0] = dataclasses.replace(steps[0], task=stripped)
        chained = [
            dataclasses.replace(step, depends_on=(number - 1,) if number else ()) for number, step in enumerate(steps)
        ]
        used = {step.specialist: self.tools.get(step.specialist, []) for step in chained}
        return RoutePlan(request, tuple(chained), used)

    def _planned(self, planner: ToolPlanner, request: str, stripped: str) -> RoutePlan | None:
        """The planner's plan, one step per tool; None when it plans a tool no specialist here carries."""
        planned = planner.plan(stripped)
        if any(step.specialist not in self.names for step in planned):
            return None
        steps = tuple(
            RouteStep(
                step.specialist,
                stripped if len(planned) == 1 else step.text,
                {step.specialist: step.confidence},
                "planner",
                step.confidence >= PLANNER_SURE,
                (step.tool,),
                (step.task,),
                step.depends_on,
            )
            for step in planned
        )
        used = {step.specialist: self.tools.get(step.specialist, []) for step in steps}
        return RoutePlan(request, steps, used)

    def _sure(self, row: np.ndarray) -> bool:
        best, runner_up = np.sort(row)[::-1][:2]
        return bool(best - runner_up >= self.margin)

    def _decide(self, task: str, row: np.ndarray) -> RouteStep:
        order = np.argsort(row)[::-1]
        ranked = {self.names[i]: round(float(row[i]), 4) for i in order}
        confident = self._sure(row)
        name, decided_by = self.names[order[0]], "embeddings"
        if not confident and self.choose is not None:
            best = float(row[order[0]])
            candidates = [self.names[i] for i in order[:3] if best - float(row[i]) < 2 * self.margin]
            choice = self.choose(task, candidates)
            if choice in candidates:
                name, decided_by = choice, "llm"
        return RouteStep(name, task, ranked, decided_by, confident)  # type: ignore[arg-type]
