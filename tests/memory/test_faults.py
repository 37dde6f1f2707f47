"""A store dies mid-run and comes back: the mirror loses no step.

For each real store (Redis, Chroma, the ArcadeDB graph) a scripted CodeAgent runs 1,000 steps whose step
callbacks feed a RunRecorder; its listeners are a fault injector and then a `Mirror(journal, [sink])`. The
injector SIGKILLs the store's own server at step 300 and restarts it (same port, same data folder) at step 600,
in a thread, so the agent keeps stepping while the store boots. Afterwards the store, like the journal, holds
every step exactly once and the lane owes nothing. Each test starts its own server, so shared ones are untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import pytest
from smolagents import CodeAgent
from smolagents.memory import ActionStep
from smolagents.monitoring import LogLevel

from smolcrew.backends import ScriptedModel
from smolcrew.memory.mirror import Mirror
from smolcrew.memory.recorder import RecorderSlot, RunRecorder
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import MemorySink
from smolcrew.memory.sinks.journal import JournalSink
from tests.conftest import require_program
from tests.memory.arcadedb import DATABASE, PASSWORD, START_COMMAND, free_port

pytestmark = pytest.mark.slow

STEPS = 1_000
KILL_AT = 300
RESTART_AT = 600
READY_S = 60.0


class Server(Protocol):
    def start(self) -> None: ...
    def kill(self) -> None: ...


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
            raise RuntimeError(f"{what} did not come up (exit {process.poll()}):\n{tail}")
        time.sleep(0.05)


class _Process:
    """One server process: start() waits until it answers, kill() is SIGKILL."""

    name = "server"
    process: subprocess.Popen[bytes] | None = None

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "process.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
            )
        _wait(self.ready, self.process, self.name, self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class RedisServer(_Process):
    name = "redis-server"

    def __init__(self, folder: Path, program: str) -> None:
        super().__init__(folder)
        self.program, self.port = program, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.folder)]  # fmt: skip

    def ready(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


class ChromaServer(_Process):
    name = "chroma run"

    def __init__(self, folder: Path, program: str) -> None:
        super().__init__(folder)
        self.program, self.port = program, free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.program, "run", "--path", str(self.folder / "data"), "--host", "127.0.0.1", "--port",
                str(self.port)]  # fmt: skip

    def ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/api/v2/heartbeat", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False


class ArcadeServer(_Process):
    """ArcadeDB with Bolt, as tests/memory/arcadedb.py starts it, but over a data folder that outlives a kill."""

    name = "ArcadeDB"

    def __init__(self, folder: Path, package: Path) -> None:
        super().__init__(folder)
        self.package, self.bolt, self.http = package, free_port(), free_port()
        self.uri = f"bolt://127.0.0.1:{self.bolt}"

    def command(self) -> list[str]:
        pkg, data = self.package, self.folder
        return [
            str(pkg / "jre" / "bin" / "java"), "-Xms128m", "-Xmx1g", "-XX:+UseSerialGC", "-cp", f"{pkg / 'jars'}/*",
            f"-Darcadedb.server.rootPath={data}", f"-Darcadedb.server.databaseDirectory={data / 'databases'}",
            f"-Darcadedb.server.rootPassword={PASSWORD}",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1", f"-Darcadedb.bolt.port={self.bolt}",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1", f"-Darcadedb.server.httpIncomingPort={self.http}",
            "com.arcadedb.server.ArcadeDBServer",
        ]  # fmt: skip

    def ready(self) -> bool:
        from tests.memory.arcadedb import _http

        try:
            return _http("GET", f"http://127.0.0.1:{self.http}/api/v1/ready") < 300
        except OSError:
            return False

    def start(self) -> None:
        from tests.memory.arcadedb import _http

        super().start()
        status = _http(
            "POST", f"http://127.0.0.1:{self.http}/api/v1/server", {"command": f"create database {DATABASE}"}
        )
        assert status in (200, 409), f"ArcadeDB did not create the database (HTTP {status})"  # 409: it survived


class Outage:
    """A recorder listener (registered before the mirror): kills `server` at seq `kill_at`, restarts it in a
    thread at seq `restart_at`, and notes the seq the mirror had reached when the store answered again."""

    def __init__(self, server: Server, recorder: Callable[[], RunRecorder | None]) -> None:
        self.server, self.recorder = server, recorder
        self.killed_at: int | None = None
        self.back_at: int | None = None
        self.restart_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, record: StepRecord) -> None:
        if record.seq == KILL_AT:
            self.server.kill()
            self.killed_at = record.seq
        elif record.seq == RESTART_AT:
            self._thread = threading.Thread(target=self._restart, name="restart-store", daemon=True)
            self._thread.start()

    def _restart(self) -> None:
        try:
            self.server.start()
            current = self.recorder()
            self.back_at = len(current.records) if current else None
        except BaseException as exc:  # reported by join()
            self.restart_error = exc

    def join(self) -> None:
        assert self._thread is not None, "the run never reached the restart step"
        self._thread.join(READY_S)
        if self.restart_error is not None:
            raise self.restart_error


def run_scripted_agent(recorder: RunRecorder, steps: int = STEPS) -> Any:
    """A CodeAgent whose ScriptedModel answers `x = n` for steps-1 steps, then `final_answer`: `steps` steps."""
    model: ScriptedModel

    def reply(messages: list[dict[str, Any]]) -> str:
        n = model.call_count  # this call is number n (the model keeps only the latest calls' messages)
        if n >= steps:
            return "Thought: done.\n<code>\nfinal_answer('counted')\n</code>"
        return f"Thought: next.\n<code>\nx = {n}\n</code>"

    model = ScriptedModel(reply)
    slot = RecorderSlot()
    agent = CodeAgent(
        tools=[],
        model=model,
        max_steps=steps,
        step_callbacks={ActionStep: slot.step_callback},
        verbosity_level=LogLevel.OFF,
        name="counter",
    )
    with slot.recording(recorder):
        return agent.run("Count.")


def assert_survives_outage(
    tmp_path: Path, server: Server, open_sink: Callable[[], AbstractContextManager[MemorySink]]
) -> None:
    run_id = f"faults-{uuid.uuid4().hex[:8]}"
    journal = JournalSink(tmp_path / "journal")
    server.start()
    with open_sink() as sink:
        mirror = Mirror(journal, [sink], state_dir=tmp_path / "state", retry_s=0.1, max_retry_s=1.0)
        holder: dict[str, RunRecorder] = {}
        outage = Outage(server, lambda: holder.get("recorder"))
        recorder = holder["recorder"] = RunRecorder(run_id, known=set(), listeners=[outage, mirror])
        started = time.perf_counter()
        try:
            assert run_scripted_agent(recorder) == "counted"
            outage.join()
            ran_s = time.perf_counter() - started
            assert mirror.close(timeout_s=90)
        finally:
            mirror.close(timeout_s=1)
        closed_s = time.perf_counter() - started
        [lane] = mirror.status()
        print(
            f"\n{sink.name}: {STEPS} steps in {ran_s:.1f} s, flushed at {closed_s:.1f} s; killed at seq "
            f"{outage.killed_at}, back at seq {outage.back_at}; lane: written {lane.written}, "
            f"failures {lane.failures}, last error {(lane.last_error or '')[:120]!r}"
        )
        assert recorder.listener_errors == []
        assert outage.killed_at == KILL_AT and outage.back_at is not None and outage.back_at < STEPS
        assert lane.failures >= 1, "the outage went unnoticed"
        assert lane.pending_runs == [] and not lane.behind and lane.queued == 0
        journaled = journal.read(run_id)
        assert [r.seq for r in journaled] == list(range(STEPS)) and journaled == recorder.records
        assert journal.problems == []
        stored = sink.read(run_id)
        assert [r.seq for r in stored] == list(range(STEPS))  # every step, each once
        assert stored == journaled


@pytest.mark.timeout(150)
def test_redis_killed_mid_run_gets_every_step(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")
    from smolcrew.memory.sinks.redis import RedisSink

    program = require_program("redis-server", "apt-get install -y redis-server (or: make system-deps)")
    server = RedisServer(tmp_path / "redis", program)
    try:
        assert_survives_outage(tmp_path, server, lambda: RedisSink.from_url(server.url, namespace="faults"))
    finally:
        server.kill()


@pytest.mark.timeout(150)
def test_graph_killed_mid_run_gets_every_step(tmp_path: Path) -> None:
    pytest.importorskip("neo4j", reason=f"the neo4j driver is not installed: {START_COMMAND}")
    from smolcrew.memory.sinks.graph import GraphSink
    from tests.memory.arcadedb import GraphServerUnavailable, _package_dir

    try:
        package = _package_dir()
    except GraphServerUnavailable as exc:
        pytest.skip(str(exc))
    server = ArcadeServer(tmp_path / "arcadedb", package)

    def open_sink() -> AbstractContextManager[GraphSink]:
        return GraphSink.from_url(server.uri, user="root", password=PASSWORD, database=DATABASE, namespace="faults")

    try:
        assert_survives_outage(tmp_path, server, open_sink)
    finally:
        server.kill()


@pytest.fixture
def chroma_program() -> Iterator[str]:
    pytest.importorskip("chromadb", reason="chromadb is not installed: pip install 'chromadb>=1.5,<1.6'")
    yield require_program("chroma", "pip install 'chromadb>=1.5,<1.6' (provides `chroma run`)")


@pytest.mark.timeout(180)
def test_chroma_killed_mid_run_gets_every_step(tmp_path: Path, chroma_program: str, minilm_available: None) -> None:
    from smolcrew.memory.sinks.chroma import ChromaSink, minilm_embedder
    from smolcrew.pool import PipelinePool

    embed = minilm_embedder(PipelinePool(device="cpu"))
    embed(["warm up"])  # load MiniLM before the run, not inside the lane's first batch
    server = ChromaServer(tmp_path / "chroma", chroma_program)
    try:
        assert_survives_outage(
            tmp_path, server, lambda: ChromaSink.from_url(server.url, namespace="faults", embed=embed, timeout=5.0)
        )
    finally:
        server.kill()
