from __future__ import annotations

from smolagents.memory import ActionStep, FinalAnswerStep
from smolagents.monitoring import Timing, TokenUsage

from smolcrew.memory.recorder import RunRecorder
from smolcrew.memory.records import OBSERVATION_LIMIT, called_names, record_from_step


def test_called_names_in_order_of_appearance() -> None:
    source = 'a = vision(task="x")\nb = compare_sentences(a, "y")\nfinal_answer(language(task=b))'
    known = {"vision", "language", "compare_sentences", "final_answer"}
    assert called_names(source, known) == ["vision", "compare_sentences", "final_answer", "language"]
    assert called_names("not python (", known) == []
    assert called_names(None, known) == []


def test_action_step_is_normalised_and_long_observations_truncated() -> None:
    step = ActionStep(
        step_number=2,
        timing=Timing(start_time=10.0, end_time=10.5),
        code_action="final_answer(1)",
        observations="x" * (OBSERVATION_LIMIT + 10),
        token_usage=TokenUsage(input_tokens=7, output_tokens=3),
    )
    record = record_from_step(step, run_id="r1", seq=4, agent="language", known={"final_answer"}, parent="r1:0")
    assert (record.run_id, record.seq, record.agent, record.kind) == ("r1", 4, "language", "action")
    payload = record.payload
    assert payload["calls"] == ["final_answer"] and payload["parent"] == "r1:0"
    assert payload["input_tokens"] == 7 and payload["output_tokens"] == 3 and payload["duration_s"] == 0.5
    assert payload["observations"].endswith("[10 more characters]")
    assert record.to_dict()["schema"] == 1


def test_recorder_nests_delegations_and_survives_a_broken_listener() -> None:
    seen: list[str] = []

    def broken(record: object) -> None:
        raise RuntimeError("listener down")

    recorder = RunRecorder("r2", known=set(), listeners=[lambda record: seen.append(record.kind), broken])
    with recorder.agent("manager"), recorder.delegation("vision", "look") as delegation:
        recorder.on_step(FinalAnswerStep(output="a cat"), "vision")
    assert [r.kind for r in recorder.records] == ["delegation", "final_answer"]
    assert recorder.records[1].payload["parent"] == f"r2:{delegation.seq}"
    assert recorder.delegations() == [("manager", "vision", "look")]
    assert seen == ["delegation", "final_answer"]
    assert recorder.listener_errors and "listener down" in recorder.listener_errors[0]
