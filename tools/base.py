"""The base of every smolcrew tool: arguments are checked against the declared `inputs` before `forward()`.

Agents written by small models pass strings for numbers, unknown keywords, or positional arguments in the
wrong number; each of those becomes a `ToolInputError` that names the tool's real signature, so the agent can
retry, instead of a TypeError from deep inside the tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smolagents import Tool

from smolcrew.errors import ToolInputError

__all__ = ["CheckedTool", "ToolCallHook"]

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


class CheckedTool(Tool):
    around_call: ToolCallHook | None = None
    """Set by the team on each tool it builds (see agents/team.py)."""

    def signature(self) -> str:
        return f"{self.name}(" + ", ".join(f"{key}: {spec['type']}" for key, spec in self.inputs.items()) + ")"

    def _check(self, key: str, value: Any) -> Any:
        spec = self.inputs[key]
        if value is None:
            if spec.get("nullable"):
                return None
            raise ToolInputError(f"`{key}` is required by {self.signature()}")
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        allowed = tuple(python for kind in kinds for python in _PYTHON_TYPES.get(kind, (object,)))
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
        kwargs = {**dict(zip(names, positional, strict=False)), **kwargs}
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ToolInputError(f"unknown argument(s) {', '.join(unknown)}: call it as {self.signature()}")
        checked = {key: self._check(key, value) for key, value in kwargs.items()}
        for key, spec in self.inputs.items():
            if key not in checked and not spec.get("nullable"):
                raise ToolInputError(f"`{key}` is required: call it as {self.signature()}")
        hook = self.around_call
        if hook is None:
            return super().__call__(sanitize_inputs_outputs=sanitize_inputs_outputs, **checked)
        return hook(
            self,
            checked,
            lambda: super(CheckedTool, self).__call__(sanitize_inputs_outputs=sanitize_inputs_outputs, **checked),
        )
