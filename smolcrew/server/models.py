"""The HTTP API's request and reply bodies (pydantic), as the OpenAPI schema shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApprovalOut",
    "AuditBundle",
    "ConversationCreated",
    "ConversationOut",
    "DecisionIn",
    "Health",
    "MessageIn",
    "Problem",
    "Readiness",
    "ReadyCheck",
    "RunAccepted",
    "RunOut",
    "TurnOut",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`); `detail` says what to do."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class ConversationCreated(BaseModel):
    id: str


class TurnOut(BaseModel):
    """One message sent to a conversation and its run."""

    run_id: str
    text: str
    status: Literal["queued", "running", "pending_approval", "done"]
    state: str | None = None
    """The run's end state (success, rejected, error, ...), once it has one."""
    answer: Any = None


class ConversationOut(BaseModel):
    id: str
    created: float
    turns: list[TurnOut]


class MessageIn(_Body):
    """A message as JSON; to send files, post `multipart/form-data` with a `text` field and `files` parts."""

    text: str = Field(min_length=1, max_length=100_000, pattern=r"\S")


class RunAccepted(BaseModel):
    """The run is queued; follow `events_url` (server-sent events) for its steps and its end."""

    run_id: str
    conversation_id: str
    events_url: str


class RunOut(BaseModel):
    """Where a run stands. `result` (the RunResult as a dict) is set once it waits for a person or has ended;
    `journal_run_id` is the Crew's run id (journal, audit log, `smolcrew runs show`)."""

    run_id: str
    conversation_id: str
    status: Literal["queued", "running", "pending_approval", "done"]
    text: str
    journal_run_id: str | None
    files: list[str]
    artifacts: list[str]
    """Names to fetch with GET /v1/runs/{run_id}/artifacts/{name}."""
    result: dict[str, Any] | None
    cancel_requested: bool = False
    """Someone asked the run to stop (POST /v1/runs/{run_id}/cancel); it ends `cancelled` at its next step."""


class ApprovalOut(BaseModel):
    id: str
    run_id: str
    status: Literal["pending", "approved", "rejected"]
    task: str
    answer: str
    reasons: list[str]
    evidence: dict[str, Any]
    created: float
    decided: float | None = None
    decided_by: str | None = None
    note: str | None = None


class DecisionIn(_Body):
    approve: bool
    by: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Who decides (a user name).")
    note: str | None = Field(default=None, max_length=10_000)


class AuditBundle(BaseModel):
    """`smolcrew audit export`'s audit.json: the verification report, every audit entry, the step records."""

    run_id: str
    verification: dict[str, Any]
    entries: list[dict[str, Any]]
    records: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok"]


class ReadyCheck(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ok: bool
    checks: dict[str, ReadyCheck]
