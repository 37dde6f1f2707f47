"""The managed local ArcadeDB (memory/arcadedb.py): the default graph store, shared per home, started in the
background, stopped on request. The JVM tests start a real server in the test's own home (~4 s each)."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.cli.app import app
from smolcrew.config import Settings, load_settings
from smolcrew.crew import Crew
from smolcrew.doctor import _check_graph
from smolcrew.errors import ConfigError
from smolcrew.memory.arcadedb import ManagedArcadeDB, ServerState, installed
from smolcrew.memory.sinks.graph import GraphSink
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.stores import open_mirror, open_sinks, wanted_sinks
from tests.conftest import code
from tests.memory.arcadedb import START_COMMAND
from tests.memory.sink_contract import make_records

GRAPH_ONLY = {"sinks": ["graph"], "namespace": "arcadetest"}


def _settings(home: Path, **memory: object) -> Settings:
    return load_settings(home=str(home), memory=memory)


def _java_processes(folder: Path) -> list[int]:
    """Pids of ArcadeDB servers running over `folder` (from /proc)."""
    marker = f"-Darcadedb.server.rootPath={folder}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in args and b"com.arcadedb.server.ArcadeDBServer" in args:
            found.append(int(entry.name))
    return found


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[list[Path]]:
    """Homes whose managed server the test may start; every one is stopped afterwards (no JVM outlives a test)."""
    if not installed() or not Path("/proc").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the managed ArcadeDB cannot run here: {START_COMMAND}")
        pytest.skip(f"the managed ArcadeDB cannot run here: {START_COMMAND}")
    started = [tmp_path / "home", tmp_path / "crew-home"]
    yield started
    for home in started:
        ManagedArcadeDB(home / "graph").stop()


# -- which stores: no JVM ---------------------------------------------------------------------------------------


def test_auto_mode_adds_the_local_graph_only_when_it_can_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOLCREW_MEMORY__SINKS")
    local = _settings(tmp_path)
    assert ("graph" in wanted_sinks(local)) == installed()
    assert "graph" not in wanted_sinks(_settings(tmp_path, graph_local=False))
    external = load_settings(home=str(tmp_path), memory={"graph_local": False}, services={"neo4j_uri": "bolt://h:1"})
    assert "graph" in wanted_sinks(external)
    assert wanted_sinks(_settings(tmp_path, sinks=["graph"], graph_local=False)) == ["graph"]  # as configured

    monkeypatch.setattr("smolcrew.memory.arcadedb.installed", lambda: False)  # a machine without arcadedb-embedded
    assert "graph" not in wanted_sinks(_settings(tmp_path))
    assert not (tmp_path / "graph").exists()  # deciding starts nothing


def test_naming_the_graph_without_a_uri_or_a_local_server_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack, pytest.raises(ConfigError, match="graph_local is false") as info:
        open_sinks(_settings(tmp_path, sinks=["graph"], graph_local=False), stack)
    assert info.value.field == "memory.sinks"
    monkeypatch.setattr("smolcrew.memory.arcadedb.installed", lambda: False)
    with ExitStack() as stack, pytest.raises(ConfigError, match="smolcrew\\[graph-local\\]"):
        open_sinks(_settings(tmp_path, sinks=["graph"]), stack)
    check = _check_graph(_settings(tmp_path))
    assert check.status == "warn" and "not installed" in check.detail


def test_doctor_reports_an_external_uri_and_a_local_server_not_yet_running(tmp_path: Path) -> None:
    external = _check_graph(load_settings(home=str(tmp_path), services={"neo4j_uri": "bolt://127.0.0.1:1"}))
    assert external.status == "warn" and external.detail.startswith("external bolt://127.0.0.1:1 unreachable")
    if installed():
        idle = _check_graph(_settings(tmp_path))
        assert idle.status == "ok" and "not running" in idle.detail
        assert not (tmp_path / "graph").exists()  # the doctor starts nothing


# -- a real server ----------------------------------------------------------------------------------------------


def test_a_crew_starts_the_server_in_the_background_and_its_run_reaches_the_graph(
    homes: list[Path], scripted_crew: Callable[..., Crew]
) -> None:
    crew = scripted_crew([code("final_answer(42)")], routing={"mode": "manager"}, memory=GRAPH_ONLY)
    folder = Path(crew.settings.home) / "graph"
    importlib.import_module("neo4j")  # imports take seconds on their own (the driver, the pool): not timed here
    assert crew.pool is not None
    start = time.perf_counter()
    assert crew.mirror is not None and [sink.name for sink in crew.mirror.sinks] == ["graph"]
    assert time.perf_counter() - start < 1.0  # the JVM takes seconds to answer: nobody waited for it
    state = json.loads((folder / "server.json").read_text())
    assert stat.S_IMODE((folder / "server.json").stat().st_mode) == 0o600
    assert _java_processes(folder) == [state["pid"]]

    result = crew.run("What is the answer?")
    assert result.ok and result.answer == 42
    expected = JournalSink(Path(crew.settings.home) / "journal").read(result.run_id)
    server = ManagedArcadeDB(folder)
    ready = server.wait_ready(60)
    with GraphSink.from_url(ready.uri, user="root", password=ready.password, namespace="arcadetest") as sink:
        deadline = time.monotonic() + 30  # the lane retries with backoff and catches up from the journal
        while sink.read(result.run_id) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sink.read(result.run_id) == expected
    crew.close()
    assert server.status() == ready  # a daemon: it outlives the crew for the next process
    check = _check_graph(crew.settings)
    assert check.status == "ok" and f"pid {ready.pid}" in check.detail and ready.password not in check.detail


def test_processes_on_one_home_share_one_server_until_it_is_stopped(homes: list[Path]) -> None:
    settings = _settings(homes[0], **GRAPH_ONLY)
    folder = homes[0] / "graph"
    states: list[ServerState] = []
    threads = [threading.Thread(target=lambda: states.append(ManagedArcadeDB(folder).start())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({state.pid for state in states}) == 1  # the lock: one launch, two reuses
    records = make_records("early", 5)
    with ExitStack() as first, ExitStack() as second:
        mirror = open_mirror(settings, first)
        for record in records:  # while the JVM is still starting: the lane fails, then catches up
            mirror(record)
        open_mirror(settings, second)  # a second Crew, the CLI, the HTTP server...
        state = ManagedArcadeDB(folder).wait_ready(60)
        assert state.pid == states[0].pid and _java_processes(folder) == [state.pid]
        [sink] = mirror.sinks
        assert isinstance(sink, GraphSink)
        deadline = time.monotonic() + 20  # the lane's backoff tops out at 5 s
        while sink.read("early") != records and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sink.read("early") == records
        assert mirror.status()[0].failures >= 1  # refused before the server answered: written by catch-up
    assert ManagedArcadeDB(folder).start().pid == state.pid  # live and answering: reused again

    runner = CliRunner()
    shown = runner.invoke(app, ["memory", "graph-server", "status", "--json"], env={"SMOLCREW_HOME": str(homes[0])})
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info["running"] and info["pid"] == state.pid and info["uri"] == state.uri
    assert state.password not in shown.output

    stopped = runner.invoke(app, ["memory", "graph-server", "stop"], env={"SMOLCREW_HOME": str(homes[0])})
    assert stopped.exit_code == 0 and f"stopped (pid {state.pid})" in stopped.output
    assert _java_processes(folder) == [] and ManagedArcadeDB(folder).status() is None
    kept = json.loads((folder / "server.json").read_text())
    assert kept["pid"] is None and kept["password"] == state.password  # the data's password outlives the server
    again = runner.invoke(app, ["memory", "graph-server", "stop"], env={"SMOLCREW_HOME": str(homes[0])})
    assert "not running" in again.output


def test_a_stale_state_file_is_replaced_and_its_password_kept(homes: list[Path]) -> None:
    folder = homes[0] / "graph"
    folder.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"password": "kept-password-1234", "pid": dead.pid, "bolt_port": 1, "http_port": 2, "started_at": 0.0}
    (folder / "server.json").write_text(json.dumps(stale))
    server = ManagedArcadeDB(folder)
    assert server.status() is None  # a dead pid: cleaned up, nothing started
    assert json.loads((folder / "server.json").read_text())["pid"] is None

    state = server.start()
    assert state.pid != dead.pid and state.password == "kept-password-1234"
    ready = server.wait_ready(60)
    assert not (folder / "root-password").exists()  # ArcadeDB keeps only a hash once it runs
    with GraphSink.from_url(ready.uri, user="root", password="kept-password-1234", namespace="stale") as sink:
        assert sink.health().ok


def test_a_server_stopped_while_it_starts_stays_stopped(homes: list[Path]) -> None:
    folder = homes[0] / "graph"
    server = ManagedArcadeDB(folder)
    state = server.start()
    assert server.stop() == state  # before it answered: its background preparer must not launch another
    time.sleep(1.0)
    assert _java_processes(folder) == [] and server.status() is None
