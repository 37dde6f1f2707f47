"""How step records become the graph (memory/sinks/graph.py): the rows of a batch and the batched Cypher statements
that merge them (portable subset: `UNWIND ... MERGE`, relationships merged from their low-degree end).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from smolcrew.memory.records import StepRecord, record_to_json

__all__ = [
    "DROP_AGENT_TOOLS",
    "LINK_DELEGATE",
    "LINK_NEXT",
    "LINK_TOOL",
    "MERGE",
    "MERGE_STEP",
    "TEXT_LIMIT",
    "UNLINK_CHANGED",
    "clean_text",
    "record_rows",
    "step_text",
]

TEXT_LIMIT = 32_000
"""Characters of searchable step text; the rest stays in `record_json`."""
MERGE = "UNWIND $rows AS r MERGE (n:{label} {{id: r.id}}) SET n += r.props"
UNLINK_CHANGED = """
UNWIND $rows AS r MATCH (s:Step {id: r.id}) WHERE s.digest <> r.digest
MATCH (s)-[e]-(x) WHERE type(e) IN ['CALLED', 'DELEGATED_TO', 'EMITTED'] DELETE e
"""
MERGE_STEP = """
UNWIND $rows AS r MERGE (s:Step {id: r.id}) SET s += r.props
WITH s, r MATCH (x:Run {id: r.run}) MERGE (s)<-[:HAS_STEP]-(x)
WITH s, r MATCH (a:Agent {id: r.agent}) MERGE (s)<-[:EMITTED]-(a)
"""
LINK_DELEGATE = "UNWIND $rows AS r MATCH (s:Step {id: r.id}) MATCH (a:Agent {id: r.to}) MERGE (s)-[:DELEGATED_TO]->(a)"
DROP_AGENT_TOOLS = "UNWIND $ids AS i MATCH (t:Tool {id: i}) DETACH DELETE t"
LINK_TOOL = """
UNWIND $calls AS c WITH c WHERE NOT EXISTS { MATCH (:Agent {id: c.tool}) }
MATCH (s:Step {id: c.step}) MERGE (t:Tool {id: c.tool}) SET t += c.props MERGE (s)-[:CALLED]->(t)
"""
LINK_NEXT = "UNWIND $pairs AS p MATCH (b:Step {id: p.b}) MATCH (a:Step {id: p.a}) MERGE (b)<-[:NEXT]-(a)"


def clean_text(text: str) -> str:
    """`text` encodable as UTF-8 (Bolt sends nothing else): lone surrogates become `\\udxxx`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def step_text(record: StepRecord) -> str:
    """The searchable text of a step: its string payload values (not `parent`), cut at TEXT_LIMIT."""
    parts = [value for key, value in record.payload.items() if isinstance(value, str) and key != "parent"]
    text = clean_text("\n".join(parts))
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + f"... [{len(text) - TEXT_LIMIT:,} more characters in record_json]"
    return text


def record_rows(
    batch: Sequence[StepRecord], namespace: str, node_id: Callable[..., str]
) -> dict[str, list[dict[str, Any]]]:
    """The rows the write statements take for `batch`: runs, agents, steps, delegations and tool calls, each node
    named by `node_id(*parts)` (its id within the namespace)."""
    ns = namespace
    runs: dict[str, dict[str, Any]] = {}
    agents: dict[str, dict[str, Any]] = {}
    steps, delegations, calls = [], [], []
    for record in batch:
        run_id = str(record.run_id)
        sid = node_id(run_id, str(record.seq))
        run = node_id(run_id)
        agent = node_id(str(record.agent))
        runs[run] = {"id": run, "props": {"ns": ns, "run_id": clean_text(run_id)}}
        agents[agent] = {"id": agent, "props": {"ns": ns, "name": clean_text(str(record.agent))}}
        record_json = record_to_json(record)
        props = {
            "ns": ns,
            "run_id": clean_text(run_id),
            "seq": record.seq,
            "agent": clean_text(str(record.agent)),
            "kind": clean_text(str(record.kind)),
            "ts": float(record.ts),
            "text": step_text(record),
            "record_json": record_json,
            "digest": hashlib.sha1(record_json.encode("ascii")).hexdigest(),
        }
        steps.append(
            {
                "id": sid,
                "run": run,
                "agent": agent,
                "prev": node_id(run_id, str(record.seq - 1)),
                "next": node_id(run_id, str(record.seq + 1)),
                "props": props,
            }
        )
        to = record.payload.get("to")
        if record.kind == "delegation" and isinstance(to, str) and to:
            target = node_id(to)
            agents[target] = {"id": target, "props": {"ns": ns, "name": clean_text(to)}}
            delegations.append({"id": sid, "to": target})
        names = record.payload.get("calls") or []
        if isinstance(names, list):
            for name in dict.fromkeys(n for n in names if isinstance(n, str) and n):
                tool = node_id(name)
                calls.append({"step": sid, "tool": tool, "props": {"ns": ns, "name": clean_text(name)}})
    return {
        "runs": list(runs.values()),
        "agents": list(agents.values()),
        "steps": steps,
        "delegations": delegations,
        "calls": calls,
    }
