"""The web chat UI (Gradio), mounted on the HTTP API's app at /ui: a thin layer over `ChatService`.

- `mount(app, service)` mounts `build_ui(service)` with `gr.mount_gradio_app`; `create_app(mount_ui=True)` calls
  it. The UI never touches a Crew: it sends turns, follows `service.events`, decides approvals and exports
  audits through the service.
- Panels: the chat (text and files: images, audio, PDFs, video); the live delegation tree (manager or router →
  specialists → tools) and the steps as they stream in; the finished run's media (image artifacts, an audio
  player, detected-object boxes drawn on the image, cited chunks); pending approvals with their reasons
  (approve/reject with a note); the run's audit report (the Markdown of `smolcrew audit export`).
- A turn streams until its run ends or waits for a person; then a timer picks up the rest of the stream (a
  decision made here, in another tab or from the CLI resumes the run), so no thread waits on a person. Once
  decided, the chat's "A person must approve…" message says the decision (who approved; who rejected and why).
- Offline: nothing is fetched from another host. Analytics off (`analytics_enabled=False` and
  GRADIO_ANALYTICS_ENABLED=False before gradio is imported); fonts are the ones Gradio serves itself (`LocalFont`)
  with system fallbacks; no SSR (no Node); no share link. Besides Gradio's upload cache, the page may load files
  of the runs' artifacts folder (`<home>/runs`, the only `allowed_paths`).
- The callbacks (`submit`, `poll`, `decide`) are plain functions over the service returning `Panels`, where None
  means "leave that panel as it is"; the Blocks only map them onto components.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import RunNotFoundError, SmolcrewError
from smolcrew.server.ui_render import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    Media,
    answer_markdown,
    audit_markdown,
    decision_line,
    decision_markdown,
    inline,
    media_for,
    status_markdown,
    steps_markdown,
    tree_markdown,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from smolcrew.server.service import ChatService, RunEvent
    from smolcrew.server.uploads import Upload

__all__ = [
    "ApprovalsView",
    "ChatView",
    "Panels",
    "approvals_view",
    "build_ui",
    "decide",
    "mount",
    "poll",
    "submit",
    "theme",
]

POLL_S = 1.0
"""Timer period: new events of a run left waiting for a person; the longest a streaming turn blocks at once."""
APPROVALS_EVERY_S = 5.0
"""How often the timer re-reads the pending approvals (one Redis round trip)."""


@dataclass
class ChatView:
    """One browser session: its conversation, the run it follows and what that run has shown so far."""

    conversation_id: str | None = None
    run_id: str | None = None
    after: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    streaming: bool = False
    """True while a turn's generator follows the run (the timer leaves the run alone then)."""
    finished: bool = False
    """True once the ended run's media and audit report were shown."""
    asked: int | None = None
    """Index in `messages` of the run's "A person must approve…" message, replaced by the decision."""
    approvals_checked: float = 0.0

    @property
    def settled(self) -> bool:
        """The followed run ended (not merely waiting for a person)."""
        return self.result is not None and self.result.get("state") != "pending_approval"


@dataclass(frozen=True)
class ApprovalsView:
    """Pending approvals as (label, id) choices, the one selected and its details in Markdown."""

    choices: list[tuple[str, str]]
    selected: str | None
    details: str


@dataclass
class Panels:
    """What one callback changes; a field left None leaves its panel as it is."""

    view: ChatView
    chat: list[dict[str, Any]] | None = None
    status: str | None = None
    tree: str | None = None
    steps: str | None = None
    media: Media | None = None
    audit: tuple[str, str] | None = None
    """(run id, Markdown report)."""
    approvals: ApprovalsView | None = None
    notice: str | None = None
    """The outcome of an approval decision."""


# presentation ---------------------------------------------------------------------------------------------------
def approvals_view(service: ChatService, prefer: str | None = None) -> ApprovalsView:
    """The pending approvals, `prefer` selected when pending (else the oldest); Redis down is said, not raised."""
    try:
        pending = service.list_approvals("pending")
    except SmolcrewError as exc:
        return ApprovalsView([], None, f"The approval queue is not available: {exc}")
    if not pending:
        return ApprovalsView([], None, "_No approvals are pending._")
    chosen = next((a for a in pending if a.id == prefer), pending[0])
    choices = [(f"{a.id}: {inline(a.task, 60)}", a.id) for a in pending]
    reasons = "\n".join(f"- {inline(reason, 300)}" for reason in chosen.reasons) or "- (none given)"
    details = (
        f"**Task**: {inline(chosen.task, 300)}\n\n**Answer waiting**: {inline(chosen.answer, 300)}\n\n"
        f"**Why a person decides**:\n{reasons}\n\nRun `{chosen.run_id}`, approval `{chosen.id}`."
    )
    return ApprovalsView(choices, chosen.id, details)


