"""Direct dispatch: the first call is decided from the task alone only when the task makes it certain."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smolcrew.agents.dispatch import (
    EARLIER_REQUEST,
    EARLIER_RESULT,
    PREVIOUS_RESULT,
    DirectCall,
    Embedder,
    asks_for_output,
    nearest_tools,
    passage,
    plan_direct_call,
)
from smolcrew.agents.specialists import SPECIALISTS


@pytest.fixture
def plan(embed: Embedder) -> Callable[[str, str], DirectCall | None]:
    return lambda specialist, task: plan_direct_call(task, SPECIALISTS[specialist].tool_factories, embed)


@pytest.mark.parametrize(
    ("specialist", "task", "tool", "arguments"),
    [
        ("audio", "Transcribe meeting.wav", "transcribe_speech", {"audio": "meeting.wav"}),
        ("audio", "please transcribe voice-memo.m4a for me", "transcribe_speech", {"audio": "voice-memo.m4a"}),
        ("vision", "What does the text in sign.png say?", "read_text_in_image", {"image": "sign.png"}),
        ("vision", "Give a caption for beach.jpg", "caption_image", {"image": "beach.jpg"}),
        (
            "vision",
            "How many dogs are in park.jpg?",
            "answer_image_question",
            {"image": "park.jpg", "question": "How many dogs are in park.jpg?"},
        ),
        (
            "research",
            "Which city sold most in data/sales.csv?",
            "answer_table_question",
            {"path": "data/sales.csv", "question": "Which city sold most in data/sales.csv?"},
        ),
        ("research", "Summarize the columns of data/sales.csv", "describe_table", {"path": "data/sales.csv"}),
        (
            "research",
            "How many people answered the survey in report.pdf?",
            "answer_from_pdf",
            {"pdf_path": "report.pdf", "question": "How many people answered the survey in report.pdf?"},
        ),
        (
            "audio",
            "Read this sentence aloud and save it as audio: 'The meeting starts at nine.'",
            "synthesize_speech",
            {"text": "The meeting starts at nine."},
        ),
        (
            "language",
            "Translate 'good morning, everyone' into French",
            "translate_text",
            {"text": "good morning, everyone", "target_language": "French"},
        ),
        ("language", "summarize notes/article.txt", "summarize_text", {"text": "notes/article.txt"}),  # read there
        # A file of an earlier turn is not this request's: the conversation before "Now:" names no input.
        (
            "audio",
            "User: transcribe call.wav\nAssistant: Hi Marco\n\nNow: read aloud 'good morning'",
            "synthesize_speech",
            {"text": "good morning"},
        ),
        (  # nor is its language: the earlier turn's Spanish is not this request's French
            "language",
            "User: How do I say 'hello' in Spanish?\nAssistant: Hola\n\nNow: How do I say 'hello' in French?",
            "translate_text",
            {"text": "hello", "target_language": "French"},
        ),
        (
            "language",
            "how do you say coffee in italian",
            "translate_text",
            {"text": "coffee", "target_language": "Italian"},
        ),
        (
            "language",
            f'and what does it mean in english{EARLIER_RESULT} "PROHIBIDO FUMAR"',
            "translate_text",
            {"text": "PROHIBIDO FUMAR", "target_language": "English"},
        ),
        (  # the passage ("thank you") leans to other tools: the request says what to do with it
            "language",
            "translate 'thank you very much' into Portuguese",
            "translate_text",
            {"text": "thank you very much", "target_language": "Portuguese"},
        ),
        (
            "language",
            "what does 'à bientôt' mean",
            "translate_text",
            {"text": "à bientôt", "target_language": "English"},
        ),
        (  # a language asked of an earlier summary: that summary, translated
            "language",
            f'Fine. In French instead.{EARLIER_RESULT} "The council approved new bike lanes."',
            "translate_text",
            {"text": "The council approved new bike lanes.", "target_language": "French"},
        ),
        (  # no tool leads for a table: the one that reads the question, not the model's guess at a query
            "research",
            "Pull total revenue across all rows of q3_sales.xlsx.",
            "answer_table_question",
            {"path": "q3_sales.xlsx", "question": "Pull total revenue across all rows of q3_sales.xlsx."},
        ),
    ],
)
def test_a_task_naming_one_file_that_one_tool_fits_is_dispatched(
    plan: Callable[[str, str], DirectCall | None], specialist: str, task: str, tool: str, arguments: dict[str, str]
) -> None:
    planned = plan(specialist, task)
    assert planned == DirectCall(tool, arguments)
    assert planned.code().endswith("\nresult")
    assert planned.code().startswith(f"result = {tool}(")


@pytest.mark.parametrize(
    ("specialist", "task"),
    [
        ("audio", "Say hello to everyone"),  # no file
        ("audio", "Compare a.wav with b.wav"),  # two files: which goes where is the model's call
        ("audio", "User: transcribe call.wav\nAssistant: Hi Marco\n\nNow: say hello to everyone"),  # no file now
    ],
)
def test_no_dispatch_when_the_task_does_not_make_the_call_certain(
    plan: Callable[[str, str], DirectCall | None], specialist: str, task: str
) -> None:
    assert plan(specialist, task) is None


PREVIOUS = "\n\nResult of the previous step (vision): The total is 12.70."


@pytest.mark.parametrize(
    ("specialist", "task", "expected"),
    [
        ("generation", "make logo.png twice as big", DirectCall("upscale_image", {"image": "logo.png", "scale": 2})),
        ("generation", "upscale label.png 3x", DirectCall("upscale_image", {"image": "label.png", "scale": 3})),
        ("generation", "enlarge thumb.png please", DirectCall("upscale_image", {"image": "thumb.png"})),
        ("audio", "say it out loud" + PREVIOUS, DirectCall("synthesize_speech", {"text": "The total is 12.70."})),
        ("language", "work out a 10% tip on the total" + PREVIOUS, None),  # arithmetic: no tool is near
    ],
)
def test_the_scale_and_the_previous_steps_answer_fill_a_call(
    plan: Callable[[str, str], DirectCall | None], specialist: str, task: str, expected: DirectCall | None
) -> None:
    assert plan(specialist, task) == expected


CORRECTS = "\n\nThis corrects the earlier request: "
TWO_FILES = "here are two recordings, a/order.wav and a/dinner.wav. transcribe the first one please"


@pytest.mark.parametrize(
    ("specialist", "task", "expected"),
    [
        ("audio", TWO_FILES, DirectCall("transcribe_speech", {"audio": "a/order.wav"})),
        (
            "audio",
            f'no sorry, I meant the second file{CORRECTS}"{TWO_FILES}"',  # the correction's place wins
            DirectCall("transcribe_speech", {"audio": "a/dinner.wav"}),
        ),
        (
            "language",
            f"actually, in French instead{CORRECTS}\"Translate 'See you on Friday' into Spanish.\"",
            DirectCall("translate_text", {"text": "See you on Friday", "target_language": "French"}),
        ),
        (
            "audio",
            f'actually i meant the other one{CORRECTS}"{TWO_FILES}"',  # not the one the request picked
            DirectCall("transcribe_speech", {"audio": "a/dinner.wav"}),
        ),
        (
            "language",
            f'shorter pls{CORRECTS}"summarize a/notes.txt"',
            DirectCall("summarize_text", {"text": "a/notes.txt", "max_sentences": 2}),
        ),
        (  # not the one the request picked; its name, "ticket", leaned to the classifier
            "vision",
            f'the other image{CORRECTS}"i sent a/menu.png and a/ticket.png. what does the first one say?"',
            DirectCall("read_text_in_image", {"image": "a/ticket.png"}),
        ),
        (  # "one sentence max" alone is near count_words: the corrected request says which tool
            "language",
            f'shorter. one sentence max{CORRECTS}"summarise /tmp/chats/ghent_bikes.txt"',
            DirectCall("summarize_text", {"text": "/tmp/chats/ghent_bikes.txt", "max_sentences": 1}),
        ),
    ],
)
def test_a_correction_is_read_with_the_request_it_corrects(
    plan: Callable[[str, str], DirectCall | None], specialist: str, task: str, expected: DirectCall
) -> None:
    assert plan(specialist, task) == expected


def test_a_text_files_folders_say_nothing_about_the_request(plan: Callable[[str, str], DirectCall | None]) -> None:
    path = "/tmp/chats/n-corr-summary-shorter/ghent_bikes.txt"  # "summary shorter" is a folder, not the request
    assert plan("language", f"summarise {path}") == DirectCall("summarize_text", {"text": path})


def test_a_close_call_between_tools_is_left_to_the_model(embed: Embedder) -> None:
    tools = [tool for tool in SPECIALISTS["audio"].tool_factories if tool.name in ("enhance_speech", "classify_audio")]
    assert plan_direct_call("Do something with memo.wav", tools, embed, margin=1.0) is None
    assert plan_direct_call("Do something with memo.wav", tools, embed, margin=-1.0) is not None


def test_required_inputs_come_from_the_task_or_the_tool_is_skipped(embed: Embedder) -> None:
    tools = SPECIALISTS["vision"].tool_factories
    sentiment = next(tool for tool in tools if tool.name == "describe_image_sentiment")  # needs `text`
    assert plan_direct_call('How does "a rainy day" fit mood.png?', [sentiment], embed) == DirectCall(
        "describe_image_sentiment", {"image": "mood.png", "text": "a rainy day"}
    )
    assert plan_direct_call("How does it fit mood.png?", [sentiment], embed) is None


@pytest.mark.parametrize(
    ("task", "wanted"),
    [
        ("Transcribe meeting.wav", True),
        ("please transcribe call.mp3 for me", True),
        ("Read aloud: 'good morning'", True),
        ("Translate this into French: 'hello'", True),
        ("How do I say 'where is the station' in Spanish?", True),  # the translation itself
        ("how do I get to the station?", False),
        ("What day is the review, according to meeting.wav?", False),
        ("Read the receipt and tell me the total", False),
        ("Which city sold most?", False),
        ("can you transcribe call.wav?", True),  # a polite request, not a question whether it can be done
        ("could you please read it aloud?", True),
        ("can you tell me what the total is?", False),
        ("can u read a.png and b.png for me", True),
        ('now put that into german pls\n\nThe earlier result this refers to: "What time is it?"', True),
        ("great, now translate it", True),
        ("I have two recordings, a.wav and b.wav. Could you transcribe the first one, please?", True),
        ('Could you translate "see you next week" into Spanish? I\'m emailing my host.', True),
        ("Sorry to be a bother, could you put that into Portuguese?", True),
        ("Fine. In French instead.", True),
        ("is it in Italian?", False),
    ],
)
def test_asks_for_output(task: str, wanted: bool) -> None:
    assert asks_for_output(task) is wanted


def test_nearest_tools_shortlists_the_tools_nearest_the_task(embed: Embedder) -> None:
    tools = SPECIALISTS["vision"].tool_factories
    shortlist = nearest_tools("What does the text in sign.png say?", tools, embed)
    assert len(shortlist) == 3 and "read_text_in_image" in [tool.name for tool in shortlist]
    assert nearest_tools("anything", tools[:2], embed) == list(tools[:2])


def test_a_step_works_on_the_file_the_previous_step_saved(plan: Callable[[str, str], DirectCall | None]) -> None:
    task = "then read the text on it\n\nResult of the previous step (generation): Saved /runs/a/upscaled.png (scale 3)"
    assert plan("vision", task) == DirectCall("read_text_in_image", {"image": "/runs/a/upscaled.png"})


@pytest.mark.parametrize(
    ("task", "wants_the_text"),
    [
        ("what does the sign say? /tmp/x/sign.png", True),
        ("transcribe memo.wav please", True),
        ("whats my gate?? boarding.png", False),
        ("what did she say about the budget in memo.wav?", False),
        ("Good evening. Please, what is written on this picture? menu.jpg", True),
        ("What's on this receipt, and did they charge me for bread? scan.png", True),
    ],
)
def test_asking_what_something_says_wants_the_text_itself(task: str, wants_the_text: bool) -> None:
    assert asks_for_output(task) is wants_the_text


@pytest.mark.parametrize(
    ("specialist", "task", "expected"),
    [
        (
            "language",
            "which language is this: Ich habe meinen Schlüssel verloren",
            DirectCall("detect_language", {"text": "Ich habe meinen Schlüssel verloren"}),
        ),
        (  # the previous step's file is a table: no audio tool takes it, so its answer is what is read aloud
            "audio",
            "read it aloud\n\nResult of the previous step (research): 21.5 (mean of temp over 9 rows in /d/w.csv)",
            DirectCall("synthesize_speech", {"text": "21.5 (mean of temp over 9 rows in /d/w.csv)"}),
        ),
    ],
)
def test_a_passage_after_a_colon_or_from_the_previous_step(
    plan: Callable[[str, str], DirectCall | None], specialist: str, task: str, expected: DirectCall
) -> None:
    assert plan(specialist, task) == expected


def test_a_question_about_a_recording_is_not_answered_by_a_tool_that_makes_a_new_file(embed: Embedder) -> None:
    tools = [tool for tool in SPECIALISTS["audio"].tool_factories if tool.name != "classify_audio"]
    planned = plan_direct_call("what were the directions in route.wav", tools, embed)
    assert planned == DirectCall("transcribe_speech", {"audio": "route.wav"})


def test_a_question_about_a_table_goes_to_the_tool_that_reads_the_question(embed: Embedder) -> None:
    planned = plan_direct_call("what's the average age in staff.xlsx", SPECIALISTS["research"].tool_factories, embed)
    assert planned == DirectCall(
        "answer_table_question", {"path": "staff.xlsx", "question": "what's the average age in staff.xlsx"}
    )


def test_answering_what_the_previous_step_found_asks_that_question(embed: Embedder) -> None:
    task = f"answer it using weather.csv\n\n{PREVIOUS_RESULT} (audio): Which city was the hottest?"
    planned = plan_direct_call(task, SPECIALISTS["research"].tool_factories, embed)
    assert planned == DirectCall(
        "answer_table_question", {"path": "weather.csv", "question": "Which city was the hottest?"}
    )


def test_a_receipt_question_reads_the_text_and_a_photo_question_classifies(embed: Embedder) -> None:
    tools = [
        tool for tool in SPECIALISTS["vision"].tool_factories if tool.name in ("read_text_in_image", "classify_image")
    ]
    assert plan_direct_call("what's the total on cafe.png?", tools, embed) == DirectCall(
        "read_text_in_image", {"image": "cafe.png"}
    )
    assert plan_direct_call("what animal is in pet.jpg?", tools, embed) == DirectCall(
        "classify_image", {"image": "pet.jpg"}
    )


def test_of_several_text_files_the_passage_is_the_one_picked_by_its_place() -> None:
    request = "I have two files, mon.txt and tue.txt. Summarize the first one."
    assert passage(request) == "mon.txt"
    assert passage(f'no sorry, i meant the second one{EARLIER_REQUEST} "{request}"') == "tue.txt"


def test_two_quoted_passages_are_left_to_the_model(embed: Embedder) -> None:
    task = "are 'I love hiking in the hills' and 'Stocks fell sharply today' about the same thing?"
    assert plan_direct_call(task, SPECIALISTS["language"].tool_factories, embed) is None
