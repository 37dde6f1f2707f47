"""The hash-chained audit log: a realistic run verifies; every kind of tampering is caught at the right entry."""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from smolcrew.audit import GENESIS, AuditLog, canonical_json, entry_hash
from smolcrew.audit_report import export_bundle
from smolcrew.errors import AuditError
from smolcrew.memory.records import StepRecord

RUN = "run0001"


def write_run(log: AuditLog, run_id: str = RUN) -> list[StepRecord]:
    """A run as the crew logs it: step records, a tool call, verdicts, an approval and the final answer."""
    language = f"{run_id}:1"
    records = [
        StepRecord(run_id, 0, "user", "run_start", {"parent": None, "task": "Say good morning in French, checked"}),
        StepRecord(run_id, 1, "manager", "delegation", {"parent": None, "to": "language", "task": "Translate it"}),
        StepRecord(
            run_id,
            2,
            "language",
            "action",
            {
                "parent": language,
                "step_number": 1,
                "code": 'translate_text(text="good morning", target="fr")',
                "calls": ["translate_text"],
                "observations": "bonjour",
                "error": None,
                "duration_s": 0.4,
            },
        ),
        StepRecord(run_id, 3, "language", "final_answer", {"parent": language, "output": "bonjour"}),
        StepRecord(run_id, 4, "manager", "action", {"parent": None, "step_number": 1, "calls": ["language"]}),
        StepRecord(run_id, 5, "manager", "final_answer", {"parent": None, "output": "bonjour"}),
    ]
    for record in records[:3]:
        log.record(record)
    log.append(
        run_id,
        "tool_call",
        {
            "seq": 2,
            "agent": "language",
            "tool": "translate_text",
            "arguments": {"text": "good morning"},
            "output": "bonjour",
            "error": None,
            "duration_ms": 12.5,
        },
    )
    for record in records[3:]:
        log.record(record)
    log.append(run_id, "verdict", {"stage": "rules", "outcome": "pass", "confidence": 1.0, "reasons": []})
    log.append(run_id, "verdict", {"stage": "judge", "outcome": "escalate", "confidence": 0.55, "reasons": ["unsure"]})
    log.append(run_id, "approval", {"approval_id": "ap-7", "status": "requested"})
    log.append(run_id, "approval", {"approval_id": "ap-7", "status": "approved", "by": "alice", "note": "fine"})
    log.append(run_id, "final", {"state": "success", "answer": "bonjour", "error": None})
    return records


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    audit = AuditLog(tmp_path / "audit")
    write_run(audit)
    return audit


def lines(log: AuditLog, run_id: str = RUN) -> list[bytes]:
    return log.path(run_id).read_bytes().splitlines(keepends=True)


def rewrite(log: AuditLog, new_lines: list[bytes], run_id: str = RUN) -> None:
    log.path(run_id).write_bytes(b"".join(new_lines))


def test_a_realistic_run_verifies(log: AuditLog) -> None:
    entries = log.entries(RUN)
    assert [e.index for e in entries] == list(range(12))
    assert [e.kind for e in entries].count("step") == 6 and entries[-1].kind == "final"
    assert entries[0].prev == GENESIS and all(b.prev == a.hash for a, b in pairwise(entries))
    report = log.verify(RUN)
    assert report.ok and report.entries == 12 and report.head == entries[-1].hash == log.head(RUN)
    assert str(report) == f"ok: 12 entries, head {report.head}" and report.first_bad is None
    assert log.verify(RUN, expected_head=report.head).ok


def test_each_line_is_the_canonical_json_that_was_hashed(log: AuditLog) -> None:
    for raw, entry in zip(lines(log), log.entries(RUN), strict=True):
        data = json.loads(raw)
        assert raw == (canonical_json(data) + "\n").encode("ascii") and data == entry.to_dict()
        content = {key: value for key, value in data.items() if key != "hash"}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        assert hashlib.sha256(text.encode()).hexdigest() == data["hash"]


def test_changing_one_byte_anywhere_in_a_line_names_that_entry(log: AuditLog) -> None:
    original = lines(log)
    for offset in range(len(original[4])):
        changed = bytearray(original[4])
        changed[offset] ^= 0x01
        rewrite(log, [*original[:4], bytes(changed), *original[5:]])
        report = log.verify(RUN)
        assert not report.ok and report.first_bad == 4, (offset, report)
        assert report.problem is not None and report.problem.startswith("entry 4 (line 5): ")


def test_a_changed_value_is_reported_in_words(log: AuditLog) -> None:
    original = lines(log)
    rewrite(log, [*original[:3], original[3].replace(b"bonjour", b"bonsoir"), *original[4:]])
    report = log.verify(RUN)
    assert report.problem == "entry 3 (line 4): its hash does not match its content — the entry was changed"


def test_a_deleted_entry_is_named(log: AuditLog) -> None:
    original = lines(log)
    rewrite(log, original[:5] + original[6:])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 5
    assert report.problem == "entry 5 (line 6): line 6 holds entry 6, entry 5 is missing — deleted"


