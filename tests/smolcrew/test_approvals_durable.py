"""Approvals survive the loss of Redis's data: the journal holds them, the Redis index is rebuilt from it.

Each test runs its own redis-server on a free port (so a FLUSHALL or a kill -9 touches no other test's data):
by default one that keeps nothing on disk (`--save '' --appendonly no`), as the project's hint used to start it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

import redis
from typer.testing import CliRunner

from smolcrew.backends import ScriptedModel
from smolcrew.cli.app import app
from smolcrew.config import Settings, load_settings
from smolcrew.crew import Crew
from smolcrew.errors import ApprovalAlreadyDecided, ApprovalQueueUnavailable
from smolcrew.validators.approval import Approval
from smolcrew.validators.journaled import JournaledApprovalQueue
from tests.conftest import code, require_program

runner = CliRunner()
SIMILARITY = code(
    'r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")\nfinal_answer(r["similarity"])'
)
REQUEST = "How similar in meaning are 'the cat sleeps' and 'a kitten naps'?"
ESCALATE = {"approval_tools": ["compare_sentences"]}


class RedisServer:
    """A redis-server of the test's own on a free port, which the test kills (SIGKILL) and starts again.
    `persistent`: an append-only file synced on every write (so a restart keeps the data), else nothing on disk."""

    def __init__(self, folder: Path, *, persistent: bool = False) -> None:
        self.program = require_program("redis-server", "apt-get install redis-server")
        self.folder = folder
        self.persistent = persistent
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, decode_responses=True)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: whatever it did not write to disk is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A running redis-server that keeps nothing on disk; crews and the CLI of the test use it."""
    made = RedisServer(tmp_path / "redis")
    made.start()
    monkeypatch.setenv("SMOLCREW_SERVICES__REDIS_URL", made.url)
    yield made
    made.kill()


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"SMOLCREW_HOME": str(home)})
    return result.exit_code, result.output


def _pending_run(scripted_crew: Callable[..., Crew]) -> tuple[Path, str, str]:
    """A run that ended `pending_approval` through the real path (the crew's gate); its crew is closed.
    Returns (home, run id, approval id)."""
    crew = scripted_crew([SIMILARITY], validation=ESCALATE)
    result = crew.run(REQUEST)
    assert result.state == "pending_approval" and result.approval_id, result
    home = crew.settings.home
    crew.close()
    return home, result.run_id, result.approval_id


@pytest.mark.usefixtures("minilm_available")
@pytest.mark.parametrize("loss", ["flushall", "restart"])
def test_a_pending_approval_survives_redis_losing_its_data(
    scripted_crew: Callable[..., Crew], server: RedisServer, loss: str
) -> None:
    home, run_id, approval_id = _pending_run(scripted_crew)
    with server.client() as client:
        if loss == "flushall":
            client.flushall()
        else:
            server.restart()  # kill -9, then a fresh start: it kept nothing
        assert client.dbsize() == 0

    code_, listed = _cli(home, "approvals", "list", "--json")
    assert code_ == 0, listed
    [row] = json.loads(listed)
    assert (row["id"], row["run_id"], row["status"]) == (approval_id, run_id, "pending")
    assert "compare_sentences" in " ".join(row["reasons"]) and row["answer"]

    code_, approved = _cli(home, "approvals", "approve", approval_id, "--by", "ana", "--note", "fine")
    assert code_ == 0, approved
    assert f"smolcrew runs resume {run_id}" in approved
    code_, again = _cli(home, "approvals", "reject", approval_id, "--note", "no", "--by", "bo")
    assert code_ == 1 and "already approved by ana" in again, again

    code_, resumed = _cli(home, "runs", "resume", run_id, "--json")
    assert code_ == 0, resumed
    assert json.loads(resumed)["state"] == "success"
    with Crew(load_settings(home=str(home)), model=ScriptedModel([])) as crew:
        final = crew.resume(run_id)
        assert final.ok and isinstance(final.answer, float) and final.approval_id == approval_id
        approvals = [e.body for e in crew.audit.entries(run_id) if e.kind == "approval"]
        assert [a["status"] for a in approvals] == ["requested", "approved"] and approvals[-1]["by"] == "ana"
        assert crew.audit.verify(run_id, expected_head=final.audit_head).ok


@pytest.mark.usefixtures("minilm_available")
def test_a_decision_taken_while_redis_is_down_is_applied_when_it_is_back(
    scripted_crew: Callable[..., Crew], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True)  # keeps the pending approval across the restart
    server.start()
    monkeypatch.setenv("SMOLCREW_SERVICES__REDIS_URL", server.url)
    try:
        home, run_id, approval_id = _pending_run(scripted_crew)
        server.kill()

        code_, approved = _cli(home, "approvals", "approve", approval_id, "--by", "ana")
        assert code_ == 0, approved
        assert "it is in the journal" in approved and "redis-server" in approved
        code_, listed = _cli(home, "approvals", "list")
        assert code_ == 2 and "unreachable" in listed  # listing needs the index

        server.start()
        with server.client() as client:
            assert json.loads(client.hget(f"smolcrew:approval:{approval_id}", "status") or "") == "pending"
            code_, listed = _cli(home, "approvals", "list", "--status", "all", "--json")
            assert code_ == 0, listed
            assert [(row["id"], row["status"], row["decided_by"]) for row in json.loads(listed)] == [
                (approval_id, "approved", "ana")
            ]
            assert json.loads(client.hget(f"smolcrew:approval:{approval_id}", "status") or "") == "approved"
            assert client.zcard("smolcrew:approvals:pending") == 0
            events = [fields["event"] for _, fields in client.xrange("smolcrew:approvals:events")]
            assert events == ["requested", "decided"]
        code_, resumed = _cli(home, "runs", "resume", run_id, "--json")
        assert code_ == 0 and json.loads(resumed)["state"] == "success", resumed
    finally:
        server.kill()


