"""GraphSink against a real Bolt server: ArcadeDB started for the session, or SMOLCREW_NEO4J_URI."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from smolcrew.errors import SinkUnavailableError
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import Capability
from smolcrew.memory.sinks.graph import GraphSink
from smolcrew.memory.sinks.graph_rows import TEXT_LIMIT
from tests.memory.arcadedb import GraphServer, GraphServerUnavailable, arcadedb_server, free_port
from tests.memory.backends import graph as graph_backend

graph_server = graph_backend.graph_server  # fixtures, visible to pytest in this module
make_graph_sink = graph_backend.make_graph_sink

pytestmark = pytest.mark.timeout(60)

MakeSink = Callable[..., AbstractContextManager[GraphSink]]


def rec(seq: int, run_id: str = "run-1", agent: str = "manager", kind: str = "action", **payload: Any) -> StepRecord:
    return StepRecord(run_id, seq, agent, kind, {"parent": None, **payload}, ts=1_700_000_000.0 + seq)


def team_run(run_id: str = "run-1") -> list[StepRecord]:
    """A manager delegating to `vision`, which calls a tool; the manager then answers."""
    return [
        rec(0, run_id, "router", "delegation", to="manager", task="What is in the photo?"),
        rec(1, run_id, "manager", "delegation", to="vision", task="Caption photo.png"),
        rec(2, run_id, "vision", "action", code="caption_image('photo.png')", calls=["caption_image"]),
        rec(3, run_id, "manager", "action", code="vision(task='Caption photo.png')", calls=["vision"]),
        rec(4, run_id, "manager", "action", code="final_answer(x)", calls=["final_answer", "vision"]),
        rec(5, run_id, "manager", "final_answer", output="A cat on a sofa."),
    ]


def count(sink: GraphSink, cypher: str, **params: Any) -> int:
    records, _, _ = sink.driver.execute_query(
        cypher, parameters_={"ns": sink.namespace, **params}, database_=sink.database
    )
    return int(records[0]["n"])


def test_write_then_read_returns_identical_records_in_seq_order(make_graph_sink: MakeSink) -> None:
    records = [
        *team_run(),
        rec(6, nested={"a": [1, 2.5, None, {"b": "c"}], "d": True}, empty={}, items=[], none=None, big_int=2**53),
    ]
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    with make_graph_sink() as sink:
        sink.write(shuffled)
        assert sink.read("run-1") == records
        assert sink.read("another-run") == []


def test_writing_the_same_batch_twice_stores_it_once(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as sink:
        sink.write(team_run())
        nodes = count(sink, "MATCH (n) WHERE n.ns = $ns RETURN count(n) AS n")
        edges = count(sink, "MATCH (a)-[e]->(b) WHERE a.ns = $ns RETURN count(e) AS n")
        sink.write(team_run())
        sink.write(team_run()[2:4])
        assert sink.read("run-1") == team_run()
        assert count(sink, "MATCH (n) WHERE n.ns = $ns RETURN count(n) AS n") == nodes
        assert count(sink, "MATCH (a)-[e]->(b) WHERE a.ns = $ns RETURN count(e) AS n") == edges


def test_a_rewritten_record_replaces_the_old_one_and_its_edges(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as sink:
        sink.write(team_run())
        changed = rec(2, agent="audio", code="transcribe_audio('a.wav')", calls=["transcribe_audio"])
        sink.write([changed])
        assert sink.read("run-1")[2] == changed
        assert sink.tools_for_answer("run-1") == ["transcribe_audio", "final_answer"]
        emitted = "MATCH (a:Agent)-[:EMITTED]->(s:Step {seq: 2}) WHERE s.ns = $ns RETURN count(a) AS n"
        assert count(sink, emitted) == 1


def test_the_graph_links_runs_agents_steps_and_tools(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as sink:
        sink.write(team_run())
        assert sink.delegation_tree("run-1") == [
            ("router", "manager", "What is in the photo?"),
            ("manager", "vision", "Caption photo.png"),
        ]
        # `vision` is an agent (a delegation), not a tool.
        assert sink.tools_for_answer("run-1") == ["caption_image", "final_answer"]
        assert count(sink, "MATCH (:Run)-[:HAS_STEP]->(s:Step) WHERE s.ns = $ns RETURN count(s) AS n") == 6
        assert count(sink, "MATCH (a:Step)-[:NEXT]->(b:Step) WHERE a.ns = $ns RETURN count(a) AS n") == 5
        assert count(sink, "MATCH (t:Tool) WHERE t.ns = $ns RETURN count(t) AS n") == 2
        assert sink.tools_for_answer("no-such-run") == []


def test_next_links_steps_that_arrive_out_of_order(make_graph_sink: MakeSink) -> None:
    records = team_run()
    with make_graph_sink() as sink:
        for record in (records[5], records[3], records[1], records[0], records[4], records[2]):
            sink.write([record])
        chain = "MATCH (a:Step)-[:NEXT]->(b:Step) WHERE a.ns = $ns AND b.seq = a.seq + 1 RETURN count(a) AS n"
        assert count(sink, chain) == 5


def test_a_call_taken_for_a_tool_becomes_a_delegation_once_the_agent_is_known(make_graph_sink: MakeSink) -> None:
    records = team_run()
    with make_graph_sink() as sink:
        sink.write([records[3]])  # calls `vision` before anything says it is an agent
        assert sink.tools_for_answer("run-1") == ["vision"]
        sink.write(records)
        assert sink.tools_for_answer("run-1") == ["caption_image", "final_answer"]


def test_search_finds_text_case_insensitively_and_filters_by_run(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as sink:
        sink.write(team_run("run-1") + team_run("run-2"))
        found = sink.search("CAT on a SOFA")
        assert [(r.run_id, r.seq) for r in found[:2]] == [("run-1", 5), ("run-2", 5)]
        found = sink.search("caption photo", run_id="run-2", k=10)
        assert found and all(r.run_id == "run-2" for r in found)
        assert found[0].seq in (1, 2)  # the records naming both words rank first
        assert len(sink.search("photo", k=2)) == 2
        assert sink.search("zebra crossing") == []
        assert sink.search("   ") == []


def test_unusual_text_is_stored_safely(make_graph_sink: MakeSink) -> None:
    huge = "x" * 1_000_000
    records = [
        rec(0, observations="lone \udcff surrogate and \ud800 another", code="print('é ☃ 🐈 \u0000 \u202e')"),
        rec(1, observations=huge + " needleattheend"),
        rec(2, agent="ag\udc80ent", to="x\ud834", kind="delegation", task="quote ' \" ` \\ $ns {id}"),
        rec(3, code="emoji 🐈‍⬛ and ZWJ", calls=["tool ' \" }) DETACH DELETE n //"]),
    ]
    with make_graph_sink() as sink:
        sink.write(records)
        assert sink.read("run-1") == records
        assert [r.seq for r in sink.search("surrogate")] == [0]
        assert [r.seq for r in sink.search("🐈")] == [0, 3]
        assert sink.search("needleattheend") == []  # past TEXT_LIMIT: kept in the record, not searchable
        assert sink.search("x" * 100)[0].payload["observations"] == huge + " needleattheend"
        assert TEXT_LIMIT < 1_000_000
        assert sink.tools_for_answer("run-1") == ["tool ' \" }) DETACH DELETE n //"]


def test_namespaces_are_isolated_and_drop_removes_only_its_own(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as first, make_graph_sink() as second:
        first.write(team_run())
        second.write(team_run()[:1])
        assert len(first.read("run-1")) == 6
        assert len(second.read("run-1")) == 1
        assert second.delegation_tree("run-1") == [("router", "manager", "What is in the photo?")]
        second.drop()
        assert second.read("run-1") == []
        assert first.read("run-1") == team_run()
        assert count(second, "MATCH (n) WHERE n.ns = $ns RETURN count(n) AS n") == 0


def test_setup_is_idempotent_and_the_sink_declares_graph(make_graph_sink: MakeSink, graph_server: GraphServer) -> None:
    with make_graph_sink() as sink:
        sink.setup()
        with GraphSink.from_url(
            graph_server.uri,
            user=graph_server.user,
            password=graph_server.password,
            database=graph_server.database,
            namespace=sink.namespace,
        ) as again:
            again.setup()
            again.write(team_run())
            assert sink.read("run-1") == team_run()
        assert Capability.GRAPH in sink.capabilities
        assert "namespace=" in repr(sink)
    with pytest.raises(ValueError, match="namespace"):
        GraphSink(None, namespace="bad/namespace")


def test_health_is_ok_on_a_live_server(make_graph_sink: MakeSink) -> None:
    with make_graph_sink() as sink:
        health = sink.health()
        assert health.ok, health.detail
        assert health.latency_ms is not None


def test_an_unreachable_server_is_reported_fast_and_never_raises_from_health() -> None:
    url = f"bolt://root:secret@127.0.0.1:{free_port()}"
    with GraphSink.from_url(url, namespace="unreachable", timeout_s=2.0) as sink:
        start = time.perf_counter()
        health = sink.health()
        assert not health.ok
        assert "unreachable" in health.detail
        with pytest.raises(SinkUnavailableError, match="SMOLCREW_SERVICES__NEO4J_URI") as info:
            sink.write(team_run())
        assert info.value.sink == "graph"
        with pytest.raises(SinkUnavailableError):
            sink.read("run-1")
        with pytest.raises(SinkUnavailableError):
            sink.search("cat")
        assert time.perf_counter() - start < 15


def test_a_thousand_records_in_batches_of_a_hundred_read_back_complete(
    make_graph_sink: MakeSink, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        rec(i, "bulk", agent=f"agent{i % 4}", code=f"step {i}", calls=["web_search"] if i % 3 else [],
            observations="o" * 200)
        for i in range(1000)
    ]  # fmt: skip
    with make_graph_sink() as sink:
        start = time.perf_counter()
        for i in range(0, 1000, 100):
            sink.write(records[i : i + 100])
        elapsed = time.perf_counter() - start
        assert sink.read("bulk") == records
        assert count(sink, "MATCH (a:Step)-[:NEXT]->(b:Step) WHERE a.ns = $ns RETURN count(a) AS n") == 999
        assert sink.tools_for_answer("bulk") == ["web_search"]
    with capsys.disabled():
        print(f"\ngraph write: 1,000 records in batches of 100 in {elapsed:.2f} s = {1000 / elapsed:,.0f} records/s")


def _wait_until_stopped(pid: int, timeout_s: float = 10.0) -> None:
    """Until every thread of `pid` is stopped ('T' in /proc), as SIGSTOP leaves it."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        states = [Path(task, "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks]
        if all(state in "tT" for state in states):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop within {timeout_s} s")


