"""The chat service: conversations over a small pool of Crews, runs in the background, their events live.

Both the HTTP API (smolcrew/api.py) and the web UI (smolcrew/ui.py) sit on `ChatService`; neither touches a
Crew directly.

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
- Uploads are stored as `<home>/uploads/<conversation_id>/<random>.<ext>`, names chosen here. Images reach the
  run as PIL images (`images=`); other files are named by their stored path at the end of the task text.
- Approvals are read and decided in the Crews' queue (Redis, `services.redis_url`, namespace `memory.namespace`);
  a decision resumes the run in the background, so its stream ends with the final `run_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from smolcrew.crew import ChatSession, Crew
from smolcrew.errors import (
    ArtifactNotFoundError,
    AuditError,
    ConversationNotFoundError,
    RunNotFoundError,
    ServiceError,
)
from smolcrew.server.uploads import Upload, check_upload, store_upload

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.memory.records import StepRecord
    from smolcrew.result import RunResult
    from smolcrew.validators.human import Approval, ApprovalQueue, ApprovalStatus

__all__ = [
    "ChatService",
    "Conversation",
    "Readiness",
    "RunEvent",
    "RunInfo",
    "RunTicket",
]

EventKind = Literal["step", "pending_approval", "run_end"]
RunStatus = Literal["queued", "running", "pending_approval", "done"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run. `id` counts from 0 within the run; `data` is JSON-able."""

    id: int
    event: EventKind
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunTicket:
    """What `send` returns at once: the run has been queued."""

    run_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Where a run stands. `result` (a RunResult dict) is set once it is `pending_approval` or `done`."""

    run_id: str
    conversation_id: str
    status: RunStatus
    text: str
    journal_run_id: str | None
    result: dict[str, Any] | None
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Readiness:
    """`ok` when every check passed; `checks` maps a name (redis, journal, model) to (ok, detail)."""

    ok: bool
    checks: dict[str, tuple[bool, str]]


@dataclass
class Conversation:
    """A conversation: its chat session (the turns that finished) and the ids of every run sent to it."""

    id: str
    session: ChatSession | None
    created: float = field(default_factory=time.time)
    run_ids: list[str] = field(default_factory=list)
    waiting: deque[Callable[[], None]] = field(default_factory=deque)
    busy: bool = False


class _Run:
    """A run's events and state; `append` wakes blocked and async subscribers."""

    def __init__(self, run_id: str, conversation_id: str, text: str, files: tuple[str, ...]) -> None:
        self.run_id, self.conversation_id, self.text, self.files = run_id, conversation_id, text, files
        self.status: RunStatus = "queued"
        self.journal_run_id: str | None = run_id  # the Crew runs under the service's id (Crew.run(run_id=...))
        self.result: dict[str, Any] | None = None
        self.events: list[RunEvent] = []
        self.cond = threading.Condition()
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def append(self, event: EventKind, data: dict[str, Any]) -> None:
        with self.cond:
            self.events.append(RunEvent(len(self.events), event, data))
            self.cond.notify_all()
            waiters = list(self.waiters)
        for loop, flag in waiters:
            loop.call_soon_threadsafe(flag.set)

    def after(self, after: int | None) -> list[RunEvent]:
        with self.cond:
            return self.events[(-1 if after is None else after) + 1 :]

    def info(self) -> RunInfo:
        with self.cond:
            return RunInfo(
                self.run_id, self.conversation_id, self.status, self.text, self.journal_run_id, self.result, self.files
            )


