"""Every error smolcrew raises, in one place.

```
SmolcrewError
├── ConfigError             a setting is invalid; the message names the field and the fix
├── ModelUnavailableError   an LLM or pipeline model cannot be loaded (package, file, hash, URL)
├── ToolInputError          a tool got input it cannot use; the agent reads the message and retries
├── RoutingError            no specialist can take the request
├── SinkError               a memory store failed
│   └── SinkUnavailableError    the store is down or unreachable (the journal keeps the step; catch-up later)
├── AnswerRejected          the final answer failed validation (max steps counts as a failure)
└── CrewClosedError         the Crew was used after close()
```

A message says what happened and what to do about it. Context rides along as attributes.
"""

from __future__ import annotations

__all__ = [
    "AnswerRejected",
    "ConfigError",
    "CrewClosedError",
    "ModelUnavailableError",
    "RoutingError",
    "SinkError",
    "SinkUnavailableError",
    "SmolcrewError",
    "ToolInputError",
]


class SmolcrewError(Exception):
    """Base class of every smolcrew error."""


class ConfigError(SmolcrewError):
    """A setting is missing or invalid. `.field` names it (dotted path), when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ModelUnavailableError(SmolcrewError):
    """A model cannot be loaded. `.backend` names the backend or role, `.fix` says what to do."""

    def __init__(self, message: str, *, backend: str, fix: str) -> None:
        super().__init__(f"{message}\n  fix: {fix}")
        self.backend = backend
        self.fix = fix


class ToolInputError(SmolcrewError, ValueError):
    """A tool cannot use its input. The message is written for the agent that called the tool."""


class RoutingError(SmolcrewError):
    """No specialist could be chosen for a request."""


class SinkError(SmolcrewError):
    """A memory sink failed. `.sink` names it."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(message)
        self.sink = sink


class SinkUnavailableError(SinkError):
    """A memory store is down or unreachable; the message says how to start or reach it."""


class AnswerRejected(SmolcrewError):
    """The final answer did not pass validation. `.reasons` lists why; `.run_id` names the run."""

    def __init__(self, reasons: tuple[str, ...], *, run_id: str | None = None) -> None:
        super().__init__("; ".join(reasons) or "answer rejected")
        self.reasons = reasons
        self.run_id = run_id


class CrewClosedError(SmolcrewError):
    """A Crew (or one of its chat sessions) was used after close()."""
