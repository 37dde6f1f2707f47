"""The Crew: one object that routes a request, runs the agents and returns a structured result.

The facade: the crew's parts, built on first use (model, pool, team, router, memory, audit log, approval queue),
and its public methods. A run's lifecycle (dispatch, the final gate, sealing, resuming) is in smolcrew/run.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.config import Settings, load_settings
from smolcrew.conversation import ChatSession
from smolcrew.errors import CrewClosedError, ModelUnavailableError
from smolcrew.result import RunResult
from smolcrew.run import resume_run, run_result, start_run
from smolcrew.tools.spaced_names import without_spaces

if TYPE_CHECKING:
    from smolagents.models import Model

    from smolcrew.agents.replies import ReplyDetector
    from smolcrew.agents.router import RoutePlan, Router
    from smolcrew.agents.team import Team
    from smolcrew.audit import AuditLog
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.recorder import ToolResults
    from smolcrew.memory.records import StepRecord
    from smolcrew.pool import PipelinePool
    from smolcrew.receipts import Receipts
    from smolcrew.tools.files import Workspace
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.human import ApprovalQueue

__all__ = ["Crew", "RunResult"]


class Crew:
    """The manager, its specialists, the router and the pipeline pool, built from settings.

    Use `Crew.from_config()`; `run()` one request or `chat()` for several turns; `close()` when done
    (or use it as a context manager). One run at a time: concurrent calls wait their turn.

    Args:
        settings: see `load_settings`.
        model: replaces the configured LLM backend.
        cascade: the validation cascade for every run (default: built from `settings.validation`).
        specialist_cascades: a cascade of its own for some specialists' answers, by specialist name.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        model: Model | None = None,
        cascade: Cascade | None = None,
        specialist_cascades: dict[str, Cascade] | None = None,
    ) -> None:
        self.settings = settings
        self._model = model
        self._cascade = cascade
        self.specialist_cascades = dict(specialist_cascades or {})
        self._audit: AuditLog | None = None
        self._receipts: Receipts | None = None
        self._approvals: ApprovalQueue | None = None
        self._team: Team | None = None
        self._pool: PipelinePool | None = None
        self._workspace: Workspace | None = None
        self._mirror: Mirror | None = None
        self._stores = ExitStack()
        self._router: Router | None = None
        self._router_error: ModelUnavailableError | None = None
        self._replies: ReplyDetector | None = None
        self._closed = False
        self._lock = threading.RLock()
        start = Path.cwd()
        self.file_roots: tuple[Path, ...] = tuple(
            dict.fromkeys([start, *(start / root for root in settings.files.roots), settings.home / "runs"])
        )
        """The folders a run's tools may read by default: the current directory at crew start, `files.roots`
        and the workspace (`<home>/runs`: what runs wrote). `run(file_roots=...)` sets others for one run."""
        self._roots = self.file_roots

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        *,
        model: Model | None = None,
        cascade: Cascade | None = None,
        **overrides: Any,
    ) -> Crew:
        """Build a Crew from config (see `load_settings`). `model` replaces the configured LLM backend."""
        return cls(load_settings(path, **overrides), model=model, cascade=cascade)

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Crew(backend={self.settings.llm.backend!r}, mode={self.settings.routing.mode!r}, {state})"

    def close(self) -> None:
        """Flush the memory stores, release models and connections. Idempotent."""
        with self._lock:
            self._closed = True
            self._stores.close()
            self._mirror = None
            self._approvals = None
            if self._pool is not None:
                self._pool.clear()
            if self._team is not None:
                for agent in (self._team.manager, *self._team.specialists.values()):
                    agent.cleanup()  # stops the agent's code sandbox
            self._team = None
            self._model = None

    def _check_open(self) -> None:
        if self._closed:
            raise CrewClosedError("this Crew is closed; build a new one with Crew.from_config()")

    @property
    def model(self) -> Model:
        self._check_open()
        if self._model is None:
            from smolcrew.backends import build_model

            self._model = build_model(self.settings)
        return self._model

    @property
    def pool(self) -> PipelinePool:
        if self._pool is None:
            from smolcrew.pool import PipelinePool

            cluster = self.settings.cluster
            remote = {}
            if cluster.engine == "ray" and cluster.deployments:
                from smolcrew.deployments import remote_pipelines

                remote = remote_pipelines(self.settings)
            self._pool = PipelinePool(
                device=self.settings.device,
                overrides=self.settings.models,
                budget_mb=self.settings.pool.budget_mb,
                threads=self.settings.pool.threads,
                remote=remote,
            )
        return self._pool

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from smolcrew.tools.files import Workspace

            self._workspace = Workspace(self.settings.home / "runs")
        return self._workspace

    @property
    def mirror(self) -> Mirror | None:
        """The memory mirror (journal + stores), opened on first use; None when `memory.enabled` is false."""
        self._check_open()
        if self._mirror is None and self.settings.memory.enabled:
            from smolcrew.memory.stores import open_mirror

            self._mirror = open_mirror(self.settings, self._stores)
        return self._mirror

    @property
    def audit(self) -> AuditLog:
        """The hash-chained audit log of every run (`<home>/audit`)."""
        if self._audit is None:
            from smolcrew.audit import AuditLog

            self._audit = AuditLog(self.settings.home / "audit")
        return self._audit

    @property
    def receipts(self) -> Receipts:
        """The home's audit signing key (`<home>/keys`, made on first use): it signs each run's head when sealed."""
        if self._receipts is None:
            from smolcrew.receipts import Receipts

            self._receipts = Receipts(self.settings.home / "keys")
        return self._receipts

    @property
    def cascade(self) -> Cascade | None:
        """The validation cascade every answer passes (None when `validation.enabled` is false)."""
        validation = self.settings.validation
        if self._cascade is None and validation.enabled:
            from smolcrew.validators.cascade import Cascade

            model = self.model if validation.judge in ("llm", "llm_claims") else None
            self._cascade = Cascade.from_settings(
                validation, model=model, pool=self.pool, cache_dir=self.settings.cache_dir
            )
        return self._cascade

    @property
    def approvals(self) -> ApprovalQueue:
        """The queue of answers waiting for a person, opened on first use: the home's approval journal, indexed in
        Redis (`services.redis_url`), which is rebuilt from the journal when its first call finds it gone."""
        self._check_open()
        if self._approvals is None:
            from smolcrew.validators.journaled import JournaledApprovalQueue

            opened = JournaledApprovalQueue.from_settings(self.settings)
            self._approvals = self._stores.enter_context(opened)
        return self._approvals

    @property
    def team(self) -> Team:
        self._check_open()
        if self._team is None:
            from smolcrew.agents.sandbox import executors_for
            from smolcrew.agents.team import build_team

            agents = self.settings.agents
            self._team = build_team(
                self.model,
                self.pool,
                self.workspace,
                max_steps=agents.max_steps,
                specialist_max_steps=agents.specialist_max_steps,
                planning_interval=agents.planning_interval,
                verbosity=agents.verbosity,
                memory=self.mirror,
                roots=self._roots,
                executor=executors_for(self.settings.sandbox, self.workspace.root, self.settings.home),
            )
        return self._team

    @property
    def router(self) -> Router:
        """The semantic router (loads the embedding model on first use).

        Raises:
            ModelUnavailableError: the embedding model or its packages are missing.
        """
        self._check_open()
        if self._router is None:
            if self._router_error is not None:
                raise self._router_error
            from smolcrew.agents.chooser import llm_chooser
            from smolcrew.agents.planner_train import load_planner
            from smolcrew.agents.router import Router
            from smolcrew.agents.specialists import SPECIALISTS

            try:
                encoder = self.pool.get("embeddings")
            except ModelUnavailableError as exc:
                self._router_error = exc
                raise
            routing = self.settings.routing
            chooser = None
            if routing.use_llm and self.settings.llm.backend != "scripted":
                chooser = llm_chooser(self.model, {name: spec.description for name, spec in SPECIALISTS.items()})
            self._router = Router.for_specialists(
                lambda texts: encoder.encode(texts, normalize_embeddings=True, batch_size=32),
                choose=chooser,
                planner=load_planner(self.settings.cache_dir) if routing.planner == "learned" else None,
                margin=routing.confidence_margin,
                cache_dir=self.settings.cache_dir,
                embedder_id=self.pool.model_for("embeddings"),
            )
        return self._router

    def route(self, request: str) -> RoutePlan:
        """Which specialists and tools would handle `request`, with scores. Runs no tool."""
        return self.router.route(request)

    def wants_reply(self, request: str, stated: Sequence[str] = ()) -> bool:
        """Whether `request` wants a reply from the conversation rather than a tool (agents/replies.py; `stated`:
        the facts the user stated earlier); False in manager mode (the manager answers everything itself) and
        when the router's embeddings are missing."""
        detector = self._reply_detector()
        return detector is not None and detector(request, stated)

    def recall(self, message: str, said: list[str], k: int = 2) -> list[str]:
        """The `k` things the user `said` earlier that bear most on `message`, by meaning ([] as for
        `wants_reply`)."""
        detector = self._reply_detector()
        return detector.nearest(message, said, k) if detector is not None else []

    def _reply_detector(self) -> ReplyDetector | None:
        if self.settings.routing.mode == "manager":
            return None
        if self._replies is None:
            from smolcrew.agents.replies import ReplyDetector

            try:
                router = self.router
            except ModelUnavailableError:
                return None
            self._replies = ReplyDetector(router.embed, router)
        return self._replies

    def run(
        self,
        task: str,
        *,
        images: Sequence[Any] = (),
        max_steps: int | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
        context: str | None = None,
        conversation_id: str | None = None,
        history: Sequence[StepRecord] = (),
        cascade: Cascade | None = None,
        tool_results: ToolResults | None = None,
        run_id: str | None = None,
        file_roots: Sequence[str | Path] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> RunResult:
        """Run one request to its end; its answer passes the validation cascade before it is returned.

        Args:
            task: what the user asks.
            images: PIL images handed to the agents with the task.
            max_steps: the manager's step budget for this run (default: config `agents.max_steps`).
            on_step: called with each step record as it happens (live progress).
            context: earlier conversation, prepended to the task.
            conversation_id: stamped on every step record of the run (set by `chat()`).
            history: step records of earlier turns of the conversation: the manager continues with its memory
                of them (smolagents `reset=False`); a router-mode run gets them as a transcript.
            cascade: validate this run's answer with these checks instead of the crew's.
            tool_results: recorded tool results to use instead of calling the tools (see smolcrew/replay.py).
            run_id: the run's id (letters, digits, `_.:-`; default: a fresh random one); a caller that must
                know it before the run starts (the HTTP service) passes its own.
            file_roots: the only folders this run's tools may read files from, besides the run's own workspace
                folder (default: `self.file_roots`, the current directory at crew start plus `files.roots`); the
                HTTP service passes the conversation's uploads and outputs.
            cancelled: asked after each step; once it returns True the run stops there and ends `cancelled`.
        """
        if not task or not task.strip():
            raise ValueError("the task is empty: say what the crew should do")
        with self._lock:
            self._check_open()
            self._use_roots(file_roots)
            return start_run(
                self,
                without_spaces(task.strip(), self._roots, self.settings.home / "runs" / "links"),
                images=images,
                max_steps=max_steps,
                on_step=on_step,
                context=context,
                conversation_id=conversation_id,
                history=history,
                cascade=cascade,
                tool_results=tool_results,
                run_id=run_id,
                cancelled=cancelled,
            )

    def resume(
        self,
        run_id: str,
        *,
        on_step: Callable[[StepRecord], None] | None = None,
        file_roots: Sequence[str | Path] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> RunResult:
        """Finish a run from its journal: settle a pending approval, or continue a run that stopped half-way
        (the manager continues with its recorded memory; in router mode, finished steps are kept). A run that
        already ended is returned as it was. `file_roots`, `cancelled`: as for `run`.

        Raises:
            RunNotFoundError: no journal for `run_id`.
        """
        with self._lock:
            self._check_open()
            self._use_roots(file_roots)
            return resume_run(self, run_id, on_step=on_step, cancelled=cancelled)

    def _use_roots(self, file_roots: Sequence[str | Path] | None) -> None:
        """Bind the folders the next run's tools may read (the team's tools keep them until the next run)."""
        self._roots = self.file_roots if file_roots is None else tuple(Path(root).expanduser() for root in file_roots)
        if self._team is not None:  # else the team is built with them, when the run first needs it
            self._team.use_roots(self._roots)

    def chat(self, conversation_id: str | None = None) -> ChatSession:
        """A multi-turn conversation: each turn sees the earlier turns. With `conversation_id`, the turns
        journaled under that id (by this or an earlier process) are picked up again."""
        self._check_open()
        if conversation_id is None:
            return ChatSession(self)
        session = ChatSession(self, conversation_id=conversation_id)
        journal = self.mirror.journal if self.mirror is not None else None
        for run_id in journal.runs() if journal is not None else []:
            records = journal.read(run_id) if journal is not None else []
            start = records[0] if records and records[0].kind == "run_start" else None
            if start is not None and start.payload.get("conversation_id") == conversation_id:
                session.turns.append((str(start.payload.get("task")), run_result(self, records)))
        return session