@pytest.mark.usefixtures("minilm_available")
def test_a_rebuild_never_brings_back_a_decided_approval(
    scripted_crew: Callable[..., Crew], server: RedisServer
) -> None:
    home, run_id, approval_id = _pending_run(scripted_crew)
    server.kill()
    code_, rejected = _cli(home, "approvals", "reject", approval_id, "--note", "wrong score", "--by", "bo")
    assert code_ == 0, rejected
    server.start()  # it kept nothing: the index is rebuilt from the journal

    code_, synced = _cli(home, "memory", "sync")
    assert code_ == 0 and "approvals: 1 journaled, 1 put back into the Redis index" in synced, synced
    code_, pending = _cli(home, "approvals", "list", "--json")
    assert code_ == 0 and json.loads(pending) == []
    code_, decided = _cli(home, "approvals", "list", "--status", "rejected", "--json")
    assert [(row["id"], row["note"]) for row in json.loads(decided)] == [(approval_id, "wrong score")]
    code_, resumed = _cli(home, "runs", "resume", run_id, "--json")
    assert code_ == 1 and json.loads(resumed)["error"] == "rejected by bo: wrong score", resumed


def test_missing_expired_and_decided_ids_get_their_own_message(server: RedisServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=str(home), services={"redis_url": server.url})
    with JournaledApprovalQueue.from_settings(settings) as queue:
        made = queue.request("run-a", task="t", answer="a", reasons=["r"], evidence={})
        queue.decide(made.id, approve=True, by="ana")
        with server.client() as client:
            client.delete(queue.approval_key(made.id))  # what the 30-day TTL does to a decided one

    code_, unknown = _cli(home, "approvals", "approve", "feedc0ffee00")
    assert code_ == 2 and "no approval 'feedc0ffee00'" in unknown and "days" not in unknown, unknown
    code_, shown = _cli(home, "approvals", "show", made.id, "--json")
    assert code_ == 0 and json.loads(shown)["status"] == "approved"  # the journal keeps it past the TTL
    code_, again = _cli(home, "approvals", "approve", made.id)
    assert code_ == 1 and "already approved by ana" in again, again


def _race(settings: Settings, approval_id: str) -> list[Approval | ApprovalAlreadyDecided]:
    """ada approves and bob rejects at the same moment, each with a queue of its own (as two processes would)."""
    barrier = threading.Barrier(2)
    outcomes: list[Approval | ApprovalAlreadyDecided] = []

    def decide(name: str) -> None:
        with JournaledApprovalQueue.from_settings(settings) as own:
            barrier.wait()
            try:
                outcomes.append(own.decide(approval_id, approve=name == "ada", by=name))
            except ApprovalAlreadyDecided as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(name,)) for name in ("ada", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_concurrent_decisions_while_redis_is_down_exactly_one_wins(server: RedisServer, tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path / "home"), services={"redis_url": server.url})
    with JournaledApprovalQueue.from_settings(settings) as queue:
        made = [queue.request(f"run-{n}", task="t", answer="a", reasons=[], evidence={}) for n in range(5)]
    server.kill()
    winners: dict[str, Approval] = {}
    for approval in made:
        outcomes = _race(settings, approval.id)
        won = [o for o in outcomes if isinstance(o, Approval)]
        lost = [o for o in outcomes if isinstance(o, ApprovalAlreadyDecided)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].decided_by == won[0].decided_by
        winners[approval.id] = won[0]
    server.start()  # it kept nothing: the rebuilt index shows the winners
    with JournaledApprovalQueue.from_settings(settings) as queue:
        assert queue.list() == []
        assert {a.id: (a.status, a.decided_by) for a in queue.list(None)} == {
            key: (won.status, won.decided_by) for key, won in winners.items()
        }


def test_a_run_waiting_for_a_person_hears_a_decision_taken_while_redis_is_down(
    server: RedisServer, tmp_path: Path
) -> None:
    settings = load_settings(home=str(tmp_path / "home"), services={"redis_url": server.url})
    with JournaledApprovalQueue.from_settings(settings) as queue:
        made = queue.request("run-w", task="t", answer="a", reasons=[], evidence={})
        server.kill()
        with pytest.raises(ApprovalQueueUnavailable, match="redis-server"):
            queue.list()
        threading.Timer(0.3, lambda: queue.decide(made.id, approve=True, by="cy")).start()
        started = time.monotonic()
        waited = queue.wait(made.id, timeout_s=5)
        assert waited.status == "approved" and time.monotonic() - started < 2


@pytest.mark.usefixtures("minilm_available")
def test_doctor_warns_when_redis_keeps_nothing_on_disk(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps([code("final_answer(1)")]))

    def redis_check() -> dict[str, str]:
        result = runner.invoke(app, ["doctor", "--json"])
        return next(check for check in json.loads(result.stdout) if check["name"] == "redis")

    check = redis_check()
    assert check["status"] == "warn", check
    for text in ("keeps nothing on disk", "--appendonly yes", "smolcrew memory sync", "journal"):
        assert text in check["detail"], check
    monkeypatch.setenv("SMOLCREW_VALIDATION__ENABLED", "false")  # no person is ever asked: nothing to keep
    assert redis_check()["status"] == "ok"
    monkeypatch.delenv("SMOLCREW_VALIDATION__ENABLED")
    with server.client() as client:
        client.config_set("appendonly", "yes")
    check = redis_check()
    assert check["status"] == "ok" and "keeps its data on disk" in check["detail"], check
