"""A run's audit bundle: `audit.json`, a Markdown report and its HTML page, and the delegation tree as text.

Shared by the CLI (`smolcrew audit export`, `smolcrew memory graph`) and the server (the report the UI shows); it
reads the audit log and the step records and writes nothing else.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from smolcrew.audit import AuditEntry, AuditLog, AuditReport, jsonable
from smolcrew.errors import AuditError

if TYPE_CHECKING:
    from smolcrew.memory.records import StepRecord

__all__ = ["delegation_tree", "export_bundle", "render_report", "write_bundle"]

TEXT_LIMIT = 2_000
"""Characters of a tool's arguments, output or an answer shown in report.md (audit.json keeps everything)."""


def export_bundle(
    log: AuditLog,
    run_id: str,
    dest: Path,
    *,
    records: Sequence[StepRecord] = (),
    expected_head: str | None = None,
) -> Path:
    """Write the folder `dest` (created if needed) and return it: `audit.json` (run id, verification report,
    every entry, the step records) and `report.md`, a self-contained Markdown report (and `report.html`).
    Without `records`, the step records are taken from the log's `step` entries. The bundle is written for a
    log that fails verification too; its report says so first. Raises `AuditError` when `dest` cannot be
    written."""
    report = log.verify(run_id, expected_head=expected_head)
    entries = log.entries(run_id)
    try:
        return write_bundle(Path(dest), report, entries, list(records))
    except OSError as exc:
        raise AuditError(f"cannot write the audit bundle to {dest} ({exc}); fix the path or permissions") from exc


def write_bundle(dest: Path, report: AuditReport, entries: list[AuditEntry], records: list[StepRecord]) -> Path:
    """The files of `export_bundle` (see there), written into `dest`."""
    records = records or _step_records(entries)
    dest.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": report.run_id,
        "verification": report.to_dict(),
        "entries": [entry.to_dict() for entry in entries],
        "records": [jsonable(record.to_dict()) for record in records],
    }
    (dest / "audit.json").write_text(json.dumps(data, ensure_ascii=True, allow_nan=False, indent=2) + "\n")
    markdown = render_report(report, entries, records)
    (dest / "report.md").write_text(markdown, encoding="utf-8", errors="backslashreplace")
    from markdown_it import MarkdownIt  # rich's own Markdown parser; raw HTML off, since answers are untrusted

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    page = f"{_HTML_HEAD.format(title=_html_escape(report.run_id))}{body}</body></html>\n"
    (dest / "report.html").write_text(page, encoding="utf-8", errors="backslashreplace")
    return dest


_HTML_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8"><title>audit {title}</title><style>body{{font-family:'
    "sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}pre{{background:#f4f4f4;padding:.5rem;"
    "overflow-x:auto}}td,th{{border:1px solid #ccc;padding:.2rem .4rem}}table{{border-collapse:collapse}}"
    "</style></head><body>\n"
)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _step_records(entries: list[AuditEntry]) -> list[StepRecord]:
    from smolcrew.memory.records import StepRecord

    records = []
    for entry in entries:
        body = entry.body
        if entry.kind == "step" and isinstance(body.get("payload"), dict):
            seq, ts = body.get("seq"), body.get("ts")
            records.append(
                StepRecord(
                    run_id=str(body.get("run_id", entry.run_id)),
                    seq=seq if isinstance(seq, int) else entry.index,
                    agent=str(body.get("agent")),
                    kind=str(body.get("kind")),
                    payload=body["payload"],
                    ts=ts if isinstance(ts, float) else entry.ts,
                )
            )
    return records


