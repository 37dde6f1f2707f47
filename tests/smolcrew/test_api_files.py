"""Through the HTTP API a run reads only its own conversation's files (issue 12): its uploads and its runs'
outputs; a server file anywhere else, the server's current directory included, is refused to its tools."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs fastapi: pip install fastapi uvicorn python-multipart")

import httpx

from tests.conftest import code
from tests.smolcrew.test_api import serve, sse
from tests.smolcrew.test_service import _texts, factory, service_settings

OUTSIDE = "outside the folders this run may read"


def reader(messages: list[dict[str, Any]]) -> str:
    """The manager hands the request to `research`; research describes the last CSV path named in its messages
    and answers with its row count, or says it was refused."""
    text = _texts(messages)
    path = re.findall(r"(/[^\s\"',]+\.csv)", text)[-1]
    if "You are the manager" in text:
        return code(f'r = research(task="Describe the table at {path}")\nfinal_answer(r)')
    if OUTSIDE in text:
        return code('final_answer("refused")')
    return code(f'd = describe_table(path="{path}")\nfinal_answer("rows=" + str(d["rows"]))')


@pytest.fixture
def client(tmp_path: Path) -> Any:
    upload_types = ["text/csv", "text/plain"]
    settings = service_settings(tmp_path / "home", server={"upload_types": upload_types})
    with serve(settings, factory(reader)) as made:
        yield made


def ask(client: httpx.Client, conversation: str, text: str, files: Any = None) -> list[dict[str, Any]]:
    if files:
        reply = client.post(f"/v1/conversations/{conversation}/messages", data={"text": text}, files=files)
    else:
        reply = client.post(f"/v1/conversations/{conversation}/messages", json={"text": text})
    assert reply.status_code == 202, reply.text
    return sse(client, reply.json()["events_url"])


def errors(events: list[dict[str, Any]]) -> list[str]:
    steps = [event["data"] for event in events if event.get("event") == "step"]
    return [str(step["payload"]["error"]) for step in steps if step["payload"].get("error")]


def test_a_run_cannot_read_a_server_file_outside_its_uploads(client: httpx.Client, tmp_path: Path) -> None:
    """The server's current directory (here tmp_path, where a CLI run could read) is not the run's."""
    secret = tmp_path / "server-secret.csv"
    secret.write_text("user,password\nroot,hunter2\n")
    assert Path.cwd() == tmp_path
    conversation = client.post("/v1/conversations").json()["id"]
    events = ask(client, conversation, f"Describe the table at {secret}")
    assert events[-1]["data"]["answer"] == "refused"
    found = errors(events)
    assert found and all(OUTSIDE in error for error in found), found
    assert f"uploads/{conversation}" in found[0] and "hunter2" not in str(events)


def test_a_run_reads_its_uploads_but_not_another_conversations(client: httpx.Client) -> None:
    first = client.post("/v1/conversations").json()["id"]
    table = [("files", ("scores.csv", b"name,score\nada,3\nbob,5\n", "text/csv"))]
    events = ask(client, first, "Describe the attached table.", table)
    assert events[-1]["data"]["answer"] == "rows=2" and not errors(events)
    uploaded = client.get(f"/v1/runs/{events[-1]['data']['run_id']}").json()["files"][0]
    assert Path(uploaded).parent.name == first

    second = client.post("/v1/conversations").json()["id"]
    events = ask(client, second, f"Describe the table at {uploaded}")
    assert events[-1]["data"]["answer"] == "refused"
    assert any(OUTSIDE in error for error in errors(events))


def test_run_roots_are_the_uploads_and_the_conversations_outputs(tmp_path: Path) -> None:
    from smolcrew.server.uploads import run_roots, uploads_folder

    assert run_roots(tmp_path, "c1", ["r1", "r2"]) == (
        uploads_folder(tmp_path, "c1"),
        tmp_path / "runs" / "r1" / "artifacts",
        tmp_path / "runs" / "r2" / "artifacts",
    )
