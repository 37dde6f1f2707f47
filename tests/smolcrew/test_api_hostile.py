"""The HTTP server against hostile clients: no request gets a 5xx, and every refusal is a problem
(`application/problem+json`).

- Bodies: over the limit by Content-Length (answered before the body is sent), over it as a chunked stream
  (answered while it still arrives), nested 100,000 deep, stalled half-way; a 50 MB body costs the server no memory.
- Headers: bad `Last-Event-ID`, huge headers; artifact names that try to leave the run's folder.
- Artifacts a run wrote (HTML, SVG, XML, JS) are downloads, never pages of the API's origin.
- Security headers on every reply; CORS closed to unlisted origins (Gradio's own echo removed); cross-origin
  posts refused.
- The token: 32 characters at least, `--generate-token`, the `/ui?token=` redirect, never in the logs.
"""

from __future__ import annotations

import http.client
import logging
import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the API needs fastapi: pip install fastapi uvicorn python-multipart")

import httpx
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from smolcrew.config import Settings
from smolcrew.errors import ConfigError
from smolcrew.server.api import create_app
from smolcrew.server.limits import json_depth
from smolcrew.server.service import ChatService
from tests.smolcrew.test_api import PROBLEM, TOKEN, serve, sse
from tests.smolcrew.test_service import factory, service_settings

MB = 1024 * 1024


@pytest.fixture
def small(tmp_path: Path) -> Iterator[httpx.Client]:
    """A real server with small limits: JSON bodies 16 KiB, uploads 1 MiB, a stalled body waits 0.5 s."""
    limits = {"max_json_kb": 16, "max_upload_mb": 1, "body_timeout_s": 0.5}
    with serve(service_settings(tmp_path / "home", server=limits), factory()) as client:
        yield client


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, ChatService]]:
    """The app in-process (no socket) over a fresh service, for header checks."""
    settings = service_settings(tmp_path / "home", server={"cors_origins": ["https://app.example.com"]})
    with ChatService(settings, crew_factory=factory()) as service, TestClient(create_app(service=service)) as client:
        yield client, service


def refused(reply: httpx.Response | http.client.HTTPResponse, status: int, says: str) -> None:
    """`reply` is a problem of `status` whose detail says `says`."""
    import json

    body = reply.read() if isinstance(reply, http.client.HTTPResponse) else reply.content
    assert reply.status == status if isinstance(reply, http.client.HTTPResponse) else reply.status_code == status
    assert reply.headers["content-type"] == PROBLEM
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and says in problem["detail"], problem


def port_of(client: httpx.Client) -> int:
    return int(client.base_url.port or 80)


def raw(port: int, head: str, chunks: Iterable[bytes] = (), *, wait_s: float = 10) -> tuple[Any, int]:
    """Send `head` (request line and headers) and then `chunks`, stopping as soon as the server answers; the
    parsed reply and how many body bytes were sent before it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait_s)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
    sent = 0
    for chunk in chunks:
        if select.select([sock], [], [], 0)[0]:
            break  # the server answered before the body was all sent
        try:
            sock.sendall(chunk)
        except OSError:
            break  # it closed the connection: read what it said
        sent += len(chunk)
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return reply, sent


def chunked(piece: bytes, count: int, first: bytes = b"") -> Iterator[bytes]:
    """A chunked transfer encoding of `first` then `count` copies of `piece`, then the last chunk."""
    if first:
        yield f"{len(first):x}\r\n".encode() + first + b"\r\n"
    for _ in range(count):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def conversation(client: httpx.Client) -> str:
    return str(client.post("/v1/conversations").json()["id"])


# ---- bodies ----


@pytest.mark.parametrize(
    ("kind", "length"),
    [("application/json", 300 * MB), ("multipart/form-data; boundary=x", 100 * MB), ("text/plain", 2 * MB)],
)
def test_a_body_over_the_limit_by_content_length_is_refused_before_it_is_sent(
    small: httpx.Client, kind: str, length: int
) -> None:
    head = f"POST /v1/conversations/{conversation(small)}/messages HTTP/1.1\nHost: x\nContent-Type: {kind}\n"
    reply, _ = raw(port_of(small), head + f"Content-Length: {length}\n")  # not one byte of the body sent
    refused(reply, 413, "limit")


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(small: httpx.Client) -> None:
    path = f"/v1/conversations/{conversation(small)}/messages"
    part = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n'
    for kind, total, first in (("application/json", 32 * MB, b""), ("multipart/form-data; boundary=x", 64 * MB, part)):
        head = f"POST {path} HTTP/1.1\nHost: x\nContent-Type: {kind}\nTransfer-Encoding: chunked\n"
        reply, sent = raw(port_of(small), head, chunked(b"x" * 65536, total // 65536, first))
        refused(reply, 413, "limit")
        assert sent < total // 2, f"{kind}: the server let {sent} bytes in before refusing"


def test_a_deeply_nested_json_body_is_refused_before_parsing(client: httpx.Client) -> None:
    path = f"/v1/conversations/{conversation(client)}/messages"
    deep = b"[" * 100_000 + b"]" * 100_000  # a RecursionError (a plain-text 500) in json.loads
    for url, body in ((path, deep), ("/v1/approvals/nope", b'{"a":' * 50_000 + b"1" + b"}" * 50_000)):
        refused(client.post(url, content=body, headers={"content-type": "application/json"}), 400, "max_json_depth")
    unclosed = client.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
    refused(unclosed, 400, "nests deeper")
    refused(client.post(path, content=deep), 400, "max_json_depth")  # no content type: FastAPI parses JSON too
    inside_a_string = {"text": "[" * 10_000 + "{" * 10_000}
    assert client.post(path, json=inside_a_string).status_code == 202


def test_depth_is_counted_outside_strings_in_linear_time() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[\\" [["}]}') == 3
    assert json_depth(b'["\\\\", [["\\\\\\"]"]]]') == 3
    assert json_depth(b"[" * 100_000) == 100_000 and json_depth(b"") == 0
    started = time.perf_counter()
    json_depth(b'"\\"' * 400_000 + b"[" * MB)  # quadratic for a backtracking string regex
    assert time.perf_counter() - started < 1.0


def test_a_stalled_body_is_refused_with_408(small: httpx.Client) -> None:
    head = f"POST /v1/conversations/{conversation(small)}/messages HTTP/1.1\nHost: x\n"
    head += "Content-Type: application/json\nContent-Length: 100\n"
    started = time.monotonic()
    reply, _ = raw(port_of(small), head, [b'{"text": "'])
    refused(reply, 408, "body_timeout_s")
    assert time.monotonic() - started < 5
    multipart = head.replace("application/json", "multipart/form-data; boundary=x")
    reply, _ = raw(port_of(small), multipart, [b"--x\r\n"])
    refused(reply, 408, "stalled")


def test_a_50_mb_body_is_refused_without_the_server_buffering_it(tmp_path: Path) -> None:
    """The whole 50 MB is offered (from one reused 1 MB buffer); the server's Python allocations stay small."""
    with serve(service_settings(tmp_path / "home"), factory()) as client:
        path = f"/v1/conversations/{conversation(client)}/messages"
        piece = b"x" * MB
        head = f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {50 * MB}\n"
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            reply, _ = raw(port_of(client), head, [piece] * 50)
            refused(reply, 413, "max_json_kb")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * MB, f"the server allocated {peak / MB:.1f} MB for a refused body"


