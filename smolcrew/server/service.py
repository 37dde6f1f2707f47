"""The chat service: conversations over a small pool of Crews, runs in the background, their events live.

Both the HTTP API (smolcrew/server/api.py) and the web UI (smolcrew/server/ui.py) sit on `ChatService`; neither
touches a Crew directly. `ChatService` is the facade over three parts: the pool of Crews (server/crews.py), the log of
runs and their events (server/runs.py) and the approval queue (server/approvals.py).

Contract:

- `workers` Crews (config `server.workers`) run on as many worker threads; each Crew runs one request at a time.
  Runs of different conversations proceed in parallel; the turns of one conversation run one after another, in
  the order they were sent, each seeing the earlier ones (any Crew of the pool can take a turn: the history rides
  with the conversation).
- `send` returns a `RunTicket` at once. Its `run_id` is the run's id everywhere: the Crew runs under it (journal,
  audit log, `record.run_id` in events, `smolcrew runs show`); `RunInfo.journal_run_id` repeats it.
- Each run's events are kept in memory (the last `keep_runs` runs): `step` (a `StepRecord` dict, as it happens),
  `pending_approval` (a RunResult dict: a person must decide; the stream stays open) and last `run_end` (the
  final RunResult dict). Event ids count from 0 per run; `events(run_id, after=n)` gives those after id n, so a
  subscriber that reconnects with its last id loses and repeats nothing. A run that breaks still ends with
  `run_end` (state "error").
- `cancel` stops a run: a queued one ends at once and never runs, a running one at its next step (`run_end`,
  state cancelled, sealed in the journal and audit log like any end).
- Uploads are stored as `<home>/uploads/<conversation_id>/<random>.<ext>`, names chosen here. Images reach the
  run as PIL images (`images=`); other files are named by their stored path at the end of the task text.
- A run's tools read files only in the conversation's uploads and its runs' outputs (`uploads.run_roots`).
- Approvals are read and decided in the Crews' queue (Redis, `services.redis_url`, namespace `memory.namespace`);
  a decision resumes the run in the background, so its stream ends with the final `run_end`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.crew import Crew
from smolcrew.errors import (
    ArtifactNotFoundError,
    AuditError,
    ConversationNotFoundError,
    RunNotFoundError,
    ServiceError,
)
from smolcrew.server.approvals import Approvals
from smolcrew.server.crews import LocalRunner
from smolcrew.server.runs import Conversation, RunEvent, RunInfo, RunLog, error_result
from smolcrew.server.uploads import Upload, check_upload, run_roots, store_upload, uploads_folder

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.server.board import SharedRunLog
    from smolcrew.server.cluster import RayRunner
    from smolcrew.validators.human import Approval, ApprovalQueue, ApprovalStatus

__all__ = [
    "ChatService",
    "Conversation",
    "Readiness",
    "RunEvent",
    "RunInfo",
    "RunTicket",
]


@dataclass(frozen=True, slots=True)
class RunTicket:
    """What `send` returns at once: the run has been queued."""

    run_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """`ok` when every check passed; `checks` maps a name (redis, journal, model) to (ok, detail)."""

    ok: bool
    checks: dict[str, tuple[bool, str]]


class ChatService:
    """Conversations and runs over a pool of Crews (see the module docstring for the contract).

    Args:
        settings: smolcrew settings; `server.workers` sizes the pool, `home` holds uploads.
        crew_factory: builds each Crew of the pool (default: `Crew(settings)`); tests pass one with a scripted
            model.
        keep_runs: how many runs' events stay in memory (oldest finished runs are forgotten first).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        crew_factory: Callable[[Settings], Crew] | None = None,
        keep_runs: int = 1000,
    ) -> None:
        self.settings = settings
        self._runs: RunLog | SharedRunLog
        self._runner: LocalRunner | RayRunner
        if settings.cluster.engine == "ray":
            from smolcrew.server.board import SharedRunLog
            from smolcrew.server.cluster import RayRunner

            self._runs, self._runner = SharedRunLog(settings), RayRunner(settings, crew_factory)
        else:
            self._runs, self._runner = RunLog(keep_runs), LocalRunner(settings, crew_factory or (lambda s: Crew(s)))
        self._approvals = Approvals(settings)
        self._lock = threading.RLock()
        self._closed = False

    def __enter__(self) -> ChatService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChatService({self._runner!r}, {self._runs!r})"

    # conversations ----------------------------------------------------------------------------------------------
    def create_conversation(self) -> Conversation:
        """A new, empty conversation."""
        self._check_open()
        conversation = Conversation(secrets.token_hex(8))
        self._runs.add_conversation(conversation)
        return conversation

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation `conversation_id`. Raises ConversationNotFoundError."""
        found = self._runs.conversation(conversation_id)
        if found is None:
            raise ConversationNotFoundError(
                f"no conversation {conversation_id!r} on this server (they last as long as the server process); "
                "create one with POST /v1/conversations",
                conversation_id=conversation_id,
            )
        return found

    def turns(self, conversation_id: str) -> list[RunInfo]:
        """Every run sent to the conversation, oldest first (those forgotten under `keep_runs` are left out)."""
        runs = [self._runs.find(run_id) for run_id in self.conversation(conversation_id).run_ids]
        return [run.info() for run in runs if run is not None]

    def send(self, conversation_id: str, text: str, files: Sequence[Upload] = ()) -> RunTicket:
        """Queue a turn and return at once; the run starts when the conversation's earlier turns have ended and a
        Crew is free.

        Raises:
            ConversationNotFoundError: unknown conversation.
            UploadTooLargeError, UnsupportedUploadError: a file is refused (nothing is stored then).
            ValueError: `text` is empty.
        """
        self._check_open()
        if not text or not text.strip():
            raise ValueError("the message text is empty: say what the crew should do")
        conversation = self.conversation(conversation_id)
        for upload in files:
            check_upload(upload, self.settings.server)
        folder = uploads_folder(self.settings.home, conversation.id)
        stored = [store_upload(upload, folder) for upload in files]
        images = [image for _, image in stored if image is not None]
        others = [path for path, image in stored if image is None]
        task = text.strip()
        if others:
            task += "\n\nAttached files (read them by path): " + ", ".join(str(path) for path in others)
        files_kept = tuple(str(path) for path, _ in stored)
        run: Any = self._runs.new_run(secrets.token_hex(8), conversation.id, text.strip(), files_kept)  # its log's kind
        self._runs.add(run)
        self._runner.turn(conversation, run, task, images, self._roots)
        return RunTicket(run.run_id, conversation.id)

    # runs -------------------------------------------------------------------------------------------------------
    def run_info(self, run_id: str) -> RunInfo:
        """Where the run stands (service or journal run id). Raises RunNotFoundError."""
        return self._runs.get(run_id).info()

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The run's RunResult dict, None while it runs. Raises RunNotFoundError."""
        return self._runs.get(run_id).info().result

    def cancel(self, run_id: str) -> RunInfo:
        """Ask the run to stop: a queued run ends at once and never starts; a running one stops at its next step.
        Either way its stream ends with `run_end`, state cancelled. Cancelling a cancelled run changes nothing.

        Raises:
            RunNotFoundError: unknown run. RunNotCancellable: it has ended, or waits for a person.
        """
        run = self._runs.get(run_id)
        run.request_cancel()
        return run.info()

    def events(self, run_id: str, after: int | None = None, timeout_s: float | None = None) -> Iterator[RunEvent]:
        """The run's events after id `after` (all when None), blocking for new ones; ends after `run_end`, or when
        `timeout_s` passes with no new event (subscribe again with the last id). Raises RunNotFoundError."""
        return self._runs.events(run_id, after, timeout_s)

    def aevents(self, run_id: str, after: int | None = None, timeout_s: float | None = None) -> AsyncIterator[RunEvent]:
        """`events` for asyncio: waits without holding a thread. Ends like `events`."""
        return self._runs.aevents(run_id, after, timeout_s)

    def artifact(self, run_id: str, name: str) -> Path:
        """The file `name` that the run wrote. Only a plain file name listed in the run's artifacts is served.

        Raises:
            RunNotFoundError: unknown run. ArtifactNotFoundError: no such file of this run.
        """
        info = self.run_info(run_id)
        listed = [Path(path) for path in (info.result or {}).get("artifacts", [])]
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            for path in listed:
                folder = (self.settings.home / "runs" / str(info.journal_run_id) / "artifacts").resolve()
                if path.name == name and path.resolve().parent == folder and path.is_file():
                    return path
        raise ArtifactNotFoundError(
            f"run {run_id} wrote no file named {name!r}; GET /v1/runs/{run_id} lists its artifacts", run_id=run_id
        )

    def audit_export(self, run_id: str) -> dict[str, Any]:
        """The run's audit bundle (`smolcrew audit export`'s audit.json) as a dict: verification report, entries,
        step records. Raises RunNotFoundError (unknown run, or one with no audit log yet)."""
        import json
        import tempfile

        from smolcrew.audit import AuditLog
        from smolcrew.audit_report import export_bundle
        from smolcrew.memory.sinks.journal import JournalSink

        journal_id = self._runs.journal_id(run_id)
        log = AuditLog(self.settings.home / "audit")
        try:
            known = log.path(journal_id).is_file()
        except AuditError:  # not even a possible run id
            known = False
        if not known:
            raise RunNotFoundError(f"run {run_id!r} has no audit log; check the id (GET /v1/runs/RUN)")
        records = JournalSink(self.settings.home / "journal").read(journal_id)
        end = next((r for r in reversed(records) if r.kind == "run_end"), None)
        head = end.payload.get("audit_head") if end is not None else None
        with tempfile.TemporaryDirectory() as folder:
            dest = export_bundle(log, journal_id, Path(folder) / "bundle", records=records, expected_head=head)
            bundle: dict[str, Any] = json.loads((dest / "audit.json").read_text(encoding="utf-8"))
        return bundle

    # approvals --------------------------------------------------------------------------------------------------
    @property
    def approvals(self) -> ApprovalQueue:
        """The Crews' approval queue. Raises ApprovalQueueUnavailable when Redis is down (on use)."""
        with self._lock:
            self._check_open()
            return self._approvals.queue

    def list_approvals(self, status: ApprovalStatus | None = "pending", limit: int = 50) -> list[Approval]:
        """Up to `limit` approvals of `status` (None: all), oldest first."""
        return self.approvals.list(status, limit)

    def get_approval(self, approval_id: str) -> Approval:
        """Raises ApprovalNotFound."""
        return self.approvals.get(approval_id)

    def decide(self, approval_id: str, *, approve: bool, by: str, note: str | None = None) -> Approval:
        """Decide once (ApprovalAlreadyDecided otherwise), then resume the run in the background: its stream
        ends with the final `run_end`."""
        approval = self.approvals.decide(approval_id, approve=approve, by=by, note=note)
        run: Any = self._runs.find(approval.run_id)  # a LiveRun or a SharedRun, as its runner expects
        if run is not None:
            run.resumed()
        conversation = self._runs.conversation(run.conversation_id) if run is not None else None
        self._runner.resume(approval.run_id, run, conversation, self._roots)
        return approval

    # health -----------------------------------------------------------------------------------------------------
    def health(self) -> bool:
        """Liveness: the service is open."""
        return not self._closed

    def ready(self) -> Readiness:
        """Readiness: Redis (the approval queue) answers, the journal is writable, the model backend builds."""
        from smolcrew.memory.sinks.journal import JournalSink

        checks: dict[str, tuple[bool, str]] = {}
        try:
            redis = self.approvals.health()
            checks["redis"] = (redis.ok, redis.detail)
        except ServiceError as exc:
            checks["redis"] = (False, str(exc))
        if self.settings.memory.enabled:
            journal = JournalSink(self.settings.home / "journal").health()
            checks["journal"] = (journal.ok, journal.detail)
        checks["model"] = self._runner.model_check()
        return Readiness(all(ok for ok, _ in checks.values()), checks)

    def close(self) -> None:
        """Stop taking runs, wait for the running ones, end the queued ones (`run_end`, state error), close the
        Crews and the approval queue. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._runner.shutdown()
        for run in self._runs.held():
            if not run.ended() and run.status in ("queued", "running"):
                run.end(error_result(run, "the server shut down before this run finished; send it again"))
        self._runner.close()
        self._runs.close()
        self._approvals.close()

    # internals --------------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ServiceError("the chat service is closed; start the server again")

    def _roots(self, conversation_id: str) -> tuple[Path, ...]:
        """The folders a run of the conversation may read: its uploads and its runs' outputs."""
        found = self._runs.conversation(conversation_id)
        run_ids = list(found.run_ids) if found is not None else []
        return run_roots(self.settings.home, conversation_id, run_ids)
