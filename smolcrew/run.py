"""A run's lifecycle, from its request to its sealed result; the `Crew` facade (smolcrew/crew.py) calls it.

- `start_run`: plan the route, then dispatch the plan's steps to the specialists (router mode) or let the manager
  run (manager mode); the answer passes the final gate (smolcrew/gate.py) and the run is sealed.
- Sealing (`_finish`): the run's final audit entry, then a `run_end` record carrying the audit head, signed by
  the home's key (smolcrew/receipts.py); the `RunResult` is read back from the run's records (`run_result`).
- `resume_run`: finish a run from its journal: settle a pending approval, or continue a run that stopped
  half-way (the manager continues with its recorded memory; in router mode, finished steps are kept).

A run uses its crew only through `CrewParts` (the lazily built team, audit log, approval queue, memory, ...), so
this module never names the Crew and sits below it. The caller holds the crew's lock and has checked it is open.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from smolcrew.agents.calculation import stated_facts
from smolcrew.agents.dispatch import with_context
from smolcrew.answering import REPLY_AGENT, dispatch, manage, reply
from smolcrew.errors import ModelUnavailableError, RunCancelled, RunNotFoundError
from smolcrew.failures import failure_cause, symptoms
from smolcrew.result import RunMode, RunResult, RunState

if TYPE_CHECKING:
    from smolcrew.agents.router import RoutePlan
    from smolcrew.agents.team import Team
    from smolcrew.audit import AuditLog
    from smolcrew.config import Settings
    from smolcrew.gate import Decision, Gate
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.recorder import RunRecorder, ToolResults
    from smolcrew.memory.records import StepRecord
    from smolcrew.receipts import Receipts
    from smolcrew.tools.files import Workspace
    from smolcrew.validators.cascade import Cascade
    from smolcrew.validators.human import ApprovalQueue

__all__ = ["CrewParts", "journal_records", "resume_run", "run_result", "start_run"]


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class CrewParts(Protocol):
    """What a run uses of its crew: `Crew` provides each part, built on first use."""

    settings: Settings
    specialist_cascades: dict[str, Cascade]

    @property
    def team(self) -> Team: ...

    @property
    def workspace(self) -> Workspace: ...

    @property
    def mirror(self) -> Mirror | None: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def receipts(self) -> Receipts: ...

    @property
    def cascade(self) -> Cascade | None: ...

    @property
    def approvals(self) -> ApprovalQueue: ...

    def route(self, request: str) -> RoutePlan: ...

    def wants_reply(self, request: str, stated: Sequence[str] = ()) -> bool: ...


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _plain(value: Any) -> Any:
    """An answer as JSON can hold it (records and audit entries are JSON)."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def start_run(
    crew: CrewParts,
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
    cancelled: Callable[[], bool] | None = None,
) -> RunResult:
    """Run `task` (stripped, not empty) to its end; the arguments are `Crew.run`'s.

    Raises:
        ValueError: `run_id` is not 1-64 letters, digits or `_.:-` characters.
    """
    from smolcrew.memory.recorder import RunRecorder

    run_id = run_id or uuid.uuid4().hex[:16]
    if not _SAFE_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: use 1-64 letters, digits or _.:- characters")
    recorder = RunRecorder(
        run_id,
        known=crew.team.known_names(),
        listeners=_listeners(crew, on_step),
        conversation_id=conversation_id,
        on_tool_call=lambda call: crew.audit.append(run_id, "tool_call", call.to_dict()),
        tool_results=tool_results,
        cancelled=cancelled,
    )
    return _run(crew, recorder, task, list(images), max_steps, context, history, cascade)