# callbacks ------------------------------------------------------------------------------------------------------
def _uploads(paths: Sequence[str]) -> list[Upload]:
    from smolcrew.server.uploads import Upload

    kinds = [mimetypes.guess_type(path)[0] or "application/octet-stream" for path in paths]
    return [Upload(Path(path).name, kind, Path(path).read_bytes()) for path, kind in zip(paths, kinds, strict=True)]


def _run_panels(view: ChatView) -> Panels:
    chat, records = list(view.messages), view.records
    status = status_markdown(view.result, view.run_id, len(records))
    return Panels(view, chat, status, tree_markdown(records), steps_markdown(records))


def _apply(view: ChatView, event: RunEvent) -> None:
    view.after = event.id
    working = view.messages[-1] if view.messages and "metadata" in view.messages[-1] else None
    if event.event == "step":
        view.records.append(event.data)
        if working is not None:
            working["content"] = (
                f"{len(view.records)} steps; last: {inline(event.data.get('agent'), 40)} {event.data.get('kind')}"
            )
        return
    view.result = event.data
    if working is not None:
        view.messages.pop()  # the "working" line gives way to what the run ended with
    if event.event == "pending_approval":
        view.asked = len(view.messages)
    if view.asked is None or event.data.get("state") != "rejected":  # a rejection's reason is in the decision
        view.messages.append({"role": "assistant", "content": answer_markdown(event.data)})
    if event.event == "run_end":
        view.messages += [
            {"role": "assistant", "content": {"path": str(path)}}
            for path in event.data.get("artifacts") or []
            if Path(path).suffix.lower() in IMAGE_SUFFIXES | AUDIO_SUFFIXES
        ]


def _decided(view: ChatView, decision: str) -> list[dict[str, Any]]:
    """Replace the run's "A person must approve…" message with the decision; the chat's messages."""
    if view.asked is not None:
        view.messages[view.asked] = {"role": "assistant", "content": decision}
    return list(view.messages)


def _finish(service: ChatService, view: ChatView, panels: Panels) -> Panels:
    """Once the run has ended: its media and audit report; and the approvals, which the run may have changed."""
    if view.settled and not view.finished and view.result is not None and view.run_id is not None:
        view.finished = True
        bundle: dict[str, Any] | None = None
        try:
            bundle = service.audit_export(view.run_id)
            panels.audit = (view.run_id, audit_markdown(bundle))
        except SmolcrewError as exc:  # e.g. a run that broke before its audit log began
            panels.audit = (view.run_id, f"No audit report: {exc}")
        panels.media = media_for(view.result, bundle, service.run_info(view.run_id).files)
        if view.asked is not None:
            panels.chat = _decided(view, decision_markdown(view.result, bundle))
    panels.approvals = approvals_view(service, prefer=(view.result or {}).get("approval_id"))
    view.approvals_checked = time.monotonic()
    return panels


def _follow(service: ChatService, view: ChatView, *, wait: bool) -> Iterator[Panels]:
    """Apply the followed run's new events to `view`, yielding the panels after each. With `wait`, block until
    the run ends or waits for a person; without, take only the events already there."""
    while view.run_id is not None and not view.settled:
        for event in service.events(view.run_id, after=view.after, timeout_s=POLL_S if wait else 0):
            _apply(view, event)
            if event.event != "step":
                yield _finish(service, view, _run_panels(view))
                return
            yield _run_panels(view)
        if not wait:
            return


