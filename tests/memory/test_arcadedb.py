"""The managed local ArcadeDB (memory/arcadedb.py): the default graph store, shared per home, started in the
background, stopped on request. The JVM tests start a real server in the test's own home (~4 s each)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.cli.app import app
from smolcrew.config import Settings, load_settings
from smolcrew.crew import Crew
from smolcrew.doctor import _check_graph, _check_graph_servers
from smolcrew.errors import ConfigError, GraphServerError
from smolcrew.memory.arcadedb import ManagedArcadeDB, ServerState
from smolcrew.memory.arcadedb_host import (
    WATCHDOG,
    installed,
    locked_databases,
    running,
    running_servers,
    wait_unlocked,
)
from smolcrew.memory.sinks.graph import GraphSink
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.stores import open_mirror, open_sinks, wanted_sinks
from tests.conftest import code
from tests.memory.arcadedb import START_COMMAND
from tests.memory.sink_contract import make_records

GRAPH_ONLY = {"sinks": ["graph"], "namespace": "arcadetest"}
STOP_LIMIT_S = 20.0
"""How long an unheld server may take to be gone: a watchdog look (1 s), then ArcadeDB's own shutdown."""


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


def _running(watchdog_pid: int | None) -> bool:
    return running(watchdog_pid, WATCHDOG)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s"
        time.sleep(0.2)


SYS_EXIT = {"x86_64": 60, "aarch64": 93}
"""exit(2) by machine: ends the calling thread only (exit_group(2) ends them all)."""


