from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from smolcrew.pool import PipelinePool


@pytest.fixture(scope="session")
def embed(minilm_available: None) -> Callable[[list[str]], np.ndarray]:
    """The packaged MiniLM, as the router and direct dispatch use it."""
    encoder = PipelinePool(device="cpu").get("embeddings")
    return lambda texts: encoder.encode(texts, normalize_embeddings=True)
