"""The Crew: one object that routes a request, runs the agents and returns a structured result."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from smolcrew.config import Settings, load_settings
from smolcrew.errors import AnswerRejected, CrewClosedError, ModelUnavailableError

if TYPE_CHECKING:
    from smolagents.models import Model

    from agents.router import RoutePlan, Router
    from agents.team import Team
    from memory.mirror import Mirror
    from memory.records import StepRecord
    from tools.files import Workspace
    from tools.pool import PipelinePool

__all__ = ["ChatSession", "Crew", "RunResult"]

RunState = Literal["success", "max_steps_error", "error"]


@dataclass(frozen=True)
class RunResult:
    """What one run produced and how.

    `answer` is None unless `state` is "success": a run that ran out of steps or failed has no answer.
    """

    answer: Any
    run_id: str
    state: RunState
    mode: Literal["manager", "router"]
    agents: tuple[str, ...]
    """Specialists that were delegated to, in order (repeats removed)."""
    tools: tuple[str, ...]
    """Tools the agents called, in order (repeats removed)."""
    delegations: tuple[tuple[str, str, str], ...]
    """(from, to, task) for each delegation."""
    steps: tuple[StepRecord, ...]
    input_tokens: int
    output_tokens: int
    duration_s: float
    route: RoutePlan | None = None
    error: str | None = None
    artifacts: tuple[str, ...] = ()
    """Files the tools wrote during the run (under `<home>/runs/<run_id>/artifacts/`)."""
    warnings: tuple[str, ...] = ()
    """Problems that did not stop the run (e.g. a step listener that failed)."""

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def raise_for_state(self) -> RunResult:
        """Return self when the run succeeded, else raise AnswerRejected with the reason."""
        if not self.ok:
            raise AnswerRejected((self.error or self.state,), run_id=self.run_id)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer if isinstance(self.answer, (str, int, float, bool, type(None))) else str(self.answer),
            "run_id": self.run_id,
            "state": self.state,
            "mode": self.mode,
            "agents": list(self.agents),
            "tools": list(self.tools),
            "delegations": [{"from": a, "to": b, "task": t} for a, b, t in self.delegations],
            "steps": [step.to_dict() for step in self.steps],
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "duration_s": round(self.duration_s, 3),
            "route": self.route.to_dict() if self.route else None,
            "error": self.error,
            "artifacts": list(self.artifacts),
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        answer = repr(self.answer)
        answer = answer if len(answer) < 60 else answer[:57] + "..."
        return (
            f"RunResult({self.state}, answer={answer}, agents={list(self.agents)}, tools={list(self.tools)}, "
            f"steps={len(self.steps)}, tokens={self.input_tokens}+{self.output_tokens}, {self.duration_s:.2f}s)"
        )


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class Crew:
    """The manager, its specialists, the router and the pipeline pool, built from settings.

    Use `Crew.from_config()`; `run()` one request or `chat()` for several turns; `close()` when done
    (or use it as a context manager). One run at a time: concurrent calls wait their turn.
    """

    def __init__(self, settings: Settings, *, model: Model | None = None) -> None:
        self.settings = settings
        self._model = model
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
    def from_config(cls, path: str | Path | None = None, *, model: Model | None = None, **overrides: Any) -> Crew:
        """Build a Crew from config (see `load_settings`). `model` replaces the configured LLM backend."""
        return cls(load_settings(path, **overrides), model=model)

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
            from tools.pool import PipelinePool

            self._pool = PipelinePool(
                device=self.settings.device, overrides=self.settings.models, budget_mb=self.settings.pool.budget_mb
            )
        return self._pool

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from tools.files import Workspace

            self._workspace = Workspace(self.settings.home / "runs")
        return self._workspace

    @property
    def mirror(self) -> Mirror | None:
        """The memory mirror (journal + stores), opened on first use; None when `memory.enabled` is false."""
        self._check_open()
        if self._mirror is None and self.settings.memory.enabled:
            from memory.stores import open_mirror

            self._mirror = open_mirror(self.settings, self._stores, self.pool)
        return self._mirror

    @property
    def team(self) -> Team:
        self._check_open()
        if self._team is None:
            from agents.team import build_team

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
            from agents.router import Router, llm_chooser
            from agents.specialists import SPECIALISTS, load_examples

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
    ) -> RunResult:
        """Run one request to its end.

        Args:
            task: what the user asks.
            images: PIL images handed to the agents with the task.
            max_steps: the manager's step budget for this run (default: config `agents.max_steps`).
            on_step: called with each step record as it happens (live progress).
            context: earlier conversation, prepended to the task (see `chat()`).
            conversation_id: stamped on every step record of the run (set by `chat()`).
        """
        if not task or not task.strip():
            raise ValueError("the task is empty: say what the crew should do")
        with self._lock:
            self._check_open()
            listeners = [listener for listener in (on_step, self.mirror) if listener is not None]
            return self._run(task.strip(), list(images), max_steps, listeners, context, conversation_id)

    def _plan(self, task: str) -> RoutePlan | None:
        try:
            return self.route(task)
        except ModelUnavailableError:
            if self.settings.routing.mode == "router":
                raise
            return None  # no embeddings here: the manager routes alone

    def _run(
        self,
        task: str,
        images: list[Any],
        max_steps: int | None,
        listeners: list[Callable[[StepRecord], None]],
        context: str | None,
        conversation_id: str | None,
    ) -> RunResult:
        from smolagents.utils import AgentError

        from memory.recorder import RunRecorder

        started = time.perf_counter()
        run_id = uuid.uuid4().hex[:16]
        team = self.team
        plan = self._plan(task)
        mode = self.settings.routing.mode
        direct = plan is not None and (mode == "router" or (mode == "auto" and plan.confident))
        recorder = RunRecorder(run_id, known=team.known_names(), listeners=listeners, conversation_id=conversation_id)
        self.workspace.run_id = run_id
        written_before = len(self.workspace.written)
        answer: Any = None
        state: RunState = "success"
        error: str | None = None
        with team.slot.recording(recorder):
            try:
                if direct and plan is not None:
                    answer, state = self._dispatch(plan, recorder, images, context)
                else:
                    answer, state = self._manage(task, plan, recorder, images, max_steps, context)
            except (AgentError, ModelUnavailableError) as exc:
                state, error = "error", str(exc)
        if state == "max_steps_error":
            error = error or "the crew used all its steps without a validated answer"
            answer = None
        result = self._result(answer, run_id, state, "router" if direct else "manager", recorder, started, plan, error)
        written = tuple(str(path) for path in self.workspace.written[written_before:] if path.exists())
        return dataclasses.replace(result, artifacts=written, warnings=tuple(recorder.listener_errors))

    def _dispatch(self, plan: RoutePlan, recorder: Any, images: list[Any], context: str | None) -> tuple[Any, RunState]:
        answer: Any = None
        previous: str | None = None
        with recorder.agent("router"):
            for step in plan.steps:
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
        task: str,
        plan: RoutePlan | None,
        recorder: Any,
        images: list[Any],
        max_steps: int | None,
        context: str | None,
    ) -> tuple[Any, RunState]:
        prompt = task if context is None else f"{context}\n\nNow: {task}"
        if plan is not None:
            prompt += "\n\n" + plan.hint()
        with recorder.agent("manager"):
            result = self.team.manager.run(prompt, images=images or None, max_steps=max_steps, return_full_result=True)
        return result.output, result.state

    def _result(
        self,
        answer: Any,
        run_id: str,
        state: RunState,
        mode: Literal["manager", "router"],
        recorder: Any,
        started: float,
        plan: RoutePlan | None,
        error: str | None,
    ) -> RunResult:
        records: list[StepRecord] = recorder.records
        delegations = recorder.delegations()
        specialists = set(self.team.specialists)
        skip = specialists | {"final_answer"}
        tools = [name for r in records for name in r.payload.get("calls", []) if name not in skip]
        return RunResult(
            answer=answer,
            run_id=run_id,
            state=state,
            mode=mode,
            agents=_unique([to for _, to, _ in delegations]),
            tools=_unique(tools),
            delegations=tuple(delegations),
            steps=tuple(records),
            input_tokens=sum(int(r.payload.get("input_tokens") or 0) for r in records),
            output_tokens=sum(int(r.payload.get("output_tokens") or 0) for r in records),
            duration_s=time.perf_counter() - started,
            route=plan,
            error=error,
        )

    def chat(self) -> ChatSession:
        """A multi-turn conversation: each turn sees the earlier turns."""
        self._check_open()
        return ChatSession(self)


@dataclass
class ChatSession:
    """Several turns with one Crew. Each turn's task carries the conversation so far (last `keep` turns)."""

    crew: Crew
    keep: int = 6
    turns: list[tuple[str, RunResult]] = field(default_factory=list)
    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __repr__(self) -> str:
        return f"ChatSession({self.conversation_id!r}, {len(self.turns)} turns)"

    def context(self) -> str | None:
        if not self.turns:
            return None
        lines = ["Conversation so far:"]
        for message, result in self.turns[-self.keep :]:
            lines.append(f"User: {message}")
            lines.append(f"Assistant: {result.answer if result.ok else '(no answer: ' + result.state + ')'}")
        return "\n".join(lines)

    def send(self, message: str, **kwargs: Any) -> RunResult:
        """Run one turn; the result joins the conversation."""
        result = self.crew.run(message, context=self.context(), conversation_id=self.conversation_id, **kwargs)
        self.turns.append((message, result))
        return result

    def reset(self) -> None:
        self.turns.clear()
