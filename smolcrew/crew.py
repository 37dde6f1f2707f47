"""The Crew: one object that routes a request, runs the agents and returns a structured result."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from smolcrew.config import Settings, load_settings
from smolcrew.errors import CrewClosedError, ModelUnavailableError, RunNotFoundError
from smolcrew.result import RunResult, RunState

if TYPE_CHECKING:
    from smolagents.memory import MemoryStep
    from smolagents.models import Model

    from smolcrew.agents.router import RoutePlan, Router
    from smolcrew.agents.team import Team
    from smolcrew.audit import AuditLog
    from smolcrew.gate import Decision, Gate
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.recorder import RunRecorder, ToolResults
    from smolcrew.memory.records import StepRecord
    from smolcrew.tools.files import Workspace
    from smolcrew.tools.pool import PipelinePool
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.human import ApprovalQueue

__all__ = ["ChatSession", "Crew", "RunResult"]


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _plain(value: Any) -> Any:
    """An answer as JSON can hold it (records and audit entries are JSON)."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _finished_delegations(records: Sequence[StepRecord]) -> list[Any]:
    """The answers of the router's delegations that finished, in order, up to the first that did not."""
    finals = {r.payload.get("parent"): r.payload.get("output") for r in records if r.kind == "final_answer"}
    answers = []
    for record in records:
        if record.kind == "delegation" and record.agent == "router":
            delegation = f"{record.run_id}:{record.seq}"
            if delegation not in finals:
                break
            answers.append(finals[delegation])
    return answers


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
        self._approvals: ApprovalQueue | None = None
        self._team: Team | None = None
        self._pool: PipelinePool | None = None
        self._workspace: Workspace | None = None
        self._mirror: Mirror | None = None
        self._stores = ExitStack()
        self._router: Router | None = None
        self._router_error: ModelUnavailableError | None = None
        self._closed = False
        self._lock = threading.RLock()

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
            from smolcrew.tools.pool import PipelinePool

            self._pool = PipelinePool(
                device=self.settings.device, overrides=self.settings.models, budget_mb=self.settings.pool.budget_mb
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

            self._mirror = open_mirror(self.settings, self._stores, self.pool)
        return self._mirror

    @property
    def audit(self) -> AuditLog:
        """The hash-chained audit log of every run (`<home>/audit`)."""
        if self._audit is None:
            from smolcrew.audit import AuditLog

            self._audit = AuditLog(self.settings.home / "audit")
        return self._audit

    @property
    def cascade(self) -> Cascade | None:
        """The validation cascade every answer passes (None when `validation.enabled` is false)."""
        validation = self.settings.validation
        if self._cascade is None and validation.enabled:
            from smolcrew.validators.cascade import Cascade

            model = self.model if validation.judge == "llm" else None
            self._cascade = Cascade.from_settings(validation, model=model, pool=self.pool)
        return self._cascade

    @property
    def approvals(self) -> ApprovalQueue:
        """The queue of answers waiting for a person (Redis), opened on first use.

        Raises:
            ApprovalUnavailableError: Redis does not answer at `services.redis_url`.
        """
        self._check_open()
        if self._approvals is None:
            from smolcrew.validators.human import ApprovalQueue

            opened = ApprovalQueue.from_url(self.settings.services.redis_url, namespace=self.settings.memory.namespace)
            self._approvals = self._stores.enter_context(opened)
        return self._approvals

    def _gate(self, cascade: Cascade | None) -> Gate:
        from smolcrew.gate import Gate

        return Gate(cascade, lambda: self.approvals, self.audit, wait_s=self.settings.validation.approval_timeout_s)

    @property
    def team(self) -> Team:
        self._check_open()
        if self._team is None:
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
            from smolcrew.agents.router import Router, llm_chooser
            from smolcrew.agents.specialists import SPECIALISTS, load_examples

            descriptions = {name: spec.description for name, spec in SPECIALISTS.items()}
            try:
                encoder = self.pool.get("embeddings")
            except ModelUnavailableError as exc:
                self._router_error = exc
                raise
            routing = self.settings.routing
            chooser = None
            if routing.use_llm and self.settings.llm.backend != "scripted":
                chooser = llm_chooser(self.model, descriptions)
            self._router = Router(
                lambda texts: encoder.encode(texts, normalize_embeddings=True, batch_size=32),
                descriptions,
                load_examples(),
                tools={name: spec.tool_names() for name, spec in SPECIALISTS.items()},
                choose=chooser,
                margin=routing.confidence_margin,
                cache_dir=self.settings.cache_dir,
                embedder_id=self.pool.model_for("embeddings"),
            )
        return self._router

    def route(self, request: str) -> RoutePlan:
        """Which specialists and tools would handle `request`, with scores. Runs no tool."""
        return self.router.route(request)

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
        """
        if not task or not task.strip():
            raise ValueError("the task is empty: say what the crew should do")
        with self._lock:
            self._check_open()
            from smolcrew.memory.recorder import RunRecorder

            run_id = run_id or uuid.uuid4().hex[:16]
            if not _SAFE_ID.match(run_id):
                raise ValueError(f"run id {run_id!r}: use 1-64 letters, digits or _.:- characters")
            recorder = RunRecorder(
                run_id,
                known=self.team.known_names(),
                listeners=self._listeners(on_step),
                conversation_id=conversation_id,
                on_tool_call=lambda call: self.audit.append(run_id, "tool_call", call.to_dict()),
                tool_results=tool_results,
            )
            return self._run(recorder, task.strip(), list(images), max_steps, context, history, cascade)

    def _listeners(self, on_step: Callable[[StepRecord], None] | None) -> list[Callable[[StepRecord], None]]:
        def audit(record: StepRecord) -> None:
            if record.kind != "run_end":  # the run_end record carries the audit head: it seals the log
                self.audit.record(record)

        return [listener for listener in (on_step, self.mirror, audit) if listener is not None]

    def _plan(self, task: str) -> RoutePlan | None:
        try:
            return self.route(task)
        except ModelUnavailableError:
            if self.settings.routing.mode == "router":
                raise
            return None  # no embeddings here: the manager routes alone

    def _run(
        self,
        recorder: RunRecorder,
        task: str,
        images: list[Any],
        max_steps: int | None,
        context: str | None,
        history: Sequence[StepRecord],
        cascade: Cascade | None,
        *,
        resumed: Sequence[StepRecord] = (),
    ) -> RunResult:
        from smolagents.utils import AgentError

        from smolcrew.memory.restore import agent_steps, transcript

        started = time.perf_counter()
        team = self.team
        plan = self._plan(task)
        mode = self.settings.routing.mode
        direct = plan is not None and (mode == "router" or (mode == "auto" and plan.confident))
        if history and direct and context is None:
            context = transcript(history)
        memory = agent_steps([*history, *resumed]) if (history or resumed) and not direct else None
        prompt = task if context is None else f"{context}\n\nNow: {task}"
        if plan is not None and not direct:
            prompt += "\n\n" + plan.hint()
        cascade = cascade or self.cascade
        self._add_answer_checks(recorder, task, cascade, plan.specialists if direct and plan else ["manager"])
        if not resumed:
            start = {"task": task, "prompt": prompt, "mode": "router" if direct else "manager", "max_steps": max_steps}
            recorder.mark("run_start", {**start, "plan": plan.to_dict() if plan else None})
        self.workspace.run_id = recorder.run_id
        written_before = len(self.workspace.written)
        answer: Any = None
        state: RunState = "success"
        error: str | None = None
        with team.slot.recording(recorder):
            try:
                if direct and plan is not None:
                    answer, state = self._dispatch(plan, recorder, images, context, resumed)
                else:
                    answer, state = self._manage(prompt, recorder, images, max_steps, memory, bool(resumed))
            except (AgentError, ModelUnavailableError) as exc:
                state, error = "error", str(exc)
        decision = self._gate(cascade).judge(
            recorder.run_id, task, answer, state, recorder.records, recorder.tool_calls
        )
        if error is not None:
            decision = dataclasses.replace(decision, error=error)
        written = tuple(str(path) for path in self.workspace.written[written_before:] if path.exists())
        return self._finish(recorder, decision, "router" if direct else "manager", plan, started, answer, written)

    def _add_answer_checks(
        self, recorder: RunRecorder, task: str, cascade: Cascade | None, answering: Sequence[str]
    ) -> None:
        """Let the agents correct a rejected answer themselves (bounded retries) before the final gate."""
        if cascade is None and not self.specialist_cascades:
            return
        from smolcrew.validators.correct import final_answer_check
        from smolcrew.validators.verdict import Evidence

        def evidence_for(answer: Any) -> Evidence:
            return Evidence.from_records(task, answer, recorder.records, recorder.tool_calls)

        retries = self.settings.validation.max_retries
        chosen = {name: cascade for name in answering} if cascade is not None else {}
        for name, own in {**chosen, **self.specialist_cascades}.items():
            recorder.answer_checks[name] = final_answer_check(own, evidence_for, retries)

    def _finish(
        self,
        recorder: RunRecorder,
        decision: Decision,
        mode: Literal["manager", "router"],
        plan: RoutePlan | None,
        started: float,
        candidate: Any,
        artifacts: tuple[str, ...],
    ) -> RunResult:
        """Seal the run: its final audit entry, then a `run_end` record carrying the audit head."""
        run_id = recorder.run_id
        final = {"state": decision.state, "answer": _plain(decision.answer), "error": decision.error}
        self.audit.append(run_id, "final", final)
        head = self.audit.head(run_id)
        end = {
            **final,
            "candidate": _plain(candidate) if decision.state == "pending_approval" else None,
            "verdicts": list(decision.verdicts),
            "approval_id": decision.approval_id,
            "audit_head": head,
            "mode": mode,
        }
        recorder.mark("run_end", end)
        result = self._result(recorder.records, started, plan)
        return dataclasses.replace(result, artifacts=artifacts, warnings=tuple(recorder.listener_errors))

    def _dispatch(
        self,
        plan: RoutePlan,
        recorder: RunRecorder,
        images: list[Any],
        context: str | None,
        resumed: Sequence[StepRecord] = (),
    ) -> tuple[Any, RunState]:
        done = _finished_delegations(resumed)
        answer: Any = None
        previous: str | None = None
        with recorder.agent("router"):
            for number, step in enumerate(plan.steps):
                if number < len(done):  # finished before the run stopped: keep its answer
                    answer, previous = done[number], step.specialist
                    continue
                agent = self.team.specialists[step.specialist]
                task = step.task if context is None else f"{context}\n\nNow: {step.task}"
                if previous is not None:
                    task += f"\n\nResult of the previous step ({previous}): {answer}"
                with recorder.delegation(step.specialist, task):
                    result = agent.run(task, images=images or None, return_full_result=True)
                if result.state == "max_steps_error":
                    return None, "max_steps_error"
                answer, previous = result.output, step.specialist
        return answer, "success"

    def _manage(
        self,
        prompt: str,
        recorder: RunRecorder,
        images: list[Any],
        max_steps: int | None,
        memory: list[MemoryStep] | None,
        resuming: bool,
    ) -> tuple[Any, RunState]:
        manager = self.team.manager
        with recorder.agent("manager"):
            if memory is None:
                result = manager.run(prompt, images=images or None, max_steps=max_steps, return_full_result=True)
            else:
                manager.memory.reset()
                manager.memory.steps = list(memory)
                task = "Continue the task above from where it stopped." if resuming else prompt
                result = manager.run(
                    task, images=images or None, max_steps=max_steps, reset=False, return_full_result=True
                )
        return result.output, result.state

    def _result(self, records: Sequence[StepRecord], started: float | None, plan: RoutePlan | None) -> RunResult:
        """A RunResult from a run's records (its `run_end` gives the state and answer)."""
        run_id = records[0].run_id
        end = next((r.payload for r in reversed(records) if r.kind == "run_end"), {})
        delegations = [(r.agent, r.payload["to"], r.payload["task"]) for r in records if r.kind == "delegation"]
        skip = set(self.team.specialists) | {"final_answer"}
        tools = [name for r in records for name in r.payload.get("calls", []) if name not in skip]
        first, last = records[0].ts, records[-1].ts
        return RunResult(
            answer=end.get("answer"),
            run_id=run_id,
            state=end.get("state", "error"),
            mode=end.get("mode", "manager"),
            agents=_unique([to for _, to, _ in delegations]),
            tools=_unique(tools),
            delegations=tuple(delegations),
            steps=tuple(records),
            input_tokens=sum(int(r.payload.get("input_tokens") or 0) for r in records),
            output_tokens=sum(int(r.payload.get("output_tokens") or 0) for r in records),
            duration_s=time.perf_counter() - started if started is not None else last - first,
            route=plan,
            error=end.get("error"),
            verdicts=tuple(end.get("verdicts") or ()),
            approval_id=end.get("approval_id"),
            audit_head=end.get("audit_head"),
        )

    def _journal_records(self, run_id: str) -> list[StepRecord]:
        if self.mirror is None:
            raise RunNotFoundError(f"run {run_id!r}: memory is off (`memory.enabled`), so no run is journaled")
        try:
            records = self.mirror.journal.read(run_id)
        except ValueError:
            records = []
        if not records:
            raise RunNotFoundError(f"no run {run_id!r} in {self.mirror.journal.folder}; see `smolcrew runs list`")
        return records

    def resume(self, run_id: str, *, on_step: Callable[[StepRecord], None] | None = None) -> RunResult:
        """Finish a run from its journal: settle a pending approval, or continue a run that stopped half-way
        (the manager continues with its recorded memory; in router mode, finished steps are kept). A run that
        already ended is returned as it was.

        Raises:
            RunNotFoundError: no journal for `run_id`.
        """
        with self._lock:
            self._check_open()
            from smolcrew.memory.recorder import RunRecorder

            records = self._journal_records(run_id)
            start = next((r for r in records if r.kind == "run_start"), None)
            end = next((r for r in reversed(records) if r.kind == "run_end"), None)
            if start is None:
                raise RunNotFoundError(f"run {run_id!r} has no run_start record (an older smolcrew made it)")
            if end is not None and end.payload.get("state") != "pending_approval":
                return self._result(records, None, None)
            recorder = RunRecorder(
                run_id,
                known=self.team.known_names(),
                listeners=self._listeners(on_step),
                conversation_id=start.payload.get("conversation_id"),
                on_tool_call=lambda call: self.audit.append(run_id, "tool_call", call.to_dict()),
                records=records,
            )
            if end is None:
                return self._run(recorder, start.payload["task"], [], None, None, (), None, resumed=records)
            started = time.perf_counter()
            approval = self.approvals.get(str(end.payload["approval_id"]))
            verdicts = tuple(end.payload.get("verdicts") or ())
            decision = self._gate(self.cascade).settle(run_id, approval, end.payload.get("candidate"), verdicts)
            return self._finish(recorder, decision, end.payload.get("mode", "manager"), None, started, None, ())

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
                session.turns.append((str(start.payload.get("task")), self._result(records, None, None)))
        return session


@dataclass
class ChatSession:
    """Several turns with one Crew. Each turn continues from the earlier ones: in manager mode the manager keeps
    its memory of them (smolagents `reset=False`); in router mode the specialists get a transcript of the last
    `keep` turns. `Crew.chat(conversation_id)` picks a conversation up again from the journal."""

    crew: Crew
    keep: int = 6
    turns: list[tuple[str, RunResult]] = field(default_factory=list)
    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __repr__(self) -> str:
        return f"ChatSession({self.conversation_id!r}, {len(self.turns)} turns)"

    def history(self) -> list[StepRecord]:
        """The step records of the last `keep` turns."""
        return [record for _, result in self.turns[-self.keep :] for record in result.steps]

    def send(self, message: str, **kwargs: Any) -> RunResult:
        """Run one turn; the result joins the conversation."""
        result = self.crew.run(message, conversation_id=self.conversation_id, history=self.history(), **kwargs)
        self.turns.append((message, result))
        return result

    def reset(self) -> None:
        self.turns.clear()
