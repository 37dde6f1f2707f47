"""What the managed ArcadeDB needs to know about this machine: whether it can run, free ports, which processes
are its servers and watchdogs, and which folders are temporary (memory/arcadedb.py runs the server).

`running_servers()` finds every managed server on the machine from the process table, whichever home it serves
(`smolcrew doctor` lists them; `smolcrew memory graph-server stop --all` stops them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INSTALL",
    "MAIN_CLASS",
    "WATCHDOG",
    "ServerProcess",
    "bolt_answers",
    "children",
    "free_port",
    "http_status",
    "installed",
    "locked_databases",
    "log_tail",
    "package_dir",
    "running",
    "running_servers",
    "temporary",
    "terminate",
    "wait_unlocked",
]

INSTALL = "pip install 'smolcrew[graph-local]' (arcadedb-embedded and neo4j), or set SMOLCREW_SERVICES__NEO4J_URI"
MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
"""The JVM's main class: with `-Darcadedb.server.rootPath=<folder>` on its command line, how a server is found."""
ROOT_FLAG = "-Darcadedb.server.rootPath="
WATCHDOG = "smolcrew.memory.arcadedb_watchdog"
"""The module each server's watchdog runs (`python -m`), with the server's folder as its first argument."""
LOCK_WAIT_S = 10.0
"""How long a launch waits for the last server over the same data to let go of them (it may still be exiting)."""
WATCHDOG_STATUS = "watchdog.json"
"""What the watchdog last saw, in the server's folder: `{"server_pid", "idle_since"}` (epoch seconds or null)."""
children: dict[int, subprocess.Popen[bytes]] = {}
"""The processes this one started (JVMs, watchdogs), so that their exit status is reaped."""


def installed() -> bool:
    """Whether a managed server can run here: a POSIX system with `arcadedb-embedded`, the `neo4j` driver and
    `psutil` (the watchdog's view of processes and connections)."""
    wanted = ("arcadedb_embedded", "neo4j", "psutil")
    return os.name == "posix" and all(importlib.util.find_spec(name) is not None for name in wanted)


