"""Every error smolcrew raises, in one place.

```
SmolcrewError
├── ConfigError             a setting is invalid; the message names the field and the fix
├── ModelUnavailableError   an LLM or pipeline model cannot be loaded (package, file, hash, URL)
├── ToolInputError          a tool got input it cannot use; the agent reads the message and retries
├── RoutingError            no specialist can take the request
├── RequestError            a command's request is empty or cannot be read (`smolcrew run -`, `--file PATH`)
├── SinkError               a memory store failed
│   └── SinkUnavailableError    the store is down or unreachable (the journal keeps the step; catch-up later)
│       └── SinkWorkerError         a store's worker process died, hung or was closed; the next use restarts it
├── AnswerRejected          the final answer failed validation (max steps counts as a failure)
├── StageError              a validation stage broke itself (its model failed); the cascade escalates
├── ApprovalError           the human approval queue failed (validators/journaled.py)
│   ├── ApprovalNotFound        no approval has this id (never requested in this home)
│   ├── ApprovalAlreadyDecided  someone decided the approval first
│   ├── ApprovalJournalError    the approval journal (the approvals' truth, on disk) cannot be written or read
│   └── ApprovalQueueUnavailable    Redis is down or unreachable; the message says how to start or reach it
├── RunNotFoundError        no journal holds that run (resume, audit, replay)
├── CrewClosedError         the Crew was used after close()
├── AuditError             an audit log cannot be written or read (not: a failed verification, which is a report)
├── GraphServerError        the managed local ArcadeDB (memory/arcadedb.py) cannot be started, reached or stopped
└── ServiceError            the chat service (smolcrew/service.py, the HTTP API) refused a request
    ├── ConversationNotFoundError   no conversation has this id (ids live as long as the server process)
    ├── ArtifactNotFoundError       the run wrote no file of that name
    ├── RunNotCancellable           the run has ended, or waits for a person (decide its approval instead)
    ├── UploadTooLargeError         an uploaded file is over `server.max_upload_mb`
    └── UnsupportedUploadError      an uploaded file's type is not allowed, or its content is not that type
```

`RunCancelled` stands apart: a BaseException raised inside a run asked to stop, never seen by callers.

A message says what happened and what to do about it. Context rides along as attributes.
"""

from __future__ import annotations

__all__ = [
    "AnswerRejected",
    "ApprovalAlreadyDecided",
    "ApprovalError",
    "ApprovalJournalError",
    "ApprovalNotFound",
    "ApprovalQueueUnavailable",
    "ArtifactNotFoundError",
    "AuditError",
    "ConfigError",
    "ConversationNotFoundError",
    "CrewClosedError",
    "GraphServerError",
    "ModelUnavailableError",
    "RequestError",
    "RoutingError",
    "RunCancelled",
    "RunNotCancellable",
    "RunNotFoundError",
    "ServiceError",
    "SinkError",
    "SinkUnavailableError",
    "SinkWorkerError",
    "SmolcrewError",
    "StageError",
    "ToolInputError",
    "UnsupportedUploadError",
    "UploadTooLargeError",
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


class RequestError(SmolcrewError, ValueError):
    """The request given to a command is empty, or its file or stdin cannot be read as UTF-8 text. The message
    says how to give it (an argument, `-` for stdin, `--file PATH`)."""


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


class ApprovalError(SmolcrewError):
    """The human approval queue failed. `.approval_id` names the approval, when known."""

    def __init__(self, message: str, *, approval_id: str | None = None) -> None:
        super().__init__(message)
        self.approval_id = approval_id


class ApprovalNotFound(ApprovalError, LookupError):
    """No approval has this id: it was never requested here (or, in a queue without a journal, it was decided and
    has expired)."""


class ApprovalAlreadyDecided(ApprovalError):
    """The approval was decided before this decision. `.status` and `.decided_by` say how and by whom."""

    def __init__(self, message: str, *, approval_id: str, status: str, decided_by: str | None = None) -> None:
        super().__init__(message, approval_id=approval_id)
        self.status = status
        self.decided_by = decided_by


class ApprovalJournalError(ApprovalError):
    """The approval journal (`<home>/journal/approvals`), which holds every approval and decision, cannot be
    written or read; the message names the folder and the fix (disk space, permissions)."""


class ApprovalQueueUnavailable(ApprovalError):
    """Redis, which holds the approval queue, is down or unreachable; the message says how to start or reach it."""


class RunNotFoundError(SmolcrewError):
    """No journal holds the run asked for (see `smolcrew runs list`)."""


class AuditError(SmolcrewError):
    """An audit log cannot be written or read (bad run id, disk, a torn last line). `.run_id` names the run.

    A log that fails verification is not an error: `AuditLog.verify` returns a report saying where it breaks."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class StageError(SmolcrewError):
    """A validation stage could not judge an answer (its model failed or gave unusable output). `.stage` names it.

    The cascade turns it into an escalation: a broken check never lets an answer through.
    """

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


class ServiceError(SmolcrewError):
    """The chat service refused a request; the message says what to send instead."""


class ConversationNotFoundError(ServiceError, LookupError):
    """No conversation has this id. `.conversation_id` names it."""

    def __init__(self, message: str, *, conversation_id: str) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id


class RunNotCancellable(ServiceError):
    """The run cannot be cancelled: it has ended, or it waits for a person (reject its approval instead).
    `.run_id` and `.status` say which run and where it stands."""

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class RunCancelled(BaseException):
    """Raised inside a run that was asked to stop (`Crew.run(cancelled=...)`, `POST /v1/runs/{id}/cancel`) at its
    next step; the run catches it and ends in state `cancelled`, sealed like any other end.

    A BaseException, like `asyncio.CancelledError`, so that the `except Exception` guards of tools and agent loops
    let it through instead of reading it as a failed step."""


class ArtifactNotFoundError(ServiceError, LookupError):
    """The run wrote no file of that name (or the name is not a plain file name). `.run_id` names the run."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class UploadTooLargeError(ServiceError):
    """An uploaded file is larger than `server.max_upload_mb`. `.limit_bytes` is the limit."""

    def __init__(self, message: str, *, limit_bytes: int) -> None:
        super().__init__(message)
        self.limit_bytes = limit_bytes


class UnsupportedUploadError(ServiceError):
    """An uploaded file's media type is not in `server.upload_types`, or its bytes are not of that type.
    `.content_type` is the type given."""

    def __init__(self, message: str, *, content_type: str) -> None:
        super().__init__(message)
        self.content_type = content_type


class SinkWorkerError(SinkUnavailableError):
    """The child process that runs a store's client (memory/worker.py) died, hung or was closed. The next use
    starts a new one; the mirror's lane catches up from the journal. `.sink` names the store."""


class GraphServerError(SmolcrewError):
    """The managed local ArcadeDB (the default graph store) could not be started, reached or stopped.

    The message says why (a missing package, the server's log) and what to do; runs still journal every step."""
