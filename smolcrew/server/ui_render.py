"""What the web chat shows, rendered from plain data: a run's answer and a person's decision on it, the delegation
tree and steps as Markdown, a finished run's media (images, audio, boxes on an image, cited chunks) and its audit
report. No Gradio here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Media",
    "answer_markdown",
    "audit_markdown",
    "decision_line",
    "decision_markdown",
    "media_for",
    "status_markdown",
    "steps_markdown",
    "tree_markdown",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aiff"}


@dataclass(frozen=True)
class Media:
    """What a finished run produced to look at or listen to."""

    images: list[tuple[str, str]]
    audio: str | None
    boxes: tuple[Any, list[tuple[tuple[int, int, int, int], str]]] | None
    """(base image, [((xmin, ymin, xmax, ymax), label)]): `gr.AnnotatedImage`'s value."""
    chunks: str


def inline(value: Any, limit: int = 120) -> str:
    """One line of Markdown-inert text (agent output is untrusted): whitespace collapsed, clipped, markup escaped."""
    flat = " ".join(str(value).split())
    flat = flat if len(flat) <= limit else flat[:limit] + "…"
    return re.sub(r"([\\`*_{}\[\]<>#|~!])", r"\\\1", flat)


def status_markdown(result: Mapping[str, Any] | None, run_id: str | None, steps: int) -> str:
    """One line on the followed run: running (with its step count), waiting for a person, or how it ended."""
    if result is None:
        return f"Running: {steps} steps so far." if run_id else "Send a message to start a run."
    state = result.get("state")
    if state == "pending_approval":
        return f"Waiting for a person to decide approval `{result.get('approval_id')}` (Approvals panel)."
    took = f" in {result['duration_s']} s" if result.get("duration_s") is not None else ""
    return f"Run `{result.get('run_id')}` ended: **{state}**{took}."


def answer_markdown(result: Mapping[str, Any]) -> str:
    """What a run ended with (a RunResult dict): the answer, the approval it waits for, or the state and error."""
    state = result.get("state")
    if state == "success":
        return str(result.get("answer"))
    if state == "pending_approval":
        return (
            f"A person must approve this answer before you get it (approval `{result.get('approval_id')}`): "
            "decide in the Approvals panel."
        )
    return f"**{state}**: {result.get('error') or 'no answer'}"


def decision_line(approval_id: Any, status: Any, by: Any = None, note: Any = None) -> str:
    """A person's decision on an answer that waited for one: "Approved by ana (approval `…`): looks right"."""
    who = f" by {inline(by, 40)}" if by else ""
    why = f": {inline(note, 300)}" if note else ""
    return f"{inline(status, 20).capitalize()}{who} (approval `{inline(approval_id, 40)}`){why}"


def decision_markdown(result: Mapping[str, Any], bundle: Mapping[str, Any] | None) -> str:
    """The decision a settled run (a RunResult dict with an `approval_id`) ended by: the last decided `approval`
    entry of its audit bundle, else what the result says (success: approved; rejected: the run's error)."""
    entries = [
        entry.get("body") or {} for entry in (bundle or {}).get("entries", []) if entry.get("kind") == "approval"
    ]
    made = next((body for body in reversed(entries) if body.get("status") in ("approved", "rejected")), None)
    if made is not None:
        return decision_line(made.get("approval_id"), made["status"], made.get("by"), made.get("note"))
    state = result.get("state")
    if state in ("success", "rejected"):
        status = "approved" if state == "success" else "rejected"
        return decision_line(result.get("approval_id"), status, note=result.get("error"))
    return decision_line(result.get("approval_id"), "decided")


def tree_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """Who delegated what to whom, each agent's tool calls and answers, as nested Markdown bullets (the same tree
    as `smolcrew memory graph`): a step sits under the delegation it ran in (`payload.parent`)."""
    depth: dict[str | None, int] = {None: 0}
    lines = []
    for record in records:
        payload = record.get("payload") or {}
        pad = "  " * depth.get(payload.get("parent"), 0)
        agent = inline(record.get("agent"), 40)
        if record.get("kind") == "delegation":
            depth[f"{record.get('run_id')}:{record.get('seq')}"] = len(pad) // 2 + 1
            lines.append(f"{pad}- **{agent} → {inline(payload.get('to'), 40)}**: {inline(payload.get('task'), 80)}")
        elif record.get("kind") == "action" and payload.get("calls"):
            calls = ", ".join(inline(c, 40) for c in payload["calls"])
            lines.append(f"{pad}- {agent} step {payload.get('step_number')} calls {calls}")
        elif record.get("kind") == "final_answer":
            lines.append(f"{pad}- {agent} answers: {inline(payload.get('output'), 80)}")
    return "\n".join(lines) or "_No delegations yet._"


