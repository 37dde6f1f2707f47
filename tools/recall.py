"""Recall: the agents' window on the shared memory (past steps and answers of this and earlier runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smolcrew.errors import SinkError, ToolInputError
from smolcrew.memory.sinks.base import Capability
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import current_memory

if TYPE_CHECKING:
    from smolcrew.memory.mirror import Mirror
    from smolcrew.memory.records import StepRecord

__all__ = ["RecallMemory", "TraceRun", "recall", "require_memory", "step_text", "trace"]


def step_text(record: StepRecord) -> str:
    payload = record.payload
    for key in ("output", "observations", "task", "plan", "code", "error"):
        if payload.get(key):
            return str(payload[key])[:500]
    return ""


def require_memory() -> Mirror:
    """The memory of the current tool context; ToolInputError when the crew runs without memory."""
    memory = current_memory()
    if memory is None:
        raise ToolInputError("memory is switched off for this crew (memory.enabled = false); nothing to recall")
    return memory


def recall(query: str, run_id: str | None, k: int) -> list[dict[str, Any]]:
    """The best `k` step records for `query`: from a vector store when one answers, else the journal."""
    memory = require_memory()
    hits: list[StepRecord] = []
    for store in [sink for sink in memory.sinks if Capability.VECTOR_SEARCH in sink.capabilities]:
        try:
            hits = store.search(query, run_id=run_id or None, k=k)
            break
        except SinkError:
            continue  # a store that is down: fall back to the journal
    if not hits:
        hits = memory.journal.search(query, run_id=run_id or None, k=k)
    return [{"run_id": r.run_id, "seq": r.seq, "agent": r.agent, "kind": r.kind, "text": step_text(r)} for r in hits]


def trace(run_id: str) -> dict[str, Any]:
    """Who delegated what to whom in a past run, which tools ran, and the final answer."""
    journal = require_memory().journal
    try:
        records = journal.read(run_id)
    except ValueError as exc:
        raise ToolInputError(f"`run_id` {run_id!r} is not a run id") from exc
    if not records:
        raise ToolInputError(f"no run {run_id!r} in memory; find run ids with recall_memory")
    delegations = [
        {"from": r.agent, "to": r.payload.get("to"), "task": r.payload.get("task")}
        for r in records
        if r.kind == "delegation"
    ]
    skip = {d["to"] for d in delegations} | {"manager", "final_answer"}
    tools = list(dict.fromkeys(c for r in records for c in r.payload.get("calls") or [] if c not in skip))
    final = next((r for r in reversed(records) if r.kind == "final_answer"), None)
    answer = str(final.payload.get("output")) if final else None
    return {"run_id": run_id, "delegations": delegations, "tools": tools, "answer": answer}


class RecallMemory(CheckedTool):
    name = "recall_memory"
    task = "memory-recall"
    description = (
        "Searches the crew's memory of past steps and answers, by meaning (vector store) or by words (journal). "
        "Returns a list of dicts {'run_id', 'seq', 'agent', 'kind', 'text'}, best first. Use it for questions like "
        "'what did we find out about X last time?'."
    )
    inputs = {
        "query": {"type": "string", "description": "What to look for."},
        "run_id": {"type": "string", "description": "Only this run (default: all runs).", "nullable": True},
        "k": {"type": "integer", "description": "How many results (1-20, default 5).", "nullable": True},
    }
    output_type = "array"

    def forward(self, query: str, run_id: str | None = None, k: int | None = None) -> list[dict[str, Any]]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.recall import recall
        from smolcrew.tools.text import require_text

        query = require_text(query, "query")
        count = 5 if k is None else k
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 20:
            raise ToolInputError("`k` must be between 1 and 20")
        if run_id is not None and not isinstance(run_id, str):
            raise ToolInputError(f"`run_id` must be a run id string, not {run_id!r}")
        return recall(query, run_id, count)


class TraceRun(CheckedTool):
    name = "trace_run"
    task = "run-trace"
    description = (
        "Tells how a past run reached its answer: who delegated what to whom, which tools each agent called, and "
        "the final answer. Returns a dict {'run_id', 'delegations': [{'from', 'to', 'task'}], 'tools': [str], "
        "'answer': str or None}."
    )
    inputs = {"run_id": {"type": "string", "description": "The run's id (see recall_memory results)."}}
    output_type = "object"

    def forward(self, run_id: str) -> dict[str, Any]:
        from smolcrew.tools.recall import trace
        from smolcrew.tools.text import require_text

        return trace(require_text(run_id, "run_id"))
