"""Builds the manager CodeAgent and its specialist agents from one model and one pipeline pool."""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from smolagents import CodeAgent, Tool
from smolagents.local_python_executor import PythonExecutor
from smolagents.memory import ActionStep, FinalAnswerStep, PlanningStep
from smolagents.models import Model
from smolagents.monitoring import LogLevel

from smolcrew.agents.dispatch import Embedder, file_kinds, files_named, nearest_tools
from smolcrew.agents.sandbox import SandboxedExecutor
from smolcrew.agents.specialist_model import specialist_model
from smolcrew.agents.specialists import SPECIALISTS, Specialist
from smolcrew.memory.mirror import Mirror
from smolcrew.memory.recorder import RecorderSlot
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import Workspace
from smolcrew.validators.rules import require_answer

__all__ = ["ExecutorFactory", "FreshCodeAgent", "SpecialistAgent", "SpecialistOutOfSteps", "Team", "build_team"]

ExecutorFactory = Callable[[], PythonExecutor]
"""Makes the executor of one agent's code (agents/sandbox.py's `SandboxedExecutor`); None: smolagents' own."""

MANAGER_INSTRUCTIONS = """You are the manager of a crew of specialists. You never do their work yourself:
call the specialist whose description fits, as a function with a `task` string that says everything it needs,
for example `answer = vision(task="Count the cars in lot.jpg and give the number.")`, then finish with
`final_answer(answer)`. For work in several parts, call the specialists one after the other and pass each
one the previous result inside its task. A request may come with the router's plan: follow it unless it is
clearly wrong."""

_LOG_LEVELS = {0: LogLevel.OFF, 1: LogLevel.INFO, 2: LogLevel.DEBUG}


@cache
def compact_prompts() -> dict[str, Any]:
    """smolagents' CodeAgent prompts with a short system prompt that small local models follow: one
    thought line, one code block, few-shot examples that end in final_answer, no notional tools."""
    defaults = importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text()
    templates: dict[str, Any] = yaml.safe_load(defaults)
    templates["system_prompt"] = (Path(__file__).parent / "prompts" / "compact_system.jinja").read_text()
    return templates


class SpecialistOutOfSteps(RuntimeError):
    """Raised into the manager's code when a specialist used all its steps without an answer."""


class FreshCodeAgent(CodeAgent):
    """A CodeAgent whose code starts each new run with no variables: smolagents keeps the executor's variables
    from run to run, so `result` from one user's run would otherwise be readable in the next."""

    def run(self, task: str, *args: Any, reset: bool = True, **kwargs: Any) -> Any:
        if reset:
            self.state: dict[str, Any] = {}
            executor_state = getattr(self.python_executor, "state", None)
            if isinstance(self.python_executor, SandboxedExecutor):
                self.python_executor.reset()
            elif isinstance(executor_state, dict):
                executor_state.clear()
                executor_state["__name__"] = "__main__"
        return super().run(task, *args, reset=reset, **kwargs)


class SpecialistAgent(FreshCodeAgent):
    """A CodeAgent that the manager calls by name; records the delegation and never passes off a
    max-steps fallback as an answer."""

    slot: RecorderSlot | None = None
    missing: tuple[type[Tool], ...] = ()
    """Its tools whose models cannot load here (not offered to the model)."""
    embed: Embedder | None = None

    def lacking(self, task: str) -> type[Tool] | None:
        """The missing tool nearest `task`, when it is nearer than every tool offered and the task names no file
        an offered tool takes ("generate an image of a bicycle" with no text-to-image model): the run says so
        rather than have the model answer without it."""
        if not self.missing or self.embed is None:
            return None
        offered = [tool for name, tool in self.tools.items() if name != "final_answer"]
        if {kind for _, kind in files_named(task)} & file_kinds(offered):
            return None  # "make logo.png twice as big": a tool here takes the file it names
        nearest = nearest_tools(task, [*offered, *self.missing], self.embed, k=1)
        return nearest[0] if nearest and nearest[0] in self.missing else None

    def __call__(self, task: str, **kwargs: Any) -> str:
        recorder = self.slot.current if self.slot else None
        if recorder is None:
            return str(super().__call__(task, **kwargs))
        with recorder.delegation(self.name, task):
            result = self.run(task, return_full_result=True, **kwargs)
        if result.state == "max_steps_error":
            raise SpecialistOutOfSteps(
                f"the {self.name} specialist used all its {self.max_steps} steps without an answer; "
                "give it a simpler, more precise task or try another specialist"
            )
        return str(result.output)


