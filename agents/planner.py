"""Tool-level plans, learned: which tools a request needs, the words each step serves, and whose output it uses.

One MiniLM token tagger does the deciding: the packaged all-MiniLM-L6-v2 with a token-classification head,
fine-tuned here on generated plans (`agents/plan_data.py`, `agents/planner_train.py`). It labels every token of
the request `B-<tool>` (a step starts), `I-<tool>` (it goes on) or `O` (no step: "please", "then"), so step
boundaries, tools, and through the tools the specialists come from one learned pass (about 15 ms on CPU). The
tagger reads file paths without their folders. Decoding keeps what a person means: fragments tagged with the same
tool are one step, fragments too small to be a step are dropped, and a step naming a file its tool cannot open
goes to the best tool that can.

Dependencies follow the tools' declared input and output types (`plan_templates.json`): a step that refers to
an earlier result ("it", "the transcript") or brings no input of its own (no file, no quoted text) uses the
earlier step whose output it names, else the nearest one whose output its tool can take (else, when it refers to
one, the step before: every result reads as text); a tool that compares or combines takes two; a step written
inside another ("read aloud the translation of ...") feeds it. Steps are then ordered after the ones they use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from smolcrew.agents import plan_data
from smolcrew.agents.dispatch import file_kinds, files_named
from smolcrew.agents.plan_data import compatible, specialist_for
from smolcrew.agents.specialists import SPECIALISTS

__all__ = ["PlannedStep", "ToolPlanner", "tool_tasks"]

_REFERENCE = re.compile(
    r"\b(?:it|its|that|this|them|those|these|the (?:result|results|output|transcript|transcription|translation|"
    r"summary|text|caption|description|answer|reply|audio|recording|image|picture|photo|table|list|labels?|"
    r"mask|boxes|objects|depth map|clip|voice|speech|draft|note|story|poem))\b",
    re.IGNORECASE,
)
_OWN_TEXT = re.compile(r"\"[^\"]{8,}\"|“[^”]{8,}”|'[^']{12,}'|:\s*\S.{20,}$")
_BOTH = re.compile(r"\b(?:both|them|the two|these|those|each other|compare|against|match(?:es)?)\b", re.I)
_PRONOUN = re.compile(r"it|that|this|the result")
_FOLDERS = re.compile(r"(?:[\w.~:-]*[/\\])+(?=[\w.-]+\.\w{2,5}\b)")
_NESTED_GAP = re.compile(r"\s*(?:of|from|for|in)?\s*")
MIN_STEP_TOKENS = 1.5
"""A fragment whose tokens add up to less step probability than this is noise, not a step."""


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One tool call of a plan."""

    tool: str
    task: str
    """The tool's Hugging Face task tag (`automatic-speech-recognition`, ...)."""
    specialist: str
    text: str
    """The part of the request this step serves."""
    depends_on: tuple[int, ...]
    """Indexes of the earlier steps whose output this step uses."""
    confidence: float
    """The tagger's mean probability for this tool over the step's tokens."""


@dataclass(slots=True)
class _Fragment:
    start: int
    end: int
    mass: np.ndarray  # per tool: summed B + I probability over the fragment's tokens
    tokens: int

    @property
    def tool_index(self) -> int:
        return int(self.mass.argmax())


