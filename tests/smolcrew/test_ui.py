"""The web UI: it builds and mounts without asking another host for anything, and its callbacks drive a real
ChatService of scripted Crews (a turn streams its steps and tree, an escalated answer is approved from the
approvals panel and the timer shows the run finish, the chat's waiting message becomes the decision, mistakes are
said in the panels)."""

from __future__ import annotations

import io
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio", reason="gradio is not installed: pip install 'gradio>=6,<7'")

import gradio as gr
from fastapi.testclient import TestClient
from PIL import Image

from smolcrew.server.api import create_app
from smolcrew.server.service import ChatService
from smolcrew.server.ui import ChatView, Panels, build_ui, decide, poll, submit, theme
from smolcrew.server.ui_render import decision_markdown, media_for, tree_markdown
from tests.memory.backends.redis import REDIS_URL
from tests.smolcrew.test_service import APPROVAL_REPLIES, factory, service_settings
from tests.validators.test_human import approval_queue

ELEMENTS = ["chat", "message", "tree", "steps", "run-status", "approvals", "approve", "reject", "audit-report"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ChatService]:
    """A service whose manager delegates to `language`, which answers "hi"; no approvals."""
    with ChatService(service_settings(tmp_path / "home"), crew_factory=factory(APPROVAL_REPLIES)) as made:
        yield made


@pytest.fixture
def approving_service(tmp_path: Path) -> Iterator[ChatService]:
    """The same service, but a run that calls `language` waits for a person (queue in a fresh Redis namespace)."""
    with approval_queue() as queue:
        settings = service_settings(
            tmp_path / "home",
            validation={"approval_tools": ["language"]},
            services={"redis_url": REDIS_URL},
            memory={"namespace": queue.namespace},
        )
        with ChatService(settings, crew_factory=factory(APPROVAL_REPLIES)) as made:
            yield made


def _run(service: ChatService, text: str, view: ChatView | None = None) -> tuple[ChatView, list[Panels]]:
    view = view or ChatView()
    return view, list(submit(service, view, {"text": text, "files": []}))


def _settle(service: ChatService, view: ChatView) -> Panels:
    """Tick the timer until the followed run ends (at most 10 s); the panels of the last tick."""
    ended, deadline = Panels(view), time.monotonic() + 10
    while not view.settled and time.monotonic() < deadline:
        ended = poll(service, view)
        time.sleep(0.05)
    return ended


def _waiting(view: ChatView) -> list[str]:
    return [str(m["content"]) for m in view.messages if "A person must approve" in str(m["content"])]


def test_the_ui_builds_and_its_page_asks_no_other_host(service: ChatService) -> None:
    blocks = build_ui(service)
    assert blocks.analytics_enabled is False
    ids = {block.elem_id for block in blocks.blocks.values()}
    assert set(ELEMENTS) <= ids
    assert not any(isinstance(font, gr.themes.GoogleFont) for font in theme()._font + theme()._font_mono)
    with TestClient(create_app(service.settings, service=service, mount_ui=True)) as client:
        page = client.get("/ui/")
        config = client.get("/ui/config")
        theme_css = client.get("/ui/theme.css")
    assert page.status_code == 200 and config.status_code == 200 and theme_css.status_code == 200
    for text in (page.text, theme_css.text):
        assert not re.findall(r"""(?:src|href)=["']?https?://|@import\s+url\(["']?https?://""", text)
    assert "fonts.googleapis" not in theme_css.text and "static/fonts/" in theme_css.text
    assert config.json()["analytics_enabled"] is False and config.json()["stylesheets"] == []


def test_a_turn_streams_its_steps_and_delegation_tree_then_the_answer_and_report(service: ChatService) -> None:
    view, panels = _run(service, "Say hi, please.")
    assert len(panels) >= 3 and panels[0].status is not None and "Running" in panels[0].status
    tree = panels[-1].tree or ""
    assert "- **manager → language**: say hi" in tree and "  - language answers: hi" in tree
    assert "manager step 1 calls language" in tree
    assert view.messages[0] == {"role": "user", "content": "Say hi, please."}
    assert view.messages[-1] == {"role": "assistant", "content": "hi"} and len(view.messages) == 2
    end = panels[-1]
    assert view.result is not None and view.result["state"] == "success"
    assert end.status is not None and "ended: **success**" in end.status
    assert end.audit is not None and end.audit[0] == view.run_id and view.result["run_id"] in end.audit[1]
    assert end.media is not None and end.media.images == [] and end.media.audio is None
    assert "| delegation |" in (end.steps or "") and "| run_end |" in (end.steps or "")
    again, _ = _run(service, "And again.", view)  # the next turn follows its own run, same conversation
    assert again.conversation_id == view.conversation_id and len(view.messages) == 4


