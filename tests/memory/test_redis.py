"""RedisSink against a real Redis: one fresh namespace per test, every key dropped afterwards."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

from smolcrew.errors import SinkError, SinkUnavailableError
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import Capability
from smolcrew.memory.sinks.redis import RedisSink
from tests.memory.backends import redis as backend
from tests.memory.backends.redis import REDIS_URL, closed_port_url, fresh_namespace, redis

MakeSink = Callable[..., AbstractContextManager[RedisSink]]
make_redis_sink = backend.make_redis_sink
redis_client = backend.redis_client


@pytest.fixture
def sink(make_redis_sink: MakeSink) -> Iterator[RedisSink]:
    with make_redis_sink(fresh_namespace()) as made:
        yield made


def records(run_id: str, count: int, *, start: int = 0, agent: str = "researcher") -> list[StepRecord]:
    return [
        StepRecord(
            run_id=run_id,
            seq=seq,
            agent=agent,
            kind="action",
            payload={"code": f"print({seq})", "observations": f"step {seq} of {run_id}", "calls": ["web_search"]},
            ts=1_700_000_000.0 + seq,
        )
        for seq in range(start, start + count)
    ]


def test_write_then_read_returns_identical_records_in_seq_order(sink: RedisSink) -> None:
    batch = records("run-a", 20)
    shuffled = random.Random(7).sample(batch, len(batch))
    sink.write(shuffled)
    assert sink.read("run-a") == batch
    assert sink.read("no-such-run") == []
    assert sink.capabilities == frozenset({Capability.STREAM})


def test_writing_the_same_batch_twice_stores_it_once_and_publishes_once(sink: RedisSink) -> None:
    batch = records("run-a", 10)
    assert sink.write_counted(batch) == 10
    last = sink.events(count=1000)[-1].id
    assert sink.write_counted(batch) == 0
    assert sink.read("run-a") == batch
    assert sink.events(last) == []
    assert sink.events(count=1000)[-1].id == last


def test_a_replay_replaces_the_stored_record(sink: RedisSink) -> None:
    first = records("run-a", 3)
    sink.write(first)
    changed = StepRecord("run-a", 1, "researcher", "action", {"observations": "corrected"}, ts=5.0)
    assert sink.write_counted([changed]) == 0
    assert sink.read("run-a") == [first[0], changed, first[2]]


def test_concurrent_replays_publish_each_record_once(sink: RedisSink) -> None:
    batch = records("run-a", 50)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(sink.write_counted(batch))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 50
    assert len(sink.events(count=1000)) == 50


def test_one_batch_may_hold_several_runs(sink: RedisSink) -> None:
    batch = records("run-a", 3) + records("run-b", 2, agent="coder")
    sink.write(batch)
    assert sink.read("run-a") == batch[:3]
    assert sink.read("run-b") == batch[3:]
    assert [(event.run_id, event.seq) for event in sink.events()] == [(r.run_id, r.seq) for r in batch]


def test_search_finds_text_case_insensitively_and_filters_by_run(sink: RedisSink) -> None:
    sink.write(records("run-a", 3))
    sink.write([StepRecord("run-b", 0, "writer", "final_answer", {"output": "The Eiffel Tower is in Paris"}, ts=2e9)])
    sink.write([StepRecord("run-c", 0, "writer", "final_answer", {"output": "the EIFFEL tower, again"}, ts=1e9)])
    found = sink.search("eiffel TOWER")
    assert [r.run_id for r in found] == ["run-b", "run-c"]  # newest run first
    assert [r.run_id for r in sink.search("eiffel tower", run_id="run-c")] == ["run-c"]
    assert sink.search("eiffel", run_id="run-a") == []
    assert len(sink.search("step", k=2)) == 2
    assert sink.search("   ") == []
    assert sink.search("step", k=0) == []


def test_search_matches_quotes_newlines_and_accents(sink: RedisSink) -> None:
    sink.write([StepRecord("run-a", 0, "a", "action", {"observations": 'He said "Grüße"\nthen LEFT'})])
    for query in ('"grüße"', "GRÜSSE".lower().replace("ss", "ße")[:-1], 'said "Grüße"\nthen left'):
        assert [r.seq for r in sink.search(query)] == [0], query
    assert sink.search("Grüsse") == []  # a substring match, not Unicode folding


def test_search_forgets_expired_runs(sink: RedisSink, redis_client: redis.Redis) -> None:
    sink.write(records("run-a", 2))
    redis_client.delete(sink.steps_key("run-a"))
    assert sink.search("step") == []
    assert redis_client.zcard(sink.runs_key) == 0


def test_health_is_ok_on_a_live_store(sink: RedisSink) -> None:
    health = sink.health()
    assert health.ok and health.latency_ms is not None and health.latency_ms < 1000


def test_health_is_not_ok_for_an_unreachable_url_and_does_not_raise() -> None:
    with RedisSink.from_url(closed_port_url(), namespace=fresh_namespace()) as down:
        health = down.health()
    assert not health.ok and "redis-server" in health.detail and health.latency_ms is None


def test_an_unreachable_store_raises_sink_unavailable_fast() -> None:
    with RedisSink.from_url(closed_port_url(), namespace=fresh_namespace(), timeout_s=0.5) as down:
        for action in (lambda: down.write(records("r", 1)), lambda: down.read("r"), lambda: down.search("x")):
            started = time.perf_counter()
            with pytest.raises(SinkUnavailableError) as caught:
                action()
            assert time.perf_counter() - started < 2
            assert "redis-server" in str(caught.value) and "SMOLCREW_SERVICES__REDIS_URL" in str(caught.value)
            assert caught.value.sink == "redis"


def test_a_thousand_records_in_batches_of_a_hundred_read_back_complete(
    sink: RedisSink, record_property: Callable[[str, object], None]
) -> None:
    batch = records("run-big", 1000)
    started = time.perf_counter()
    for offset in range(0, 1000, 100):
        sink.write(batch[offset : offset + 100])
    elapsed = time.perf_counter() - started
    record_property("records_per_s", round(1000 / elapsed))
    assert sink.read("run-big") == batch
    assert len(sink.events(count=2000)) == 1000
    for offset in range(0, 1000, 100):  # a full replay publishes nothing
        assert sink.write_counted(batch[offset : offset + 100]) == 0
    assert len(sink.events(count=2000)) == 1000


def test_unusual_payloads_round_trip(sink: RedisSink) -> None:
    huge = "x" * 1_000_000
    odd = [
        StepRecord("run-ü:*?[]\ud800", 0, "agent\udcff", "action", {"observations": "lone \ud800 surrogate"}),
        StepRecord("run-ü:*?[]\ud800", 1, "a", "action", {"observations": huge, "error": None}),
        StepRecord("run-ü:*?[]\ud800", 2, "a", "action", {"nested": {"list": [1, 2.5, None, True, {"x": []}]}}),
        StepRecord("run-ü:*?[]\ud800", 3, "a", "action", {"text": 'NUL \x00, emoji 🦀, RTL \u202e, "quotes" \\'}),
        StepRecord("run-ü:*?[]\ud800", 4, "a", "planning", {}),
    ]
    sink.write(odd)
    assert sink.read("run-ü:*?[]\ud800") == odd
    assert [r.seq for r in sink.search("🦀")] == [3]
    assert [r.seq for r in sink.search("LONE \ud800")] == [0]
    events = sink.events()
    assert len(events) == 5 and len(events[1].summary) < 300 and "more characters" in events[1].summary
    assert events[0].agent == "agent\\udcff"  # stream fields stay valid UTF-8


def test_run_keys_expire_and_the_stream_is_trimmed(make_redis_sink: MakeSink, redis_client: redis.Redis) -> None:
    with make_redis_sink(fresh_namespace(), ttl_s=60, stream_maxlen=10) as small:
        for offset in range(0, 600, 100):
            small.write(records("run-a", 100, start=offset))
        assert 0 < redis_client.ttl(small.steps_key("run-a")) <= 60
        assert 0 < redis_client.ttl(small.runs_key) <= 60
        assert redis_client.xlen(small.events_key) < 600  # MAXLEN ~ trims whole nodes
        assert len(small.read("run-a")) == 600


def test_events_follow_the_stream_and_block_past_the_socket_timeout(sink: RedisSink) -> None:
    sink.write(records("run-a", 2))
    first = sink.events()
    assert [(e.run_id, e.seq, e.agent, e.kind) for e in first] == [
        (r.run_id, r.seq, r.agent, r.kind) for r in records("run-a", 2)
    ]
    assert first[0].key == sink.steps_key("run-a") and first[0].ts == 1_700_000_000.0
    assert sink.events(first[-1].id) == []
    timer = threading.Timer(1.5, lambda: sink.write(records("run-a", 1, start=2)))
    timer.start()
    started = time.perf_counter()
    later = sink.events("$", block_ms=4000)  # longer than the 1 s socket timeout
    timer.join()
    assert [e.seq for e in later] == [2] and 1.2 < time.perf_counter() - started < 3.9
    started = time.perf_counter()
    assert sink.events(later[-1].id, block_ms=1500) == []
    assert time.perf_counter() - started >= 1.4


def test_drop_deletes_only_its_namespace(make_redis_sink: MakeSink, redis_client: redis.Redis) -> None:
    ns = fresh_namespace()
    with make_redis_sink(ns + "*") as starry, make_redis_sink(ns + "x") as other:
        starry.write(records("run-a", 3))
        other.write(records("run-a", 3))
        redis_client.hset(starry.state_key("run-a"), "note", '"kept until drop"')
        assert starry.drop() == 4  # steps, state, runs, events
        assert starry.read("run-a") == [] and redis_client.exists(starry.state_key("run-a")) == 0
        assert other.read("run-a") == records("run-a", 3)


def test_setup_is_idempotent_and_a_closed_sink_refuses_work(make_redis_sink: MakeSink) -> None:
    with make_redis_sink(fresh_namespace()) as made:
        made.setup()
        made.setup()
        twin = RedisSink(made._client, namespace=made.namespace)
        twin.close()
        with pytest.raises(SinkError, match="closed"):
            twin.write(records("run-a", 1))
        assert made.health().ok  # closing a sink leaves a client it does not own alone


def test_from_url_owns_and_closes_its_client() -> None:
    with RedisSink.from_url(REDIS_URL, namespace=fresh_namespace()) as made:
        assert made.health().ok
    with pytest.raises(SinkError, match="closed"):
        made.read("run-a")


def test_bad_settings_are_refused(redis_client: redis.Redis) -> None:
    for options in ({"namespace": ""}, {"namespace": "has space"}, {"ttl_s": 0}, {"stream_maxlen": 0}):
        with pytest.raises(ValueError):
            RedisSink(redis_client, **options)