def test_an_inserted_entry_is_caught_even_with_a_valid_hash(log: AuditLog, tmp_path: Path) -> None:
    original = lines(log)
    forger = AuditLog(tmp_path / "forger", fsync=False)  # a forged entry 4 chained to the real entry 3
    forger.path(RUN).parent.mkdir()
    forger.path(RUN).write_bytes(b"".join(original[:4]))
    forger.append(RUN, "verdict", {"stage": "rules", "outcome": "pass", "confidence": 1.0, "reasons": []})
    rewrite(log, [*lines(forger), *original[4:]])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 4
    assert report.problem is not None and report.problem.startswith("entry 4 (line 5) was inserted: line 6 holds")
    rewrite(log, [*original[:2], original[7], *original[2:]])  # a plain copy of another line
    copied = log.verify(RUN)
    assert not copied.ok and copied.first_bad == 2 and "repeats entry 7 (also at line 9)" in str(copied.problem)


def test_swapped_entries_name_the_first_one(log: AuditLog) -> None:
    original = lines(log)
    rewrite(log, [*original[:3], original[4], original[3], *original[5:]])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 3
    assert "line 4 holds entry 4 and entry 3 is at line 5 — entries were reordered" in str(report.problem)


def test_truncation_at_the_end_needs_the_recorded_head(log: AuditLog) -> None:
    head = log.head(RUN)
    rewrite(log, lines(log)[:-1])
    assert log.verify(RUN).ok  # the chain alone cannot tell: that is why the crew records the head
    report = log.verify(RUN, expected_head=head)
    assert not report.ok and report.first_bad == 11 and report.entries == 11
    assert "ends at entry 10" in str(report.problem) and "truncated" in str(report.problem)


def test_a_line_cut_in_the_middle_fails_and_blocks_appends(log: AuditLog, tmp_path: Path) -> None:
    original = lines(log)
    rewrite(log, [*original[:-1], original[-1][:40]])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 11 and "no line end" in str(report.problem)
    with pytest.raises(AuditError, match="the chain cannot continue") as caught:
        AuditLog(tmp_path / "audit").append(RUN, "final", {"answer": "again"})
    assert caught.value.run_id == RUN and lines(log)[-1] == original[-1][:40]


def test_entries_added_after_the_recorded_head_fail(log: AuditLog) -> None:
    head = log.head(RUN)
    log.append(RUN, "final", {"state": "success", "answer": "changed my mind"})
    report = log.verify(RUN, expected_head=head)
    assert (
        not report.ok and report.first_bad == 12 and "added after the recorded head (entry 11)" in str(report.problem)
    )


def test_a_restart_continues_the_chain(log: AuditLog, tmp_path: Path) -> None:
    head = log.head(RUN)
    restarted = AuditLog(tmp_path / "audit")
    assert restarted.head(RUN) == head
    entry = restarted.append(RUN, "verdict", {"stage": "late", "outcome": "pass", "confidence": 1.0})
    assert entry.index == 12 and entry.prev == head
    stale = log.append(RUN, "final", {"state": "success"})  # the first instance's cached head is now stale
    assert stale.index == 13 and stale.prev == entry.hash
    report = restarted.verify(RUN, expected_head=restarted.head(RUN))
    assert report.ok and report.entries == 14


@pytest.mark.parametrize("instances", [1, 2])
def test_concurrent_appends_from_four_threads_leave_no_gaps(tmp_path: Path, instances: int) -> None:
    logs = [AuditLog(tmp_path / "audit") for _ in range(instances)]
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        start.wait()
        for number in range(40):
            logs[worker % instances].append("busy", "tool_call", {"worker": worker, "n": number})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = logs[0].verify("busy", expected_head=logs[-1].head("busy"))
    assert report.ok and report.entries == 160
    entries = logs[0].entries("busy")
    assert [e.index for e in entries] == list(range(160))
    for worker in range(4):
        assert [e.body["n"] for e in entries if e.body["worker"] == worker] == list(range(40))


class Colour(str, enum.Enum):  # noqa: UP042 - str() of this mixin is "Colour.RED", not its value
    RED = "red"


