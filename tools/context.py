"""Where a tool finds the run's model pool, workspace, memory and blackboard: at call time, never in `__init__`.

A tool's `__init__` takes no objects, so smolagents can rebuild any tool from its source (`Tool.to_dict()`,
`save()`, `Tool.from_code()`, remote executors, the Hub). What the tool works with lives in the current
`ToolContext`, a ContextVar:

- `use_tools(pool=..., workspace=...)` sets it for a block (tests, scripts, a tool rebuilt from its source);
- the team binds each tool it builds to the run's context (`CheckedTool.context`); the tool enters it on every
  call, so it also holds where smolagents runs agent code in a worker thread that a block's ContextVar misses.

With nothing set, a tool gets one process-wide `PipelinePool()` (the manifest's models, best device) and a
workspace in the temp folder; a memory or blackboard tool says that there is none; and a file-taking tool reads
any path (`roots` None: a tool used on its own, as before roots existed). A crew's tools always carry roots.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.pool import PipelinePool
from smolcrew.tools.workspace import Workspace

if TYPE_CHECKING:
    from smolcrew.memory.mirror import Mirror

__all__ = [
    "ToolContext",
    "current_blackboard",
    "current_chat_model",
    "current_memory",
    "current_pool",
    "current_roots",
    "current_workspace",
    "use_tools",
]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What the tools of one run share. None means: the default (pool, workspace) or none (memory, blackboard)."""

    pool: PipelinePool | None = None
    workspace: Workspace | None = None
    memory: Mirror | None = None
    blackboard: Any = None
    """A `tools.blackboard.Blackboard` (not named here: the blackboard module builds on this one)."""
    roots: tuple[Path, ...] | None = None
    """The folders the tools may read files from (`tools.files.require_file`), besides the run's workspace
    folder, which is always readable. None: no restriction, for a tool used on its own outside a crew (backward
    compatible); a crew sets them for each run (the current directory at crew start, `files.roots` and
    `<home>/runs`; for the HTTP API the conversation's uploads and outputs). An empty tuple: the workspace only."""
    chat_model: Any = None
    """The crew's chat model (a smolagents `Model`), for a tool whose own model is missing here and whose work an
    instruction model can do instead (`CheckedTool.chat_fallback`: translate_text). None: no fallback."""


_CURRENT: ContextVar[ToolContext | None] = ContextVar("smolcrew_tool_context", default=None)
_DEFAULTS: dict[str, Any] = {}
_DEFAULTS_LOCK = threading.Lock()


@contextmanager
def use_tools(context: ToolContext | None = None, /, **changes: Any) -> Iterator[ToolContext]:
    """Run a block with `context` (default: the current one) and `changes` applied, e.g.
    `with use_tools(pool=pool, workspace=workspace): tool(image=path)`. Blocks nest; the previous context
    comes back on exit."""
    chosen = dataclasses.replace(context if context is not None else _current(), **changes)
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)


def _current() -> ToolContext:
    return _CURRENT.get() or ToolContext()


def _default(name: str) -> Any:
    with _DEFAULTS_LOCK:
        if name not in _DEFAULTS:
            _DEFAULTS[name] = PipelinePool() if name == "pool" else Workspace(Path(tempfile.gettempdir()) / "smolcrew")
        return _DEFAULTS[name]


def current_pool() -> PipelinePool:
    """The pool that serves the tools' models."""
    pool = _current().pool
    return pool if pool is not None else _default("pool")


def current_workspace() -> Workspace:
    """Where tools write their output files."""
    workspace = _current().workspace
    return workspace if workspace is not None else _default("workspace")


def current_memory() -> Mirror | None:
    """The crew's memory (journal and stores), or None when memory is off."""
    return _current().memory


def current_roots() -> tuple[Path, ...] | None:
    """The folders a tool may read from: the context's `roots` plus the run's workspace folder (its outputs);
    None when the context sets no roots (any path may be read)."""
    roots = _current().roots
    if roots is None:
        return None
    return (*roots, current_workspace().folder)


def current_blackboard() -> Any:
    """The run's shared notes (a `tools.blackboard.Blackboard`), or None when the run has no blackboard."""
    return _current().blackboard


def current_chat_model() -> Any:
    """The crew's chat model for tools that fall back on it (a smolagents `Model`), or None."""
    return _current().chat_model