def _ended(events: Sequence[RunEvent]) -> bool:
    return bool(events) and events[-1].event == "run_end"


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
        self._factory = crew_factory or (lambda s: Crew(s))
        self._keep_runs = keep_runs
        self._workers = settings.server.workers
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="smolcrew-run")
        self._idle: queue.LifoQueue[Crew] = queue.LifoQueue()
        self._crews: list[Crew] = []
        self._lock = threading.RLock()
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._stores = ExitStack()
        self._approvals: ApprovalQueue | None = None
        self._closed = False

    def __enter__(self) -> ChatService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChatService(workers={self._workers}, {len(self._conversations)} conversations, {len(self._runs)} runs)"

    # conversations ----------------------------------------------------------------------------------------------
    def create_conversation(self) -> Conversation:
        """A new, empty conversation."""
        self._check_open()
        conversation = Conversation(secrets.token_hex(8), None)
        with self._lock:
            self._conversations[conversation.id] = conversation
        return conversation

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation `conversation_id`. Raises ConversationNotFoundError."""
        with self._lock:
            found = self._conversations.get(conversation_id)
        if found is None:
            raise ConversationNotFoundError(
                f"no conversation {conversation_id!r} on this server (they last as long as the server process); "
                "create one with POST /v1/conversations",
                conversation_id=conversation_id,
            )
        return found

    def turns(self, conversation_id: str) -> list[RunInfo]:
        """Every run sent to the conversation, oldest first (those forgotten under `keep_runs` are left out)."""
        conversation = self.conversation(conversation_id)
        with self._lock:
            runs = [self._runs[run_id] for run_id in conversation.run_ids if run_id in self._runs]
        return [run.info() for run in runs]

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
        folder = self.settings.home / "uploads" / conversation.id
        stored = [store_upload(upload, folder) for upload in files]
        images = [image for _, image in stored if image is not None]
        others = [path for path, image in stored if image is None]
        task = text.strip()
        if others:
            task += "\n\nAttached files (read them by path): " + ", ".join(str(path) for path in others)
        run = _Run(secrets.token_hex(8), conversation.id, text.strip(), tuple(str(path) for path, _ in stored))
        with self._lock:
            self._runs[run.run_id] = run
            conversation.run_ids.append(run.run_id)
            self._forget_old_runs()
        self._enqueue(conversation, lambda: self._turn(conversation, run, task, images))
        return RunTicket(run.run_id, conversation.id)

    # runs -------------------------------------------------------------------------------------------------------
    def run_info(self, run_id: str) -> RunInfo:
        """Where the run stands (service or journal run id). Raises RunNotFoundError."""
        return self._run(run_id).info()

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The run's RunResult dict, None while it runs. Raises RunNotFoundError."""
        return self._run(run_id).info().result

    def events(self, run_id: str, after: int | None = None, timeout_s: float | None = None) -> Iterator[RunEvent]:
        """The run's events after id `after` (all when None), blocking for new ones; ends after `run_end`, or when
        `timeout_s` passes with no new event (subscribe again with the last id). Raises RunNotFoundError."""
        run = self._run(run_id)
        while True:
            with run.cond:
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                batch = run.after(after)
                while not batch:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    run.cond.wait(left)
                    batch = run.after(after)
            yield from batch
            if _ended(batch):
                return
            after = batch[-1].id

    async def aevents(
        self, run_id: str, after: int | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """`events` for asyncio: waits without holding a thread. Ends like `events`."""
        run = self._run(run_id)
        flag = asyncio.Event()
        waiter = (asyncio.get_running_loop(), flag)
        with run.cond:
            run.waiters.add(waiter)
        try:
            while True:
                flag.clear()
                batch = run.after(after)
                if not batch:
                    try:
                        await asyncio.wait_for(flag.wait(), timeout_s)
                    except TimeoutError:
                        return
                    continue
                for event in batch:
                    yield event
                if _ended(batch):
                    return
                after = batch[-1].id
        finally:
            with run.cond:
                run.waiters.discard(waiter)

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

        journal_id = self._journal_id(run_id)
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
            if self._approvals is None:
                from smolcrew.validators.human import ApprovalQueue

                opened = ApprovalQueue.from_url(
                    self.settings.services.redis_url, namespace=self.settings.memory.namespace
                )
                self._approvals = self._stores.enter_context(opened)
            return self._approvals

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
        with self._lock:
            run = self._runs.get(approval.run_id)
        if run is not None:
            with run.cond:
                run.status = "running"
        self._submit(self._with_crew, lambda crew: self._resume(crew, approval.run_id, run))
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
        checks["model"] = self._model_check()
        return Readiness(all(ok for ok, _ in checks.values()), checks)

    def close(self) -> None:
        """Stop taking runs, wait for the running ones, end the queued ones (`run_end`, state error), close the
        Crews and the approval queue. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if not _ended(run.after(None)) and run.status in ("queued", "running"):
                self._end(run, _error_result(run, "the server shut down before this run finished; send it again"))
        for crew in self._crews:
            crew.close()
        self._stores.close()

    # internals --------------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ServiceError("the chat service is closed; start the server again")

    def _run(self, run_id: str) -> _Run:
        with self._lock:
            found = self._runs.get(run_id)
        if found is None:
            raise RunNotFoundError(
                f"no run {run_id!r} on this server (it keeps the last {self._keep_runs}); "
                "older runs: `smolcrew runs show RUN`"
            )
        return found

    def _journal_id(self, run_id: str) -> str:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return run_id  # a journal id, maybe of an earlier server process
        if run.journal_run_id is None:
            raise RunNotFoundError(f"run {run_id} has not started yet; try again once it has")
        return run.journal_run_id

    def _forget_old_runs(self) -> None:
        excess = len(self._runs) - self._keep_runs
        for run_id in [r for r, run in self._runs.items() if run.status == "done"][: max(0, excess)]:
            self._runs.pop(run_id)

    def _enqueue(self, conversation: Conversation, job: Callable[[], None]) -> None:
        """Run `job` after the conversation's earlier turns (one turn of a conversation at a time)."""
        with self._lock:
            conversation.waiting.append(job)
            if conversation.busy:
                return
            conversation.busy = True
        self._submit(self._drain_one, conversation)

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # shut down meanwhile: close() ends the runs still queued
            self._executor.submit(work, *args)

    def _drain_one(self, conversation: Conversation) -> None:
        with self._lock:
            job = conversation.waiting.popleft()
        try:
            job()
        finally:
            with self._lock:
                more = bool(conversation.waiting) and not self._closed
                conversation.busy = more
            if more:
                self._submit(self._drain_one, conversation)

    def _with_crew(self, work: Callable[[Crew], None]) -> None:
        try:
            crew = self._idle.get_nowait()
        except queue.Empty:
            crew = self._factory(self.settings)  # at most `workers` jobs run at once, so at most `workers` crews
            with self._lock:
                self._crews.append(crew)
        try:
            work(crew)
        finally:
            self._idle.put(crew)

    def _listener(self, run: _Run) -> Callable[[StepRecord], None]:
        def on_step(record: StepRecord) -> None:
            run.append("step", record.to_dict())

        return on_step

    def _turn(self, conversation: Conversation, run: _Run, task: str, images: list[Any]) -> None:
        def work(crew: Crew) -> None:
            run.status = "running"
            session = conversation.session or ChatSession(crew, conversation_id=conversation.id)
            session.crew = crew
            conversation.session = session
            result = session.send(task, images=images, on_step=self._listener(run), run_id=run.run_id)
            self._finished(run, result)

        self._guarded(run, lambda: self._with_crew(work))

    def _resume(self, crew: Crew, journal_run_id: str, run: _Run | None) -> None:
        def work() -> None:
            result = crew.resume(journal_run_id, on_step=self._listener(run) if run is not None else None)
            if run is None:
                return
            conversation = self._conversations.get(run.conversation_id)
            session = conversation.session if conversation is not None else None
            for index, (text, earlier) in enumerate(session.turns if session is not None else []):
                if earlier.run_id == journal_run_id and session is not None:
                    session.turns[index] = (text, result)  # later turns see the settled answer
            self._finished(run, result)

        if run is None:
            work()
        else:
            self._guarded(run, work)

    def _guarded(self, run: _Run, work: Callable[[], None]) -> None:
        """Run `work`; whatever breaks, the run's stream still ends (with state error)."""
        try:
            work()
        except Exception as exc:  # any failure must end the stream, not hang its subscribers
            self._end(run, _error_result(run, f"{type(exc).__name__}: {exc}"))

    def _finished(self, run: _Run, result: RunResult) -> None:
        data = result.to_dict()
        if result.state == "pending_approval":
            with run.cond:
                run.status, run.result = "pending_approval", data
            run.append("pending_approval", data)
        else:
            self._end(run, data)

    def _end(self, run: _Run, data: dict[str, Any]) -> None:
        with run.cond:
            run.status, run.result = "done", data
        run.append("run_end", data)

    def _model_check(self) -> tuple[bool, str]:
        """Whether an idle Crew's model builds (the first check builds a Crew of the pool)."""
        with self._lock:
            if not self._crews:
                try:
                    self._crews.append(self._factory(self.settings))
                except Exception as exc:  # a Crew that cannot be built means not ready
                    return False, str(exc)
                self._idle.put(self._crews[-1])
        try:
            crew = self._idle.get_nowait()
        except queue.Empty:
            return True, f"all {len(self._crews)} crews busy running"
        try:
            return True, f"{type(crew.model).__name__} ready"
        except Exception as exc:  # any failure to build the model means not ready
            return False, str(exc)
        finally:
            self._idle.put(crew)


def _error_result(run: _Run, error: str) -> dict[str, Any]:
    return {"run_id": run.journal_run_id, "state": "error", "answer": None, "error": error, "steps": []}