def package_dir() -> Path:
    """The installed `arcadedb_embedded` package folder (jars/, jre/). Raises GraphServerError when missing."""
    from smolcrew.errors import GraphServerError

    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or spec.origin is None:
        raise GraphServerError(f"arcadedb-embedded is not installed: {INSTALL}")
    return Path(spec.origin).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it at random)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(method: str, url: str, password: str | None = None, body: dict[str, str] | None = None) -> int:
    """The HTTP status of one request to ArcadeDB (as `root` when `password` is given); OSError when unreachable."""
    import base64

    headers = {}
    if password is not None:  # a wrong password counts towards ArcadeDB's lock-out, so none for /ready
        headers["Authorization"] = "Basic " + base64.b64encode(f"root:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def bolt_answers(port: int, timeout_s: float = 1.0) -> bool:
    """A Bolt handshake succeeds: a process that only accepts TCP (stopped, hung) does not count."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"\x60\x60\xb0\x17" + b"\x00\x04\x04\x05" + b"\x00\x00\x04\x04" + bytes(8))
            return len(sock.recv(4)) == 4
    except OSError:
        return False


def temporary(folder: Path) -> bool:
    """Whether `folder` lies in the system's temporary folder (a test's or a script's home), whose server stops
    as soon as nothing holds it rather than after the idle time."""
    roots = {Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve(), Path("/var/tmp").resolve()}
    return any(Path(folder).resolve().is_relative_to(root) for root in roots)


def running(pid: int | None, *markers: str) -> bool:
    """`pid` runs (has not exited, is not another user's) with each of `markers` among its arguments.

    A process whose main thread has exited shows as a zombie while its other threads still run (a JVM exiting,
    or one whose parent is another process): it still holds its files and their locks, so it counts as running
    until its last thread is gone, but no longer matches `markers` (its arguments cannot be read any more)."""
    import psutil

    if pid is None:
        return False
    child = children.get(pid)
    if child is not None and child.poll() is not None:
        return False  # exited, every thread of it: reaped now
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return not markers and process.num_threads() > 1
        args = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return all(marker in args for marker in markers)


def terminate(pid: int, timeout_s: float = 15.0) -> None:
    """End `pid`: SIGTERM, then SIGKILL when it still runs after `timeout_s`; waits for its last thread (`running`)."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not running(pid):
            break
    children.pop(pid, None)


def locked_databases(databases: Path) -> list[Path]:
    """The `database.lck` files under `databases` (one folder per database) that a process holds locked now: an
    ArcadeDB has that database open, or is still exiting after it had it open."""
    import fcntl

    held = []
    for path in sorted(databases.glob("*/database.lck")):
        try:
            fd = os.open(path, os.O_RDWR)  # never created: a lock file left on disk tells ArcadeDB to replay the WAL
        except OSError:
            continue  # none: the database was closed cleanly
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the POSIX record lock of Java's FileChannel.tryLock
        except OSError:
            held.append(path)
        finally:
            os.close(fd)  # lets go of the probe's own lock at once
    return held


def wait_unlocked(databases: Path, timeout_s: float | None = None) -> None:
    """Wait until no process holds a database under `databases`, polling with back-off, before a new server opens
    them: the one stopped last may still be exiting (a JVM's last threads close its files after its main thread).

    Raises:
        GraphServerError: still held after `timeout_s` (default `LOCK_WAIT_S`): another ArcadeDB has them open.
    """
    from smolcrew.errors import GraphServerError

    timeout_s = LOCK_WAIT_S if timeout_s is None else timeout_s
    deadline, delay = time.monotonic() + timeout_s, 0.02
    while held := locked_databases(databases):
        left = deadline - time.monotonic()
        if left <= 0:
            raise GraphServerError(
                f"{held[0]} is still locked by another process after {timeout_s:g} s: another ArcadeDB has these "
                f"data open; `smolcrew memory graph-server stop --all` stops every managed one"
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.5)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class ServerProcess:
    """A managed ArcadeDB found running on this machine."""

    pid: int
    folder: Path
    rss_bytes: int
    heap_mb: int | None
    started_at: float
    idle_since: float | None
    """When its watchdog last saw it held by nobody (None: held now, or no watchdog report)."""

    @property
    def orphaned(self) -> bool:
        """Its folder (the home's graph data) is gone: nothing can use it any more."""
        return not self.folder.is_dir()

    @property
    def idle_s(self) -> float | None:
        return None if self.idle_since is None else max(0.0, time.time() - self.idle_since)


def _idle_since(folder: Path, pid: int) -> float | None:
    try:
        report = json.loads((folder / WATCHDOG_STATUS).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("server_pid") != pid:
        return None
    since = report.get("idle_since")
    return float(since) if isinstance(since, int | float) else None


def running_servers() -> list[ServerProcess]:
    """Every managed ArcadeDB on this machine that this user can see, oldest first."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "create_time", "memory_info"]):
        args = process.info["cmdline"] or []
        roots = [arg.removeprefix(ROOT_FLAG) for arg in args if arg.startswith(ROOT_FLAG)]
        if MAIN_CLASS not in args or not roots or not running(process.info["pid"]):
            continue
        heaps = [arg.removeprefix("-Xmx").removesuffix("m") for arg in args if arg.startswith("-Xmx")]
        memory = process.info["memory_info"]
        folder = Path(roots[0])
        found.append(
            ServerProcess(
                pid=process.info["pid"],
                folder=folder,
                rss_bytes=int(memory.rss) if memory is not None else 0,
                heap_mb=int(heaps[-1]) if heaps and heaps[-1].isdigit() else None,
                started_at=float(process.info["create_time"]),
                idle_since=_idle_since(folder, process.info["pid"]),
            )
        )
    return sorted(found, key=lambda server: server.started_at)