def submit(service: ChatService, view: ChatView, message: Mapping[str, Any] | None) -> Iterator[Panels]:
    """Send one turn (text and files) and stream its run into the panels until it ends or waits for a person."""
    text = str((message or {}).get("text") or "").strip()
    files = [str(path) for path in (message or {}).get("files") or []]
    if not text:
        yield Panels(view, status="Type a request first: files alone do not say what to do with them.")
        return
    view.messages.append({"role": "user", "content": text})
    view.messages += [{"role": "user", "content": {"path": path}} for path in files]
    try:
        if view.conversation_id is None:
            view.conversation_id = service.create_conversation().id
        ticket = service.send(view.conversation_id, text, _uploads(files))
    except (SmolcrewError, ValueError, OSError) as exc:
        view.messages.append({"role": "assistant", "content": f"Not sent: {exc}"})
        yield Panels(view, chat=list(view.messages), status=f"Not sent: {inline(exc, 300)}")
        return
    view.run_id, view.after, view.records, view.result, view.finished = ticket.run_id, None, [], None, False
    view.asked = None
    view.messages.append(
        {"role": "assistant", "content": "queued", "metadata": {"title": "working", "status": "pending"}}
    )
    view.streaming = True
    try:
        yield _run_panels(view)
        yield from _follow(service, view, wait=True)
    finally:
        view.streaming = False


def poll(service: ChatService, view: ChatView) -> Panels:
    """The timer's tick: new events of a run that waited for a person, and the approvals every few seconds. A run
    the service has forgotten (`keep_runs`) is no longer followed."""
    panels = Panels(view)
    try:
        for panels in [] if view.streaming else _follow(service, view, wait=False):  # noqa: B007 - the last shows all
            pass
    except RunNotFoundError:
        view.run_id = None
    if panels.approvals is None and time.monotonic() - view.approvals_checked >= APPROVALS_EVERY_S:
        panels.approvals = approvals_view(service, prefer=(view.result or {}).get("approval_id"))
        view.approvals_checked = time.monotonic()
    return panels


def decide(service: ChatService, view: ChatView, approval_id: str | None, approve: bool, note: str, by: str) -> Panels:
    """Approve or reject one approval; its run resumes in the background and `poll` shows how it ends."""
    notice, chat = "Pick a pending approval first.", None
    if approval_id:
        try:
            made = service.decide(approval_id, approve=approve, by=by.strip() or "web", note=note.strip() or None)
            notice = (
                f"Approval `{made.id}` {made.status} by {inline(made.decided_by, 40)}; run `{made.run_id}` resumes."
            )
        except SmolcrewError as exc:
            notice = f"Not decided: {inline(exc, 300)}"
        else:
            if view.asked is not None and (view.result or {}).get("approval_id") == made.id:  # say it now
                chat = _decided(view, decision_line(made.id, made.status, made.decided_by, made.note))
    view.approvals_checked = time.monotonic()
    approvals = approvals_view(service, prefer=(view.result or {}).get("approval_id"))
    return Panels(view, chat=chat, approvals=approvals, notice=notice)