def steps_markdown(records: Sequence[Mapping[str, Any]], last: int = 40) -> str:
    """The last `last` steps as a Markdown table, newest last."""
    rows = ["| # | agent | kind | what |", "|---|---|---|---|"]
    for record in records[-last:]:
        payload = record.get("payload") or {}
        what = payload.get("error") or payload.get("calls") or payload.get("output") or payload.get("state")
        what = what or (f"→ {payload['to']}" if payload.get("to") else "")
        what = ", ".join(map(str, what)) if isinstance(what, list) else what
        rows.append(
            f"| {record.get('seq')} | {inline(record.get('agent'), 30)} | {record.get('kind')} | {inline(what, 80)} |"
        )
    return "\n".join(rows) if records else "_No steps yet._"


def _chunks(value: Any) -> list[Mapping[str, Any]]:
    """Retrieved chunks in a tool's result: dicts with text (`text` or `chunk`) and a source (`cite`/`source`/
    `page`), alone in a list or under `sources`/`chunks`/`citations`."""
    if isinstance(value, Mapping):
        value = [item for key in ("sources", "chunks", "citations") for item in value.get(key) or []]
    items = value if isinstance(value, list) else []
    return [
        i
        for i in items
        if isinstance(i, Mapping) and {"text", "chunk"} & i.keys() and {"cite", "source", "page"} & i.keys()
    ]


def _base_image(named: Any, uploads: Sequence[str], artifacts: Sequence[str]) -> Any:
    """The image a detector looked at: the path it was given when that is one of the turn's files (never any other
    path an agent names), else the turn's first uploaded image (it was passed as an image, not a path)."""
    from PIL import Image

    candidates = [named] if named in (*uploads, *artifacts) else []
    candidates += [path for path in uploads if Path(path).suffix.lower() in IMAGE_SUFFIXES]
    for path in candidates:
        if Path(path).is_file():
            with Image.open(path) as image:
                return image.convert("RGB")
    return None


def _box(box: Mapping[str, Any]) -> tuple[int, int, int, int]:
    return int(box["xmin"]), int(box["ymin"]), int(box["xmax"]), int(box["ymax"])


def _source(chunk: Mapping[str, Any]) -> Any:
    return chunk.get("cite") or chunk.get("source") or f"page {chunk.get('page')}"


def media_for(result: Mapping[str, Any], bundle: Mapping[str, Any] | None, uploads: Sequence[str]) -> Media:
    """The run's media: image and audio artifacts; boxes of the last object detection, drawn on the image it
    looked at (a path it was given, else the turn's first uploaded image); chunks the tools retrieved."""
    artifacts = [str(path) for path in result.get("artifacts") or []]
    images = [(path, Path(path).name) for path in artifacts if Path(path).suffix.lower() in IMAGE_SUFFIXES]
    audio = next((path for path in artifacts if Path(path).suffix.lower() in AUDIO_SUFFIXES), None)
    boxes, cited = None, []
    calls = [entry["body"] for entry in (bundle or {}).get("entries", []) if entry.get("kind") == "tool_call"]
    for call in calls:
        value = call.get("value")
        cited += [(call.get("tool"), chunk) for chunk in _chunks(value)]
        objects = value.get("objects") if isinstance(value, Mapping) else None
        if objects and isinstance(objects, list):
            base = _base_image((call.get("arguments") or {}).get("image"), uploads, artifacts)
            marks = [(_box(o["box"]), f"{o['label']} {o['score']:.2f}") for o in objects if isinstance(o, Mapping)]
            boxes = (base, marks) if base is not None else boxes
    lines = [
        f"{i}. **{inline(_source(chunk), 80)}** "
        f"({inline(tool, 40)}): {inline(chunk.get('text') or chunk.get('chunk'), 300)}"
        for i, (tool, chunk) in enumerate(cited, 1)
    ]
    return Media(images, audio, boxes, "\n".join(lines) or "_No cited chunks._")


def audit_markdown(bundle: Mapping[str, Any]) -> str:
    """The Markdown report of an audit export (`ChatService.audit_export`), as `smolcrew audit export` writes it."""
    from smolcrew.audit import AuditEntry, AuditReport
    from smolcrew.audit_report import render_report
    from smolcrew.memory.records import StepRecord

    entries = [AuditEntry(**entry) for entry in bundle["entries"]]
    records = [StepRecord(**record) for record in bundle["records"]]
    return render_report(AuditReport(**bundle["verification"]), entries, records)
