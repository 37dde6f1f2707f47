"""Fixtures of the store backends (`make_<backend>_sink`), shared by their own tests and the contract suite."""

from tests.memory.backends.chroma import chroma_embed, chroma_folder, make_chroma_sink
from tests.memory.backends.graph import graph_server, make_graph_sink
from tests.memory.backends.redis import make_redis_sink, redis_client

__all__ = [
    "chroma_embed",
    "chroma_folder",
    "graph_server",
    "make_chroma_sink",
    "make_graph_sink",
    "make_redis_sink",
    "redis_client",
]
