"""Conversations that keep the manager's memory, and runs resumed from their journal after a crash."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.config import load_settings
from smolcrew.crew import Crew
from smolcrew.errors import RunNotFoundError
from tests.conftest import code, loop_settings

pytestmark = pytest.mark.usefixtures("minilm_available")


class Crash(BaseException):
    """Stands in for the process dying mid-run (not an Exception, so nothing in the agent loop catches it)."""


def _texts(messages: list[dict]) -> str:
    return " ".join(str(part.get("text", "")) for m in messages for part in (m["content"] or []))


def test_a_conversation_continues_with_the_managers_memory(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew(
        [
            code('note = "the meeting moved to Tuesday"\nfinal_answer(note)'),
            code('final_answer("Tuesday")'),
        ],
        routing={"mode": "manager"},
    )
    chat = crew.chat()
    first = chat.send("Remember: the meeting moved to Tuesday.")
    second = chat.send("Which day is the meeting?")
    assert first.ok and second.ok and second.answer == "Tuesday"
    model = crew.model
    assert isinstance(model, ScriptedModel)
    seen = _texts(model.calls[-1])
    # reset=False: the second turn's prompt replays the first turn's task and code, not a transcript
    assert "Remember: the meeting moved to Tuesday." in seen and 'note = "the meeting moved to Tuesday"' in seen
    assert "Conversation so far" not in seen
    assert {r.payload.get("conversation_id") for r in second.steps} == {chat.conversation_id}


def test_a_conversation_is_picked_up_again_by_a_new_process(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([code('final_answer("blue")')], routing={"mode": "manager"})
    chat = crew.chat()
    chat.send("My favourite colour is blue; say it back.")
    home = crew.settings.home
    crew.close()

    again = Crew(
        load_settings(home=str(home), routing={"mode": "manager"}),
        model=ScriptedModel([code('final_answer("blue, as you said")')]),
    )
    with again:
        restored = again.chat(chat.conversation_id)
        assert [message for message, _ in restored.turns] == ["My favourite colour is blue; say it back."]
        result = restored.send("What is my favourite colour?")
        assert result.ok
        model = again.model
        assert isinstance(model, ScriptedModel)
        assert "My favourite colour is blue" in _texts(model.calls[-1])


def test_a_run_that_crashed_half_way_is_resumed_from_its_journal(scripted_crew: Callable[..., Crew]) -> None:
    replies = [code('x = 6 * 7\nprint("computed", x)')]

    def respond(messages: list[dict]) -> str:
        if replies:
            return replies.pop(0)
        raise Crash

    crew = scripted_crew(respond, routing={"mode": "manager"})
    with pytest.raises(Crash):
        crew.run("Compute six times seven.")
    run_id = crew.mirror.journal.runs()[-1]  # type: ignore[union-attr]
    before = crew.mirror.journal.read(run_id)  # type: ignore[union-attr]
    # the step cut short by the crash is journaled too (smolagents finalizes it), with no model reply
    assert [r.kind for r in before][:2] == ["run_start", "action"] and before[1].payload["calls"] == []
    assert before[-1].kind == "action" and before[-1].payload["model_output"] is None
    home = crew.settings.home
    crew.close()

    model = ScriptedModel([code("final_answer(42)")])
    with Crew(load_settings(home=str(home), routing={"mode": "manager"}), model=model) as again:
        result = again.resume(run_id)
        assert result.ok and str(result.answer) == "42" and result.run_id == run_id
        # the resumed manager saw its recorded step before continuing
        assert "x = 6 * 7" in _texts(model.calls[0]) and "computed 42" in _texts(model.calls[0])
        records = again.mirror.journal.read(run_id)  # type: ignore[union-attr]
        assert [r.seq for r in records] == list(range(len(records)))
        assert [r.kind for r in records][:2] == ["run_start", "action"] and records[-1].kind == "run_end"
        assert again.audit.verify(run_id, expected_head=result.audit_head).ok
        assert again.resume(run_id).answer == result.answer  # a finished run is returned as it was


def test_resuming_an_unknown_run_says_how_to_find_runs(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([])
    with pytest.raises(RunNotFoundError, match="smolcrew runs list"):
        crew.resume("no-such-run")


def test_a_router_run_resumes_after_its_finished_steps(scripted_crew: Callable[..., Crew]) -> None:
    def first_process(messages: list[dict]) -> str:
        if "Result of the previous step" in _texts(messages):
            raise Crash  # the process dies while the language specialist works
        return code('final_answer("hello from the call")')

    crew = scripted_crew(first_process)
    with pytest.raises(Crash):
        crew.run("Transcribe call.wav and then summarize it in one line")
    run_id = crew.mirror.journal.runs()[-1]  # type: ignore[union-attr]
    home = crew.settings.home
    crew.close()

    model = ScriptedModel([code('final_answer("summary: hello")')])  # one reply: the audio step must not rerun
    with Crew(loop_settings(home=str(home)), model=model) as again:
        result = again.resume(run_id)
        assert result.ok and result.answer == "summary: hello" and model.call_count == 1
        assert "Result of the previous step (audio): hello from the call" in _texts(model.calls[0])
        assert [to for _, to, _ in result.delegations] == ["audio", "language", "language"]