# ---- headers and names ----


def test_bad_headers_and_artifact_names_are_problems_never_5xx(client: httpx.Client) -> None:
    conversation_id = conversation(client)
    run_id = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "Hi."}).json()["run_id"]
    events = f"/v1/runs/{run_id}/events"
    sse(client, events)
    for bad in ("-5", "abc", "1.5", "9" * 5000, "-2"):
        refused(client.get(events, headers={"Last-Event-ID": bad}), 422, "Last-Event-ID")
    refused(client.get(f"{events}?after=-5"), 422, "after")
    assert len(sse(client, events, **{"Last-Event-ID": "-1"})) >= 2
    names = ["..%2F..%2Fjournal", "%2E%2E", "..%5Caudit", ".", "a%00b", "%2Fetc%2Fpasswd", "x" * 2000, "%C0%AE%C0%AE"]
    for name in names:
        reply = client.get(f"/v1/runs/{run_id}/artifacts/{name}")
        assert reply.status_code == 404 and reply.headers["content-type"] == PROBLEM, name
    replies = [
        client.get("/healthz", headers={"X-Big": "a" * 60_000}),
        client.get("/healthz", headers={"X-Huge": "a" * 1_000_000}),  # over MAX_HEAD_BYTES: refused by h11
        client.get("/healthz", headers={f"X-H{i}": "v" for i in range(500)}),
        client.get("/v1/approvals?limit=" + "9" * 5000),
        client.post("/v1/conversations", headers={"Content-Length": "0", "Content-Type": "application/json"}),
    ]
    assert all(reply.status_code < 500 for reply in replies), [r.status_code for r in replies]
    assert replies[0].status_code == 200  # 60 KB of headers: under MAX_HEAD_BYTES
    assert replies[1].status_code == 400 and client.get("/healthz").status_code == 200  # uvicorn's parser refused
    for reply in replies[2:]:
        if reply.status_code >= 400:
            assert reply.headers["content-type"] == PROBLEM


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with serve(service_settings(tmp_path / "home"), factory()) as made:
        yield made


