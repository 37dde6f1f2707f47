"""Chroma for the shared sink contract: `make_chroma_sink(namespace)` opens an embedded sink in a fresh namespace.

One embedded Chroma folder per test session; each sink gets its own collection, dropped on exit. Embeddings come
from the packaged MiniLM (skips outside CI when it is not installed; fails in CI).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from smolcrew.memory.sinks.chroma import ChromaSink, Embed, minilm_embedder
from smolcrew.pool import PipelinePool

__all__ = ["chroma_embed", "chroma_folder", "make_chroma_sink"]

MakeSink = Callable[[str], AbstractContextManager[ChromaSink]]


@pytest.fixture(scope="session")
def chroma_embed(minilm_available: None) -> Embed:
    """The packaged MiniLM, loaded once per session."""
    if importlib.util.find_spec("chromadb") is None:  # in CI the skip counts as a failure (tests/conftest.py)
        pytest.skip("chromadb is not installed: pip install 'chromadb>=1.5,<1.6'")
    return minilm_embedder(PipelinePool(device="cpu"))


@pytest.fixture(scope="session")
def chroma_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chroma")


@pytest.fixture
def make_chroma_sink(chroma_folder: Path, chroma_embed: Embed) -> MakeSink:
    """`with make_chroma_sink("ns") as sink:` an embedded ChromaSink over an empty namespace, dropped afterwards."""

    @contextmanager
    def make(namespace: str) -> Iterator[ChromaSink]:
        with ChromaSink.embedded(chroma_folder, namespace=namespace, embed=chroma_embed) as sink:
            sink.drop()
            sink.setup()
            try:
                yield sink
            finally:
                sink.drop()

    return make