@contextmanager
def _locker(lock: Path, *, main_thread_exits: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding `lock` (a POSIX lock, as a JVM's) until the block ends, from a thread that runs until
    its stdin closes; with `main_thread_exits`, its main thread exits first, as a JVM's does while it exits."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.touch()
    code = (
        "import ctypes, fcntl, sys, threading\n"
        f"held = open({str(lock)!r}, 'r+')\nfcntl.lockf(held, fcntl.LOCK_EX)\n"
        "threading.Thread(target=sys.stdin.read).start()\nprint('locked', flush=True)\n"
    )
    if main_thread_exits:
        code += f"ctypes.CDLL(None).syscall({SYS_EXIT[os.uname().machine]}, 0)\n"
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"locked\n"
        yield process
    finally:
        process.kill()
        process.wait()


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

    monkeypatch.setattr("smolcrew.memory.arcadedb_host.installed", lambda: False)  # a machine without arcadedb-embedded
    assert "graph" not in wanted_sinks(_settings(tmp_path))
    assert not (tmp_path / "graph").exists()  # deciding starts nothing


def test_naming_the_graph_without_a_uri_or_a_local_server_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack, pytest.raises(ConfigError, match="graph_local is false") as info:
        open_sinks(_settings(tmp_path, sinks=["graph"], graph_local=False), stack)
    assert info.value.field == "memory.sinks"
    monkeypatch.setattr("smolcrew.memory.arcadedb_host.installed", lambda: False)
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


def test_a_process_whose_main_thread_exited_runs_and_holds_its_locks_until_its_last_thread_ends(
    tmp_path: Path,
) -> None:
    """How a JVM exits: its main thread goes first (a zombie to psutil) while its other threads still hold its files.
    Counted as gone, a server stopped by its watchdog (not its parent) let the next launch meet its database lock."""
    psutil = pytest.importorskip("psutil")
    if sys.platform != "linux" or os.uname().machine not in SYS_EXIT:
        pytest.skip("ends one thread with the Linux exit(2) system call")
    databases = tmp_path / "databases"
    lock = databases / "memory" / "database.lck"
    with _locker(lock, main_thread_exits=True) as process:
        _wait_until(lambda: psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE, 5.0)
        assert running(process.pid)  # still exiting: what terminate() waits for
        assert not running(process.pid, sys.executable)  # but no longer recognisable as what it ran
        assert locked_databases(databases) == [lock]
        start = time.monotonic()
        with pytest.raises(GraphServerError, match=r"still locked by another process after 0\.3 s"):
            wait_unlocked(databases, timeout_s=0.3)
        assert 0.3 <= time.monotonic() - start < 2.0
        assert process.stdin is not None
        process.stdin.close()  # its last thread ends: the process is gone, its lock with it
        wait_unlocked(databases, timeout_s=5.0)
        _wait_until(lambda: not running(process.pid), 5.0)
    assert locked_databases(databases) == [] and lock.exists()  # probing never removes nor makes a lock file


def test_a_launch_waits_for_the_last_server_to_let_go_of_the_database(
    homes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = homes[0] / "graph"
    monkeypatch.setattr("smolcrew.memory.arcadedb_host.LOCK_WAIT_S", 0.5)
    with _locker(folder / "databases" / "memory" / "database.lck"), pytest.raises(GraphServerError, match="stop --all"):
        ManagedArcadeDB(folder).acquire()  # still held after the wait: no JVM launched into a LockException
    assert _java_processes(folder) == [] and ManagedArcadeDB(folder).status() is None


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
    check = _check_graph(crew.settings)
    assert check.status == "ok" and f"pid {ready.pid}" in check.detail and ready.password not in check.detail
    crew.close()  # a home in the temp folder: its server stops as soon as nothing holds it
    _wait_until(lambda: not _java_processes(folder), STOP_LIMIT_S)
    assert server.status() is None and "not running" in _check_graph(crew.settings).detail


def test_processes_on_one_home_share_one_server_until_it_is_stopped(homes: list[Path]) -> None:
    settings = _settings(homes[0], **GRAPH_ONLY)
    folder = homes[0] / "graph"
    states: list[ServerState] = []
    threads = [
        threading.Thread(target=lambda: states.append(ManagedArcadeDB(folder).acquire().state)) for _ in range(3)
    ]
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
    assert ManagedArcadeDB(folder).acquire().state.pid == state.pid  # live and answering: reused again

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

    state = server.acquire().state
    assert state.pid != dead.pid and state.password == "kept-password-1234"
    ready = server.wait_ready(60)
    assert not (folder / "root-password").exists()  # ArcadeDB keeps only a hash once it runs
    with GraphSink.from_url(ready.uri, user="root", password="kept-password-1234", namespace="stale") as sink:
        assert sink.health().ok


def test_a_server_stopped_while_it_starts_stays_stopped(homes: list[Path]) -> None:
    folder = homes[0] / "graph"
    server = ManagedArcadeDB(folder)
    state = server.acquire().state
    assert server.stop() == state  # before it answered: its background preparer must not launch another
    time.sleep(1.0)
    assert _java_processes(folder) == [] and server.status() is None


# -- lifetime: leases, the watchdog, idle shutdown ---------------------------------------------------------------


def test_a_temporary_home_stops_its_server_when_its_crew_closes_or_its_folder_is_deleted(
    homes: list[Path], scripted_crew: Callable[..., Crew]
) -> None:
    crew = scripted_crew([code("final_answer(1)")], routing={"mode": "manager"}, memory=GRAPH_ONLY)
    folder = Path(crew.settings.home) / "graph"
    assert crew.mirror is not None
    state = ManagedArcadeDB(folder).wait_ready(60)
    [found] = [server for server in running_servers() if server.folder == folder]
    assert found.heap_mb == crew.settings.memory.graph_heap_mb == 256  # -Xmx from the config
    crew.close()
    _wait_until(lambda: not _java_processes(folder), STOP_LIMIT_S)
    _wait_until(lambda: not _running(state.watchdog_pid), 5.0)  # its watchdog goes with it

    # Deleted while a process still holds it: nobody can use the data any more, so the JVM goes too.
    lease = ManagedArcadeDB(folder).acquire()
    ManagedArcadeDB(folder).wait_ready(60)
    shutil.rmtree(crew.settings.home)
    _wait_until(lambda: not _java_processes(folder), STOP_LIMIT_S)
    assert not folder.exists()  # stopping it did not make the folder again
    lease.release()


def test_idle_shutdown_then_the_next_crew_restarts_the_server_and_the_graph_catches_up(
    homes: list[Path], scripted_crew: Callable[..., Crew], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("smolcrew.memory.arcadedb.temporary", lambda folder: False)  # as the user's own home
    memory = {**GRAPH_ONLY, "graph_idle_s": 3.0}
    first = scripted_crew([code("final_answer(1)")], routing={"mode": "manager"}, memory=memory)
    folder = Path(first.settings.home) / "graph"
    one = first.run("One?")
    server = ManagedArcadeDB(folder)
    state = server.wait_ready(60)
    first.close()  # flushes the graph lane: run one is in the graph
    assert server.status() == state  # not a temporary home: it outlives the crew, for the idle time

    # A Bolt connection without a lease (a script with its own driver) holds it too.
    with GraphSink.from_url(state.uri, user="root", password=state.password, namespace="arcadetest") as sink:
        assert sink.health().ok
        time.sleep(5.0)
        assert server.status() == state
    idle_from = time.monotonic()
    _wait_until(lambda: server.status() is None, 3.0 + STOP_LIMIT_S)
    assert time.monotonic() - idle_from >= 2.0  # not before the idle time
    _wait_until(lambda: "held by nobody for 3 s: stopped" in (folder / "server.log").read_text(), 5.0)

    second = scripted_crew([code("final_answer(2)")], routing={"mode": "manager"}, memory=memory)
    two = second.run("Two?")  # at once: the new JVM is still starting, the graph lane catches up later
    restarted = server.wait_ready(60)
    assert restarted.pid != state.pid and restarted.password == state.password
    journal = JournalSink(Path(second.settings.home) / "journal")
    with GraphSink.from_url(restarted.uri, user="root", password=restarted.password, namespace="arcadetest") as sink:
        for run in (one, two):
            expected = journal.read(run.run_id)
            _wait_until(lambda run=run, expected=expected: sink.read(run.run_id) == expected, 30.0)  # type: ignore[misc]
            seqs = [record.seq for record in sink.read(run.run_id)]
            assert seqs == sorted(set(seqs)) and len(seqs) == len(expected)  # every step exactly once


def test_a_killed_watchdog_is_replaced_by_the_next_holder(homes: list[Path]) -> None:
    server = ManagedArcadeDB(homes[0] / "graph")
    with server.acquire() as lease:
        os.kill(lease.state.watchdog_pid or 0, signal.SIGKILL)
        _wait_until(lambda: not _running(lease.state.watchdog_pid), 10.0)
        with server.acquire() as again:
            assert again.state.pid == lease.state.pid  # the same server...
            assert again.state.watchdog_pid != lease.state.watchdog_pid
            # a watchdog just spawned shows its parent's arguments until its exec is done
            _wait_until(lambda: _running(again.state.watchdog_pid), 10.0)
    _wait_until(lambda: not _java_processes(server.folder), STOP_LIMIT_S)  # ...which the new watchdog stops


def test_doctor_lists_every_server_and_stop_all_ends_them_orphans_included(
    homes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, orphan = ManagedArcadeDB(homes[0] / "graph"), ManagedArcadeDB(homes[1] / "graph")
    kept_lease, orphan_lease = kept.acquire(), orphan.acquire()
    kept.wait_ready(60)
    orphan.wait_ready(60)
    os.kill(orphan_lease.state.watchdog_pid or 0, signal.SIGKILL)  # no watchdog: the folder's deletion goes unseen
    _wait_until(lambda: not _running(orphan_lease.state.watchdog_pid), 10.0)
    shutil.rmtree(homes[1])
    ours = {kept.folder, orphan.folder}
    real = running_servers  # only this test's servers: others on the machine (the user's, other tests') stay
    for module in ("smolcrew.memory.arcadedb", "smolcrew.memory.arcadedb_host"):
        monkeypatch.setattr(f"{module}.running_servers", lambda: [s for s in real() if s.folder in ours])

    check = _check_graph_servers()
    assert check is not None and check.status == "warn" and "graph-server stop --all" in check.detail
    assert f"pid {kept_lease.state.pid} {kept.folder}:" in check.detail
    assert f"pid {orphan_lease.state.pid} {orphan.folder} (deleted)" in check.detail

    stopped = CliRunner().invoke(app, ["memory", "graph-server", "stop", "--all"])
    assert stopped.exit_code == 0, stopped.output
    assert "2 stopped" in stopped.output and "(its home was deleted)" in stopped.output
    assert _java_processes(kept.folder) == _java_processes(orphan.folder) == []
    assert kept.status() is None and not homes[1].exists()
    kept_lease.release()
