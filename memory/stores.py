"""Opens the memory stores a configuration asks for, and the mirror over them."""

from __future__ import annotations

import importlib.util
import socket
from contextlib import ExitStack
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from memory.mirror import Mirror
from memory.sinks.base import MemorySink
from memory.sinks.journal import JournalSink

if TYPE_CHECKING:
    from smolcrew.config import Settings
    from tools.pool import PipelinePool

__all__ = ["open_mirror", "open_sinks", "wanted_sinks"]


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5):
            return True
    except OSError:
        return False


def wanted_sinks(settings: Settings) -> list[str]:
    """The stores to mirror to: as configured, or chosen by what is installed and reachable."""
    if settings.memory.sinks is not None:
        return list(settings.memory.sinks)
    chosen = []
    if importlib.util.find_spec("chromadb") is not None:
        chosen.append("chroma")
    if importlib.util.find_spec("redis") is not None and _answers(settings.services.redis_url, 6379):
        chosen.append("redis")
    if settings.services.neo4j_uri and importlib.util.find_spec("neo4j") is not None:
        chosen.append("graph")
    return chosen


def open_sinks(settings: Settings, stack: ExitStack, pool: PipelinePool | None = None) -> list[MemorySink]:
    """Open each wanted store; `stack` closes them. Nothing here contacts a store yet."""
    namespace = settings.memory.namespace
    services = settings.services
    sinks: list[MemorySink] = []
    for name in wanted_sinks(settings):
        if name == "chroma":
            from memory.sinks.chroma import ChromaSink, minilm_embedder

            embed = minilm_embedder(pool)
            opened = (
                ChromaSink.from_url(services.chroma_url, namespace=namespace, embed=embed)
                if services.chroma_url
                else ChromaSink.embedded(settings.home / "chroma", namespace=namespace, embed=embed)
            )
            sinks.append(stack.enter_context(opened))
        elif name == "redis":
            from memory.sinks.redis import RedisSink

            sinks.append(stack.enter_context(RedisSink.from_url(services.redis_url, namespace=namespace)))
        elif name == "graph" and services.neo4j_uri:
            from memory.sinks.graph import GraphSink

            password = services.neo4j_password.get_secret_value() if services.neo4j_password else None
            graph = GraphSink.from_url(
                services.neo4j_uri,
                user=services.neo4j_user,
                password=password,
                database=services.neo4j_database,
                namespace=namespace,
            )
            sinks.append(stack.enter_context(graph))
    return sinks


def open_mirror(settings: Settings, stack: ExitStack, pool: PipelinePool | None = None) -> Mirror:
    """The journal under `<home>/journal` and a mirror to every wanted store (closed by `stack`)."""
    journal = JournalSink(settings.home / "journal")
    mirror = Mirror(journal, open_sinks(settings, stack, pool), state_dir=settings.home / "state")
    stack.callback(mirror.close)
    return mirror
