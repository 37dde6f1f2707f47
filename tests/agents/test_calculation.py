"""Steps that ask for arithmetic: the model writes an expression under the arithmetic grammar, `calculate`
works it out in a real smolagents loop, and the answer states the expression and its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from smolagents import CodeAgent

from smolcrew.agents.calculation import CALCULATION_GRAMMAR, asks_calculation, calculation_messages
from smolcrew.agents.dispatch import EARLIER_RESULT, NOW, PREVIOUS_RESULT, tool_examples
from smolcrew.agents.specialist_model import SpecialistModel, specialist_model
from smolcrew.agents.specialists import SPECIALISTS
from smolcrew.tools.arithmetic import Calculate
from tests.agents.grammar_matcher import accepts
from tests.agents.test_specialist_model import CountRows, GrammarScripted


def _previous(own: str, found: str) -> str:
    return f"{own}\n\n{PREVIOUS_RESULT} (vision): {found}"


@pytest.mark.parametrize(
    ("task", "after_output", "expected"),
    [
        ("we were 4 at dinner and the bill came to 86.40, how much does each of us pay?", False, True),
        ("Convert 98.6 Fahrenheit to Celsius", False, True),
        ("what is 17*23+5?", False, True),
        (_previous("work out a 10% discount on it", "The total is 32.11."), False, True),
        ("write a haiku about autumn", False, False),
        ("how many words are in 'I have 3 cats and 2 dogs'", False, False),  # a passage: a text tool's job
        ("summarize the meeting notes", False, False),
        ("if we split it evenly between the two benches, how much is each?", True, True),
        ("what's the total on the receipt?", True, False),  # read off the output, not calculated
        ("what day is the budget review?", True, False),
        ("how much tax did I pay at the store?", True, False),  # the receipt says it
        # A follow-up in a conversation: the numbers are in the earlier result it points at, quoted.
        (f'now double it{EARLIER_RESULT} "245 * 12 = 2940"', False, True),
        (f'and subtract 80 from that{EARLIER_RESULT} "5880"', False, True),
        (f'add a title to it{EARLIER_RESULT} "In 2020 sales rose 5%"', False, False),
    ],
)
def test_a_calculation_needs_numbers_and_an_operation(task: str, after_output: bool, expected: bool) -> None:
    assert asks_calculation(task, after_output=after_output) is expected


def test_the_arithmetic_grammar_wants_an_operation_not_a_result() -> None:
    assert accepts(CALCULATION_GRAMMAR, "86.40 / 4")
    assert accepts(CALCULATION_GRAMMAR, "(98.6 - 32) * 5 / 9")
    assert not accepts(CALCULATION_GRAMMAR, "21.6")  # the model's own result: what it gets wrong
    assert not accepts(CALCULATION_GRAMMAR, "86.40 / four")


def test_the_prompt_shows_the_request_and_the_facts_last() -> None:
    messages = calculation_messages(_previous("take 10% off", "The total is 32.11."), "Total 32.11")
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    last = messages[-1]["content"][0]["text"]
    assert last.startswith("Question: take 10% off") and "Total 32.11" in last and "The total is 32.11." in last


def test_in_a_conversation_the_facts_are_the_stated_ones_newest_first_and_the_result_pointed_at() -> None:
    context = "What the user told you in this conversation:\n- the budget is 4,000\n- the budget went up to 5,000"
    task = f'{context}\nThe last turns:\nUser: hi{NOW}what\'s 15% of it?{EARLIER_RESULT} "Got it: 5,000."'
    last = calculation_messages(task)[-1]["content"][0]["text"]
    facts = "Got it: 5,000.\nthe budget went up to 5,000\nthe budget is 4,000"
    assert last == f"Question: what's 15% of it?\nFacts: {facts}"


def test_earlier_answers_with_numbers_are_facts_too() -> None:
    context = (
        "What the user told you in this conversation:\n- fyi our target headcount is 45\nThe last turns:\n"
        "User: in report.pdf, how many people are on the team?\nAssistant: 38 people are on the team.\n"
        "User: thanks\nAssistant: You're welcome!"
    )
    last = calculation_messages(f"{context}{NOW}how many more people do we need to hire?")[-1]["content"][0]["text"]
    assert last.endswith("Facts: fyi our target headcount is 45\n38 people are on the team.")  # no "welcome"
    own = calculation_messages(f"{context}{NOW}split 240 between 3 people")[-1]["content"][0]["text"]
    assert "38 people" not in own  # a request with its own numbers: the earlier answers would only mislead
    pointed = calculation_messages(f'{context}{NOW}and 10% of that?{EARLIER_RESULT} "45 - 38 = 7"')
    assert (
        pointed[-1]["content"][0]["text"]
        == "Question: and 10% of that?\nFacts: 45 - 38 = 7\nfyi our target headcount is 45"
    )


def test_a_follow_up_goes_on_from_the_last_answer() -> None:
    context = (
        "What the user told you in this conversation:\n- our monthly rent is 1,250 dollars\n- we split it evenly\n"
        "The last turns:\nUser: how much is my share of the rent each month?\nAssistant: 1250 / 2 = 625"
    )
    last = calculation_messages(f"{context}{NOW}and my share over a whole year?")[-1]["content"][0]["text"]
    assert last.endswith("Facts: The answer was 625.")  # the split, shown, was worked out again
    named = calculation_messages(f"{context}{NOW}and the rent over a year?")[-1]["content"][0]["text"]
    assert named.endswith("Facts: rent: 1,250\nThe answer was 625.\nour monthly rent is 1,250 dollars")  # named first
    again = calculation_messages(f"{context}{NOW}what is my share over a year?")[-1]["content"][0]["text"]
    assert again.endswith("Facts: we split it evenly\nour monthly rent is 1,250 dollars\nThe answer was 625.")


def test_a_question_that_gives_its_own_figure_is_not_shown_the_earlier_one() -> None:
    context = "The last turns:\nUser: split 240 between 5 people, how much each?\nAssistant: 240 / 5 = 48"
    asked = calculation_messages(f"{context}{NOW}split 240 between 3 people, how much each?")[-1]["content"][0]
    assert asked["text"] == "Question: split 240 between 3 people, how much each?"  # not "between: 5"


def test_the_figures_a_question_names_come_first_and_stand_for_their_text() -> None:
    receipt = f'{NOW}and with a 10% tip on the total, what do I pay?{EARLIER_RESULT} "Soup 5.40 Bagel 3.25 TOTAL 8.65"'
    assert calculation_messages(receipt)[-1]["content"][0]["text"].endswith("Facts: total: 8.65")
    lease = (
        "The last turns:\nUser: how much is the monthly rent?\nAssistant: The monthly rent is 950 euros.\n"
        f"User: and the deposit?\nAssistant: 1900 euros, returned within 30 days.{NOW}so how much rent is that a year?"
    )
    assert "Facts: rent: 950\n" in calculation_messages(lease)[-1]["content"][0]["text"]


def _agent(model: GrammarScripted, *tools: object) -> tuple[CodeAgent, SpecialistModel]:
    steered = specialist_model(model, [*tools, Calculate()], embed=lambda texts: pytest.fail("nothing to rank"))
    assert isinstance(steered, SpecialistModel)
    return CodeAgent(tools=[*tools, Calculate()], model=steered, max_steps=4, verbosity_level=0), steered


def test_a_request_with_numbers_is_worked_out_by_calculate_not_by_the_model() -> None:
    model = GrammarScripted(["86.40 / 4"])
    agent, _ = _agent(model)
    answer = agent.run("we were 4 at dinner and the bill came to 86.40, how much does each of us pay?")
    assert answer == "86.40 / 4 = 21.6"
    assert model.grammars == [CALCULATION_GRAMMAR] and model.call_count == 1
    assert agent.memory.steps[1].code_action == "result = calculate(expression='86.40 / 4')\nresult"


def test_an_operation_on_a_tool_output_is_calculated_from_that_output(tmp_path: Path) -> None:
    table = tmp_path / "benches.csv"
    table.write_text("bench\nnorth\nsouth\n")
    model = GrammarScripted(["2 * 150"])  # after count_rows said 2
    agent, steered = _agent(model, CountRows())
    answer = agent.run(f"count the benches in {table} and work out the cost at 150 each")
    assert answer == "2 * 150 = 300"
    assert steered.direct_calls == 1  # count_rows was called without the model
    asked = model.calls[-1][-1]["content"][0]["text"]
    assert "Facts: 2" in asked  # the expression is written from the tool's output


def test_every_tool_example_names_a_specialist_tool() -> None:
    names = {factory.name for spec in SPECIALISTS.values() for factory in spec.tool_factories}
    assert set(tool_examples()) <= names


def test_a_unit_conversion_is_called_with_pints_factors_not_the_models() -> None:
    from smolcrew.tools.arithmetic import ConvertUnits

    model = GrammarScripted([])  # the model is never asked
    agent, _ = _agent(model, ConvertUnits())
    answer = agent.run("convert 30 miles to km")
    assert answer == "30 miles = 48.28 km" and model.call_count == 0
    assert agent.memory.steps[1].code_action.startswith("result = convert_units(value=30.0, from_unit='miles'")


def test_a_question_on_figures_the_user_stated_is_a_calculation_not_a_recall() -> None:
    stated = ["our monthly rent is 1,250 dollars", "we split it evenly between the two of us"]
    assert asks_calculation("how much is my share of the rent each month?", stated=stated)
    assert asks_calculation(f"- {stated[0]}\n- {stated[1]}{NOW}and my share over a whole year?")  # in a context
    assert not asks_calculation("how much is my share of the rent each month?")  # no figure said: nothing to do
    assert not asks_calculation("how much rent did I say?", stated=stated)  # asks the figure back
    assert not asks_calculation("what is my name?", stated=stated)
    assert not asks_calculation("and we split it evenly between the two of us", stated=stated[:1])  # a new fact
    saving = ["I'm saving up for a bike that costs 840 dollars.", "I can put aside 120 dollars every month."]
    assert asks_calculation("how many months until I can afford the bike?", stated=saving)
    assert not asks_calculation("what did the bike cost again?", stated=saving)
    assert asks_calculation("How old will Priya be in 5 years?", stated=["My sister Priya is 27 years old."])
    assert not asks_calculation("what was the weekly budget again?", stated=["our weekly grocery budget is 150"])