@pytest.mark.parametrize(
    "name",
    ["report.html", "logo.svg", "feed.xml", "app.js", "page.xhtml", "data.json", "doc.pdf", 'a"b\r\nX-Evil: 1.html'],
)
def test_an_artifact_is_a_download_never_a_page(
    app_client: tuple[TestClient, ChatService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    client, service = app_client
    path = tmp_path / name.replace("\r\n", "__")
    path.write_text("<script>fetch('/v1/approvals', {credentials: 'include'})</script>")
    monkeypatch.setattr(service, "artifact", lambda run_id, name: path)
    reply = client.get("/v1/runs/r1/artifacts/x")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    disposition = reply.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and '"' not in disposition.split("=", 1)[1].strip('"')
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert "x-evil" not in reply.headers


def test_images_and_audio_stay_inline_but_sandboxed(
    app_client: tuple[TestClient, ChatService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service = app_client
    for name, kind in (("cat.png", "image/png"), ("say.wav", "audio/x-wav")):
        path = tmp_path / name
        path.write_bytes(b"\x89PNG....")
        monkeypatch.setattr(service, "artifact", lambda run_id, name, path=path: path)
        reply = client.get("/v1/runs/r1/artifacts/x")
        assert reply.headers["content-type"] in (kind, "audio/wav")
        assert reply.headers["content-disposition"].startswith("inline")
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["content-security-policy"].startswith("sandbox")


# ---- security headers and CORS ----


def test_every_reply_carries_security_headers(app_client: tuple[TestClient, ChatService]) -> None:
    client, _ = app_client
    for reply in (client.get("/healthz"), client.get("/nope"), client.post("/v1/conversations", json=[])):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    home = client.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/openapi.json"


def test_cors_is_closed_to_unlisted_origins_and_open_to_listed_ones(app_client: tuple[TestClient, ChatService]) -> None:
    client, _ = app_client
    evil = {"Origin": "http://localhost:3000"}
    preflight = {**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    refused(client.options("/v1/conversations", headers=preflight), 403, "server.cors_origins")
    assert "access-control-allow-origin" not in client.get("/healthz", headers=evil).headers
    refused(client.post("/v1/conversations", headers=evil), 403, "cors_origins")
    assert client.post("/v1/conversations", headers={"Origin": "http://testserver"}).status_code == 201  # same origin
    listed = {"Origin": "https://app.example.com"}
    answer = client.options("/v1/conversations", headers={**preflight, **listed})
    assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "Authorization" in answer.headers["access-control-allow-headers"]
    created = client.post("/v1/conversations", headers=listed)
    assert created.status_code == 201 and created.headers["access-control-allow-credentials"] == "true"


def test_the_ui_gets_its_own_csp_and_gradio_echoes_no_origin(tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="gradio is not installed")
    with ChatService(service_settings(tmp_path / "home"), crew_factory=factory()) as service:
        app = create_app(service=service, mount_ui=True)
        with TestClient(app, base_url="http://localhost:8765") as client:
            page = client.get("/ui/", headers={"Origin": "http://localhost:9999"})
            assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp and "frame-ancestors 'none'" in csp
    assert "access-control-allow-origin" not in page.headers  # Gradio echoes any localhost origin
    assert "access-control-allow-credentials" not in page.headers


# ---- the token ----


@pytest.mark.parametrize("token", ["", "x", "t" * 31])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_short_token_is_refused_on_loopback_and_off_it(tmp_path: Path, token: str, host: str) -> None:
    with pytest.raises(ConfigError, match="--generate-token"):
        create_app(service_settings(tmp_path / "home", server={"token": token, "host": host}))


def test_generate_token_prints_a_long_random_token_and_serve_refuses_a_short_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smolcrew.cli.app import app

    runner = CliRunner()
    first, second = (runner.invoke(app, ["serve", "--generate-token"]) for _ in range(2))
    assert first.exit_code == 0 and len(first.stdout.strip()) >= 43 and first.stdout != second.stdout
    monkeypatch.setenv("SMOLCREW_SERVER__TOKEN", "short")
    refused_start = runner.invoke(app, ["serve", "--no-ui"])
    assert refused_start.exit_code == 2 and "--generate-token" in refused_start.output


def test_the_ui_token_link_sets_a_cookie_and_redirects_to_a_clean_url(tmp_path: Path) -> None:
    settings = service_settings(tmp_path / "home", server={"token": TOKEN})
    with ChatService(settings, crew_factory=factory()) as service, TestClient(create_app(service=service)) as client:
        for url, clean in ((f"/ui?token={TOKEN}", "/ui"), (f"/ui/?lang=en&token={TOKEN}", "/ui/?lang=en")):
            reply = client.get(url, follow_redirects=False)
            assert reply.status_code == 303 and reply.headers["location"] == clean
            assert TOKEN not in reply.headers["location"]
            cookie = reply.headers["set-cookie"]
            assert cookie.startswith(f"token={TOKEN}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        client.cookies.clear()
        assert client.get("/ui?token=wrong", follow_redirects=False).status_code == 401


def test_the_token_never_reaches_the_logs(settings_with_token: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with ChatService(settings_with_token, crew_factory=factory()) as service:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(create_app(service=service), port=port, log_config=None, log_level="debug")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                assert client.get(f"/healthz?token={TOKEN}").status_code == 200
                assert client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
                assert client.get(f"/ui?token={TOKEN}").status_code in (303, 404)
        finally:
            server.should_exit = True
            thread.join(10)
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the client's
    assert any("GET /healthz" in r.getMessage() for r in server_side)  # the access log is on
    assert not [r.getMessage() for r in server_side if TOKEN in r.getMessage()]


@pytest.fixture
def settings_with_token(tmp_path: Path) -> Settings:
    return service_settings(tmp_path / "home", server={"token": TOKEN})
