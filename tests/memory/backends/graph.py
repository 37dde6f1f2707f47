"""The graph backend for sink tests: one graph server per test process, a fresh namespace per sink.

The server is the one named by SMOLCREW_NEO4J_URI (read when first needed), else an ArcadeDB with Bolt started
on first use (tests/memory/arcadedb.py) and stopped when the process exits. Outside CI a missing server skips
with the command that provides one; in CI it fails.

- `graph_sink(namespace)`: a plain context manager, usable anywhere (the shared contract suite calls it).
- `make_graph_sink` / `graph_server`: pytest fixtures; a test module binds them at module level so pytest finds
  them (`make_graph_sink = graph_backend.make_graph_sink`).
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import pytest

from smolcrew.memory.sinks.graph import GraphSink
from tests.memory.arcadedb import GraphServer, GraphServerUnavailable
from tests.memory.arcadedb import graph_server as start_graph_server

__all__ = ["close_shared_graph_server", "graph_server", "graph_sink", "make_graph_sink", "shared_graph_server"]

_lock = threading.Lock()
_stack = ExitStack()
_server: GraphServer | None = None
_failure: str | None = None


def shared_graph_server() -> GraphServer:
    """The process's graph server, started on first call; skips (fails in CI) when none can be had."""
    global _server, _failure
    with _lock:
        if _server is None and _failure is None:
            try:
                _server = _stack.enter_context(start_graph_server())
                atexit.register(_stack.close)
            except GraphServerUnavailable as exc:
                _failure = f"graph server unavailable: {exc}"
    if _server is None:
        if os.environ.get("CI"):
            pytest.fail(_failure or "graph server unavailable")
        pytest.skip(_failure or "graph server unavailable")
    return _server


def close_shared_graph_server() -> None:
    """Stop the process's graph server now (the session's end calls it before looking for leftover JVMs)."""
    global _server
    with _lock:
        _stack.close()
        _server = None


@contextmanager
def graph_sink(namespace: str | None = None, **options: object) -> Iterator[GraphSink]:
    """A set-up GraphSink in `namespace` (fresh when None), dropped and closed on exit.

    Keyword options go to `GraphSink.from_url`."""
    server = shared_graph_server()
    ns = namespace or f"t{uuid.uuid4().hex[:12]}"
    with GraphSink.from_url(
        server.uri,
        user=server.user,
        password=server.password,
        database=server.database,
        namespace=ns,
        **options,  # type: ignore[arg-type]
    ) as sink:
        sink.setup()
        sink.drop()
        try:
            yield sink
        finally:
            sink.drop()


@pytest.fixture(scope="session")
def graph_server() -> GraphServer:
    """ArcadeDB with Bolt for the whole session (or the server of SMOLCREW_NEO4J_URI)."""
    return shared_graph_server()


@pytest.fixture
def make_graph_sink(graph_server: GraphServer) -> Callable[..., AbstractContextManager[GraphSink]]:
    """`with make_graph_sink(namespace) as sink:` a set-up GraphSink in `namespace`, dropped on exit."""
    return graph_sink
