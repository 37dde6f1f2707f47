"""`smolcrew audit verify|export` on a run's audit log and journal, as the crew leaves them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smolcrew.audit import AuditLog
from smolcrew.cli.app import app
from smolcrew.memory.records import StepRecord
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.receipts import Receipts, key_id
from tests.smolcrew.test_audit import RUN, write_run

runner = CliRunner()


@pytest.fixture
def audit(isolated_env: Path) -> AuditLog:
    """A finished run: the audit log, and the journal whose `run_end` record holds the head, signed."""
    log = AuditLog(isolated_env / "audit", fsync=False)
    records = write_run(log)
    head = log.head(RUN)
    receipt = Receipts(isolated_env / "keys").stamp(RUN, head)
    end = StepRecord(RUN, len(records), "user", "run_end", {"audit_head": head, "state": "success", **receipt})
    JournalSink(isolated_env / "journal", fsync=False).write([*records, end])
    return log


def tamper(log: AuditLog, line: int) -> None:
    lines = log.path(RUN).read_bytes().splitlines(keepends=True)
    lines[line] = lines[line].replace(b'"kind":"', b'"kind":"x', 1)
    log.path(RUN).write_bytes(b"".join(lines))


def test_verify_ok(audit: AuditLog) -> None:
    result = runner.invoke(app, ["audit", "verify", RUN])
    assert result.exit_code == 0, result.output
    assert f"ok: 12 entries, head {audit.head(RUN)}" in result.output and "no head" not in result.output
    as_json = runner.invoke(app, ["audit", "verify", RUN, "--json"])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and report["ok"] and report["expected_head"] == audit.head(RUN)
    assert report["signed_by"] == key_id(Receipts(audit.folder.parent / "keys").public_key())


def test_verify_names_the_tampered_entry(audit: AuditLog) -> None:
    tamper(audit, 6)
    result = runner.invoke(app, ["audit", "verify", RUN])
    assert result.exit_code == 1
    assert "FAILED: entry 6 (line 7): its hash does not match its content — the entry was changed" in result.output


def test_verify_catches_truncation_with_the_journal_head(audit: AuditLog) -> None:
    lines = audit.path(RUN).read_bytes().splitlines(keepends=True)
    audit.path(RUN).write_bytes(b"".join(lines[:-2]))
    result = runner.invoke(app, ["audit", "verify", RUN])
    assert result.exit_code == 1 and "ends at entry 9" in result.output and "truncated" in result.output


def test_verify_without_a_recorded_head_says_so(isolated_env: Path) -> None:
    write_run(AuditLog(isolated_env / "audit", fsync=False))  # a run that never ended: no run_end in a journal
    result = runner.invoke(app, ["audit", "verify", RUN])
    assert result.exit_code == 0 and "ok: 12 entries" in result.output
    assert "the journal records no head for this run" in result.output


def test_key_prints_the_public_key_and_verify_takes_it_and_a_head_kept_elsewhere(
    audit: AuditLog, tmp_path: Path
) -> None:
    printed = runner.invoke(app, ["audit", "key"])
    assert printed.exit_code == 0 and printed.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "audit.pub").write_text(printed.stdout)
    head = str(audit.head(RUN))
    result = runner.invoke(app, ["audit", "verify", RUN, "--public-key", "audit.pub", "--expected-head", head])
    assert result.exit_code == 0 and "valid signature of key" in result.output, result.output
    other = "0" * 64
    result = runner.invoke(app, ["audit", "verify", RUN, "--expected-head", other])
    assert result.exit_code == 1 and f"the run recorded head {other}" in result.output


def test_verify_refuses_a_malformed_head_or_an_unreadable_key(audit: AuditLog) -> None:
    result = runner.invoke(app, ["audit", "verify", RUN, "--expected-head", "abc"])
    assert result.exit_code == 2 and "not a SHA-256 hex digest" in result.output
    result = runner.invoke(app, ["audit", "verify", RUN, "--public-key", "missing.pub"])
    assert result.exit_code == 2 and "cannot read the public key missing.pub" in result.output


def test_the_journal_disagreeing_with_the_head_kept_elsewhere_fails(audit: AuditLog, isolated_env: Path) -> None:
    """The log ends at the head kept elsewhere, but the journal's run_end names another head: it was changed."""
    journal = JournalSink(isolated_env / "journal", fsync=False)
    end = journal.read(RUN)[-1]
    journal.write([StepRecord(RUN, end.seq, "user", "run_end", {**end.payload, "audit_head": "1" * 64})])
    result = runner.invoke(app, ["audit", "verify", RUN, "--expected-head", str(audit.head(RUN))])
    assert result.exit_code == 1 and f"the journal records head {'1' * 64}" in result.output


def test_a_public_key_asks_for_a_receipt_even_without_a_run_end(isolated_env: Path, tmp_path: Path) -> None:
    write_run(AuditLog(isolated_env / "audit", fsync=False))  # never sealed: nothing was signed
    keys = Receipts(isolated_env / "keys")
    keys.public_key()
    result = runner.invoke(app, ["audit", "verify", RUN, "--public-key", str(keys.public_path)])
    assert result.exit_code == 1 and "no run_end record" in result.output


@pytest.mark.parametrize("run_id", ["nope", "../etc/passwd"])
def test_unknown_run_exits_2_and_says_how_to_list_runs(audit: AuditLog, run_id: str) -> None:
    for command in ("verify", "export"):
        result = runner.invoke(app, ["audit", command, run_id])
        assert result.exit_code == 2 and "no audit log for run" in result.output
        assert "smolcrew runs list" in result.output


def test_export_writes_the_bundle(audit: AuditLog, isolated_env: Path) -> None:
    result = runner.invoke(app, ["audit", "export", RUN])
    assert result.exit_code == 0, result.output
    folder = Path(f"audit-{RUN}")  # the test runs in its own folder (isolated_env)
    assert result.output.strip() == str(folder) and (folder / "report.html").is_file()
    data = json.loads((folder / "audit.json").read_text())
    assert data["verification"]["ok"] and data["verification"]["expected_head"] == audit.head(RUN)
    assert [r["kind"] for r in data["records"]][-1] == "run_end"  # the journal's records, run_end included
    report = (folder / "report.md").read_text()
    assert "## Delegation tree" in report and "manager → language: Translate it" in report
    assert "language answers: bonjour" in report
    assert "**rules**: pass, confidence 1.00" in report and "**judge**: escalate, confidence 0.55" in report


def test_export_of_a_tampered_log_writes_the_bundle_and_exits_1(audit: AuditLog, tmp_path: Path) -> None:
    tamper(audit, 3)
    result = runner.invoke(app, ["audit", "export", RUN, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "FAILED: entry 3 (line 4)" in result.output
    assert "**FAILED**: entry 3 (line 4)" in (tmp_path / "out" / "report.md").read_text()