def test_closing_a_driver_whose_connection_a_deadline_abandoned_does_not_raise() -> None:
    class AbandonedDriver:  # neo4j's goodbye on a connection an abandoned call still holds (seen in CI)
        closed = 0

        def close(self) -> None:
            AbandonedDriver.closed += 1
            raise BufferError("Existing exports of data: object cannot be re-sized")

    sink = GraphSink(AbandonedDriver())
    sink._owned = True
    sink.close()
    sink.close()  # once only
    assert AbandonedDriver.closed == 1


def test_a_stopped_server_is_reported_within_the_deadline() -> None:
    """A SIGSTOPped server accepts TCP and never answers; the driver alone would hang forever."""
    try:
        context = arcadedb_server()
        server = context.__enter__()
    except GraphServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        assert server.pid is not None
        with GraphSink.from_url(
            server.uri, user=server.user, password=server.password, database=server.database, deadline_s=2.0
        ) as sink:
            sink.write(team_run())
            os.kill(server.pid, signal.SIGSTOP)
            _wait_until_stopped(server.pid)  # on a loaded machine a thread may run on before the stop lands
            try:
                start = time.perf_counter()
                assert not sink.health().ok
                with pytest.raises(SinkUnavailableError, match="did not answer"):
                    sink.write(team_run("run-2"))
                with pytest.raises(SinkUnavailableError):
                    sink.read("run-1")
                assert time.perf_counter() - start < 20
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert sink.read("run-1") == team_run()
    finally:
        context.__exit__(None, None, None)
