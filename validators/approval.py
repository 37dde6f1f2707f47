"""One approval: a run's answer waiting for (or decided by) a person. The value both halves of the approval queue
share: the journal that is its truth (validators/approval_journal.py) and the Redis index (validators/human.py)."""

from __future__ import annotations

import builtins
import dataclasses
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["FIELDS", "NO_REASON", "STATUSES", "Approval", "ApprovalStatus", "jsonable"]

ApprovalStatus = Literal["pending", "approved", "rejected"]
STATUSES: tuple[ApprovalStatus, ...] = get_args(ApprovalStatus)
NO_REASON = "rejected without a reason"
FIELDS = ("id", "run_id", "status", "task", "answer", "reasons", "evidence", "created", "decided", "decided_by", "note")


def jsonable(value: Any) -> Any:
    """`value` with every part JSON cannot hold made JSON-able: mapping keys and unknown objects become str,
    tuples and sets become lists (sets sorted by str, so the stored form is stable)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return [jsonable(item) for item in sorted(value, key=str)]
    if isinstance(value, builtins.list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for a person's decision on a run's final answer.

    `reasons` say why a person is asked (low confidence, a tool that needs approval); `evidence` is what the
    person needs to decide (tool outputs, sources, verdicts), JSON-able. `decided`, `decided_by` and `note` are
    set once `status` leaves "pending".
    """

    id: str
    run_id: str
    status: ApprovalStatus
    task: str
    answer: str
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    created: float
    decided: float | None = None
    decided_by: str | None = None
    note: str | None = None

    @classmethod
    def new(
        cls, run_id: str, *, task: str, answer: str, reasons: Sequence[str], evidence: Mapping[str, Any]
    ) -> Approval:
        """A pending approval with a fresh id (12 hex digits), created now; `evidence` made JSON-able."""
        if not run_id:
            raise ValueError("run_id must be a non-empty string")
        reasons = (reasons,) if isinstance(reasons, str) else tuple(str(reason) for reason in reasons)
        return cls(
            id=secrets.token_hex(6),
            run_id=run_id,
            status="pending",
            task=str(task),
            answer=str(answer),
            reasons=reasons,
            evidence=jsonable(evidence),
            created=time.time(),
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Approval:
        """The approval `to_dict` gave (unknown keys are ignored, missing optional ones are None)."""
        fields: dict[str, Any] = {name: values.get(name) for name in FIELDS}
        fields["reasons"] = tuple(fields["reasons"] or ())
        fields["evidence"] = dict(fields["evidence"] or {})
        return cls(**fields)

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def decide(self, *, approve: bool, by: str, note: str | None, decided: float | None = None) -> Approval:
        """This approval decided by `by`; a rejection without a note gets the note "rejected without a reason"."""
        if not by or not by.strip():
            raise ValueError("`by` must name who decides (a user name)")
        if not approve and not (note and note.strip()):
            note = NO_REASON
        status: ApprovalStatus = "approved" if approve else "rejected"
        when = time.time() if decided is None else decided
        return dataclasses.replace(self, status=status, decided=when, decided_by=by, note=note)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reasons"] = list(self.reasons)
        return data

    def __repr__(self) -> str:
        decided = f" by {self.decided_by}" if self.decided_by else ""
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"Approval({self.id} run={self.run_id} {self.status}{decided}{why})"
