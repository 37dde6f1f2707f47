"""The base of every smolcrew tool: arguments are checked against the declared `inputs` before `forward()`.

Agents written by small models pass strings for numbers, unknown keywords, or positional arguments in the
wrong number; each of those becomes a `ToolInputError` that names the tool's real signature, so the agent can
retry, instead of a TypeError from deep inside the tool.

A tool must survive smolagents' `Tool.to_dict()` / `save()` / `Tool.from_code()`, which rebuild it from its own
class body on plain `Tool` (this base, and any other, is left behind). So a tool class:

- declares `name`, `description`, `inputs`, `output_type` as literals (an `inputs` with a union type, a list,
  is annotated: smolagents 1.26 counts a list literal in a plain class assignment as a "complex attribute");
- takes no objects in `__init__`: the pool, workspace, memory and blackboard come from `tools.context`;
- imports what each method uses inside that method, from smolcrew (and the standard library) only, so a
  rebuilt tool needs no model packages to load; smolagents' MethodChecker misses the names bound by generator
  expressions, nested tuple targets and keyword-only parameters, so methods use list comprehensions, plain names
  and positional-or-keyword parameters;
- checks in `forward()` what it needs to run (raising ToolInputError): a rebuilt tool skips the checks here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, ClassVar

from smolagents import Tool

from smolcrew.errors import ToolInputError
from smolcrew.tools.context import ToolContext, use_tools

__all__ = [
    "FILE_INPUTS",
    "HUB_TASKS",
    "LOCAL_TASKS",
    "CheckedTool",
    "ToolCallHook",
    "input_types",
    "resolve_aliases",
]

HUB_TASKS = (
    "audio-classification",
    "audio-to-audio",
    "automatic-speech-recognition",
    "depth-estimation",
    "document-question-answering",
    "image-classification",
    "image-segmentation",
    "image-text-to-text",
    "image-to-image",
    "image-to-text",
    "object-detection",
    "question-answering",
    "sentence-similarity",
    "summarization",
    "table-question-answering",
    "text-classification",
    "text-generation",
    "text-ranking",
    "text-to-image",
    "text-to-speech",
    "text-to-video",
    "token-classification",
    "translation",
    "video-classification",
    "visual-question-answering",
    "zero-shot-classification",
    "zero-shot-image-classification",
)
"""The Hugging Face Hub pipeline tags (huggingface.co/tasks) our tools declare as `CheckedTool.task`."""
LOCAL_TASKS = (
    "calculation",
    "document-retrieval",
    "memory-recall",
    "run-trace",
    "shared-notes",
    "table-description",
    "table-query",
    "text-statistics",
)
"""Our own task tags, for tools whose job no Hub pipeline tag names (arithmetic, notes, memory, table queries
without a model): short, kebab-case like the Hub's, and never one of `HUB_TASKS`."""

FILE_INPUTS = frozenset({"audio", "image", "video", "pdf_path", "path"})
"""The names of inputs that take a file."""
_FILE_ALIASES = ("file", "file_path", "filename", "file_name", "image_path", "audio_path", "audio_file", "pdf", "input")
_ALIASES = {
    "text": ("sentence", "passage", "input_text", "content", "string"),
    "language": ("lang", "language_code"),
    "question": ("query",),
}
"""Names a model often writes for an input, by the input's real name: accepted rather than refused."""

