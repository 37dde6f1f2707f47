"""The chat service: conversations over a pool of scripted Crews, runs in the background, events live and in order,
uploads stored per conversation, approvals that resume their run."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.config import Settings
from smolcrew.crew import Crew
from smolcrew.errors import ConversationNotFoundError, ModelUnavailableError, UnsupportedUploadError
from smolcrew.server.service import ChatService, RunEvent
from smolcrew.server.uploads import Upload
from tests.conftest import code, loop_settings

__all__ = ["APPROVAL_REPLIES", "NoRouterCrew", "echo", "png_bytes", "service_settings"]

APPROVAL_REPLIES = [code('r = language(task="say hi")\nfinal_answer(r)'), code('final_answer("hi")')]
"""The manager delegates to `language` (an approval tool in these tests), which answers "hi"."""


class NoRouterCrew(Crew):
    """A Crew without the embedding router, so a test does not load MiniLM: the manager routes alone."""

    def route(self, request: str) -> Any:
        raise ModelUnavailableError("no router in service tests", backend="embeddings", fix="none needed")


def _texts(messages: list[dict[str, Any]]) -> str:
    parts = [m["content"] if isinstance(m["content"], str) else m["content"] or [] for m in messages]
    return " ".join(p if isinstance(p, str) else " ".join(str(i.get("text", "")) for i in p) for p in parts)


def echo(messages: list[dict[str, Any]]) -> str:
    """Answers whether the conversation so far mentions kiwi and how many images the model was shown."""
    images = sum(
        1 for m in messages if isinstance(m["content"], list) for i in m["content"] if i.get("type") == "image"
    )
    kiwi = "yes" if "kiwi" in _texts(messages) else "no"
    return code(f'final_answer("kiwi={kiwi} images={images}")')


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def service_settings(home: Path, **overrides: Any) -> Settings:
    overrides.setdefault("routing", {"mode": "manager"})
    return loop_settings(home=str(home), **overrides)


def factory(replies: Any = echo) -> Callable[[Settings], Crew]:
    def build(settings: Settings) -> Crew:
        return NoRouterCrew(settings, model=ScriptedModel(replies))

    return build


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ChatService]:
    with ChatService(service_settings(tmp_path / "home"), crew_factory=factory()) as made:
        yield made


def _all(service: ChatService, run_id: str) -> list[RunEvent]:
    return list(service.events(run_id, timeout_s=10))


def test_a_turn_streams_its_steps_in_order_then_run_end(service: ChatService) -> None:
    conversation = service.create_conversation()
    ticket = service.send(conversation.id, "Remember the fruit kiwi.")
    events = _all(service, ticket.run_id)
    assert [e.id for e in events] == list(range(len(events)))
    assert [e.event for e in events[:-1]] == ["step"] * (len(events) - 1) and events[-1].event == "run_end"
    steps = [e.data for e in events[:-1]]
    assert [s["seq"] for s in steps] == list(range(len(steps)))
    assert steps[0]["kind"] == "run_start" and steps[-1]["kind"] == "run_end"
    result = events[-1].data
    assert result["state"] == "success" and result["answer"] == "kiwi=yes images=0"
    assert service.result(ticket.run_id) == result and service.run_info(result["run_id"]).run_id == ticket.run_id


def test_the_second_turn_sees_the_first_and_late_subscribers_miss_nothing(service: ChatService) -> None:
    conversation = service.create_conversation()
    first = service.send(conversation.id, "Remember the fruit kiwi.")
    second = service.send(conversation.id, "Which fruit did I name?")  # queued behind the first
    other = service.send(service.create_conversation().id, "Which fruit did I name?")
    assert _all(service, second.run_id)[-1].data["answer"] == "kiwi=yes images=0"
    assert _all(service, other.run_id)[-1].data["answer"] == "kiwi=no images=0"
    whole = _all(service, first.run_id)
    assert [e.id for e in service.events(first.run_id, after=2, timeout_s=1)] == [e.id for e in whole[3:]]
    assert [t.run_id for t in service.turns(conversation.id)] == [first.run_id, second.run_id]


def test_an_image_reaches_the_run_and_a_pdf_is_stored_per_conversation(service: ChatService) -> None:
    conversation = service.create_conversation()
    files = [
        Upload("../../etc/cat.png", "image/png", png_bytes()),
        Upload("paper.pdf", "application/pdf", b"%PDF-1.4 tiny"),
    ]
    ticket = service.send(conversation.id, "Describe the picture.", files)
    events = _all(service, ticket.run_id)
    assert events[-1].data["answer"] == "kiwi=no images=1"
    folder = service.settings.home / "uploads" / conversation.id
    stored = sorted(folder.iterdir())
    assert len(stored) == 2 and {p.suffix for p in stored} == {".png", ".pdf"}
    pdf = next(p for p in stored if p.suffix == ".pdf")
    assert pdf.read_bytes() == b"%PDF-1.4 tiny" and str(pdf) in events[0].data["payload"]["task"]


def test_refused_uploads_and_unknown_conversations_say_what_to_do(service: ChatService) -> None:
    conversation = service.create_conversation()
    with pytest.raises(UnsupportedUploadError, match="not a readable image"):
        service.send(conversation.id, "Look.", [Upload("x.png", "image/png", b"not a png")])
    with pytest.raises(UnsupportedUploadError, match="not accepted"):
        service.send(conversation.id, "Run it.", [Upload("x.exe", "application/x-msdownload", b"MZ")])
    with pytest.raises(ConversationNotFoundError, match="POST /v1/conversations"):
        service.send("nope", "Hello.")
    assert not (service.settings.home / "uploads").exists()


def test_runs_of_different_conversations_proceed_in_parallel(tmp_path: Path) -> None:
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow(messages: list[dict[str, Any]]) -> str:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)
        with lock:
            inside[0] -= 1
        return code('final_answer("done")')

    settings = service_settings(tmp_path / "home", server={"workers": 2})
    with ChatService(settings, crew_factory=factory(slow)) as service:
        tickets = [service.send(service.create_conversation().id, "Wait a bit.") for _ in range(2)]
        assert all(_all(service, t.run_id)[-1].data["state"] == "success" for t in tickets)
    assert most[0] == 2


def test_a_run_that_breaks_still_ends_its_stream(tmp_path: Path) -> None:
    def broken(settings: Settings) -> Crew:
        raise RuntimeError("no crew today")

    with ChatService(service_settings(tmp_path / "home"), crew_factory=broken) as service:
        ticket = service.send(service.create_conversation().id, "Hello.")
        end = _all(service, ticket.run_id)[-1]
        assert end.event == "run_end" and end.data["state"] == "error" and "no crew today" in end.data["error"]
        assert service.ready().ok is False and "no crew today" in service.ready().checks["model"][1]
