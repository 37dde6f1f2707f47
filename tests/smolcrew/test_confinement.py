"""Model-written code against the crew, as a prompt injection would write it: reaching host objects through the
tools and agents it is handed, skipping an approval, switching off the trail, burning CPU. With the default
sandbox (agents/sandbox.py) every attempt fails as a step error that the run records, and the run's outcome is
the one the host decides."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smolcrew.agents.sandbox import OpaqueLocalExecutor, SandboxedExecutor, sandbox_problem
from smolcrew.crew import Crew
from smolcrew.validators.human import ApprovalQueue
from tests.conftest import code

pytestmark = [
    pytest.mark.usefixtures("minilm_available"),
    pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}"),
]

SIMILARITY = 'r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")'
REQUEST = "How similar in meaning are 'the cat sleeps' and 'a kitten naps'?"


def _errors(result: object) -> str:
    return " ".join(str((step.payload or {}).get("error") or "") for step in result.steps)  # type: ignore[attr-defined]


def test_agents_run_their_code_in_the_sandbox_by_default(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("final_answer(17*23+5)")])
    assert crew.run("What is 17*23+5?").answer == 396
    assert isinstance(crew.team.manager.python_executor, SandboxedExecutor)
    assert all(isinstance(a.python_executor, SandboxedExecutor) for a in crew.team.specialists.values())


@pytest.mark.parametrize(
    "attempt",
    [
        "compare_sentences.context.workspace.root",  # read any file through a tool's objects
        "compare_sentences.inputs.clear()",  # change what the dispatcher reads
        "compare_sentences.__self__",
    ],
)
def test_a_tool_is_only_a_name_that_calls_the_host(scripted_crew: Callable[..., Crew], attempt: str) -> None:
    crew = scripted_crew([code(f"{SIMILARITY}\n{attempt}\nfinal_answer(r['similarity'])"), code("final_answer(1)")])
    result = crew.run(REQUEST)
    assert "compare_sentences" in _errors(result)  # the attempt failed as a step error, in the run's records
    assert result.tools == ("compare_sentences",)


def test_changing_a_tool_in_the_code_changes_nothing_in_the_host(scripted_crew: Callable[..., Crew]) -> None:
    attempt = "compare_sentences.around_call = None\ncompare_sentences.inputs = {}"
    crew = scripted_crew([code(f"{attempt}\n{SIMILARITY}\nfinal_answer(r['similarity'])")])
    result = crew.run(REQUEST)
    tool = crew.team.specialists["language"].tools["compare_sentences"]
    assert tool.around_call is not None and set(tool.inputs) == {"text_a", "text_b"}
    calls = [e for e in crew.audit.entries(result.run_id) if "compare_sentences" in str(e.body)]
    assert calls  # the call is still on the trail


@pytest.mark.parametrize(
    "attempt",
    ["language.slot.current.tool_calls.clear()", "language.slot.current._listeners.clear()", "language.model"],
)
def test_the_manager_cannot_reach_a_specialist_s_run_state(scripted_crew: Callable[..., Crew], attempt: str) -> None:
    crew = scripted_crew([code(attempt), code("final_answer(2)")], routing={"mode": "manager"}, agents={"max_steps": 2})
    result = crew.run("What is 1+1?")
    assert "language" in _errors(result) and result.answer == 2
    kinds = [step.kind for step in result.steps]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and kinds.count("action") >= 2  # the trail is whole


def test_an_approval_cannot_be_skipped_by_clearing_the_calls(
    scripted_crew: Callable[..., Crew], queue: ApprovalQueue
) -> None:
    bypass = code(f"{SIMILARITY}\ncompare_sentences.slot.current.tool_calls.clear()\nfinal_answer(r['similarity'])")
    crew = scripted_crew([bypass, code(f"{SIMILARITY}\nfinal_answer(r['similarity'])")],
                         validation={"approval_tools": ["compare_sentences"]})  # fmt: skip
    result = crew.run(REQUEST)
    assert result.state == "pending_approval" and result.answer is None  # a person must still decide


def test_code_past_its_cpu_seconds_is_stopped_and_the_run_says_why(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("sum(range(3 * 10**9))")] * 2, sandbox={"cpu_s": 1}, agents={"specialist_max_steps": 1})
    result = crew.run("What is 17*23+5?")
    assert not result.ok and "CPU seconds" in _errors(result)
    assert any("CPU seconds" in str(e.body) for e in crew.audit.entries(result.run_id))


def test_without_bubblewrap_the_crew_refuses_unless_told_to_run_code_in_process(
    scripted_crew: Callable[..., Crew], monkeypatch: pytest.MonkeyPatch
) -> None:
    from smolcrew.errors import ConfigError

    monkeypatch.setattr("smolcrew.agents.sandbox.sandbox_problem", lambda: "bubblewrap is not installed")
    with pytest.raises(ConfigError, match=r"cannot be confined.*sandbox\.executor"):
        scripted_crew([code("final_answer(1)")]).run("What is 1+1?")
    local = scripted_crew([code("final_answer(1)")], sandbox={"executor": "local"})
    assert local.run("What is 1+1?").answer == 1


def test_a_trail_cut_short_fails_the_run_closed(scripted_crew: Callable[..., Crew]) -> None:
    """If the run's audit trail lacks the steps (a listener lost, a log cut), the host's own count of tool calls no
    longer matches it, and the answer does not pass."""
    crew = scripted_crew([code(f"{SIMILARITY}\nfinal_answer(r['similarity'])")])
    keep = crew.audit.record
    crew.audit.record = lambda record: None if record.kind == "action" else keep(record)  # type: ignore[method-assign]
    result = crew.run(REQUEST)
    assert result.state == "rejected" and result.answer is None
    assert "trail does not show" in str(result.error) and "language: compare_sentences" in str(result.error)
    verdicts = [e.body for e in crew.audit.entries(result.run_id) if e.kind == "verdict"]
    assert verdicts and verdicts[-1]["stage"] == "trail"


def test_code_in_process_gets_tools_as_plain_functions_too(scripted_crew: Callable[..., Crew]) -> None:
    attempt = "compare_sentences.context.workspace.root"
    crew = scripted_crew([code(f"{SIMILARITY}\n{attempt}"), code("final_answer(1)")], sandbox={"executor": "local"})
    result = crew.run(REQUEST)
    assert "compare_sentences" in _errors(result) and result.answer == 1
    assert isinstance(crew.team.specialists["language"].python_executor, OpaqueLocalExecutor)


@pytest.mark.parametrize(
    ("attempt", "reason"),
    [
        ("open('/etc/passwd').read()", "open"),
        ("import os\nos.fork()", "os"),  # a fork bomb's first step (the kernel refuses it too: test_sandbox.py)
        ("import socket\nsocket.create_connection(('127.0.0.1', 6379))", "socket"),
        ("x = 'a' * (3000 * 1024**2)", "MemoryError"),
        ("while True:\n    compare_sentences(text_a='a', text_b='b')", "tool calls in one step"),
    ],
)
def test_each_escape_fails_the_step_and_the_audit_log_says_why(
    scripted_crew: Callable[..., Crew], attempt: str, reason: str
) -> None:
    crew = scripted_crew([code(attempt), code("final_answer(1)")], sandbox={"tool_calls": 20})
    result = crew.run(REQUEST)
    assert reason in _errors(result) and result.answer == 1  # the step failed; the run went on under the host
    assert any(reason in str(entry.body) for entry in crew.audit.entries(result.run_id))
