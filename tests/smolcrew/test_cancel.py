"""Cancelling a run: a running one stops at its next step and is sealed `cancelled` (journal and audit agree); a
queued one ends at once and never runs; an ended one, or one that waits for a person, refuses with 409."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smolcrew.config import Settings
from smolcrew.crew import Crew
from smolcrew.errors import RunNotCancellable, RunNotFoundError
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.server.service import ChatService
from tests.conftest import code
from tests.smolcrew.test_api import serve
from tests.smolcrew.test_service import factory, service_settings

THREE_STEPS = [code("a = 1"), code("b = 2"), code('final_answer("three")')]


def test_a_run_asked_to_stop_ends_cancelled_at_its_next_step_sealed(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(THREE_STEPS, routing={"mode": "manager"})
    asked = [0]

    def cancelled() -> bool:
        asked[0] += 1
        return asked[0] >= 2  # the first step runs, the second is the last

    result = crew.run("Count to three.", cancelled=cancelled)
    assert result.state == "cancelled" and result.answer is None and "cancelled" in str(result.error)
    kinds = [record.kind for record in result.steps]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and len(kinds) < 6
    journaled = JournalSink(crew.settings.home / "journal").read(result.run_id)
    assert journaled[-1].payload["state"] == "cancelled"
    assert crew.audit.verify(result.run_id, expected_head=result.audit_head).ok

    again = crew.run("Count to three.", cancelled=lambda: False)  # the same crew keeps working
    assert again.state == "success" and again.answer == "three"


class _Gate:
    """A scripted model reply that waits until the test lets it through."""

    def __init__(self, reply: str) -> None:
        self.reply, self.entered, self.release = reply, threading.Event(), threading.Event()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        self.entered.set()
        assert self.release.wait(10)
        return self.reply


def _ended(service: ChatService, run_id: str) -> dict[str, Any]:
    events = list(service.events(run_id, timeout_s=10))
    assert events and events[-1].event == "run_end"
    return events[-1].data


def _service(tmp_path: Path, replies: Any, workers: int = 1) -> ChatService:
    settings: Settings = service_settings(tmp_path / "home", server={"workers": workers})
    return ChatService(settings, crew_factory=factory(replies))


def test_a_running_turn_stops_within_two_seconds_of_cancel(tmp_path: Path) -> None:
    gate = _Gate(code("a = 1"))
    with _service(tmp_path, gate) as service:
        ticket = service.send(service.create_conversation().id, "Keep going.")
        assert gate.entered.wait(10)
        info = service.cancel(ticket.run_id)
        assert info.status == "running" and info.cancel_requested
        asked = time.monotonic()
        gate.release.set()
        end = _ended(service, ticket.run_id)
        assert time.monotonic() - asked < 2
        assert end["state"] == "cancelled" and end["answer"] is None
        assert service.cancel(ticket.run_id).status == "done"  # again: nothing changes
        assert service.run_info(ticket.run_id).result == end


def test_a_queued_turn_cancelled_ends_at_once_and_never_runs(tmp_path: Path) -> None:
    gate = _Gate(code('final_answer("first")'))
    with _service(tmp_path, gate, workers=1) as service:
        busy = service.send(service.create_conversation().id, "First.")
        assert gate.entered.wait(10)
        waiting = service.send(service.create_conversation().id, "Second.")
        assert service.run_info(waiting.run_id).status == "queued"
        end = service.cancel(waiting.run_id).result
        assert end is not None and end["state"] == "cancelled"
        gate.release.set()
        assert _ended(service, busy.run_id)["state"] == "success"
        assert _ended(service, waiting.run_id)["state"] == "cancelled"
        assert waiting.run_id not in JournalSink(service.settings.home / "journal").runs()


def test_an_ended_run_refuses_to_be_cancelled(tmp_path: Path) -> None:
    with _service(tmp_path, [code('final_answer("done")')]) as service:
        ticket = service.send(service.create_conversation().id, "Finish.")
        assert _ended(service, ticket.run_id)["state"] == "success"
        with pytest.raises(RunNotCancellable, match="has ended") as refused:
            service.cancel(ticket.run_id)
        assert refused.value.status == "done"
        with pytest.raises(RunNotFoundError):
            service.cancel("nosuchrun")


def test_the_api_cancels_with_202_and_refuses_with_problem_json(tmp_path: Path) -> None:
    gate = _Gate(code("a = 1"))
    with serve(service_settings(tmp_path / "home"), factory(gate)) as client:
        conversation = client.post("/v1/conversations").json()["id"]
        run_id = client.post(f"/v1/conversations/{conversation}/messages", json={"text": "Go."}).json()["run_id"]
        assert gate.entered.wait(10)
        reply = client.post(f"/v1/runs/{run_id}/cancel")
        assert reply.status_code == 202 and reply.json()["cancel_requested"] is True
        gate.release.set()
        deadline = time.monotonic() + 10
        while client.get(f"/v1/runs/{run_id}").json()["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get(f"/v1/runs/{run_id}").json()["result"]["state"] == "cancelled"
        missing = client.post("/v1/runs/nosuchrun/cancel")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

    with serve(service_settings(tmp_path / "home2"), factory([code('final_answer("done")')])) as client:
        conversation = client.post("/v1/conversations").json()["id"]
        run_id = client.post(f"/v1/conversations/{conversation}/messages", json={"text": "Go."}).json()["run_id"]
        deadline = time.monotonic() + 10
        while client.get(f"/v1/runs/{run_id}").json()["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = client.post(f"/v1/runs/{run_id}/cancel")
        assert refused.status_code == 409 and "has ended" in refused.json()["detail"]
