"""The crew's shared memory: normalised step records and where they go.

Importing this package loads nothing heavy (smolagents loads with `RunRecorder` or `StepRecord`): the graph
server's watchdog (memory/arcadedb_watchdog.py) runs from here in a small process of its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smolcrew.memory.recorder import RunRecorder
    from smolcrew.memory.records import SCHEMA_VERSION, StepRecord

__all__ = ["SCHEMA_VERSION", "RunRecorder", "StepRecord"]

_HOMES = {"RunRecorder": "smolcrew.memory.recorder", "SCHEMA_VERSION": "smolcrew.memory.records"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_HOMES.get(name, "smolcrew.memory.records")), name)
    raise AttributeError(f"module 'smolcrew.memory' has no attribute {name!r}")
