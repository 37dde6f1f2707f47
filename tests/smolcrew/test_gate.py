"""Every answer passes the validation cascade: corrected on retry, rejected, or sent to a person who decides
from the CLI while the process that asked is gone; the audit log records it all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")

from typer.testing import CliRunner

from smolcrew.backends import ScriptedModel
from smolcrew.cli.app import app
from smolcrew.config import load_settings
from smolcrew.crew import Crew
from smolcrew.validators.human import ApprovalQueue
from tests.conftest import code

pytestmark = pytest.mark.usefixtures("minilm_available")

SIMILARITY = code(
    'r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")\nfinal_answer(r["similarity"])'
)
REQUEST = "How similar in meaning are 'the cat sleeps' and 'a kitten naps'?"


def test_a_rejected_answer_is_corrected_by_the_agent(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [code('final_answer("the secret code is 1234")'), code('final_answer("I cannot share that.")')],
        validation={"banned": [r"secret code"]},
    )
    result = crew.run("What is 17*23+5?")
    assert result.ok and result.answer == "I cannot share that."
    assert [(v["stage"], v["outcome"]) for v in result.verdicts] == [("rules", "pass"), ("claims", "pass")]
    rejected = [r for r in result.steps if r.kind == "action" and r.payload.get("error")]
    assert len(rejected) == 1 and "secret code" in rejected[0].payload["error"]


def test_an_answer_still_wrong_after_the_retries_fails_the_run(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [code('final_answer("secret code A")'), code('final_answer("secret code B")')],
        validation={"banned": [r"secret code"], "max_retries": 1},
    )
    result = crew.run("What is 17*23+5?")
    assert result.state == "rejected" and result.answer is None
    assert "secret code" in (result.error or "") and result.verdicts[0]["outcome"] == "fail"
    entries = crew.audit.entries(result.run_id)
    assert [e.body["outcome"] for e in entries if e.kind == "verdict"] == ["fail"]
    assert entries[-1].kind == "final" and entries[-1].body["state"] == "rejected"


def test_running_out_of_steps_is_a_failed_validation(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("x = 1")] * 3, routing={"mode": "manager"}, agents={"max_steps": 2})
    result = crew.run("Keep thinking.")
    assert result.state == "max_steps_error" and result.answer is None
    assert result.verdicts == ({"stage": "steps", "outcome": "fail", "confidence": 0.0, "reasons": [result.error]},)


def test_an_escalated_answer_survives_a_restart_and_is_approved_from_the_cli(
    scripted_crew: Callable[..., Crew], queue: ApprovalQueue
) -> None:
    crew = scripted_crew([SIMILARITY], validation={"approval_tools": ["compare_sentences"]})
    result = crew.run(REQUEST)
    assert result.state == "pending_approval" and result.answer is None and result.approval_id
    assert "compare_sentences" in " ".join(queue.get(result.approval_id).reasons)
    home = crew.settings.home
    crew.close()  # the process that asked is gone; the approval waits in Redis

    env = {"SMOLCREW_HOME": str(home)}
    approved = CliRunner().invoke(app, ["approvals", "approve", result.approval_id, "--by", "ana"], env=env)
    assert approved.exit_code == 0, approved.output
    assert f"smolcrew runs resume {result.run_id}" in approved.output

    resumed = CliRunner().invoke(app, ["runs", "resume", result.run_id, "--json"], env=env)
    assert resumed.exit_code == 0, resumed.output
    with Crew(load_settings(home=str(home)), model=ScriptedModel([])) as again:
        final = again.resume(result.run_id)  # already settled: returned as it ended
        assert final.ok and isinstance(final.answer, float) and final.approval_id == result.approval_id
        approvals = [e.body for e in again.audit.entries(result.run_id) if e.kind == "approval"]
        assert [a["status"] for a in approvals] == ["requested", "approved"] and approvals[-1]["by"] == "ana"
        assert again.audit.verify(result.run_id, expected_head=final.audit_head).ok
    verified = CliRunner().invoke(app, ["audit", "verify", result.run_id], env=env)
    assert verified.exit_code == 0, verified.output


def test_a_person_rejecting_the_answer_ends_the_run_with_their_reason(
    scripted_crew: Callable[..., Crew], queue: ApprovalQueue
) -> None:
    crew = scripted_crew([SIMILARITY], validation={"approval_tools": ["compare_sentences"]})
    result = crew.run(REQUEST)
    queue.decide(str(result.approval_id), approve=False, by="bo", note="the score looks off")
    final = crew.resume(result.run_id)
    assert final.state == "rejected" and final.answer is None
    assert final.error == "rejected by bo: the score looks off"


def test_a_run_waits_for_a_person_when_configured_to(scripted_crew: Callable[..., Crew], queue: ApprovalQueue) -> None:
    crew = scripted_crew([SIMILARITY], validation={"approval_tools": ["compare_sentences"], "approval_timeout_s": 10})

    def approve_soon() -> None:
        for _ in range(100):
            pending = queue.list("pending")
            if pending:
                queue.decide(pending[0].id, approve=True, by="cy")
                return
            time.sleep(0.05)

    helper = threading.Thread(target=approve_soon)
    helper.start()
    started = time.perf_counter()
    result = crew.run(REQUEST)
    helper.join()
    assert result.ok and isinstance(result.answer, float) and time.perf_counter() - started < 8