def render_report(report: AuditReport, entries: list[AuditEntry], records: list[StepRecord]) -> str:
    """report.md: verification, task, delegation tree, tool calls, verdicts, approvals, final answer, entries."""
    by_kind: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        by_kind.setdefault(entry.kind, []).append(entry)
    kinds = ", ".join(f"{kind} {count}" for kind, count in Counter(e.kind for e in entries).items())
    out = [f"# Audit report: run `{report.run_id}`", "", "## Verification", ""]
    if report.ok:
        out.append(f"**OK**: {report.entries} entries, head `{report.head}`.")
    else:
        doubt = "The entries below come from a log that failed verification: from the first bad one on, trust none."
        out += [f"**FAILED**: {_inline(str(report.problem), 2_000)}", "", doubt]
    out += [
        "",
        f"- recorded head: `{report.expected_head}`"
        if report.expected_head
        else "- recorded head: none (the run "
        "is still going, or it crashed): the chain was verified alone, so entries removed from its end would go "
        "unnoticed",
        f"- entries: {len(entries)} ({_inline(kinds) or 'none'})",
        f"- exported: {_time(datetime.now(UTC).timestamp())}",
        "",
        "## Task",
        "",
        _fenced(_clip(_task(entries, records) or "(not recorded)")),
        "",
        "## Delegation tree",
        "",
        _fenced(_tree(report.run_id, records) if records else "(no step records)"),
    ]
    out += ["", f"## Tool calls ({len(by_kind.get('tool_call', []))})"] + (
        [] if "tool_call" in by_kind else ["", "(none)"]
    )
    for number, entry in enumerate(by_kind.get("tool_call", []), start=1):
        body = entry.body
        by = f" by {_inline(str(body['agent']))}" if body.get("agent") else ""
        out += ["", f"### {number}. {_inline(str(body.get('tool')))}{by} (entry {entry.index}, {_time(entry.ts)})"]
        out += ["", "Arguments:", "", _fenced(_clip(body.get("arguments")), "json"), "", "Output:", ""]
        out.append(_fenced(_clip(body.get("output"))))
        if body.get("error"):
            out += ["", "Error:", "", _fenced(_clip(body["error"]))]
    out += ["", f"## Verdicts ({len(by_kind.get('verdict', []))})", ""] + ([] if "verdict" in by_kind else ["(none)"])
    for entry in by_kind.get("verdict", []):
        body, reasons = entry.body, entry.body.get("reasons") or []
        confidence = body.get("confidence")
        sure = f"{confidence:.2f}" if isinstance(confidence, int | float) else _inline(str(confidence))
        why = "; ".join(str(reason) for reason in reasons) if isinstance(reasons, list) else str(reasons)
        out.append(
            f"- **{_inline(str(body.get('stage')))}**: {_inline(str(body.get('outcome')))}, confidence {sure} "
            f"(entry {entry.index}){': ' + _inline(why, 500) if why else ''}"
        )
    out += ["", f"## Approvals ({len(by_kind.get('approval', []))})", ""] + (
        [] if "approval" in by_kind else ["(none)"]
    )
    for entry in by_kind.get("approval", []):
        body = entry.body
        by = f" by {_inline(str(body['by']))}" if body.get("by") else ""
        note = f": {_inline(str(body['note']), 500)}" if body.get("note") else ""
        out.append(
            f"- **{_inline(str(body.get('approval_id')))}**: {_inline(str(body.get('status')))}{by} "
            f"(entry {entry.index}){note}"
        )
    finals = by_kind.get("final", [])
    final = finals[-1].body if finals else {}
    out += ["", "## Final answer", "", f"- state: {_inline(str(final.get('state', 'not recorded')))}", ""]
    out += [_fenced(_clip(final.get("answer")) if finals else "(no final entry)"), "", "## Entries", ""]
    out += ["| # | time (UTC) | kind | hash |", "|---|---|---|---|"]
    out += [f"| {e.index} | {_time(e.ts)} | {_inline(e.kind)} | `{e.hash[:16]}` |" for e in entries]
    return "\n".join(out) + "\n"


def _task(entries: list[AuditEntry], records: list[StepRecord]) -> str | None:
    """The first `task` in a non-step entry (a run's start, if the crew logs one), else the first delegation's."""
    for body in [e.body for e in entries if e.kind != "step"] + [r.payload for r in records]:
        if isinstance(body.get("task"), str) and body["task"]:
            return str(body["task"])
    return None


def _tree(run_id: str, records: list[StepRecord]) -> str:

    buffer = io.StringIO()
    plain = Console(file=buffer, width=200, color_system=None, no_color=True, highlight=False, emoji=False)
    plain.print(delegation_tree(run_id, records))
    return buffer.getvalue().rstrip()


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _clip(value: Any, limit: int = TEXT_LIMIT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit:,} more characters]"


def _fenced(text: str, lang: str = "") -> str:
    """A code block whose fence is longer than any run of backticks inside, so no content can close it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}{lang}\n{text}\n{fence}"


def _inline(text: str, limit: int = 200) -> str:
    """One line of Markdown-inert text: whitespace collapsed, clipped, markup characters escaped."""
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[:limit] + "…"
    return re.sub(r"([\\`*_{}\[\]<>#|~!])", r"\\\1", flat)


def delegation_tree(run_id: str, records: Sequence[StepRecord]) -> Tree:
    """Who delegated what to whom in a run, each agent's tool calls and answers, as a rich Tree (labels carry
    markup). Shared by `smolcrew memory graph` and the audit report (smolcrew/audit.py)."""
    tree = Tree(f"run {run_id}")
    nodes: dict[str | None, Tree] = {None: tree}
    for r in records:
        parent = nodes.get(r.payload.get("parent"), tree)
        if r.kind == "delegation":
            nodes[f"{r.run_id}:{r.seq}"] = parent.add(
                f"[cyan]{r.agent} → {r.payload.get('to')}[/]: {escape(str(r.payload.get('task'))[:80])}"
            )
        elif r.kind == "action" and r.payload.get("calls"):
            parent.add(f"{r.agent} step {r.payload.get('step_number')}: {', '.join(r.payload['calls'])}")
        elif r.kind == "final_answer":
            parent.add(f"[green]{r.agent} answers[/]: {escape(str(r.payload.get('output'))[:80])}")
    return tree