def test_odd_values_are_stored_and_verify(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    cycle: list[object] = [1]
    cycle.append(cycle)
    body = {
        "bytes": b"\xff\xfe not utf-8",
        "surrogate": "lone \udcff surrogate",
        "unicode": "ünïcødé 😀",
        "floats": [float("nan"), float("inf"), -0.0, 1e308],
        "huge": "x" * 5_000_000,
        "big": 10**1000,
        "set": {3},
        "path": Path("/tmp/x"),
        "enum": Colour.RED,
        "keys": {1: "one", None: "none"},
        "tuple": (1, (2, 3)),
        "cycle": cycle,
        "object": object(),
    }
    entry = log.append("odd", "tool_call", body)
    assert log.entries("odd") == [entry] and log.verify("odd", expected_head=entry.hash).ok
    stored = entry.body
    assert stored["bytes"] == str(b"\xff\xfe not utf-8") and stored["surrogate"] == "lone \udcff surrogate"
    assert stored["floats"] == ["nan", "inf", -0.0, 1e308] and len(stored["huge"]) == 5_000_000
    assert stored["big"] == hex(10**1000) and stored["set"] == "{3}" and stored["path"] == "/tmp/x"
    assert stored["enum"] == "red" and stored["keys"] == {"1": "one", "None": "none"}
    assert stored["tuple"] == [1, [2, 3]] and stored["cycle"] == [1, "[1, [...]]"]
    assert log.path("odd").read_bytes().isascii()


def test_missing_logs_and_bad_input(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    report = log.verify("nope")
    assert not report.ok and report.entries == 0 and "there is no audit log for run 'nope'" in str(report.problem)
    assert not log.verify("../escape").ok and log.entries("nope") == [] and log.head("nope") is None
    with pytest.raises(AuditError, match="not a safe file name"):
        log.append("../escape", "step", {})
    with pytest.raises(AuditError, match="needs a kind"):
        log.append("r", "", {})
    with pytest.raises(AuditError, match="must be a mapping"):
        log.append("r", "step", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert log.runs() == []
    log.append("b", "step", {})
    log.append("a", "custom kind, any string", {})
    assert sorted(log.runs()) == ["a", "b"]


def test_export_bundle_writes_json_and_report(log: AuditLog, tmp_path: Path) -> None:
    folder = export_bundle(log, RUN, tmp_path / "bundle", expected_head=log.head(RUN))
    data = json.loads((folder / "audit.json").read_text())
    assert data["run_id"] == RUN and data["verification"]["ok"] and len(data["entries"]) == 12
    assert [r["seq"] for r in data["records"]] == list(range(6))  # taken from the step entries
    report = (folder / "report.md").read_text()
    assert "**OK**: 12 entries" in report and "Say good morning in French, checked" in report
    assert "manager → language: Translate it" in report and "language step 1: translate_text" in report
    assert (
        "### 1. translate\\_text by language (entry 3, " in report and "**judge**: escalate, confidence 0.55" in report
    )
    assert "**ap-7**: requested (entry 9)" in report and "**ap-7**: approved by alice (entry 10): fine" in report
    assert "- state: success" in report
    assert "<h2>Verdicts (2)</h2>" in (folder / "report.html").read_text()


def test_report_keeps_hostile_content_inert(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    hostile = "```\n<script>alert(1)</script>\n# heading"
    log.append(RUN, "tool_call", {"tool": "<b>x</b>", "arguments": {"q": hostile}, "output": hostile})
    log.append(RUN, "final", {"state": "success", "answer": hostile})
    rewrite(log, [*lines(log)[:1], lines(log)[1].replace(b"success", b"SUCCESS")])
    folder = export_bundle(log, RUN, tmp_path / "bundle")
    report = (folder / "report.md").read_text()
    assert "**FAILED**: entry 1 (line 2): its hash does not match its content" in report
    assert "````\n```\n<script>" in report  # a longer fence: the answer cannot close it
    html = (folder / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


def test_an_entry_changed_and_rehashed_breaks_the_link_to_the_next(log: AuditLog) -> None:
    original = lines(log)
    data = json.loads(original[4])
    data["body"]["output"] = "au revoir"
    content = {key: value for key, value in data.items() if key != "hash"}
    data["hash"] = entry_hash(**content)
    rewrite(log, [*original[:4], (canonical_json(data) + "\n").encode(), *original[5:]])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 5
    assert str(report.problem).startswith("entry 5 (line 6): it does not follow entry 4")


def test_a_deeply_nested_line_is_reported_not_raised(log: AuditLog) -> None:
    original = lines(log)
    rewrite(log, [*original[:1], b"[" * 100_000 + b"\n", *original[1:]])
    report = log.verify(RUN)
    assert not report.ok and report.first_bad == 1 and "RecursionError" in str(report.problem)


def test_an_unreadable_log_is_reported_not_raised(log: AuditLog) -> None:
    log.path(RUN).unlink()
    log.path(RUN).mkdir()  # a folder where the file should be: reading it fails
    report = log.verify(RUN)
    assert not report.ok and "cannot read" in str(report.problem)


def test_a_reformatted_line_with_the_same_content_is_caught(log: AuditLog) -> None:
    original = lines(log)
    rewrite(log, [*original[:2], (json.dumps(json.loads(original[2])) + "\n").encode(), *original[3:]])
    report = log.verify(RUN)
    assert report.problem == "entry 2 (line 3): the line is not in canonical form — the entry was edited"


def test_a_failed_write_leaves_no_half_entry(log: AuditLog) -> None:
    resource = pytest.importorskip("resource")
    import signal

    size = log.path(RUN).stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))  # the kernel cuts the write at 100 bytes
    try:
        with pytest.raises(AuditError, match="cannot be written") as caught:
            log.append(RUN, "tool_call", {"output": "x" * 10_000})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert caught.value.run_id == RUN and log.path(RUN).stat().st_size == size
    assert log.append(RUN, "final", {"state": "success"}).index == 12 and log.verify(RUN).ok