class ToolPlanner:
    """Plans a request at the level of tools with a trained token tagger (see `agents/planner_train.py`).

    Args:
        folder: a trained planner's folder (model, tokenizer, `labels.json`).
    """

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.folder = folder
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._model = AutoModelForTokenClassification.from_pretrained(str(folder)).eval()
        labels: list[str] = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        self.tools = [label.removeprefix("B-") for label in labels if label.startswith("B-")]
        if labels != ["O", *(f"{p}-{tool}" for tool in self.tools for p in "BI")]:
            raise ValueError(f"{folder / 'labels.json'}: not O followed by B-/I- pairs per tool")
        self._tasks = tool_tasks()
        self._accepts = {f.name: file_kinds([f]) for spec in SPECIALISTS.values() for f in spec.tool_factories}

    def __repr__(self) -> str:
        return f"ToolPlanner({len(self.tools)} tools, {self.folder})"

    def plan(self, request: str) -> list[PlannedStep]:
        """The steps of `request`, each after the steps it uses. Runs no tool.

        Raises:
            ValueError: the request is empty.
        """
        if not request.strip():
            raise ValueError("cannot plan an empty request")
        probabilities, offsets = self._probabilities(request)
        found = _fragments(probabilities, offsets) or [_whole(probabilities, len(request))]
        fragments = [self._fit_files(request, fragment) for fragment in found]
        deps = _dependencies(request, fragments, self.tools)
        order = _topological(len(fragments), deps)
        position = {index: rank for rank, index in enumerate(order)}
        steps: list[PlannedStep] = []
        for index in order:
            fragment = fragments[index]
            tool = self.tools[fragment.tool_index]
            uses = tuple(sorted(position[d] for d in deps[index]))
            steps.append(
                PlannedStep(
                    tool=tool,
                    task=self._tasks.get(tool, ""),
                    specialist=specialist_for(tool, [steps[d].specialist for d in uses]),
                    text=request[fragment.start : fragment.end].strip(" ,;.") or request.strip(),
                    depends_on=uses,
                    confidence=round(float(fragment.mass.max() / max(fragment.tokens, 1)), 4),
                )
            )
        return steps

    def _fit_files(self, request: str, fragment: _Fragment) -> _Fragment:
        """A step whose best tool opens files, but not the kind its words name ("is that beeping in alarm.ogg a
        smoke detector?" tagged as video classification), goes to the best tool that opens that kind."""
        kinds = {kind for _, kind in files_named(request[fragment.start : fragment.end]) if kind}
        best = self._accepts[self.tools[fragment.tool_index]]
        able = np.array([bool(kinds & self._accepts[tool]) for tool in self.tools])
        if not kinds or not best or kinds & best or not able.any():
            return fragment
        return _Fragment(fragment.start, fragment.end, fragment.mass * able, fragment.tokens)

    def _probabilities(self, request: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Label probabilities per token, and each token's span in `request`. The tagger reads file paths
        without their folders: it learned file names, and a deep path (/tmp/run-4mk3/files/staff.xlsx) is
        many tokens of noise to it."""
        shown, origin = _without_folders(request)
        encoded = self._tokenizer(shown, truncation=True, max_length=256, return_offsets_mapping=True)
        offsets = [(origin[a], origin[b - 1] + 1) if a < b else (0, 0) for a, b in encoded.pop("offset_mapping")]
        inputs = {key: self._torch.tensor([value]) for key, value in encoded.items()}
        with self._torch.no_grad():
            logits = self._model(**inputs).logits[0]
        return logits.softmax(-1).numpy(), offsets


def _whole(probabilities: np.ndarray, length: int) -> _Fragment:
    """The whole request as one step, when no token was tagged as a step."""
    mass = probabilities[:, 1:].reshape(len(probabilities), -1, 2).sum(axis=(0, 2))
    return _Fragment(0, length, mass, len(probabilities))


def _fragments(probabilities: np.ndarray, offsets: list[tuple[int, int]]) -> list[_Fragment]:
    """The tagged steps in the order they appear: same-tool fragments merged, noise fragments dropped."""
    pieces: list[_Fragment] = []
    current: _Fragment | None = None
    for row, (start, end) in zip(probabilities, offsets, strict=True):
        if start == end:  # [CLS], [SEP]
            continue
        label = int(row.argmax())
        if label == 0:
            current = None
            continue
        mass = row[1:].reshape(-1, 2).sum(axis=1)
        if current is None or label % 2 == 1:  # labels: 0 O, then B-tool (odd), I-tool (even)
            current = _Fragment(start, end, mass.copy(), 1)
            pieces.append(current)
        else:
            current.end, current.tokens = end, current.tokens + 1
            current.mass += mass
    merged: list[_Fragment] = []
    for piece in pieces:
        same = next((m for m in reversed(merged) if m.tool_index == piece.tool_index), None)
        if same is None:
            merged.append(piece)
            continue
        same.start, same.end = min(same.start, piece.start), max(same.end, piece.end)
        same.mass, same.tokens = same.mass + piece.mass, same.tokens + piece.tokens
    if len(merged) > 1:
        kept = [m for m in merged if m.mass.max() >= MIN_STEP_TOKENS]
        merged = kept or [max(merged, key=lambda m: float(m.mass.max()))]
    return sorted(merged, key=lambda m: m.start)


def _without_folders(request: str) -> tuple[str, list[int]]:
    """`request` with the folders of its file paths left out, and where each character starts in `request` (a
    file name starts where its folders do, so a step's words keep the whole path)."""
    shown: list[str] = []
    origin: list[int] = []
    kept_from = path_from = 0
    for folders in _FOLDERS.finditer(request):
        shown.append(request[kept_from : folders.start()])
        origin.extend([path_from, *range(kept_from + 1, folders.start())][: folders.start() - kept_from])
        kept_from, path_from = folders.end(), folders.start()
    shown.append(request[kept_from:])
    origin.extend([path_from, *range(kept_from + 1, len(request))][: len(request) - kept_from])
    return "".join(shown), origin


def _dependencies(request: str, fragments: list[_Fragment], tools: list[str]) -> list[list[int]]:
    """For each fragment (in the order they appear), the fragments whose output it uses."""
    names = [tools[f.tool_index] for f in fragments]
    texts = [request[f.start : f.end] for f in fragments]
    deps: list[list[int]] = [[] for _ in fragments]
    for j, fragment in enumerate(fragments):
        following = j + 1 < len(fragments)
        if following and _NESTED_GAP.fullmatch(request[fragment.end : fragments[j + 1].start]):
            inner = j + 1
            if compatible(names[inner], names[j]) and not _REFERENCE.search(texts[j]):
                deps[j].append(inner)  # "read aloud | the translation of ..."
                continue
        refers = bool(_REFERENCE.search(texts[j]))
        own_input = bool(files_named(texts[j]) or _OWN_TEXT.search(texts[j]))
        if not refers and own_input:
            continue
        earlier = [i for i in range(j - 1, -1, -1) if compatible(names[i], names[j]) and j not in deps[i]]
        named = [i for i in earlier if _names_output(texts[j], names[i])]
        if named or earlier:
            deps[j].append((named or earlier)[0])  # the output it names ("the transcript"), else the nearest
        elif refers and not own_input and j > 0 and j not in deps[j - 1]:
            deps[j].append(j - 1)  # "say it out loud" after a number or a table: every result reads as text
        two = len(named) > 1 or _BOTH.search(texts[j])
        if two and (second := _second_input(names, deps[j], named[1:] + earlier, j)) is not None:
            deps[j].append(second)
    return deps


def _names_output(text: str, producer: str) -> bool:
    """Whether `text` names `producer`'s output the way the templates do ("the transcript", "the caption")."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in _output_names(producer))


@cache
def _output_names(producer: str) -> frozenset[str]:
    outputs = plan_data.templates()["tools"][producer].get("out", {}).values()
    return frozenset(name.lower() for names in outputs for name in names if not _PRONOUN.fullmatch(name))


def _second_input(names: list[str], chosen: list[int], earlier: list[int], j: int) -> int | None:
    """For a tool that takes two inputs ("compare them"), the nearest other earlier step that pairs with the first."""
    for i in earlier:
        if (
            chosen
            and i != chosen[0]
            and plan_data.compatible_pair(names[min(i, chosen[0])], names[max(i, chosen[0])], names[j])
        ):
            return i
    return None


def _topological(count: int, deps: list[list[int]]) -> list[int]:
    """Indexes in an order where each comes after those it depends on; ties keep the request's order."""
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < count:
        ready = next((k for k in range(count) if k not in placed and all(d in placed for d in deps[k])), None)
        if ready is None:  # a cycle cannot come from `_dependencies`, but never loop forever
            order += [k for k in range(count) if k not in placed]
            break
        order.append(ready)
        placed.add(ready)
    return order


def tool_tasks() -> dict[str, str]:
    """Every specialist tool's name and its Hugging Face task tag."""
    return {f.name: str(getattr(f, "task", "")) for spec in SPECIALISTS.values() for f in spec.tool_factories}
