from __future__ import annotations

from typing import Any

import pytest
from smolagents import CodeAgent, tool
from smolagents.memory import ActionStep, AgentMemory, TaskStep

from smolcrew.backends import ScriptedModel
from smolcrew.errors import AnswerRejected
from smolcrew.memory.records import record_from_step
from smolcrew.validators.cascade import Cascade
from smolcrew.validators.correct import FinalAnswerCheck, final_answer_check
from smolcrew.validators.rules import RuleCheck
from smolcrew.validators.verdict import Evidence, Verdict
from tests.conftest import code

TOOL_OUTPUT = "Last output from code snippet:\n1234"


def evidence_for(answer: Any) -> Evidence:
    return Evidence(task="How many units?", answer=answer, tool_outputs=(TOOL_OUTPUT,), tools=("count_units",))


def numbers_check(max_retries: int = 2) -> FinalAnswerCheck:
    return final_answer_check(Cascade([RuleCheck(["non_empty", "numbers"])]), evidence_for, max_retries)


def test_a_passing_answer_is_accepted() -> None:
    check = numbers_check()
    assert check("There are 1,234 units.", None) is True
    assert check.rejections == 0 and check.last is not None and check.last.passed and not check.gave_up


def test_a_failing_answer_is_rejected_then_let_through_after_max_retries() -> None:
    check = numbers_check(max_retries=2)
    for attempt in (1, 2):
        with pytest.raises(AnswerRejected) as caught:
            check("There are 1,300 units.", None)
        message = str(caught.value)
        assert f"rejected (rejection {attempt} of at most 2)" in message
        assert "numbers: the answer states 1,300" in message and "call final_answer() again" in message
        assert caught.value.reasons == check.results[-1].reasons
    assert check("There are 1,300 units.", None) is True  # retries spent: the Crew's final gate fails the run
    assert check.rejections == 2 and check.gave_up and check.last is not None and check.last.outcome == "fail"


def test_no_retries_never_rejects_but_records_the_failure() -> None:
    check = numbers_check(max_retries=0)
    assert check("There are 9 units.", None) is True
    assert check.gave_up and check.rejections == 0


def test_escalations_pass_the_check_for_the_gate_to_handle() -> None:
    class Unsure:
        name = "judge"

        def check(self, evidence: Evidence) -> Verdict:
            return Verdict("judge", "escalate", 0.0, ("judge: unreadable reply",))

    check = final_answer_check(Cascade([Unsure()]), evidence_for, 2)
    assert check("anything", None) is True
    assert check.last is not None and check.last.outcome == "escalate" and check.rejections == 0


def test_evidence_that_cannot_be_built_escalates_instead_of_passing() -> None:
    def broken(answer: Any) -> Evidence:
        raise KeyError("records")

    check = final_answer_check(Cascade([RuleCheck()]), broken, 2)
    assert check("42", None) is True
    assert check.last is not None and check.last.outcome == "escalate" and "KeyError" in check.last.reasons[0]


def test_a_new_task_in_memory_starts_the_count_again() -> None:
    check = numbers_check(max_retries=1)
    memory = AgentMemory(system_prompt="")
    memory.steps.append(TaskStep(task="How many units?"))
    with pytest.raises(AnswerRejected):
        check("7 units", memory)
    assert check("7 units", memory) is True  # spent for this task
    memory.steps.append(TaskStep(task="And now?"))
    with pytest.raises(AnswerRejected):
        check("7 units", memory)
    assert check.rejections == 1 and len(check.results) == 1


def test_the_check_has_the_name_smolagents_reports() -> None:
    assert numbers_check().__name__ == "validate_final_answer"


@tool
def count_units() -> int:
    """Counts the units in the warehouse."""
    return 1234


def test_an_agent_corrects_a_rejected_answer() -> None:
    """End to end: the agent's first answer states a number no tool gave; the check rejects it with reasons,
    the agent sees them and answers again with the tool's number, which passes."""
    replies = [
        code("units = count_units()\nprint(units)"),
        code('final_answer("There are 1,300 units in the warehouse.")'),
        code('final_answer("There are 1,234 units in the warehouse.")'),
    ]
    model = ScriptedModel(replies)
    holder: dict[str, CodeAgent] = {}

    def from_memory(answer: Any) -> Evidence:
        agent = holder["agent"]
        known = set(agent.tools)
        records = [
            record_from_step(step, run_id="r", seq=i, agent="test", known=known, parent=None)
            for i, step in enumerate(agent.memory.steps)
        ]
        return Evidence.from_records(str(agent.task), answer, records)

    check = final_answer_check(Cascade([RuleCheck()]), from_memory, max_retries=2)
    agent = CodeAgent(tools=[count_units], model=model, final_answer_checks=[check], max_steps=5, verbosity_level=0)
    holder["agent"] = agent

    answer = agent.run("How many units are in the warehouse?")

    assert answer == "There are 1,234 units in the warehouse."
    assert check.rejections == 1 and check.last is not None and check.last.passed
    steps = [step for step in agent.memory.steps if isinstance(step, ActionStep)]
    assert steps[0].error is None and "1234" in str(steps[0].observations)
    rejected = str(steps[1].error)
    assert "validate_final_answer failed" in rejected and "your final answer was rejected" in rejected
    assert "numbers: the answer states 1,300" in rejected
    assert steps[2].error is None and steps[2].is_final_answer
    shown = " ".join(str(message["content"]) for message in model.calls[-1])
    assert "numbers: the answer states 1,300" in shown  # the model saw why before its second answer
