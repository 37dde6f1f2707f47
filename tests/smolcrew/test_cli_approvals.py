"""`smolcrew approvals ...` against a real Redis, in a fresh namespace chosen through the settings' env vars."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

from typer.testing import CliRunner

from smolcrew.cli.app import app
from smolcrew.cli.approvals import _os_user
from smolcrew.validators.human import Approval, ApprovalQueue
from tests.memory.backends.redis import closed_port_url
from tests.validators.test_human import ask

runner = CliRunner()


@pytest.fixture
def pending(queue: ApprovalQueue) -> Approval:
    return ask(queue, "run-cli", evidence={"tool_outputs": ["revenue +12%", "costs flat"], "judge": 0.41})


def test_list_and_show(queue: ApprovalQueue, pending: Approval) -> None:
    listed = runner.invoke(app, ["approvals", "list"])
    assert listed.exit_code == 0, listed.output
    assert pending.id in listed.output and "run-cli" in listed.output and "judge confidence" in listed.output
    as_json = runner.invoke(app, ["approvals", "list", "--status", "all", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == [pending.to_dict()]
    assert json.loads(runner.invoke(app, ["approvals", "list", "--status", "approved", "--json"]).stdout) == []

    shown = runner.invoke(app, ["approvals", "show", pending.id])
    assert shown.exit_code == 0, shown.output
    for text in (pending.id, "Summarise the Q3 report", "Revenue grew 12%.", "tool send_email needs approval"):
        assert text in shown.output
    assert "tool_outputs (2 items)" in shown.output and "judge: 0.41" in shown.output
    shown_json = runner.invoke(app, ["approvals", "show", pending.id, "--json"])
    assert json.loads(shown_json.stdout) == pending.to_dict()


def test_approve_prints_the_resume_hint_and_a_second_decision_fails(queue: ApprovalQueue, pending: Approval) -> None:
    approved = runner.invoke(app, ["approvals", "approve", pending.id, "--note", "looks right"])
    assert approved.exit_code == 0, approved.output
    assert f"approved {pending.id} (run run-cli) by {_os_user()}: looks right" in approved.output
    assert "run run-cli can now be resumed: smolcrew runs resume run-cli" in approved.output
    stored = queue.get(pending.id)
    assert (stored.status, stored.decided_by, stored.note) == ("approved", _os_user(), "looks right")

    again = runner.invoke(app, ["approvals", "reject", pending.id, "--note", "no", "--by", "bob"])
    assert again.exit_code == 1 and "already approved" in again.output and pending.id in again.output
    assert queue.get(pending.id).status == "approved"


def test_reject_needs_a_note_and_records_it(queue: ApprovalQueue, pending: Approval) -> None:
    bare = runner.invoke(app, ["approvals", "reject", pending.id])
    assert bare.exit_code == 2 and "--note" in bare.output and queue.get(pending.id).pending
    blank = runner.invoke(app, ["approvals", "reject", pending.id, "--note", "  "])
    assert blank.exit_code == 2 and queue.get(pending.id).pending
    rejected = runner.invoke(app, ["approvals", "reject", pending.id, "--note", "wrong quarter", "--by", "ada"])
    assert rejected.exit_code == 0, rejected.output
    assert f"rejected {pending.id} (run run-cli) by ada: wrong quarter" in rejected.output
    assert "smolcrew runs resume run-cli" in rejected.output
    stored = queue.get(pending.id)
    assert (stored.status, stored.decided_by, stored.note) == ("rejected", "ada", "wrong quarter")
    listed = runner.invoke(app, ["approvals", "list", "--status", "rejected", "--json"])
    assert [row["id"] for row in json.loads(listed.stdout)] == [pending.id]


def test_unknown_id_exits_2(queue: ApprovalQueue) -> None:
    for command in (["show", "feedc0ffee00"], ["approve", "feedc0ffee00"], ["reject", "feedc0ffee00", "--note", "x"]):
        result = runner.invoke(app, ["approvals", *command])
        assert result.exit_code == 2 and "no approval 'feedc0ffee00'" in result.output, result.output


def test_redis_down_exits_2_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLCREW_SERVICES__REDIS_URL", closed_port_url())
    for command in (["list"], ["show", "abc"], ["approve", "abc"]):
        result = runner.invoke(app, ["approvals", *command])
        assert result.exit_code == 2, result.output
        assert "redis-server" in result.output and "SMOLCREW_SERVICES__REDIS_URL" in result.output