ToolCallHook = Callable[["CheckedTool", dict[str, Any], Callable[[], Any]], Any]
"""`hook(tool, arguments, call)`: runs around every call of a tool; returns the call's result (usually
`call()`'s). The crew records each call with it (audit, replay); a replay returns recorded results instead."""

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def resolve_aliases(inputs: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` with common aliases renamed to the tool's real input names (`file=` for a tool's one file
    input, `lang=` for `language`, ...); an alias is renamed only when the real name was not also given."""
    files = [name for name in inputs if name in FILE_INPUTS]
    aliases = {alias: real for real, names in _ALIASES.items() if real in inputs for alias in names}
    if len(files) == 1:
        aliases |= {alias: files[0] for alias in (*_FILE_ALIASES, *FILE_INPUTS) if alias != files[0]}
    renamed = dict(arguments)
    for alias, real in aliases.items():
        if alias in renamed and alias not in inputs and real not in renamed:
            renamed[real] = renamed.pop(alias)
    return renamed


def input_types(spec: dict[str, Any]) -> list[str]:
    """The type names of one `inputs` entry: `"string"` or `["string", "array"]` alike become a list."""
    kinds = spec["type"]
    return list(kinds) if isinstance(kinds, list) else [kinds]


def _python_types(kind: str) -> tuple[type, ...]:
    if kind == "image":
        from PIL import Image

        return (Image.Image,)
    if kind == "audio":
        import numpy as np

        return (np.ndarray,)
    return _PYTHON_TYPES.get(kind, (object,))  # "any"


class CheckedTool(Tool):
    task: ClassVar[str] = ""
    """What the tool does, as a Hugging Face pipeline tag from `HUB_TASKS` or one of ours from `LOCAL_TASKS`:
    plans are made at the level of tools, so the router and the plan name each step's task with it. Every tool
    declares one, right after its `name`."""
    around_call: ToolCallHook | None = None
    """Set by the team on each tool it builds (see agents/team.py)."""
    context: ToolContext | None = None
    """The run's context, entered on every call (set by `Specialist.build_tools`); None: the caller's."""
    makes_file: bool = False
    """The tool's job is a new file (speech, an upscaled image): its output answers no question about its input."""
    chat_fallback: ClassVar[bool] = False
    """Without its own model here, the tool does its work with the crew's chat model (`current_chat_model`), so
    it is offered when a crew has one (see `Specialist.usable_tools`)."""

    def __init__(self) -> None:
        super().__init__()

    def signature(self) -> str:
        args = ", ".join(f"{key}: {' | '.join(input_types(spec))}" for key, spec in self.inputs.items())
        return f"{self.name}({args})"

    def _check(self, key: str, value: Any) -> Any:
        spec = self.inputs[key]
        if value is None:
            if spec.get("nullable"):
                return None
            raise ToolInputError(f"`{key}` is required by {self.signature()}")
        kinds = input_types(spec)
        allowed = tuple(python for kind in kinds for python in _python_types(kind))
        if "integer" in kinds and isinstance(value, float) and value.is_integer():
            return int(value)
        if object in allowed:
            return value
        if isinstance(value, bool) and bool not in allowed:
            raise ToolInputError(f"`{key}` must be {' or '.join(kinds)}, not a boolean ({self.signature()})")
        if not isinstance(value, allowed):
            raise ToolInputError(
                f"`{key}` must be {' or '.join(kinds)}, got {type(value).__name__} {value!r:.60}; "
                f"call it as {self.signature()}"
            )
        return value

    def __call__(self, *args: Any, sanitize_inputs_outputs: bool = False, **kwargs: Any) -> Any:
        names = list(self.inputs)
        positional = list(args)
        if len(positional) == 1 and not kwargs and isinstance(positional[0], dict) and set(positional[0]) <= set(names):
            kwargs, positional = dict(positional[0]), []  # smolagents also accepts one dict of arguments
        if len(positional) > len(names):
            raise ToolInputError(f"too many arguments: call it as {self.signature()}")
        kwargs = resolve_aliases(self.inputs, {**dict(zip(names, positional, strict=False)), **kwargs})
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ToolInputError(f"unknown argument(s) {', '.join(unknown)}: call it as {self.signature()}")
        checked = {key: self._check(key, value) for key, value in kwargs.items()}
        for key, spec in self.inputs.items():
            if key not in checked and not spec.get("nullable"):
                raise ToolInputError(f"`{key}` is required: call it as {self.signature()}")

        def call() -> Any:
            return super(CheckedTool, self).__call__(sanitize_inputs_outputs=sanitize_inputs_outputs, **checked)

        with use_tools(self.context) if self.context is not None else nullcontext():
            hook = self.around_call
            return call() if hook is None else hook(self, checked, call)
