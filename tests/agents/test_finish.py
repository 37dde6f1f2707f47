"""What a specialist's answer is written from: the tool's output, read as a literal, and its readable part."""

from __future__ import annotations

from smolcrew.agents.finish import (
    computed,
    counted_answer,
    language_answer,
    output_text,
    per_file_text,
    priced_answer,
    saved_file,
    saved_summary,
    sub_questions,
    text_key,
    tool_output,
)


def test_an_observation_is_read_as_a_literal_never_run() -> None:
    observation = "Execution logs:\nLast output from code snippet:\n{'text': 'TOTAL 12.70', 'words': [1, 2]}"
    assert tool_output(observation) == {"text": "TOTAL 12.70", "words": [1, 2]}
    hostile = "Execution logs:\nLast output from code snippet:\n__import__('os').system('true')"
    assert tool_output(hostile) == "__import__('os').system('true')"  # not a literal: kept as text


def test_the_model_is_shown_the_text_the_passages_and_a_computed_answer() -> None:
    pdf = {"answer": None, "sources": [{"page": 1, "chunk": "The survey had 42 respondents."}], "model": None}
    assert output_text(pdf) == "The survey had 42 respondents."  # no "answer: None" for the model to copy
    table = {"answer": 4, "answer_text": "4 (count of 4 rows where department == Engineering)", "rows": []}
    assert output_text(table).startswith("4 (count of 4 rows") and text_key(table) == "answer_text"
    assert output_text({"label": "cat", "score": 0.9}) == "{'label': 'cat', 'score': 0.9}"


def test_a_saved_file_is_reported_with_its_plain_facts() -> None:
    output = {"path": "/runs/a/up.png", "width": 172, "height": 88, "model": "lanczos", "boxes": [[1, 2]]}
    assert saved_file(output) == "/runs/a/up.png"
    assert saved_summary(output) == "Saved /runs/a/up.png (width 172, height 88)"
    assert saved_file({"text": "no file"}) is None


def test_the_cheapest_or_dearest_item_of_a_price_list_is_worked_out() -> None:
    menu = {"text": "LUNCH MENU\nTomato soup      6.00\nVeggie burger   11.50\nApple pie        5.50\nTOTAL 23.00"}
    assert priced_answer("what's the cheapest thing on it?", menu) == "Apple pie (5.50), the lowest price listed"
    assert priced_answer("which dish is the most expensive", menu) == "Veggie burger (11.50), the highest price listed"
    assert priced_answer("what is the total?", menu) is None  # not a cheapest / dearest question
    assert priced_answer("the cheapest?", {"text": "just one line 4.00"}) is None  # no list to pick from
    assert priced_answer("how much was the apple pie on it?", menu) == "Apple pie: 5.50"  # one item's line
    assert priced_answer("what did the soup cost?", menu) == "Tomato soup: 6.00"
    assert priced_answer("how much was the coffee?", menu) is None  # not listed
    assert priced_answer("how much is a burger and a pie?", menu) is None  # two items: the model answers
    joined = '"CORNER CAFE Latte 3.80 Bagel 2.50 Club sandwich 7.90 TOTAL 14.20"'  # lines run together
    assert priced_answer("and the cheapest thing on it?", joined) == "Bagel (2.50), the lowest price listed"
    assert priced_answer("how much was the club sandwich?", joined) == "Club sandwich: 7.90"


def test_a_how_many_question_takes_the_count_of_that_name() -> None:
    counts = {"words": 7, "characters": 30, "characters_without_spaces": 24, "sentences": 1}
    assert counted_answer("how many words are in this sentence: 'we will meet at the old bridge'", counts) == "7 words"
    assert counted_answer("How many sentences does it have?", counts) == "1 sentences"
    assert counted_answer("how many people came?", counts) is None
    assert counted_answer("how many words?", "seven") is None


def test_a_question_that_asks_two_things_is_asked_as_two() -> None:
    assert sub_questions("poster.png - what day is it on and where?") == [
        "poster.png - what day is it on?",
        "where is it?",
    ]
    assert sub_questions("which city, and how hot was it?") == ["which city?", "how hot was it?"]
    assert sub_questions("what time does it open and close?") == ["what time does it open and close?"]
    assert sub_questions("what is the total?") == ["what is the total?"]


def test_one_call_on_each_file_is_answered_a_line_per_file() -> None:
    each = {"a.png": {"text": "Room\n204", "words": []}, "b.png": {"text": "Dentist"}}
    assert per_file_text(each) == "a.png: Room 204\nb.png: Dentist"
    assert per_file_text({"text": "Room 204", "words": []}) is None  # one output
    assert per_file_text({"a.png": {"text": "Room"}}) is None  # one file


def test_a_calculation_the_table_tool_already_did_is_not_done_again() -> None:
    mean = {"answer": 84.25, "answer_text": "84.25 (mean of english over all 4 rows)", "operation": "mean"}
    assert computed("and what's the average English score in that file?", mean)
    assert not computed("what is 10% of the average score?", mean)  # more than the mean
    assert not computed("what's the total?", mean)  # another operation
    assert not computed("what's the average?", {"text": "84.25"})  # no table answer
    ranked = {"answer": "Riverside", "answer_text": "Riverside (sum of revenue 45000, the highest)", "operation": "max"}
    assert computed("Which branch contributes the largest share of that total?", ranked)  # named: nothing to work out
    assert not computed("what share of the total is the largest branch?", ranked)


def test_the_language_a_detector_named_is_said_plainly_when_that_is_what_is_asked() -> None:
    found = {"language": "sv", "name": "Swedish", "confidence": 0.99, "candidates": [], "model": "lingua"}
    assert (
        language_answer("OOPS, I MEANT THIS: 'JAG SKULLE VILJA HA EN KOPP KAFFE, TACK.'", found)
        == "It is Swedish (sv)."
    )
    assert language_answer("which language is 'tack så mycket'?", found) == "It is Swedish (sv)."
    assert language_answer("how sure is it?", found) is None  # another question on the output: the model's
    assert language_answer("I meant this one", {"text": "hej"}) is None
