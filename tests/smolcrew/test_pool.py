from __future__ import annotations

import threading
from pathlib import Path

import pytest

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools.context import use_tools
from smolcrew.tools.text import ClassifySentiment, CompareSentences, RankPassages
from tests.tools.tiny_models import tiny_text_classifier


@pytest.mark.usefixtures("minilm_available")
def test_concurrent_first_use_loads_once() -> None:
    pool = PipelinePool(device="cpu")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(pool.get("embeddings"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(result) for result in results}) == 1
    assert (pool.stats.misses, pool.stats.hits) == (1, 3)
    [key] = pool.loaded()
    assert key.task == "sentence-embeddings" and key.device == "cpu" and key.dtype == "auto"
    assert pool.stats.load_seconds[key] > 0


def test_unknown_role_and_unloadable_model() -> None:
    pool = PipelinePool(device="cpu", overrides={"sentiment": "not a valid//model id"})
    with pytest.raises(ModelUnavailableError, match="unknown model role 'painting'"):
        pool.get("painting")
    with pytest.raises(ModelUnavailableError, match="could not be loaded") as caught:
        pool.get("sentiment")
    assert "models.sentiment" in caught.value.fix
    assert pool.loaded() == []


def test_sentiment_tool_on_a_tiny_random_model(tmp_path: Path) -> None:
    folder = tiny_text_classifier(tmp_path / "tiny-sst2")
    pool = PipelinePool(device="cpu", overrides={"sentiment": str(folder)})
    tool = ClassifySentiment()
    with use_tools(pool=pool):
        result = tool(text="the movie is great")
        with pytest.raises(ToolInputError, match="non-empty string"):
            tool(text="   ")
    assert result["label"] in {"NEGATIVE", "POSITIVE"}
    assert 0.0 <= result["score"] <= 1.0
    assert result["model"] == str(folder)


@pytest.mark.usefixtures("minilm_available")
def test_embedding_tools_with_the_packaged_minilm() -> None:
    pool = PipelinePool(device="cpu")
    with use_tools(pool=pool):
        similar = CompareSentences()(text_a="A man is eating food.", text_b="A man is eating a meal.")
        different = CompareSentences()(text_a="A man is eating food.", text_b="The stock market fell today.")
        ranked = RankPassages()(
            query="When did the bridge open?",
            passages=["Bananas are yellow.", "The bridge opened to traffic in 1937.", "Cats sleep a lot."],
            top_k=2,
        )
        with pytest.raises(ToolInputError, match="non-empty list"):
            RankPassages()(query="q", passages=[])
    assert similar["similarity"] > different["similarity"] + 0.3
    assert ranked[0]["index"] == 1 and len(ranked) == 2
    assert pool.stats.misses == 1  # both tools share one loaded model


@pytest.mark.usefixtures("minilm_available")
def test_least_recently_used_pipeline_is_dropped_over_budget(tmp_path: Path) -> None:
    folder = tiny_text_classifier(tmp_path / "tiny-sst2")
    pool = PipelinePool(device="cpu", overrides={"sentiment": str(folder)}, budget_mb=50)
    small = pool.get("sentiment")
    assert 0 < sum(pool.stats.resident_bytes.values()) < 1 * 2**20
    pool.get("embeddings")  # MiniLM holds ~87 MiB: over budget, so the older pipeline goes
    assert [key.task for key in pool.loaded()] == ["sentence-embeddings"]
    assert pool.stats.evictions == 1
    assert pool.get("sentiment") is not small  # loaded again, and now MiniLM is the one dropped
    assert [key.task for key in pool.loaded()] == ["text-classification"]
    assert (pool.stats.misses, pool.stats.evictions) == (3, 2)


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from smolcrew.backends import resolve_device

    assert PipelinePool(device="cpu").device == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="'cuda' is not available"):
            resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"  # a visible GPU is preferred


def test_resident_bytes_sees_models_inside_bundles() -> None:
    from dataclasses import dataclass
    from typing import NamedTuple

    import torch

    from smolcrew.pool import resident_bytes

    layer = torch.nn.Linear(10, 10)  # 110 float32 parameters
    expected = 110 * 4

    class Pair(NamedTuple):
        tokenizer: object
        model: torch.nn.Module

    @dataclass(frozen=True, slots=True)
    class Slotted:
        model: torch.nn.Module
        processor: object

    assert resident_bytes(layer) == expected
    assert resident_bytes(Pair(object(), layer)) == expected
    assert resident_bytes(Slotted(layer, object())) == expected
    assert resident_bytes(object()) == 0


@pytest.mark.usefixtures("minilm_available")
def test_the_pool_sizes_torchs_threads_when_a_pipeline_loads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        PipelinePool(device="cpu", threads=1).get("embeddings")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_server_splits_the_cores_between_its_workers(tmp_path: Path) -> None:
    from smolcrew.config import Settings
    from smolcrew.pool import cpu_threads
    from smolcrew.server.crews import threads_shared

    settings = Settings(home=tmp_path, server={"workers": 2})
    assert threads_shared(settings).pool.threads == cpu_threads(2) == max(1, cpu_threads(1) // 2)
    pinned = Settings(home=tmp_path, server={"workers": 2}, pool={"threads": 3})
    assert threads_shared(pinned).pool.threads == 3  # set by the user: kept