def resume_run(
    crew: CrewParts,
    run_id: str,
    *,
    on_step: Callable[[StepRecord], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> RunResult:
    """Finish a run from its journal (see `Crew.resume`); a run that already ended is returned as it was.

    Raises:
        RunNotFoundError: no journal for `run_id`, or one without a `run_start` record.
    """
    from smolcrew.memory.recorder import RunRecorder

    records = journal_records(crew.mirror, run_id)
    start = next((r for r in records if r.kind == "run_start"), None)
    end = next((r for r in reversed(records) if r.kind == "run_end"), None)
    if start is None:
        raise RunNotFoundError(f"run {run_id!r} has no run_start record (an older smolcrew made it)")
    if end is not None and end.payload.get("state") != "pending_approval":
        return run_result(crew, records)
    recorder = RunRecorder(
        run_id,
        known=crew.team.known_names(),
        listeners=_listeners(crew, on_step),
        conversation_id=start.payload.get("conversation_id"),
        on_tool_call=lambda call: crew.audit.append(run_id, "tool_call", call.to_dict()),
        records=records,
        cancelled=cancelled,
    )
    if end is None:
        if crew.mirror is not None:  # what the stores missed when the run's first node died
            crew.mirror.owe([run_id])
        return _run(crew, recorder, start.payload["task"], [], None, None, (), None, resumed=records)
    started = time.perf_counter()
    approval = crew.approvals.get(str(end.payload["approval_id"]))
    verdicts = tuple(end.payload.get("verdicts") or ())
    decision = _gate(crew, crew.cascade).settle(run_id, approval, end.payload.get("candidate"), verdicts)
    return _finish(crew, recorder, decision, end.payload.get("mode", "manager"), None, started, None, ())


def journal_records(mirror: Mirror | None, run_id: str) -> list[StepRecord]:
    """The journaled records of `run_id`.

    Raises:
        RunNotFoundError: memory is off, or the journal has no such run.
    """
    if mirror is None:
        raise RunNotFoundError(f"run {run_id!r}: memory is off (`memory.enabled`), so no run is journaled")
    try:
        records = mirror.journal.read(run_id)
    except ValueError:
        records = []
    if not records:
        raise RunNotFoundError(f"no run {run_id!r} in {mirror.journal.folder}; see `smolcrew runs list`")
    return records


def run_result(
    crew: CrewParts, records: Sequence[StepRecord], started: float | None = None, plan: RoutePlan | None = None
) -> RunResult:
    """A RunResult from a run's records (its `run_end` gives the state and answer). `started` (a
    `time.perf_counter()` value) times the run; without it, its records' timestamps do."""
    run_id = records[0].run_id
    end = next((r.payload for r in reversed(records) if r.kind == "run_end"), {})
    delegations = [(r.agent, r.payload["to"], r.payload["task"]) for r in records if r.kind == "delegation"]
    skip = set(crew.team.specialists) | {"final_answer"}
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
        cause=end.get("cause"),
        verdicts=tuple(end.get("verdicts") or ()),
        approval_id=end.get("approval_id"),
        audit_head=end.get("audit_head"),
    )


def _listeners(crew: CrewParts, on_step: Callable[[StepRecord], None] | None) -> list[Callable[[StepRecord], None]]:
    def audit(record: StepRecord) -> None:
        if record.kind != "run_end":  # the run_end record carries the audit head: it seals the log
            crew.audit.record(record)

    # the journal first: a step a subscriber sees is durable, so a run resumed elsewhere never shows it twice
    return [listener for listener in (crew.mirror, audit, on_step) if listener is not None]


def _gate(crew: CrewParts, cascade: Cascade | None) -> Gate:
    from smolcrew.gate import Gate

    return Gate(cascade, lambda: crew.approvals, crew.audit, wait_s=crew.settings.validation.approval_timeout_s)


def _plan(crew: CrewParts, task: str) -> RoutePlan | None:
    try:
        return crew.route(task)
    except ModelUnavailableError:
        if crew.settings.routing.mode == "router":
            raise
        return None  # no embeddings here: the manager routes alone


def _run(
    crew: CrewParts,
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
    team = crew.team
    talk = not resumed and crew.wants_reply(task, stated_facts(with_context(context, task)))
    plan = None if talk else _plan(crew, task)
    routing = crew.settings.routing.mode
    direct = plan is not None and (routing == "router" or (routing == "auto" and plan.confident))
    mode: RunMode = (
        "reply"
        if talk or (resumed and resumed[0].payload.get("mode") == "reply")
        else ("router" if direct else "manager")
    )
    if history and (direct or talk) and context is None:
        context = transcript(history)
    memory = agent_steps([*history, *resumed]) if (history or resumed) and mode == "manager" else None
    prompt = task if memory is not None else with_context(context, task)
    if plan is not None and not direct:
        prompt += "\n\n" + plan.hint()
    cascade = cascade or crew.cascade
    answering = plan.specialists if direct and plan else [REPLY_AGENT] if mode == "reply" else ["manager"]
    _add_answer_checks(crew, recorder, task, cascade, answering)
    if not resumed:
        start = {"task": task, "prompt": prompt, "mode": mode, "max_steps": max_steps}
        recorder.mark("run_start", {**start, "plan": plan.to_dict() if plan else None})
    crew.workspace.run_id = recorder.run_id
    written_before = len(crew.workspace.written)
    answer: Any = None
    state: RunState = "success"
    error: str | None = None
    with team.slot.recording(recorder):
        try:
            if mode == "reply":
                answer, state = reply(team, task, context, recorder)
            elif direct and plan is not None:
                answer, state = dispatch(team, plan, recorder, images, context, resumed)
            else:
                answer, state = manage(team, prompt, recorder, images, max_steps, memory, bool(resumed))
        except (AgentError, ModelUnavailableError) as exc:
            state, error = "error", str(exc)
        except RunCancelled as exc:
            state, error = "cancelled", str(exc)
    if state == "cancelled":
        from smolcrew.gate import Decision

        decision = Decision("cancelled", None, error)  # nothing to judge: the answer was never finished
    else:
        decision = _gate(crew, cascade).judge(
            recorder.run_id, task, answer, state, recorder.records, recorder.tool_calls
        )
    if error is not None:
        decision = dataclasses.replace(decision, error=error)
    written = tuple(str(path) for path in crew.workspace.written[written_before:] if path.exists())
    return _finish(crew, recorder, decision, mode, plan, started, answer, written)


def _add_answer_checks(
    crew: CrewParts, recorder: RunRecorder, task: str, cascade: Cascade | None, answering: Sequence[str]
) -> None:
    """Let the agents correct a rejected answer themselves (bounded retries) before the final gate."""
    if cascade is None and not crew.specialist_cascades:
        return
    from smolcrew.validators.correct import final_answer_check
    from smolcrew.validators.verdict import Evidence

    def evidence_for(answer: Any) -> Evidence:
        return Evidence.from_records(task, answer, recorder.records, recorder.tool_calls)

    retries = crew.settings.validation.max_retries
    chosen = {name: cascade for name in answering} if cascade is not None else {}
    for name, own in {**chosen, **crew.specialist_cascades}.items():
        recorder.answer_checks[name] = final_answer_check(own, evidence_for, retries)


def _finish(
    crew: CrewParts,
    recorder: RunRecorder,
    decision: Decision,
    mode: RunMode,
    plan: RoutePlan | None,
    started: float,
    candidate: Any,
    artifacts: tuple[str, ...],
) -> RunResult:
    """Seal the run: its final audit entry, then a `run_end` record carrying the audit head and its signature."""
    run_id = recorder.run_id
    counted = symptoms(recorder.records, crew.team.specialists)
    final = {
        "state": decision.state,
        "answer": _plain(decision.answer),
        "error": decision.error,
        "cause": failure_cause(decision.state, counted),
    }
    crew.audit.append(run_id, "final", final)
    head = crew.audit.head(run_id)
    end = {
        **final,
        "candidate": _plain(candidate) if decision.state == "pending_approval" else None,
        "verdicts": list(decision.verdicts),
        "approval_id": decision.approval_id,
        "audit_head": head,
        **crew.receipts.stamp(run_id, head),  # the signed head: a rewritten, re-chained log has another head
        "mode": mode,
    }
    recorder.mark("run_end", end)
    result = run_result(crew, recorder.records, started, plan)
    return dataclasses.replace(result, artifacts=artifacts, warnings=tuple(recorder.listener_errors))
