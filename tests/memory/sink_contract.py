"""The contract every memory sink keeps. Plain functions taking a `sink`; `test_sink_contract.py` runs each
one against every backend, in a fresh namespace dropped afterwards."""

from __future__ import annotations

import time

from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.base import MemorySink


def make_records(run_id: str, count: int, *, start: int = 0) -> list[StepRecord]:
    agents = ("manager", "vision", "language")
    return [
        StepRecord(
            run_id=run_id,
            seq=seq,
            agent=agents[seq % 3],
            kind="action" if seq % 5 else "delegation",
            payload={
                "parent": None,
                "code": f"result = caption_image(image='photo_{seq}.jpg')",
                "calls": ["caption_image"],
                "observations": f"step {seq}: a red bicycle leaning on a wall",
                "to": "vision",
                "task": f"describe photo {seq}",
                "nested": {"list": [1, 2, {"deep": True}], "none": None},
            },
            ts=1_700_000_000.0 + seq,
        )
        for seq in range(start, start + count)
    ]


def write_then_read_returns_the_same_records_in_order(sink: MemorySink, run_id: str) -> None:
    """write, then read, gives back identical records ordered by seq."""
    records = make_records(run_id, 12)
    sink.write(list(reversed(records[:6])))
    sink.write(records[6:])
    got = sink.read(run_id)
    assert [r.seq for r in got] == list(range(12))
    assert [(r.agent, r.kind, r.payload["observations"], r.ts) for r in got] == [
        (r.agent, r.kind, r.payload["observations"], r.ts) for r in records
    ]
    assert got[3].payload["nested"] == {"list": [1, 2, {"deep": True}], "none": None}


def writing_twice_stores_once(sink: MemorySink, run_id: str) -> None:
    """write is idempotent on (run_id, seq): a replayed batch adds nothing."""
    records = make_records(run_id, 10)
    sink.write(records)
    sink.write(records)
    sink.write(records[3:7])
    assert [r.seq for r in sink.read(run_id)] == list(range(10))


def unknown_run_reads_empty(sink: MemorySink, run_id: str) -> None:
    """read of a run never written is an empty list, not an error."""
    assert sink.read(run_id + "-never") == []


def search_finds_by_content_and_filters_by_run(sink: MemorySink, run_id: str) -> None:
    """search finds a record by its content, and run_id limits it to one run."""
    records = make_records(run_id, 5)
    other = make_records(run_id + "-other", 5)
    special = StepRecord(run_id, 5, "audio", "action", {"observations": "transcribed the lighthouse keeper's log"}, 1.0)
    sink.write([*records, special, *other])
    found = sink.search("lighthouse keeper", run_id=run_id, k=3)
    assert found and found[0].seq == 5 and found[0].run_id == run_id
    assert all(r.run_id == run_id for r in sink.search("bicycle", run_id=run_id, k=10))


def odd_payloads_are_stored_safely(sink: MemorySink, run_id: str) -> None:
    """Non-UTF-8 text, a 1 MB observation and unusual characters never crash a write."""
    odd = [
        StepRecord(run_id, 0, "audio", "action", {"observations": "bad \udcff surrogate"}, 1.0),
        StepRecord(run_id, 1, "vision", "action", {"observations": "x" * 1_000_000}, 2.0),
        StepRecord(run_id, 2, "ménager 🤖", "final_answer", {"output": "'; DROP TABLE steps; --\x00"}, 3.0),
    ]
    sink.write(odd)
    assert [r.seq for r in sink.read(run_id)] == [0, 1, 2]


def a_thousand_records_in_batches_read_back_complete(sink: MemorySink, run_id: str) -> None:
    """1,000 records in batches of 100 read back complete and in order."""
    records = make_records(run_id, 1_000)
    started = time.perf_counter()
    for start in range(0, 1_000, 100):
        sink.write(records[start : start + 100])
    assert time.perf_counter() - started < 120
    assert [r.seq for r in sink.read(run_id)] == list(range(1_000))


def health_is_ok_on_a_live_store(sink: MemorySink, run_id: str) -> None:
    """health() answers ok for a live store, with a detail."""
    health = sink.health()
    assert health.ok and health.detail


CONTRACT = [
    write_then_read_returns_the_same_records_in_order,
    writing_twice_stores_once,
    unknown_run_reads_empty,
    search_finds_by_content_and_filters_by_run,
    odd_payloads_are_stored_safely,
    a_thousand_records_in_batches_read_back_complete,
    health_is_ok_on_a_live_store,
]
