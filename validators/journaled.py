"""The approval queue smolcrew opens: its journal is the truth, Redis an index rebuilt from it.

Why: Redis may keep nothing on disk (`--save '' --appendonly no`), and a flush or a restart then lost every
approval: `smolcrew approvals list` came back empty and the run stayed `pending_approval` for good. Now:

- Every write goes to the journal first (validators/approval_journal.py, fsynced), then to the index: `request`
  and `decide` succeed while Redis is down, and the index takes what the journal owes on the next call that
  reaches Redis.
- Each call that reaches Redis first checks the index marker; when it is gone (a flush, a restart of a Redis
  without persistence, a new Redis) the index is rebuilt from the journal (`rebuild`; `smolcrew memory sync` runs
  it on demand). A rebuild never turns an approval the journal has decided back to pending.
- Reads by id (`get`, `wait`, `for_run`, so `smolcrew runs resume`) answer from the journal while Redis is down;
  `list` needs the index and raises ApprovalQueueUnavailable then.
- Of concurrent decisions exactly one wins: the journal's lock decides, and the index only follows it.
- An approval Redis has and the journal lacks (made or decided by a queue without this journal, or from another
  home sharing the Redis) is adopted into the journal when read.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import redis

from smolcrew.errors import ApprovalNotFound, ApprovalQueueUnavailable
from smolcrew.validators.approval import Approval, ApprovalStatus
from smolcrew.validators.approval_journal import ApprovalJournal, already_decided
from smolcrew.validators.human import ApprovalQueue

if TYPE_CHECKING:
    from smolcrew.config import Settings

__all__ = ["JournaledApprovalQueue", "approval_journal"]

POLL_S = 0.5
"""While Redis is down, `wait` reads the journal this often."""


def approval_journal(settings: Settings) -> ApprovalJournal:
    """The approval journal of smolcrew's home: `<home>/journal/approvals`, beside the runs' journals."""
    return ApprovalJournal(settings.home / "journal" / "approvals", runs=settings.home / "journal")


class JournaledApprovalQueue(ApprovalQueue):
    """The approval queue over `journal` (the truth) and Redis (the index); see the module docstring.

    Args:
        client: a ready `redis.Redis`; the caller owns it (use `from_settings` to have the queue own one).
        journal: where every approval and decision is written first.
        options: as for `ApprovalQueue` (namespace, decided_ttl_s, stream_maxlen).
    """

    def __init__(self, client: redis.Redis, journal: ApprovalJournal, **options: Any) -> None:
        super().__init__(client, **options)
        self.journal = journal

    @classmethod
    @contextmanager
    def from_settings(cls, settings: Settings, *, timeout_s: float = 1.0) -> Iterator[JournaledApprovalQueue]:
        """The queue of `settings` (Redis `services.redis_url`, namespace `memory.namespace`, the home's approval
        journal), owning its client, closed on exit. Nothing is contacted before the first call."""
        url = settings.services.redis_url
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            yield cls(client, approval_journal(settings), namespace=settings.memory.namespace)
        finally:
            client.close()

    def __repr__(self) -> str:
        return f"JournaledApprovalQueue({self.journal!r}, {super().__repr__()})"

    # the index --------------------------------------------------------------------------------------------------
    def catch_up(self) -> int:
        """Make the index whole: rebuild it when its marker is gone, else index what the journal owes. Returns how
        many approvals changed in Redis. Raises ApprovalQueueUnavailable when Redis is down."""
        if not self.indexed():
            return self.rebuild()
        changed = 0
        for approval_id in self.journal.owed():
            approval = self.journal.get(approval_id)
            changed += self._reindex(approval) if approval is not None else 0
            self.journal.paid(approval_id)
        return changed

    def rebuild(self) -> int:
        """Index every journaled approval (pending ones, and decisions younger than `decided_ttl_s`), take into
        the journal the decisions Redis has and it lacks, then set the index marker. Idempotent, and safe beside
        other processes deciding. Returns how many approvals changed in Redis."""
        owed = self.journal.owed()
        changed = sum(self._reindex(approval) for approval in self.journal.all())
        self.mark_indexed()
        for approval_id in owed:
            self.journal.paid(approval_id)
        return changed

    # API --------------------------------------------------------------------------------------------------------
    def request(
        self, run_id: str, *, task: str, answer: str, reasons: Sequence[str], evidence: Mapping[str, Any]
    ) -> Approval:
        """As `ApprovalQueue.request`, journaled first: it stands even while Redis is down."""
        made = Approval.new(run_id, task=task, answer=answer, reasons=reasons, evidence=evidence)
        approval = self.journal.request(made)
        self._try_catch_up()
        return approval

    def get(self, approval_id: str) -> Approval:
        """The approval `approval_id`, from the journal (with what Redis alone knows adopted into it).

        Raises:
            ApprovalNotFound: neither the journal nor Redis has it (it was never requested in this home).
            ApprovalQueueUnavailable: Redis is down and the journal does not have it.
        """
        journaled = self.journal.get(approval_id)
        try:
            self.catch_up()
            indexed = self._load([approval_id])[0]
        except ApprovalQueueUnavailable:
            if journaled is None:
                raise
            return journaled
        if indexed is not None and (journaled is None or (journaled.pending and not indexed.pending)):
            return self.journal.adopt(indexed)
        if journaled is None:
            raise ApprovalNotFound(
                f"no approval {approval_id!r}: the approval journal ({self.journal.folder}) and Redis namespace "
                f"{self.namespace!r} have never had it; see `smolcrew approvals list --status all`",
                approval_id=approval_id,
            )
        return journaled

    def for_run(self, run_id: str) -> Approval | None:
        """The latest approval requested for `run_id`, pending or decided; None when there is none (while Redis is
        down: none in the journal)."""
        journaled = self.journal.for_run(run_id)
        try:
            self.catch_up()
            indexed = super().for_run(run_id)
        except ApprovalQueueUnavailable:
            return journaled
        known = [approval for approval in (journaled, indexed) if approval is not None]
        latest = max(known, key=lambda approval: (approval.created, approval.id), default=None)
        return None if latest is None else self.get(latest.id)

    def list(self, status: ApprovalStatus | None = "pending", limit: int = 50) -> builtins.list[Approval]:
        """As `ApprovalQueue.list`, after the index has caught up with the journal."""
        self.catch_up()
        return super().list(status, limit)

    def decide(self, approval_id: str, *, approve: bool, by: str, note: str | None = None) -> Approval:
        """As `ApprovalQueue.decide`, journaled first (so it stands while Redis is down); the journal's lock makes
        exactly one of concurrent decisions win, and the index follows."""
        current = self.get(approval_id)
        if not current.pending:
            raise already_decided(current)
        if self.journal.get(approval_id) is None:  # a run id no file can be named after: Redis alone holds it
            return super().decide(approval_id, approve=approve, by=by, note=note)
        decided = self.journal.decide(approval_id, approve=approve, by=by, note=note)
        self._try_catch_up()
        return decided

    # internals --------------------------------------------------------------------------------------------------
    def _reindex(self, approval: Approval) -> int:
        """Index one journaled approval; a decision Redis has on a pending one goes into the journal."""
        if self.index(approval):
            return 1
        if approval.pending:
            indexed = self._load([approval.id])[0]
            if indexed is not None and not indexed.pending:
                self.journal.adopt(indexed)
        return 0

    def _try_catch_up(self) -> None:
        """Bring the index up to the journal now if Redis answers; else the next call that reaches it will."""
        with suppress(ApprovalQueueUnavailable):
            self.catch_up()

    def _block(self, approval_id: str, seconds: float) -> None:
        """While Redis is down nothing can wake a waiter: read the journal again after a short pause."""
        try:
            super()._block(approval_id, seconds)
        except ApprovalQueueUnavailable:
            time.sleep(min(seconds, POLL_S))