@dataclass
class Team:
    manager: CodeAgent
    specialists: dict[str, SpecialistAgent]
    slot: RecorderSlot

    def known_names(self) -> set[str]:
        """Names of every agent and tool in the team: what step records look for in code."""
        names = set(self.specialists)
        for agent in (self.manager, *self.specialists.values()):
            names |= set(agent.tools)
        return names

    def tool_names(self) -> dict[str, list[str]]:
        return {name: [t for t in agent.tools if t != "final_answer"] for name, agent in self.specialists.items()}

    def use_roots(self, roots: tuple[Path, ...] | None) -> None:
        """From now on, the tools read files only under `roots` (and the run's workspace); None: anywhere. The
        crew calls it before each run (a server's crew serves many conversations, each with its own folders)."""
        for agent in self.specialists.values():
            for tool in agent.tools.values():
                if isinstance(tool, CheckedTool) and tool.context is not None and tool.context.roots != roots:
                    tool.context = dataclasses.replace(tool.context, roots=roots)


def _embedder(pool: PipelinePool, keep: int = 4096) -> Embedder:
    """The pool's sentence embedder, loaded on the first direct-dispatch decision, not at team building. It keeps
    the vectors of the first `keep` texts it meets: the tools' descriptions and examples, ranked against every
    step, are embedded once, not on each step."""
    import numpy as np

    seen: dict[str, Any] = {}

    def embed(texts: list[str]) -> Any:
        if not texts:
            return pool.get("embeddings").encode([], normalize_embeddings=True)
        new = list(dict.fromkeys(text for text in texts if text not in seen))
        vectors = pool.get("embeddings").encode(new, normalize_embeddings=True) if new else []
        if len(seen) < keep:
            seen.update(zip(new, vectors, strict=True))
        fresh = dict(zip(new, vectors, strict=True))
        return np.stack([seen[text] if text in seen else fresh[text] for text in texts])

    return embed


def _callbacks(slot: RecorderSlot) -> dict[type, Any]:
    return {kind: slot.step_callback for kind in (ActionStep, PlanningStep, FinalAnswerStep)}


def _specialist(
    spec: Specialist,
    model: Model,
    pool: PipelinePool,
    workspace: Workspace,
    slot: RecorderSlot,
    *,
    max_steps: int,
    verbosity: int,
    memory: Mirror | None = None,
    roots: tuple[Path, ...] | None = None,
    executor: ExecutorFactory | None = None,
) -> SpecialistAgent:
    tools = spec.build_tools(pool, workspace, memory, roots=roots, chat_model=model)
    for tool in tools:
        if isinstance(tool, CheckedTool):
            tool.around_call = slot.around_tool_call  # every call recorded (audit, replay)
    embed = _embedder(pool)
    agent = SpecialistAgent(
        tools=tools,
        model=specialist_model(model, tools, embed),
        prompt_templates=compact_prompts(),
        name=spec.name,
        description=spec.description,
        max_steps=max_steps,
        verbosity_level=_LOG_LEVELS[verbosity],
        step_callbacks=_callbacks(slot),
        final_answer_checks=[require_answer, slot.answer_check(spec.name)],
        provide_run_summary=False,
        executor=executor() if executor else None,
    )
    agent.slot = slot
    offered = {tool.name for tool in tools}
    agent.missing = tuple(factory for factory in spec.tool_factories if factory.name not in offered)
    agent.embed = embed
    return agent


def build_team(
    model: Model,
    pool: PipelinePool,
    workspace: Workspace,
    *,
    max_steps: int = 6,
    specialist_max_steps: int = 4,
    planning_interval: int | None = None,
    verbosity: int = 0,
    specialists: dict[str, Specialist] | None = None,
    memory: Mirror | None = None,
    roots: tuple[Path, ...] | None = None,
    executor: ExecutorFactory | None = None,
) -> Team:
    """The manager with every specialist as a managed agent (all sharing `model`, `pool` and `workspace`); the
    tools read files only under `roots` and the run's workspace (None: anywhere; see `Team.use_roots`); each
    agent's code runs in an executor from `executor` (None: smolagents' in-process interpreter)."""
    slot = RecorderSlot()
    members = {
        name: _specialist(
            spec,
            model,
            pool,
            workspace,
            slot,
            max_steps=specialist_max_steps,
            verbosity=verbosity,
            memory=memory,
            roots=roots,
            executor=executor,
        )
        for name, spec in (specialists or SPECIALISTS).items()
    }
    manager = FreshCodeAgent(
        tools=[],
        model=model,
        managed_agents=list(members.values()),
        prompt_templates=compact_prompts(),
        instructions=MANAGER_INSTRUCTIONS,
        max_steps=max_steps,
        planning_interval=planning_interval,
        verbosity_level=_LOG_LEVELS[verbosity],
        step_callbacks=_callbacks(slot),
        final_answer_checks=[require_answer, slot.answer_check("manager")],
        name="manager",
        executor=executor() if executor else None,
    )
    return Team(manager, members, slot)
