"""Replaying recorded runs: same answer from recorded model replies and tool results; divergences reported."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smolcrew.crew import Crew
from smolcrew.memory.records import StepRecord
from smolcrew.replay import replay
from tests.conftest import code

pytestmark = pytest.mark.usefixtures("minilm_available")

TOOL_CALL = code(
    'r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")\nfinal_answer(r["similarity"])'
)
REQUEST = "How similar in meaning are 'the cat sleeps' and 'a kitten naps'?"


def test_a_recorded_run_replays_to_the_same_answer_without_running_tools(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([TOOL_CALL])
    result = crew.run(REQUEST)
    assert result.ok and "compare_sentences" in result.tools
    calls = [e for e in crew.audit.entries(result.run_id) if e.kind == "tool_call"]
    assert [c.body["tool"] for c in calls] == ["compare_sentences"] and calls[0].body["output"]

    report = replay(crew, result.run_id)
    assert report.same, report.divergences
    assert report.answer == result.answer and report.replayed_replies == 1 and report.live_replies == 0
    assert report.result is not None
    replayed_calls = [e for e in crew.audit.entries(report.replay_run_id) if e.kind == "tool_call"]
    assert replayed_calls[0].body["value"] == calls[0].body["value"] and calls[0].body["value"]["similarity"]


def test_a_changed_recording_is_reported_as_a_divergence(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([TOOL_CALL])
    result = crew.run(REQUEST)
    journal = crew.mirror.journal  # type: ignore[union-attr]
    action = next(r for r in journal.read(result.run_id) if r.kind == "action")
    edited = code('final_answer("not similar at all")')
    journal.write(
        [
            StepRecord(
                action.run_id,
                action.seq,
                action.agent,
                action.kind,
                {**action.payload, "model_output": edited},
                action.ts,
            )
        ]
    )

    report = replay(crew, result.run_id)
    assert not report.same and report.answer == "not similar at all"
    assert any(d.field == "code" for d in report.divergences)


def test_replay_from_a_step_forks_and_runs_the_rest_live(scripted_crew: Callable[..., Crew]) -> None:
    crew = scripted_crew([TOOL_CALL, code('final_answer("live answer")')])
    result = crew.run(REQUEST)
    action = next(r for r in result.steps if r.kind == "action")
    steps = [r.kind for r in result.steps if r.kind not in ("run_start", "run_end")]
    report = replay(crew, result.run_id, from_step=steps.index("action"))
    assert report.live_replies == 1 and report.replayed_replies == 0
    assert report.answer == "live answer" and report.replay_run_id != result.run_id
    assert action.payload["model_output"]
