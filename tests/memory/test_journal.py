from __future__ import annotations

from pathlib import Path

import pytest

from smolcrew.errors import SinkUnavailableError
from smolcrew.memory.records import record_from_json, record_to_json
from smolcrew.memory.sinks.journal import JournalSink
from tests.memory.sink_contract import make_records


def test_each_run_is_one_jsonl_file_and_a_replay_reads_once(tmp_path: Path) -> None:
    journal = JournalSink(tmp_path / "journal")
    records = make_records("run-a", 3)
    journal.write(records)
    journal.write(records[1:])  # replayed: appended again, read once
    assert journal.path("run-a").read_text().count("\n") == 5
    assert [r.seq for r in journal.read("run-a")] == [0, 1, 2]
    assert journal.runs() == ["run-a"]


def test_a_corrupt_line_is_reported_and_skipped(tmp_path: Path) -> None:
    journal = JournalSink(tmp_path)
    journal.write(make_records("run-b", 2))
    with journal.path("run-b").open("a") as handle:
        handle.write('{"run_id": "run-b", "seq": 2, "agent": "torn wr\n')  # a torn write
        handle.write("\xff\xfe not json at all\n")
    journal.write(make_records("run-b", 1, start=3))
    assert [r.seq for r in journal.read("run-b")] == [0, 1, 3]
    assert [problem.line for problem in journal.problems] == [3, 4]


def test_records_round_trip_through_json_including_odd_text() -> None:
    [record] = make_records("run-c", 1)
    odd = type(record)("run-c", 1, "x", "action", {"observations": "bad \udcff", "bytes": b"\x00\x01"}, 1.0)
    back = record_from_json(record_to_json(odd))
    assert back.payload["observations"] == "bad \udcff" and back.payload["bytes"] == "b'\\x00\\x01'"
    assert record_from_json(record_to_json(record)) == record


def test_unwritable_folder_raises_sink_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    journal = JournalSink(blocker / "journal")
    with pytest.raises(SinkUnavailableError, match="cannot be written") as caught:
        journal.write(make_records("run-d", 1))
    assert caught.value.sink == "journal"
    assert not journal.health().ok


def test_run_ids_must_be_safe_file_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a safe file name"):
        JournalSink(tmp_path).path("../../etc/passwd")
