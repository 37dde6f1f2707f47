"""The real agent loop, driven by a scripted LLM: delegation, tools, failures, conversations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from smolcrew.agents.planner import PlannedStep
from smolcrew.crew import Crew
from smolcrew.errors import AnswerRejected, CrewClosedError
from tests.conftest import code

pytestmark = pytest.mark.usefixtures("minilm_available")


def _by_agent(replies: dict[str, list[str]]) -> Callable[[list[dict]], str]:
    """Answer each agent from its own queue, telling agents apart by the task in their prompt."""

    def respond(messages: list[dict]) -> str:
        text = " ".join(str(part.get("text", "")) for m in messages for part in (m["content"] or []))
        for marker, queue in replies.items():
            if marker in text and queue:
                return queue.pop(0)
        raise AssertionError(f"no scripted reply for: {text[-300:]}")

    return respond


def test_manager_delegates_to_the_specialist_and_records_it(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [
            code('result = language(task="Compute 17*23+5.")\nfinal_answer(result)'),  # manager
            code("final_answer(17*23+5)"),  # language specialist
        ],
        routing={"mode": "manager"},
    )
    result = crew.run("What is 17*23+5?")
    assert result.ok and result.answer == "396"
    assert result.mode == "manager"
    assert result.agents == ("language",)
    assert result.delegations == (("manager", "language", "Compute 17*23+5."),)
    delegation = next(step for step in result.steps if step.kind == "delegation")
    language_steps = [step for step in result.steps if step.agent == "language"]
    assert [step.kind for step in language_steps] == ["action", "final_answer"]
    assert all(step.payload["parent"] == f"{result.run_id}:{delegation.seq}" for step in language_steps)
    manager_action = next(step for step in result.steps if step.agent == "manager" and step.kind == "action")
    assert manager_action.payload["calls"] == ["language", "final_answer"]
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.route is not None and result.route.specialists == ["language"]
    assert "Router's plan" in crew.team.manager.memory.steps[0].task


def test_router_mode_hands_the_request_to_the_specialist_which_calls_a_tool(
    scripted_crew: Callable[..., Crew],
) -> None:
    crew = scripted_crew(
        [code('r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")\nfinal_answer(r["similarity"])')]
    )
    result = crew.run("How similar in meaning are 'the cat sleeps' and 'a kitten naps'?")
    assert result.ok, result.error
    assert result.mode == "router"
    assert result.agents == ("language",)
    assert result.tools == ("compare_sentences",)
    assert isinstance(result.answer, float) and 0.2 < result.answer <= 1.0
    assert result.delegations[0][:2] == ("router", "language")


def test_a_request_for_a_tool_whose_model_cannot_load_says_so_instead_of_answering(
    scripted_crew: Callable[..., Crew], tmp_path: Path
) -> None:
    crew = scripted_crew([code("final_answer(1000)")], models={"image_generator": str(tmp_path / "no-weights")})
    assert "generate_image" not in crew.team.specialists["generation"].tools  # what the 0.5B wrote, offered none
    result = crew.run("generate an image of a red bicycle leaning on a wall by the sea")
    assert result.mode == "router" and result.state == "error" and result.answer is None
    assert "generation specialist cannot do this here: generate_image would, but its model (image_generator)" in str(
        result.error
    )
    assert "[models]" in str(result.error)  # and what to do about it
    generation = crew.team.specialists["generation"]
    assert generation.lacking("make logo.png twice as big") is None  # upscale_image takes the file
    assert generation.lacking("paint logo.png as a watercolour") is None  # upscale_image takes it: the model picks


def test_multi_step_request_runs_specialists_in_order_passing_results(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        _by_agent(
            {
                "Result of the previous step (audio): hello from the call": [code('final_answer("summary: hello")')],
                "Transcribe call.wav": [code('final_answer("hello from the call")')],
            }
        )
    )
    result = crew.run("Transcribe call.wav and then summarize it in one line")
    assert result.ok, result.error
    assert result.agents == ("audio", "language")
    assert result.answer == "summary: hello"
    assert [to for _, to, _ in result.delegations] == ["audio", "language"]


class _FixedPlanner:
    """Stands in for the learned planner (tested in tests/agents/test_planner.py): here the loop is under test."""

    def __init__(self, steps: list[PlannedStep]) -> None:
        self.steps = steps

    def plan(self, request: str) -> list[PlannedStep]:
        return self.steps


def test_results_travel_along_the_plans_edges_and_every_end_result_is_kept(
    scripted_crew: Callable[..., Crew],
) -> None:
    replies = {
        "Result of the previous step (audio): hello from the call": [code('final_answer("hola de la llamada")')],
        "Transcribe call.wav": [code('final_answer("hello from the call")')],
        "Caption beach.jpg": [code('final_answer("a sandy beach")')],
    }
    crew = scripted_crew(_by_agent(replies))
    crew.router.planner = _FixedPlanner(
        [
            PlannedStep("transcribe_speech", "automatic-speech-recognition", "audio", "Transcribe call.wav", (), 0.9),
            PlannedStep("caption_image", "image-to-text", "vision", "Caption beach.jpg", (), 0.9),
            PlannedStep("translate_text", "translation", "language", "translate it into Spanish", (0,), 0.9),
        ]
    )
    result = crew.run("Transcribe call.wav, caption beach.jpg, and translate the transcript into Spanish")
    assert result.ok, result.error
    assert result.agents == ("audio", "vision", "language")
    translation_task = result.delegations[2][2]
    assert "hello from the call" in translation_task and "a sandy beach" not in translation_task
    assert result.answer == "a sandy beach\n\nhola de la llamada"  # the caption feeds no step: it is kept
    assert result.route is not None and result.route.steps[2].depends_on == (0,)


def test_running_out_of_steps_is_a_failure_not_an_answer(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(lambda messages: code("x = 1"), routing={"mode": "manager"}, agents={"max_steps": 2})
    result = crew.run("Count to one, forever")
    assert result.state == "max_steps_error"
    assert not result.ok and result.answer is None
    assert "steps" in (result.error or "")
    with pytest.raises(AnswerRejected) as caught:
        result.raise_for_state()
    assert caught.value.run_id == result.run_id


def test_specialist_out_of_steps_is_reported_to_the_manager(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        _by_agent(
            {
                "Now let's retry": [code('final_answer("the language specialist could not do it")')],
                "Spin forever": [code("x = 1")] * 3,  # the specialist loops; its fallback answer is ignored
                "Loop please": [code('r = language(task="Spin forever")\nfinal_answer(r)')],
            }
        ),
        routing={"mode": "manager"},
        agents={"specialist_max_steps": 2},
    )
    result = crew.run("Loop please")
    errors = [step.payload["error"] for step in result.steps if step.agent == "manager" and step.payload.get("error")]
    assert any("used all its 2 steps" in error for error in errors)
    assert result.answer == "the language specialist could not do it"


def test_an_empty_final_answer_is_sent_back_to_the_agent(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code('final_answer("")'), code('final_answer("done")')], routing={"mode": "manager"})
    result = crew.run("Say done")
    assert result.answer == "done"
    first = next(step for step in result.steps if step.kind == "action")
    assert "final answer is empty" in first.payload["error"]


def test_chat_in_router_mode_gives_the_specialist_a_transcript(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code('final_answer("Paris")'), code('final_answer("Paris (German: Paris)")')])
    chat = crew.chat()
    assert chat.send("What is the capital of France?").answer == "Paris"
    second = chat.send("Now translate that into German.")  # a follow-up for a tool: not a reply
    # the answer rests on the result it translates (an unsupported "2.1 million" would now be caught)
    assert second.answer == "Paris (German: Paris)"
    last_prompt = " ".join(str(part.get("text", "")) for m in crew.model.calls[-1] for part in m["content"] or [])
    assert "User: What is the capital of France?" in last_prompt and "Assistant: Paris" in last_prompt
    chat.reset()
    assert chat.history() == []


def test_bad_input_and_closed_crew(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("final_answer(1)")])
    with pytest.raises(ValueError, match="task is empty"):
        crew.run("   ")
    crew.close()
    with pytest.raises(CrewClosedError, match="closed"):
        crew.run("anything")


def test_result_serialises_and_reads_well(scripted_crew: Callable[..., Crew]) -> None:
    result = scripted_crew([code("final_answer(17*23+5)")]).run("What is 17*23+5?")
    data = result.to_dict()
    assert data["answer"] == 396 and data["state"] == "success" and data["agents"] == ["language"]
    assert data["route"]["specialists"] == ["language"]
    assert repr(result).startswith("RunResult(success, answer=396, agents=['language']")


def test_a_caller_can_choose_the_run_id_and_a_bad_one_is_refused(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code("final_answer(17*23+5)")])
    result = crew.run("What is 17*23+5?", run_id="ticket-42")
    assert result.run_id == "ticket-42" and {r.run_id for r in result.steps} == {"ticket-42"}
    with pytest.raises(ValueError, match="run id"):
        crew.run("What is 17*23+5?", run_id="../etc/passwd")