def test_an_escalated_answer_is_approved_in_the_panel_and_the_timer_shows_the_end(
    approving_service: ChatService,
) -> None:
    service = approving_service
    view, panels = _run(service, "Say hi, please.")
    waiting = panels[-1]
    assert view.result is not None and view.result["state"] == "pending_approval"
    approval_id = view.result["approval_id"]
    assert waiting.approvals is not None and waiting.approvals.selected == approval_id
    assert "needs a person's approval" in waiting.approvals.details and "language" in waiting.approvals.details
    assert "A person must approve" in view.messages[-1]["content"] and waiting.audit is None
    assert poll(service, view).chat is None  # nothing new while nobody has decided

    decided = decide(service, view, approval_id, True, "looks right", "ana")
    assert decided.notice is not None and "approved by ana" in decided.notice
    assert decided.approvals is not None and decided.approvals.choices == []
    said = {"role": "assistant", "content": f"Approved by ana (approval `{approval_id}`): looks right"}
    assert decided.chat is not None and decided.chat[-1] == said and _waiting(view) == []  # at once
    ended = _settle(service, view)
    assert view.result is not None and view.result["state"] == "success"
    assert view.messages[-2:] == [said, {"role": "assistant", "content": "hi"}] and ended.chat == view.messages
    assert _waiting(view) == []
    assert ended.audit is not None and "approved" in ended.audit[1] and "ana" in ended.audit[1]
    assert service.get_approval(approval_id).note == "looks right"
    again = decide(service, view, approval_id, False, "", "bo")
    assert again.notice is not None and again.notice.startswith("Not decided:") and "already" in again.notice
    assert again.chat is None  # a decision that failed leaves the chat as it is


def test_a_rejection_made_elsewhere_replaces_the_waiting_message_with_who_and_why(
    approving_service: ChatService,
) -> None:
    view, _ = _run(approving_service, "Say hi, please.")
    assert view.result is not None and view.result["state"] == "pending_approval" and len(_waiting(view)) == 1
    approval_id = view.result["approval_id"]
    approving_service.decide(approval_id, approve=False, by="bo", note="too *vague*")  # another tab, or the CLI
    ended = _settle(approving_service, view)
    assert view.result is not None and view.result["state"] == "rejected"
    said = {"role": "assistant", "content": f"Rejected by bo (approval `{approval_id}`): too \\*vague\\*"}
    assert ended.chat is not None and ended.chat[-1] == said
    assert view.messages == [{"role": "user", "content": "Say hi, please."}, said]  # the reason is said once


def test_a_decision_is_read_from_the_audit_else_from_the_result() -> None:
    audit = {
        "entries": [
            {"kind": "approval", "body": {"approval_id": "a1", "status": "requested"}},
            {"kind": "verdict", "body": {"status": "approved", "by": "not an approval entry"}},
            {"kind": "approval", "body": {"approval_id": "a1", "status": "approved", "by": "ana", "note": None}},
        ]
    }
    assert decision_markdown({"state": "success", "approval_id": "a1"}, audit) == "Approved by ana (approval `a1`)"
    assert decision_markdown({"state": "success", "approval_id": "a1"}, None) == "Approved (approval `a1`)"
    rejected = {"state": "rejected", "approval_id": "a1", "error": "rejected by bo: no"}
    assert decision_markdown(rejected, {"entries": []}) == "Rejected (approval `a1`): rejected by bo: no"
    broke = {"state": "error", "approval_id": "a1", "error": "boom"}  # the decision is unknown: the error follows
    assert decision_markdown(broke, None) == "Decided (approval `a1`)"


