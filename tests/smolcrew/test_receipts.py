"""Receipts: the home's ed25519 key signs each sealed run's audit head, so a log and journal rewritten together
(and re-chained) no longer verify for someone who holds only the public key, or the head, kept elsewhere."""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from typer.testing import CliRunner

from smolcrew.audit import GENESIS, AuditLog, canonical_json, entry_hash
from smolcrew.cli.app import app
from smolcrew.crew import Crew
from smolcrew.errors import AuditError
from smolcrew.memory.sinks.journal import JournalSink
from smolcrew.receipts import Receipts, check, key_id, load_public_key, message
from tests.conftest import code

runner = CliRunner()
HEAD = "ab" * 32
POSIX = os.name == "posix"


def test_the_key_is_made_on_first_use_readable_by_its_owner_only(tmp_path: Path) -> None:
    keys = Receipts(tmp_path / "home" / "keys")
    assert not keys.exists()
    signature = keys.sign("run1", HEAD)
    assert keys.private_path.is_file() and keys.public_path.is_file()
    if POSIX:
        assert stat.S_IMODE(keys.private_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(keys.folder.stat().st_mode) == 0o700
    assert keys.private_path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.public_path.read_text() == keys.public_pem() and keys.public_pem().startswith("-----BEGIN PUBLIC KEY")
    again = Receipts(keys.folder)  # another process: the same key, read back
    assert key_id(again.public_key()) == key_id(keys.public_key()) and again.sign("run1", HEAD) == signature
    assert not list(keys.folder.glob(".*.tmp"))


def test_the_signed_message_is_plain_ed25519_over_a_versioned_text(tmp_path: Path) -> None:
    """Any ed25519 tool can check a receipt: the message is the documented text, the key a standard PEM."""
    keys = Receipts(tmp_path / "keys")
    stamp = keys.stamp("run1", HEAD)
    assert message("run1", HEAD) == f"smolcrew-audit-v1\nrun1\n{HEAD}".encode()
    public = load_pem_public_key(keys.public_path.read_bytes())
    public.verify(base64.b64decode(stamp["audit_signature"]), message("run1", HEAD))  # type: ignore[union-attr]
    assert stamp["audit_key_id"] == key_id(keys.public_key()) and len(stamp["audit_key_id"]) == 16
    assert keys.stamp("run1", None) == {}


def test_check_says_what_is_wrong(tmp_path: Path) -> None:
    keys, other = Receipts(tmp_path / "keys"), Receipts(tmp_path / "other")
    end = {"audit_head": HEAD, **keys.stamp("run1", HEAD)}
    assert check(keys.public_key(), "run1", end) is None
    assert "does not match the recorded head" in str(check(keys.public_key(), "run1", {**end, "audit_head": "cd" * 32}))
    assert "does not match" in str(check(keys.public_key(), "run2", end))  # one run's receipt is not another's
    assert "signed with key" in str(check(other.public_key(), "run1", end))
    assert "no audit signature" in str(check(keys.public_key(), "run1", {"audit_head": HEAD}))
    assert "does not match" in str(check(keys.public_key(), "run1", {**end, "audit_signature": "not base64!"}))
    assert "no run_end record" in str(check(keys.public_key(), "run1", None))


def test_two_makers_at_once_agree_on_one_key(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(key_id(Receipts(folder).public_key()))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4 and len(set(ids)) == 1 and ids[0] == key_id(Receipts(folder).public_key())


def test_a_broken_key_file_is_an_audit_error_that_says_what_to_do(tmp_path: Path) -> None:
    keys = Receipts(tmp_path / "keys")
    keys.folder.mkdir()
    keys.private_path.write_text("not a key")
    with pytest.raises(AuditError, match="move it aside"):
        keys.sign("run1", HEAD)
    (tmp_path / "rsa.pub").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AuditError, match="not a PEM public key"):
        load_public_key(tmp_path / "rsa.pub")
    with pytest.raises(AuditError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")


def forge(home: Path, run_id: str, answer: str) -> tuple[str, str]:
    """Rewrite the run's answer in its audit log and its journal together, re-chaining every hash so both are
    self-consistent (what the unkeyed chain cannot catch); return (old head, new head)."""
    log = AuditLog(home / "audit", fsync=False)
    entries, prev, lines = log.entries(run_id), GENESIS, []
    for entry in entries:
        body = {**entry.body, "answer": answer} if entry.kind == "final" else entry.body
        digest = entry_hash(entry.index, run_id, entry.kind, entry.ts, body, prev)
        lines.append(canonical_json(dataclasses.replace(entry, body=body, prev=prev, hash=digest).to_dict()) + "\n")
        prev = digest
    log.path(run_id).write_text("".join(lines), encoding="ascii")
    journal = JournalSink(home / "journal", fsync=False)
    records = journal.read(run_id)
    forged = {"answer": answer, "audit_head": prev}
    records = [dataclasses.replace(r, payload={**r.payload, **forged}) if r.kind == "run_end" else r for r in records]
    journal.path(run_id).unlink()
    journal.write(records)
    assert log.verify(run_id, expected_head=prev).ok  # the chain alone calls the forgery sound
    return entries[-1].hash, prev


def verify(home: Path, run_id: str, *options: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", run_id, *options], env={"SMOLCREW_HOME": str(home)})
    return result.exit_code, result.output


@pytest.fixture
def sealed(scripted_crew: Callable[..., Crew], tmp_path: Path) -> tuple[Path, str, str, Path]:
    """A run the crew sealed: (its home, its run id, its head, its public key exported with `audit key`)."""
    crew = scripted_crew([code('final_answer("42")')], routing={"mode": "manager"})
    result = crew.run("What is six times seven?")
    assert result.ok and result.answer == "42" and result.audit_head
    home = crew.settings.home
    crew.close()
    exported = runner.invoke(app, ["audit", "key"], env={"SMOLCREW_HOME": str(home)})
    assert exported.exit_code == 0 and exported.stdout == (home / "keys" / "audit-ed25519.pub").read_text()
    kept = tmp_path / "elsewhere" / "audit.pub"
    kept.parent.mkdir()
    kept.write_text(exported.stdout)
    return home, result.run_id, result.audit_head, kept


def test_a_sealed_run_carries_its_signed_head(sealed: tuple[Path, str, str, Path]) -> None:
    home, run_id, head, kept = sealed
    end = next(r for r in JournalSink(home / "journal").read(run_id) if r.kind == "run_end")
    assert end.payload["audit_head"] == head and end.payload["audit_key_id"] == key_id(load_public_key(kept))
    assert check(load_public_key(kept), run_id, end.payload) is None


def test_a_third_party_verifies_with_only_the_exported_public_key(sealed: tuple[Path, str, str, Path]) -> None:
    home, run_id, head, kept = sealed
    shutil.rmtree(home / "keys")  # the third party has no private key, nor the home's key folder
    status, output = verify(home, run_id, "--public-key", str(kept), "--expected-head", head)
    assert status == 0, output
    assert f"head {head}" in output and f"valid signature of key {key_id(load_public_key(kept))}" in output
    status, output = verify(home, run_id)  # without --public-key the home's key is needed
    assert status == 2 and "has no audit key" in output and "--public-key" in output


def test_a_log_and_journal_rewritten_together_fail(sealed: tuple[Path, str, str, Path]) -> None:
    home, run_id, head, kept = sealed
    old, new = forge(home, run_id, "41")
    assert old == head != new
    status, output = verify(home, run_id, "--public-key", str(kept))
    assert status == 1 and f"FAILED: the audit signature does not match the recorded head {new}" in output
    assert "rewritten after the run was sealed" in output
    status, output = verify(home, run_id)  # the home's own key says the same
    assert status == 1 and "does not match the recorded head" in output
    status, output = verify(home, run_id, "--expected-head", head)
    assert status == 1 and f"the run recorded head {head}" in output and "rewritten" in output


def test_another_key_or_no_signature_fails(sealed: tuple[Path, str, str, Path], tmp_path: Path) -> None:
    home, run_id, _, kept = sealed
    stranger = Receipts(tmp_path / "stranger")
    stranger.public_key()
    status, output = verify(home, run_id, "--public-key", str(stranger.public_path))
    assert status == 1 and f"signed with key {key_id(load_public_key(kept))}" in output

    journal = JournalSink(home / "journal", fsync=False)
    records = journal.read(run_id)
    unsigned = [
        dataclasses.replace(r, payload={k: v for k, v in r.payload.items() if k != "audit_signature"})
        if r.kind == "run_end"
        else r
        for r in records
    ]
    journal.path(run_id).unlink()
    journal.write(unsigned)
    for options in ((), ("--public-key", str(kept))):
        status, output = verify(home, run_id, *options)
        assert status == 1 and "FAILED: the run_end record carries no audit signature" in output