# Gradio ---------------------------------------------------------------------------------------------------------
def _gradio() -> Any:
    """gradio, imported with its telemetry off (it reads the variable at import and when Blocks are built)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as exc:
        raise ImportError("the web UI needs gradio: pip install 'smolcrew[server]' (or serve without --ui)") from exc
    return gr


def theme() -> Any:
    """The Default theme with fonts Gradio serves itself and system fallbacks: no Google Fonts request."""
    gr = _gradio()
    sans = [gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"]
    mono = [gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "Consolas", "monospace"]
    return gr.themes.Default(font=sans, font_mono=mono)


def build_ui(service: ChatService) -> Any:
    """The chat UI's Blocks over `service` (not launched: `mount` serves them). Element ids (`elem_id`) are stable:
    the browser test and users' CSS rely on them."""
    gr = _gradio()
    with gr.Blocks(title="smolcrew", analytics_enabled=False, fill_width=True) as blocks:
        view = gr.State(ChatView())
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(elem_id="chat", height=480, label="smolcrew", buttons=["copy"], feedback_options=None)
                message = gr.MultimodalTextbox(
                    elem_id="message",
                    file_count="multiple",
                    show_label=False,
                    file_types=["image", "audio", "video", ".pdf", ".txt", ".md"],
                    placeholder="Ask the crew; attach images, audio, PDFs or video",
                )
                with gr.Tab("Media"):
                    images = gr.Gallery(elem_id="media-images", label="Images", height=240)
                    audio = gr.Audio(elem_id="media-audio", label="Audio", interactive=False)
                    boxes = gr.AnnotatedImage(elem_id="media-boxes", label="Detected objects")
                    chunks = gr.Markdown("_No cited chunks._", elem_id="media-chunks")
                with gr.Tab("Audit report"):
                    with gr.Row():
                        audit_run = gr.Textbox(elem_id="audit-run", label="Run id", scale=3)
                        audit_show = gr.Button("Show report", elem_id="audit-show", scale=1)
                    audit = gr.Markdown(elem_id="audit-report")
            with gr.Column(scale=2):
                status = gr.Markdown("Send a message to start a run.", elem_id="run-status")
                gr.Markdown("### Delegation")
                tree = gr.Markdown("_No delegations yet._", elem_id="tree")
                with gr.Accordion("Steps", open=True):
                    steps = gr.Markdown("_No steps yet._", elem_id="steps")
                gr.Markdown("### Approvals")
                pending = gr.Radio(elem_id="approvals", label="Pending", choices=[])
                details = gr.Markdown(elem_id="approval-details")
                note = gr.Textbox(elem_id="approval-note", label="Note", placeholder="why (optional)")
                who = gr.Textbox(elem_id="approval-by", label="Decided by", value="web")
                with gr.Row():
                    approve = gr.Button("Approve", elem_id="approve", variant="primary")
                    reject = gr.Button("Reject", elem_id="reject", variant="stop")
                    refresh = gr.Button("Refresh", elem_id="approvals-refresh")
                notice = gr.Markdown(elem_id="approval-notice")
        timer = gr.Timer(POLL_S)
        outputs = [view, chat, status, tree, steps, images, audio, boxes, chunks, audit_run, audit, pending]
        outputs += [details, notice]

        def show(panels: Panels) -> list[Any]:
            skip = gr.skip()
            media, found, app = panels.media, panels.audit, panels.approvals
            return [
                panels.view,
                *[skip if v is None else v for v in (panels.chat, panels.status, panels.tree, panels.steps)],
                *([skip] * 4 if media is None else [media.images, media.audio, media.boxes, media.chunks]),
                *([skip] * 2 if found is None else list(found)),
                *([skip] * 2 if app is None else [gr.Radio(choices=app.choices, value=app.selected), app.details]),
                skip if panels.notice is None else panels.notice,
            ]

        def on_submit(state: ChatView, sent: dict[str, Any] | None) -> Iterator[list[Any]]:
            for index, panels in enumerate(submit(service, state, sent)):
                yield [*show(panels), gr.MultimodalTextbox(value=None) if index == 0 else gr.skip()]

        def on_pick(state: ChatView, approval_id: str | None) -> str:
            return approvals_view(service, prefer=approval_id).details

        def on_decide(approving: bool) -> Any:
            return lambda state, chosen, text, by: show(decide(service, state, chosen, approving, text, by))

        free = {"concurrency_limit": None, "show_progress": "hidden"}  # the service bounds the work, not Gradio
        message.submit(on_submit, [view, message], [*outputs, message], **free)
        timer.tick(lambda state: show(poll(service, state)), [view], outputs, **free)
        decision_inputs = [view, pending, note, who]
        approve.click(on_decide(True), decision_inputs, outputs, **free)
        reject.click(on_decide(False), decision_inputs, outputs, **free)
        pending.input(on_pick, [view, pending], details, **free)
        refresh_fn = lambda state: show(Panels(state, approvals=approvals_view(service)))  # noqa: E731
        refresh.click(refresh_fn, [view], outputs, **free)
        blocks.load(refresh_fn, [view], outputs, **free)
        audit_show.click(lambda run_id: _audit_of(service, run_id), [audit_run], audit, **free)
    return blocks


def _audit_of(service: ChatService, run_id: str) -> str:
    try:
        return audit_markdown(service.audit_export(run_id.strip()))
    except SmolcrewError as exc:
        return f"No audit report: {inline(exc, 300)}"


def mount(app: FastAPI, service: ChatService, *, path: str = "/ui") -> FastAPI:
    """Mount the UI on `app` at `path` (no SSR, no PWA, no MCP); the page may load the runs' artifacts."""
    gr = _gradio()
    runs = service.settings.home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    options = {"footer_links": ["settings"], "ssr_mode": False, "pwa": False, "mcp_server": False, "theme": theme()}
    mounted: FastAPI = gr.mount_gradio_app(app, build_ui(service), path=path, allowed_paths=[str(runs)], **options)
    return mounted
