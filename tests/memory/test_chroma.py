"""ChromaSink against real Chroma: an embedded store for most tests, one `chroma run` server for one test."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smolcrew.errors import SinkError, SinkUnavailableError
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import Capability, SinkHealth
from smolcrew.memory.sinks.chroma import ChromaSink, Embed, collection_name, record_document, record_json
from tests.conftest import require_program
from tests.memory.backends.chroma import MakeSink, chroma_embed, chroma_folder, make_chroma_sink

__all__ = ["chroma_embed", "chroma_folder", "make_chroma_sink"]  # fixtures used here

pytestmark = pytest.mark.slow  # every test embeds with the packaged MiniLM


def records(run_id: str, count: int, *, start: int = 0, agent: str = "coder") -> list[StepRecord]:
    return [
        StepRecord(
            run_id=run_id,
            seq=seq,
            agent=agent,
            kind="action",
            payload={"code": f"result = step_{seq}()", "observations": f"step {seq} done", "nested": {"n": [seq]}},
            ts=1_700_000_000.0 + seq / 7,
        )
        for seq in range(start, start + count)
    ]


TOPICS = {
    "weather": "Fetched the forecast: heavy rain and strong winds expected in Paris tomorrow, 12 degrees.",
    "cooking": "Recipe found: simmer the tomato sauce with garlic and basil for twenty minutes, then add pasta.",
    "finance": "The quarterly report shows revenue grew 8% while operating costs fell; the stock price rose.",
    "football": "Match summary: the striker scored twice in the second half and the team won the league final.",
    "astronomy": "The telescope observed a distant galaxy and measured the redshift of its brightest stars.",
}


def topic_records(run_id: str) -> list[StepRecord]:
    return [
        StepRecord(run_id, seq, "researcher", "action", {"observations": text, "topic": topic})
        for seq, (topic, text) in enumerate(TOPICS.items())
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_capabilities_and_collection_names() -> None:
    assert ChromaSink.capabilities == frozenset({Capability.VECTOR_SEARCH})
    assert collection_name("steps") == "steps"
    for namespace in ("a", "", "test run/1", "..x..", "é" * 80, "192.168.0.1?", "\ud800"):
        name = collection_name(namespace)
        assert 3 <= len(name) <= 63 and name[0].isalnum() and name[-1].isalnum() and ".." not in name, name
    assert collection_name("a b") != collection_name("a_b")


def test_write_then_read_returns_identical_records_in_seq_order(make_chroma_sink: MakeSink) -> None:
    batch = records("run-a", 12) + records("run-b", 3)
    batch[4] = StepRecord(
        "run-a", 4, "coder", "planning", {"plan": "1. look\n2. leap", "none": None, "list": [1, "2", None, {"x": 1.5}]}
    )
    shuffled = random.Random(0).sample(batch, len(batch))
    with make_chroma_sink("read") as sink:
        sink.write(shuffled[:7])
        sink.write(shuffled[7:])
        assert sink.read("run-a") == batch[:12]
        assert sink.read("run-b") == batch[12:]
        assert sink.read("run-missing") == []


def test_writing_the_same_batch_twice_stores_it_once(make_chroma_sink: MakeSink) -> None:
    batch = records("run-a", 10)
    with make_chroma_sink("twice") as sink:
        sink.write(batch)
        sink.write(batch)
        assert sink.count() == 10
        changed = StepRecord("run-a", 3, "coder", "action", {"observations": "replaced"}, ts=5.0)
        sink.write([changed, changed])
        assert sink.count() == 10
        assert sink.read("run-a")[3] == changed


def test_search_finds_records_by_meaning_first(make_chroma_sink: MakeSink) -> None:
    with make_chroma_sink("quality") as sink:
        sink.write(topic_records("run-a"))
        queries = {
            "weather": "will it be stormy and wet?",
            "cooking": "how do I make spaghetti?",
            "finance": "company earnings and profits",
            "football": "who won the soccer game",
            "astronomy": "looking at stars in space",
        }
        for topic, query in queries.items():
            found = sink.search(query, k=3)
            assert found[0].payload["topic"] == topic, (query, [r.payload["topic"] for r in found])


def test_search_filters_by_run_agent_and_kind(make_chroma_sink: MakeSink) -> None:
    with make_chroma_sink("filters") as sink:
        sink.write(topic_records("run-a") + topic_records("run-b"))
        sink.write([StepRecord("run-b", 9, "chef", "final_answer", {"output": "Serve the pasta with basil."})])
        found = sink.search("pasta recipe", run_id="run-b", k=10)
        assert {r.run_id for r in found} == {"run-b"} and len(found) == 6
        assert [r.seq for r in sink.search("pasta recipe", run_id="run-b", agent="chef")] == [9]
        assert [r.agent for r in sink.search("pasta", kind="final_answer")] == ["chef"]
        assert sink.search("pasta", run_id="run-b", agent="chef", kind="action") == []
        assert len(sink.search("pasta", k=2)) == 2
        assert sink.search("pasta", run_id="run-none") == []
        assert sink.search("   ") == [] and sink.search("pasta", k=0) == []


def test_search_within_a_run_finds_the_one_distinctive_step_among_near_duplicates(
    chroma_folder: Path, chroma_embed: Embed
) -> None:
    # HNSW's graph search missed the football step among 200 "step N done" steps in 12 of 30 fresh collections, so
    # one collection cannot show a miss: six do (a miss rate of 0.4 misses somewhere in six 95% of the time)
    known: dict[str, list[float]] = {}

    def embed_once(texts: list[str]) -> list[list[float]]:
        missing = [text for text in texts if text not in known]
        if missing:
            known.update(zip(missing, chroma_embed(missing), strict=True))
        return [known[text] for text in texts]

    batch = topic_records("run-n") + records("run-n", 200, start=10)
    for trial in range(6):
        with ChromaSink.embedded(chroma_folder, namespace=f"near-duplicates-{trial}", embed=embed_once) as sink:
            sink.drop()
            sink.write(batch)
            found = sink.search("who won the soccer game", run_id="run-n", k=3)
            assert found[0].payload.get("topic") == "football", (trial, [r.payload for r in found])
            sink.drop()


def test_unusual_text_and_huge_observations_are_stored_safely(make_chroma_sink: MakeSink) -> None:
    odd = "lone \ud800 surrogate, NUL \x00, emoji 🧪, RTL שלום, CJK 漢字, quotes '\"`, \\ backslash"
    small = StepRecord("run-odd", 0, "agent \udfff", "action", {"observations": odd, "code": odd, "task": odd})
    huge = StepRecord("run-odd", 1, "coder", "action", {"observations": "x" * 1_000_000 + " needle", "error": odd})
    with make_chroma_sink("odd") as sink:
        sink.write([small, huge])
        small_back, huge_back = sink.read("run-odd")
        assert small_back == small
        assert huge_back.seq == 1 and huge_back.payload["error"] == odd
        assert "more characters; full text in the journal" in huge_back.payload["observations"]
        meta = sink._get_collection().get(ids=["run-odd:1"], include=["metadatas", "documents"])
        assert meta["metadatas"] and meta["metadatas"][0]["truncated"] is True
        assert meta["documents"] and len(meta["documents"][0]) < 2_200
        assert len(record_json(huge)[0]) <= sink.max_record_bytes
        assert sink.search(odd, run_id="run-odd", k=1)


def test_metadata_holds_indexed_fields_and_the_record(make_chroma_sink: MakeSink) -> None:
    record = StepRecord("run-m", 2, "coder", "action", {"conversation_id": "conv-7", "code": "x = 1"}, ts=12.5)
    with make_chroma_sink("meta") as sink:
        sink.write([record])
        got = sink._get_collection().get(ids=["run-m:2"], include=["metadatas", "documents"])
        assert got["metadatas"] and got["documents"]
        meta = got["metadatas"][0]
        assert {key: meta[key] for key in ("run_id", "seq", "agent", "kind", "ts", "schema", "conversation_id")} == {
            "run_id": "run-m",
            "seq": 2,
            "agent": "coder",
            "kind": "action",
            "ts": 12.5,
            "schema": record.schema,
            "conversation_id": "conv-7",
        }
        assert json.loads(str(meta["record"])) == record.to_dict()
        assert got["documents"][0] == record_document(record) == "coder action\ncode: x = 1"


def test_thousand_records_in_batches_of_100_read_back_complete(make_chroma_sink: MakeSink) -> None:
    batch = records("run-big", 1_000)
    with make_chroma_sink("thousand") as sink:
        for start in range(0, 1_000, 100):
            sink.write(batch[start : start + 100])
        assert sink.read("run-big") == batch
        assert sink.count() == 1_000


def test_setup_is_idempotent_and_drop_deletes_the_namespace(make_chroma_sink: MakeSink) -> None:
    with make_chroma_sink("drop") as sink:
        sink.setup()
        sink.write(records("run-a", 3))
        sink.setup()
        assert sink.count() == 3
        sink.drop()
        sink.drop()
        assert sink.read("run-a") == []
        sink.write(records("run-a", 2))
        assert sink.count() == 2


def test_embedded_health_and_use_after_close(chroma_folder: Path, chroma_embed: Embed) -> None:
    with ChromaSink.embedded(chroma_folder / "health", namespace="health", embed=chroma_embed) as sink:
        health = sink.health()
        assert health.ok and health.latency_ms is not None
    with pytest.raises(SinkError, match="closed"):
        sink.write(records("run-a", 1))
    assert not sink.health().ok


def test_unreachable_url_health_not_ok_and_write_fails_fast(chroma_embed: Embed) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound, then closed: nothing listens
    with ChromaSink.from_url(url, namespace="down", embed=chroma_embed) as sink:
        health = sink.health()
        assert not health.ok and "chroma run" in health.detail
        start = time.perf_counter()
        with pytest.raises(SinkUnavailableError, match=re.escape("chroma run --path DIR --host 127.0.0.1")) as caught:
            sink.write(records("run-a", 2))
        waited = time.perf_counter() - start  # fails fast, not after the client's minute-long default timeouts
        assert waited < 10.0, f"a write to a stopped server took {waited:.1f} s to fail"
        assert caught.value.sink == "chroma"
        with pytest.raises(SinkUnavailableError):
            sink.read("run-a")
        with pytest.raises(SinkUnavailableError):
            sink.search("anything")


@dataclass
class ChromaServer:
    """`chroma run` over `folder` on `port`; stop() and start() again keep the data."""

    program: str
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [self.program, "run", "--path", str(self.folder / "data"), "--host", "127.0.0.1"]
        with (self.folder / "chroma.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """`chroma run` on a free port with a temp folder, stopped afterwards."""
    program = require_program("chroma", "pip install 'chromadb>=1.5,<1.6' (provides `chroma run`)")
    server = ChromaServer(program, tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_healthy(sink: ChromaSink, seconds: float = 30) -> SinkHealth:
    deadline = time.monotonic() + seconds
    while not (health := sink.health()).ok:
        if time.monotonic() > deadline:
            pytest.fail(f"chroma run did not answer within {seconds} s: {health.detail}")
        time.sleep(0.2)
    return health


def test_real_server_round_trip_health_outage_and_return(chroma_server: ChromaServer, chroma_embed: Embed) -> None:
    with ChromaSink.from_url(chroma_server.url, namespace="served", embed=chroma_embed) as sink:
        health = wait_healthy(sink)
        assert health.latency_ms is not None and chroma_server.url in health.detail
        sink.setup()
        batch = topic_records("run-s") + records("run-s", 200, start=10)
        sink.write(batch[::-1])
        sink.write(batch)
        assert sink.count() == len(batch)
        assert sink.read("run-s") == batch
        # within a run the search is exact: HNSW alone had missed this step among the 200 near-duplicates
        found = sink.search("who won the soccer game", run_id="run-s", k=3)
        assert "football" in [r.payload.get("topic") for r in found], [r.payload for r in found]

        chroma_server.stop()
        assert not sink.health().ok
        start = time.perf_counter()
        with pytest.raises(SinkUnavailableError, match=f"--port {chroma_server.port}"):
            sink.write(records("run-s", 1, start=500))
        waited = time.perf_counter() - start  # fails fast, not after the client's minute-long default timeouts
        assert waited < 10.0, f"a write to a stopped server took {waited:.1f} s to fail"
        with pytest.raises(SinkUnavailableError):
            sink.read("run-s")

        chroma_server.start()  # the same sink reconnects once the server is back, and the data is still there
        wait_healthy(sink)
        sink.write(records("run-s", 1, start=500))
        assert len(sink.read("run-s")) == len(batch) + 1