def test_mistakes_are_said_in_the_panels(service: ChatService, tmp_path: Path) -> None:
    view = ChatView()
    (empty,) = submit(service, view, {"text": "  ", "files": []})
    assert empty.status is not None and "Type a request" in empty.status and view.run_id is None
    program = tmp_path / "tool.exe"
    program.write_bytes(b"MZ\x90\x00")
    (refused,) = submit(service, view, {"text": "Run this.", "files": [str(program)]})
    assert refused.chat is not None and refused.chat[-1]["content"].startswith("Not sent:")
    assert "upload_types" in refused.chat[-1]["content"] and view.run_id is None
    assert decide(service, view, None, True, "", "ana").notice == "Pick a pending approval first."


def _png(path: Path, size: tuple[int, int] = (32, 24)) -> str:
    Image.new("RGB", size, "white").save(path)
    return str(path)


def _wav(path: Path) -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000), out.writeframes(b"\0\0" * 80)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_media_shows_artifacts_detected_boxes_on_the_image_and_cited_chunks(tmp_path: Path) -> None:
    photo, drawn = _png(tmp_path / "photo.png"), _png(tmp_path / "drawn.png", (16, 16))
    speech = _wav(tmp_path / "say.wav")
    detection: dict[str, Any] = {
        "objects": [{"label": "cat", "score": 0.91, "box": {"xmin": 1, "ymin": 2, "xmax": 20, "ymax": 22}}],
        "annotated_image": drawn,
    }
    chunks = [{"source": "a.pdf", "page": 3, "score": 0.8, "text": "Pumps last *ten* years.", "cite": "a.pdf p.3"}]
    pdf = {"sources": [{"page": 1, "score": 0.5, "chunk": "Intro."}]}
    calls = [("detect_objects", {"image": "<PIL image>"}, detection), ("search_documents", {}, chunks)]
    entries = [{"kind": "tool_call", "body": {"tool": t, "arguments": a, "value": v}} for t, a, v in calls]
    entries += [{"kind": "tool_call", "body": {"tool": "answer_from_pdf", "arguments": {}, "value": pdf}}]
    entries += [{"kind": "verdict", "body": {"objects": "not a tool call"}}]
    media = media_for({"artifacts": [drawn, speech]}, {"entries": entries}, [photo])
    assert media.images == [(drawn, "drawn.png")] and media.audio == speech
    assert (
        media.boxes is not None and media.boxes[0].size == (32, 24) and media.boxes[1] == [((1, 2, 20, 22), "cat 0.91")]
    )
    assert media.chunks.splitlines() == [
        "1. **a.pdf p.3** (search\\_documents): Pumps last \\*ten\\* years.",
        "2. **page 1** (answer\\_from\\_pdf): Intro.",
    ]
    assert media_for({"artifacts": []}, None, []).boxes is None

    outside = _png(tmp_path / "outside.png", (8, 8))  # a path the agent named that is none of the turn's files
    for named, size in ((drawn, (16, 16)), (outside, (32, 24))):
        call = {"tool": "detect_objects", "arguments": {"image": named}, "value": detection}
        found = media_for({"artifacts": [drawn]}, {"entries": [{"kind": "tool_call", "body": call}]}, [photo])
        assert found.boxes is not None and found.boxes[0].size == size


def test_the_tree_nests_steps_under_the_delegation_they_ran_in() -> None:
    steps = [
        ("router", "delegation", {"to": "vision", "task": "look"}),
        ("vision", "delegation", {"parent": "r:0", "to": "audio", "task": "hear"}),
        ("audio", "action", {"parent": "r:1", "step_number": 1, "calls": ["transcribe"]}),
        ("vision", "final_answer", {"parent": "r:0", "output": "a <b>cat</b>"}),
    ]
    records = [{"run_id": "r", "seq": i, "agent": a, "kind": k, "payload": p} for i, (a, k, p) in enumerate(steps)]
    assert tree_markdown(records).splitlines() == [
        "- **router → vision**: look",
        "  - **vision → audio**: hear",
        "    - audio step 1 calls transcribe",
        "  - vision answers: a \\<b\\>cat\\</b\\>",
    ]
    assert tree_markdown([]) == "_No delegations yet._"
