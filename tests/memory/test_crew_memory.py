"""A real crew run leaves complete, consistent records in every store: journal, Redis, Chroma and the graph."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from smolcrew.crew import Crew
from smolcrew.memory.sinks.chroma import ChromaSink
from smolcrew.memory.sinks.graph import GraphSink
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.sinks.redis import RedisSink
from smolcrew.result import RunResult
from tests.conftest import code
from tests.memory.backends.redis import REDIS_URL

pytestmark = [pytest.mark.usefixtures("minilm_available"), pytest.mark.timeout(240)]


def _services(graph_server) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "redis_url": REDIS_URL,
        "neo4j_uri": graph_server.uri,
        "neo4j_user": graph_server.user,
        "neo4j_password": graph_server.password,
        "neo4j_database": graph_server.database,
    }


def _assert_in_every_store(crew: Crew, result: RunResult, namespace: str, graph_server) -> None:  # type: ignore[no-untyped-def]
    """After `crew` is closed (every lane flushed): each store holds exactly the run's records, in order."""
    expected = [(r.seq, r.agent, r.kind) for r in result.steps]
    journal = JournalSink(Path(crew.settings.home) / "journal")
    assert [(r.seq, r.agent, r.kind) for r in journal.read(result.run_id)] == expected
    with RedisSink.from_url(REDIS_URL, namespace=namespace) as redis_sink:
        assert [(r.seq, r.agent, r.kind) for r in redis_sink.read(result.run_id)] == expected
        redis_sink.drop()
    with ChromaSink.embedded(Path(crew.settings.home) / "chroma", namespace=namespace) as chroma_sink:
        assert [(r.seq, r.agent, r.kind) for r in chroma_sink.read(result.run_id)] == expected
        hits = chroma_sink.search(result.steps[0].payload["task"], run_id=result.run_id, k=3)
        assert hits and {hit.run_id for hit in hits} == {result.run_id}
        chroma_sink.drop()
    with GraphSink.from_url(
        graph_server.uri,
        user=graph_server.user,
        password=graph_server.password,
        database=graph_server.database,
        namespace=namespace,
    ) as graph_sink:
        assert [(r.seq, r.agent, r.kind) for r in graph_sink.read(result.run_id)] == expected
        delegations = [(r.agent, r.payload["to"]) for r in result.steps if r.kind == "delegation"]
        assert [(parent, child) for parent, child, _ in graph_sink.delegation_tree(result.run_id)] == delegations
        assert set(result.tools) <= set(graph_sink.tools_for_answer(result.run_id))
        graph_sink.drop()


@pytest.mark.slow
def test_an_embedded_model_run_is_mirrored_to_every_store(
    embedded_gguf: Path,
    tmp_path: Path,
    graph_server,  # type: ignore[no-untyped-def]
    redis_client,  # type: ignore[no-untyped-def]
) -> None:
    namespace = f"llm{uuid.uuid4().hex[:8]}"
    crew = Crew.from_config(
        home=str(tmp_path / "home"),
        llm={"backend": "embedded", "model_path": str(embedded_gguf)},
        memory={"sinks": ["redis", "chroma", "graph"], "namespace": namespace},
        services=_services(graph_server),
    )
    result = crew.run("What is 17*23+5? Use the language specialist if needed.")
    assert result.ok, result.error
    assert str(result.answer).split("=")[-1].strip() == "396"  # worked out by `calculate`
    assert result.output_tokens > 0
    assert any(r.payload.get("model_output") for r in result.steps)  # the model's own replies, kept for replay
    crew.close()
    _assert_in_every_store(crew, result, namespace, graph_server)


def test_a_multi_agent_run_is_mirrored_to_every_store(
    scripted_crew: Callable[..., Crew],
    graph_server,  # type: ignore[no-untyped-def]
    redis_client,  # type: ignore[no-untyped-def]
) -> None:
    namespace = f"crew{uuid.uuid4().hex[:8]}"
    crew = scripted_crew(
        [
            code('r = language(task="Compare the two sentences.")\nfinal_answer(r)'),
            code('s = compare_sentences(text_a="a cat sleeps", text_b="a kitten naps")\nfinal_answer(s["similarity"])'),
        ],
        routing={"mode": "manager"},
        memory={"sinks": ["redis", "chroma", "graph"], "namespace": namespace},
        services=_services(graph_server),
    )
    chat = crew.chat()
    result = chat.send("How similar are 'a cat sleeps' and 'a kitten naps'?")
    assert result.ok and result.agents == ("language",) and result.tools == ("compare_sentences",)
    crew.close()  # flushes every lane
    journal = JournalSink(Path(crew.settings.home) / "journal")
    assert all(r.payload["conversation_id"] == chat.conversation_id for r in journal.read(result.run_id))
    _assert_in_every_store(crew, result, namespace, graph_server)
