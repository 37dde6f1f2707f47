"""The router on the real packaged MiniLM: splitting, scoring, directives, the LLM tie-breaker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from smolcrew.agents.dispatch import EARLIER_RESULT
from smolcrew.agents.router import Router, split_steps
from smolcrew.agents.specialists import SPECIALISTS, load_examples
from smolcrew.agents.steps import self_corrected

DESCRIPTIONS = {name: spec.description for name, spec in SPECIALISTS.items()}


@pytest.fixture(scope="module")
def router(embed) -> Router:  # type: ignore[no-untyped-def]
    return Router.for_specialists(embed)


@pytest.mark.parametrize(
    ("request_text", "steps"),
    [
        ("Caption beach.jpg, then translate the caption", ["Caption beach.jpg", "translate the caption"]),
        ("Transcribe memo.m4a and summarize it", ["Transcribe memo.m4a", "summarize it"]),
        ("First find the refund policy. After that, read it aloud", ["find the refund policy", "read it aloud"]),
        ('Translate "cats, then dogs" into French', ['Translate "cats, then dogs" into French']),
        ("Cross-tabulate gender vs. plan type in survey.csv", ["Cross-tabulate gender vs. plan type in survey.csv"]),
        (  # files named for the step after them: one step
            "I have two files, a.txt and b.txt. Summarize the first one.",
            ["I have two files, a.txt and b.txt. Summarize the first one"],
        ),
        ("Read a.png. Then translate it", ["Read a.png", "translate it"]),
        # a step a sequencing word opens is its own, whatever the step before it names
        ("upscale label.png 3x and then read the text on it", ["upscale label.png 3x", "read the text on it"]),
    ],
)
def test_split_steps(request_text: str, steps: list[str]) -> None:
    assert split_steps(request_text) == steps


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("what objects are in kitchen.jpg?", ["vision"]),
        ("transcribe interview.mp3 with timestamps", ["audio"]),
        ("paint a watercolor of a lighthouse at dusk", ["generation"]),
        ("translate 'good morning, everyone' into German", ["language"]),
        ("what does the handbook PDF say about parental leave?", ["research"]),
        ("Transcribe standup.wav, then summarize it", ["audio", "language"]),
        ("Draw a red fox. After that, describe what is in the picture you made.", ["generation", "vision"]),
        ("can you summarise team_update.txt for me", ["language"]),  # the verb after "can you" leans too
        (
            "OOPS I PASTED THE WRONG ONE. I MEANT THIS: 'JAG SKULLE VILJA HA EN KOPP KAFFE OCH EN KANELBULLE, TACK.'",
            ["language"],
        ),  # a remark before the request is no step of its own
        (
            'ok put your summary from before in german\n\nThe earlier result this refers to: "The product launch'
            ' is moved from September to October because the battery supplier is six weeks late."',
            ["language"],
        ),
    ],
)
def test_routes_clear_requests(router: Router, request_text: str, expected: list[str]) -> None:
    plan = router.route(request_text)
    assert plan.specialists == expected
    for step in plan.steps:
        assert next(iter(step.scores)) == step.specialist or step.decided_by == "llm"
        assert set(step.scores) == set(DESCRIPTIONS)


def test_a_paths_folders_do_not_sway_the_route(router: Router) -> None:
    plain = router.scores(["can you summarise team_update.txt for me"])
    nested = router.scores(["can you summarise /tmp/chats/read-aloud-speech/team_update.txt for me"])
    assert np.allclose(plain, nested)  # "read aloud speech" was a folder's name, not the request


def test_directive_is_honoured_and_removed_from_the_task(router: Router) -> None:
    plan = router.route("What is 17*23+5? Use the language specialist if needed.")
    assert plan.specialists == ["language"]
    assert plan.steps[0].task == "What is 17*23+5?"
    assert plan.tools == {"language": SPECIALISTS["language"].tool_names()}
    assert "language(task='What is 17*23+5?')" in plan.hint()


def test_a_follow_up_is_routed_by_its_words_and_carries_the_result_it_points_at(router: Router) -> None:
    pointed_at = f'{EARLIER_RESULT} "Le train part demain à huit heures."'
    plan = router.route(f"great, read it aloud{pointed_at}")  # the French text alone would go to language
    assert plan.specialists == ["audio"]
    assert plan.steps[0].task == f"great, read it aloud{pointed_at}"
    unsure = router.route(f'now double it{EARLIER_RESULT} "245 * 12 = 2940"')  # the words alone: not sure
    assert unsure.specialists == ["language"]  # so the result it points at counts too


def test_a_question_on_an_earlier_text_never_goes_to_a_specialist_that_only_reads_files(router: Router) -> None:
    assert router.needs_file == {"vision"}  # every other specialist has a tool that works on text alone
    receipt = f'{EARLIER_RESULT} "CORNER CAFE Latte 3.80 Bagel 2.50 Club sandwich 7.90 TOTAL 18.40"'
    assert router.route(f"and the cheapest thing on it?{receipt}").specialists != ["vision"]
    counted = router.route("how many words are there in: 'we should order pizza for the team lunch'")
    assert counted.specialists != ["vision"]  # a quoted passage: text to work on
    drawn = f'{EARLIER_RESULT} "/runs/a/artifacts/image-1.png"'
    assert router.route(f"describe it{drawn}").specialists == ["vision"]  # an image it can look at


@pytest.mark.parametrize(
    ("message", "meant"),
    [
        ("how many kilometres is 5 miles, no wait, make that 6 miles", "how many kilometres is 6 miles"),
        ("split 120 between 3, sorry 4 people", "split 120 between 4 people"),
        ("13.1 miles in km, er, actually give me that one in metres", "13.1 miles in metres"),
        ("translate it into French, no wait, into German", "translate it into German"),
        ("rent is 950, and the deposit is 1900", "rent is 950, and the deposit is 1900"),  # nothing taken back
        ("what is 5 + 3", "what is 5 + 3"),
    ],
)
def test_a_figure_taken_back_in_the_same_message_is_replaced(message: str, meant: str) -> None:
    assert self_corrected(message) == meant


def test_unsure_steps_go_to_the_tie_breaker_with_close_candidates_only(embed) -> None:  # type: ignore[no-untyped-def]
    asked: list[tuple[str, Sequence[str]]] = []

    def choose(request: str, candidates: Sequence[str]) -> str:
        asked.append((request, candidates))
        return candidates[-1]

    router = Router(embed, DESCRIPTIONS, load_examples(), choose=choose, margin=1.0)
    plan = router.route("Describe this photo")
    assert len(asked) == 1
    request, candidates = asked[0]
    assert request == "Describe this photo" and len(candidates) >= 1
    assert plan.steps[0].decided_by == "llm" and plan.steps[0].specialist == candidates[-1]
    assert not plan.confident


def test_tie_breaker_answer_outside_the_candidates_is_ignored(embed) -> None:  # type: ignore[no-untyped-def]
    router = Router(embed, DESCRIPTIONS, load_examples(), choose=lambda request, names: "nobody", margin=1.0)
    step = router.route("transcribe call.wav").steps[0]
    assert step.decided_by == "embeddings" and step.specialist == "audio"


def test_example_vectors_are_cached_on_disk(embed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts)

    Router(counting, DESCRIPTIONS, load_examples(), cache_dir=tmp_path, embedder_id="minilm")
    assert len(list(tmp_path.glob("router-examples-*.npy"))) == 1
    first = len(calls)
    Router(counting, DESCRIPTIONS, load_examples(), cache_dir=tmp_path, embedder_id="minilm")
    assert len(calls) == first  # the bank was not embedded again


def test_bad_input(router: Router, embed) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="empty request"):
        router.route("  ")
    with pytest.raises(ValueError, match="unknown specialists"):
        Router(embed, DESCRIPTIONS, [("plumber", "fix the sink")])


def test_plan_serialises(router: Router) -> None:
    data = router.route("transcribe call.wav and then summarize it").to_dict()
    assert data["specialists"] == ["audio", "language"]
    assert data["steps"][0]["task"] == "transcribe call.wav"
    assert {"request", "confident", "tools"} <= set(data)


@pytest.mark.parametrize(
    ("request_text", "specialist"),
    [
        ("What day is the budget review, according to meeting.wav?", "audio"),
        ("Who called in voicemail.mp3 and what did they want?", "audio"),
        ("How many respondents did the survey in report.pdf have?", "research"),
    ],
)
def test_a_question_about_a_file_goes_to_a_specialist_that_can_open_it(
    router: Router, request_text: str, specialist: str
) -> None:
    assert router.route(request_text).specialists == [specialist]


def test_the_file_kind_rule_leaves_requests_without_files_alone(embed) -> None:  # type: ignore[no-untyped-def]
    plain = Router(embed, DESCRIPTIONS, load_examples())
    able = Router.for_specialists(embed)
    for request_text in ("Write a haiku about rain", "Translate 'good morning' into French"):
        assert np.allclose(plain.scores([request_text]), able.scores([request_text]))
