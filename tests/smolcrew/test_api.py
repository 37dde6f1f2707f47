"""The HTTP API against a real uvicorn server on localhost: conversations, live SSE streams (resumed with
Last-Event-ID), uploads, approvals, auth, and problem+json errors for bad input."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs fastapi: pip install fastapi uvicorn python-multipart")

import httpx
import uvicorn

from smolcrew.cli.serve import uvicorn_config
from smolcrew.config import Settings
from smolcrew.errors import ConfigError
from smolcrew.server.api import create_app
from smolcrew.server.service import ChatService
from tests.memory.backends.redis import REDIS_URL
from tests.smolcrew.test_service import APPROVAL_REPLIES, factory, png_bytes, service_settings
from tests.validators.test_human import approval_queue

PROBLEM = "application/problem+json"
TOKEN = "t" * 32
"""The shortest token the server accepts."""


@contextmanager
def serve(settings: Settings, crew_factory: Callable[[Settings], Any]) -> Iterator[httpx.Client]:
    """A real server on a free localhost port around a fresh ChatService; yields a client for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = ChatService(settings, crew_factory=crew_factory)
    server = uvicorn.Server(uvicorn_config(create_app(service=service), port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        service.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with serve(service_settings(tmp_path / "home"), factory()) as made:
        yield made


def sse(client: httpx.Client, url: str, **headers: str) -> list[dict[str, Any]]:
    """Read a server-sent event stream to its end, as it arrives."""
    events, current = [], {}
    with client.stream("GET", url, headers=headers) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return events


def send(client: httpx.Client, conversation: str, text: str) -> dict[str, Any]:
    reply = client.post(f"/v1/conversations/{conversation}/messages", json={"text": text})
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def test_a_two_turn_conversation_streams_and_resumes(client: httpx.Client) -> None:
    conversation = client.post("/v1/conversations").json()["id"]
    first = send(client, conversation, "Remember the fruit kiwi.")
    second = send(client, conversation, "Which fruit did I name?")
    events = sse(client, second["events_url"])
    assert [int(e["id"]) for e in events] == list(range(len(events)))
    assert {e["event"] for e in events[:-1]} == {"step"} and events[-1]["event"] == "run_end"
    assert events[-1]["data"]["answer"] == "kiwi=yes images=0"
    resumed = sse(client, second["events_url"], **{"Last-Event-ID": events[2]["id"]})
    assert [e["id"] for e in resumed] == [e["id"] for e in events[3:]]
    assert sse(client, first["events_url"])[-1]["data"]["state"] == "success"
    turns = client.get(f"/v1/conversations/{conversation}").json()["turns"]
    assert [(t["run_id"], t["state"]) for t in turns] == [(first["run_id"], "success"), (second["run_id"], "success")]
    run = client.get(f"/v1/runs/{second['run_id']}").json()
    assert run["status"] == "done" and run["result"]["answer"] == "kiwi=yes images=0"
    audit = client.get(f"/v1/runs/{second['run_id']}/audit").json()
    assert audit["verification"]["ok"] is True and audit["run_id"] == run["journal_run_id"]


def test_uploads_reach_the_run(client: httpx.Client) -> None:
    conversation = client.post("/v1/conversations").json()["id"]
    files = [("files", ("cat.png", png_bytes(), "image/png")), ("files", ("a.pdf", b"%PDF-1.4 x", "application/pdf"))]
    reply = client.post(f"/v1/conversations/{conversation}/messages", data={"text": "Look."}, files=files)
    assert reply.status_code == 202, reply.text
    assert sse(client, reply.json()["events_url"])[-1]["data"]["answer"] == "kiwi=no images=1"
    run = client.get(f"/v1/runs/{reply.json()['run_id']}").json()
    assert [Path(f).suffix for f in run["files"]] == [".png", ".pdf"]
    assert all(Path(f).parent.name == conversation for f in run["files"])


@pytest.mark.parametrize(
    ("request_kwargs", "status", "says"),
    [
        ({"files": [("files", ("big.txt", b"x" * 2_000_000, "text/plain"))], "data": {"text": "hi"}}, 413, "limit"),
        ({"files": [("files", ("a.exe", b"MZ", "application/x-msdownload"))], "data": {"text": "hi"}}, 415, "type"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"text": ""}}, 422, "text"),
        ({"json": {"words": "hi"}}, 422, "schema"),
        ({"content": b"hi", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
    ],
)
def test_bad_messages_get_problem_details(
    tmp_path: Path, request_kwargs: dict[str, Any], status: int, says: str
) -> None:
    settings = service_settings(tmp_path / "home", server={"max_upload_mb": 1})
    with serve(settings, factory()) as client:
        conversation = client.post("/v1/conversations").json()["id"]
        reply = client.post(f"/v1/conversations/{conversation}/messages", **request_kwargs)
        assert reply.status_code == status and reply.headers["content-type"] == PROBLEM
        body = reply.json()
        assert body["status"] == status and body["title"] and says in body["detail"]


def test_unknown_things_and_path_traversal_are_404(client: httpx.Client) -> None:
    reply = client.post("/v1/conversations/nope/messages", json={"text": "hi"})
    assert reply.status_code == 404 and "POST /v1/conversations" in reply.json()["detail"]
    assert client.get("/v1/runs/nope/events").status_code == 404
    conversation = client.post("/v1/conversations").json()["id"]
    run_id = send(client, conversation, "Hello.")["run_id"]
    sse(client, f"/v1/runs/{run_id}/events")
    for name in ("..%2F..%2Fjournal", "%2E%2E", "..%5Caudit", "secret.txt"):
        reply = client.get(f"/v1/runs/{run_id}/artifacts/{name}")
        assert reply.status_code == 404 and reply.headers["content-type"] == PROBLEM, name
    assert client.get("/v1/approvals/nope").status_code in (404, 503)


def test_an_escalated_run_ends_with_success_once_approved(tmp_path: Path) -> None:
    with approval_queue() as queue:
        settings = service_settings(
            tmp_path / "home",
            services={"redis_url": REDIS_URL},
            memory={"namespace": queue.namespace},
            validation={"approval_tools": ["language"]},
            server={"workers": 1},
        )
        with serve(settings, factory(APPROVAL_REPLIES)) as client:
            conversation = client.post("/v1/conversations").json()["id"]
            run = send(client, conversation, "Say hi, please.")
            seen: list[dict[str, Any]] = []
            reader = threading.Thread(target=lambda: seen.extend(sse(client, run["events_url"])))
            reader.start()
            pending: list[dict[str, Any]] = []
            for _ in range(200):
                pending = client.get("/v1/approvals").json()
                if pending:
                    break
                time.sleep(0.05)
            assert len(pending) == 1 and "language" in " ".join(pending[0]["reasons"])
            decision = {"approve": True, "by": "ana", "note": "fine"}
            assert client.post(f"/v1/approvals/{pending[0]['id']}", json=decision).json()["status"] == "approved"
            again = client.post(f"/v1/approvals/{pending[0]['id']}", json=decision)
            assert again.status_code == 409 and "already approved" in again.json()["detail"]
            reader.join(10)
            kinds = [e["event"] for e in seen]
            assert "pending_approval" in kinds and kinds[-1] == "run_end"
            assert seen[-1]["data"]["state"] == "success" and seen[-1]["data"]["answer"] == "hi"


def test_with_a_token_every_route_needs_it(tmp_path: Path) -> None:
    settings = service_settings(tmp_path / "home", server={"token": TOKEN})
    with serve(settings, factory()) as client:
        for path in ("/healthz", "/v1/approvals", "/openapi.json"):
            reply = client.get(path)
            assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in reply.json()["detail"]
        assert client.get("/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get(f"/healthz?token={TOKEN}").status_code == 200
        assert client.get("/healthz", headers={"Cookie": f"token={TOKEN}"}).status_code == 200


def test_without_a_token_loopback_is_open_and_other_hosts_refuse_to_start(client: httpx.Client, tmp_path: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"redis", "journal", "model"}
    with pytest.raises(ConfigError, match="SMOLCREW_SERVER__TOKEN"):
        create_app(service_settings(tmp_path / "h2", server={"host": "0.0.0.0"}))


def test_readiness_is_503_when_redis_is_down(tmp_path: Path) -> None:
    from tests.memory.backends.redis import closed_port_url

    settings = service_settings(tmp_path / "home", services={"redis_url": closed_port_url()})
    with serve(settings, factory()) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["content-type"] == PROBLEM
        assert ready.json()["checks"]["redis"]["ok"] is False and "redis-server" in ready.json()["detail"]
        approvals = client.get("/v1/approvals")
        assert approvals.status_code == 503 and "redis-server" in approvals.json()["detail"]


def test_tracing_without_its_packages_says_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    settings = service_settings(tmp_path / "home", server={"tracing": True})
    if importlib.util.find_spec("openinference") is not None:
        pytest.skip("openinference is installed here, so tracing starts")
    with pytest.raises(ConfigError, match="pip install openinference-instrumentation-smolagents"):
        create_app(settings)
