"""Opens the memory stores a configuration asks for, and the mirror over them.

The graph is the Bolt server of `services.neo4j_uri` when set, else the managed local ArcadeDB under
`<home>/graph` (memory/arcadedb.py): started in the background on first use, so opening never waits for it;
its lane catches up from the journal once it answers. The mirror holds a lease on it until closed; then the
server stops after `memory.graph_idle_s` with no other holder (at once for a home in the temp folder).
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from smolcrew.errors import ConfigError, GraphServerError
from smolcrew.memory.mirror import Mirror
from smolcrew.memory.sinks.base import MemorySink
from smolcrew.memory.sinks.journal import JournalSink

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from smolcrew.memory.arcadedb import ManagedArcadeDB

__all__ = [
    "local_graph_server",
    "local_graph_wanted",
    "local_only_stores",
    "open_mirror",
    "open_sinks",
    "wanted_sinks",
]

log = logging.getLogger(__name__)


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5):
            return True
    except OSError:
        return False


def local_graph_wanted(settings: Settings) -> bool:
    """Whether the graph is the managed local ArcadeDB: no `services.neo4j_uri`, `memory.graph_local` on, and
    arcadedb-embedded and the neo4j driver installed."""
    from smolcrew.memory.arcadedb_host import installed

    return not settings.services.neo4j_uri and settings.memory.graph_local and installed()


def wanted_sinks(settings: Settings) -> list[str]:
    """The stores to mirror to: as configured, or chosen by what is installed and reachable (the graph when
    `services.neo4j_uri` is set, or when the local ArcadeDB can run: `local_graph_wanted`)."""
    if settings.memory.sinks is not None:
        return list(settings.memory.sinks)
    chosen = []
    if importlib.util.find_spec("chromadb") is not None:
        chosen.append("chroma")
    if importlib.util.find_spec("redis") is not None and _answers(settings.services.redis_url, 6379):
        chosen.append("redis")
    external = settings.services.neo4j_uri and importlib.util.find_spec("neo4j") is not None
    if external or local_graph_wanted(settings):
        chosen.append("graph")
    return chosen


def local_only_stores(settings: Settings) -> list[str]:
    """Why these settings cannot run on a cluster (`[cluster] engine = "ray"`), each with its fix: a store that
    lives inside one machine's process or disk, where a run that moves to another node would not find its
    records."""
    if not settings.memory.enabled:
        return ["memory.enabled is off: a run that moves to another node resumes from its journal; turn it on"]
    problems = []
    sinks = wanted_sinks(settings)
    if "chroma" in sinks and not settings.services.chroma_url:
        problems.append("Chroma is embedded (a folder of one machine): set services.chroma_url to a Chroma server")
    if "graph" in sinks and not settings.services.neo4j_uri:
        problems.append(
            "the graph is the local ArcadeDB this machine starts: set services.neo4j_uri to a Neo4j or ArcadeDB "
            "server every node reaches (or leave graph out of memory.sinks)"
        )
    return problems


def local_graph_server(settings: Settings) -> ManagedArcadeDB:
    """The managed ArcadeDB of `settings.home`, sized and timed by `[memory]`."""
    from smolcrew.memory.arcadedb import ManagedArcadeDB

    memory = settings.memory
    return ManagedArcadeDB(settings.home / "graph", heap_mb=memory.graph_heap_mb, idle_s=memory.graph_idle_s)


def _local_graph(settings: Settings, namespace: str, stack: ExitStack) -> AbstractContextManager[MemorySink] | None:
    """A sink on the managed ArcadeDB, launched in the background if none runs, held (a lease) until `stack`
    closes; None (logged) when it cannot start in auto mode. Raises ConfigError when `memory.sinks` names the
    graph and no server can be had."""
    from smolcrew.memory.arcadedb_host import INSTALL

    explicit = settings.memory.sinks is not None
    if not local_graph_wanted(settings):
        reason = "memory.graph_local is false" if not settings.memory.graph_local else "it is not installed"
        raise ConfigError(
            f"memory.sinks names 'graph', services.neo4j_uri is not set and the local ArcadeDB cannot run "
            f"({reason}): {INSTALL}, or remove 'graph' from memory.sinks",
            field="memory.sinks",
        )
    try:
        lease = local_graph_server(settings).acquire()
    except GraphServerError as exc:
        if explicit:
            raise ConfigError(f"memory.sinks names 'graph', but {exc}", field="memory.sinks") from exc
        log.warning("no graph store: %s", exc)
        return None
    stack.callback(lease.release)  # after the sink closes its connections (the stack unwinds in reverse)
    from smolcrew.memory.sinks.graph import GraphSink

    state = lease.state
    return GraphSink.from_url(
        state.uri, user=state.user, password=state.password, database=state.database, namespace=namespace
    )


def open_sinks(settings: Settings, stack: ExitStack) -> list[MemorySink]:
    """Open each wanted store; `stack` closes them. Nothing here contacts a store yet (the local ArcadeDB is
    launched, not waited for).

    Raises:
        ConfigError: `memory.sinks` names the graph, no `services.neo4j_uri` is set and no local ArcadeDB can run.
    """
    namespace = settings.memory.namespace
    services = settings.services
    sinks: list[MemorySink] = []
    for name in wanted_sinks(settings):
        if name == "chroma":
            from smolcrew.memory.sinks.chroma_process import ChromaProcessSink

            # Chroma and its MiniLM in a worker process (started on the first write): in this process their CPU
            # work would delay the agent's thread at every step. The crew's own MiniLM stays for the tools.
            opened = (
                ChromaProcessSink(url=services.chroma_url, namespace=namespace, models=settings.models)
                if services.chroma_url
                else ChromaProcessSink(path=settings.home / "chroma", namespace=namespace, models=settings.models)
            )
            sinks.append(stack.enter_context(opened))
        elif name == "redis":
            from smolcrew.memory.sinks.redis import RedisSink

            sinks.append(stack.enter_context(RedisSink.from_url(services.redis_url, namespace=namespace)))
        elif name == "graph" and services.neo4j_uri:
            from smolcrew.memory.sinks.graph import GraphSink

            password = services.neo4j_password.get_secret_value() if services.neo4j_password else None
            graph = GraphSink.from_url(
                services.neo4j_uri,
                user=services.neo4j_user,
                password=password,
                database=services.neo4j_database,
                namespace=namespace,
            )
            sinks.append(stack.enter_context(graph))
        elif name == "graph":
            local = _local_graph(settings, namespace, stack)
            if local is not None:
                sinks.append(stack.enter_context(local))
    return sinks


def open_mirror(settings: Settings, stack: ExitStack) -> Mirror:
    """The journal under `<home>/journal` and a mirror to every wanted store (closed by `stack`)."""
    journal = JournalSink(settings.home / "journal")
    mirror = Mirror(journal, open_sinks(settings, stack), state_dir=settings.home / "state")
    stack.callback(mirror.close)
    return mirror
