"""The mirror: journal first, sinks in the background, catch-up from the journal after an outage."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from smolcrew.memory.mirror import Mirror
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.memory.sinks.memory import InMemorySink
from tests.memory.sink_contract import make_records


def test_a_step_is_on_disk_when_the_call_returns(tmp_path: Path) -> None:
    journal, store = JournalSink(tmp_path / "j"), InMemorySink()
    mirror = Mirror(journal, [store], state_dir=tmp_path / "state")
    [record] = make_records("run-1", 1)
    mirror(record)
    assert journal.read("run-1") == [record]  # synchronously
    assert mirror.close()
    assert store.read("run-1") == [record]


def test_sinks_are_written_off_the_callers_thread_in_batches(tmp_path: Path) -> None:
    store = InMemorySink()
    seen: list[str] = []
    original = store.write

    def write(batch):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        original(batch)

    store.write = write  # type: ignore[method-assign]
    mirror = Mirror(JournalSink(tmp_path / "j"), [store], state_dir=tmp_path / "s", linger_s=0.05)
    for record in make_records("run-2", 200):
        mirror(record)
    assert mirror.close()
    assert len(store.read("run-2")) == 200
    assert set(seen) == {"mirror-memory"} and len(seen) < 200


def test_a_store_that_was_down_catches_up_without_duplicates(tmp_path: Path) -> None:
    journal, store = JournalSink(tmp_path / "j"), InMemorySink()
    mirror = Mirror(journal, [store], state_dir=tmp_path / "s", retry_s=0.02, max_retry_s=0.05)
    records = make_records("run-3", 300)
    for record in records[:100]:
        mirror(record)
    assert mirror.flush(5)
    store.available = False
    for record in records[100:200]:
        mirror(record)
    time.sleep(0.2)
    [lane] = mirror.status()
    assert lane.behind and lane.pending_runs == ["run-3"] and lane.failures >= 1
    store.available = True
    for record in records[200:]:
        mirror(record)
    assert mirror.close()
    assert [r.seq for r in store.read("run-3")] == list(range(300))


def test_runs_still_owed_survive_a_restart(tmp_path: Path) -> None:
    journal, store = JournalSink(tmp_path / "j"), InMemorySink()
    store.available = False
    first = Mirror(journal, [store], state_dir=tmp_path / "s", retry_s=0.02, max_retry_s=0.05)
    for record in make_records("run-4", 50):
        first(record)
    time.sleep(0.1)
    assert first.close(timeout_s=1)  # the store is down: close does not wait for it
    assert (tmp_path / "s" / "pending-memory.json").read_text() == '["run-4"]'
    store.available = True
    second = Mirror(journal, [store], state_dir=tmp_path / "s", retry_s=0.02)
    assert second.flush(5)
    assert len(store.read("run-4")) == 50
    assert second.status()[0].pending_runs == []
    second.close()


def test_sync_replays_every_journaled_run(tmp_path: Path) -> None:
    journal = JournalSink(tmp_path / "j")
    journal.write(make_records("run-5", 20) + make_records("run-6", 30))
    store = InMemorySink()
    mirror = Mirror(journal, [store], state_dir=tmp_path / "s")
    assert mirror.sync() == {"memory": 50}
    assert len(store.read("run-5")) == 20 and len(store.read("run-6")) == 30
    mirror.close()


def test_a_resumed_run_owes_the_stores_what_its_first_node_journaled_but_never_passed_on(tmp_path: Path) -> None:
    journal, store = JournalSink(tmp_path / "j"), InMemorySink()
    records = make_records("run-7", 8)
    journal.write(records[:2])  # the first node journaled two steps and died before its lanes wrote the second
    store.write(records[:1])
    mirror = Mirror(journal, [store], state_dir=tmp_path / "s")
    mirror.owe(["run-7"])  # what resume_run does before it goes on
    for record in records[2:]:
        mirror(record)
    assert mirror.close()
    assert [r.seq for r in store.read("run-7")] == list(range(8))  # once each
