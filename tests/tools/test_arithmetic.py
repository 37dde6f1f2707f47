"""`calculate` works arithmetic out exactly and refuses anything else; `count_words` counts."""

from __future__ import annotations

import pytest

from smolcrew.errors import ToolInputError
from smolcrew.tools.arithmetic import Calculate, ConvertUnits, CountWords, conversion_in, plain_number


@pytest.mark.parametrize(
    ("expression", "value", "text"),
    [
        ("86.40 / 4", 21.6, "86.40 / 4 = 21.6"),
        ("(98.6 - 32) * 5 / 9", 37.0, "(98.6 - 32) * 5 / 9 = 37"),
        ("1,250.50 * 2", 2501.0, "1,250.50 * 2 = 2501"),
        ("2 / 3", 0.666667, "2 / 3 = 0.666667"),
        ("round(671.75 * 1.1, 2)", 738.93, "round(671.75 * 1.1, 2) = 738.93"),
    ],
)
def test_calculate_states_the_expression_and_its_value(expression: str, value: float, text: str) -> None:
    result = Calculate()(expression=expression)
    assert result == {"expression": expression, "value": value, "text": text}


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("1 / 0", "divides by zero"),
        ("__import__('os').getcwd()", "cannot work out"),
        ("open('/etc/passwd')", "cannot work out"),
        ("'a' * 3", "not arithmetic"),
        ("2 > 1", "not arithmetic"),
        ("9 ** 9 ** 9", "cannot work out"),  # simpleeval caps powers instead of hanging
        ("", "empty"),
    ],
)
def test_calculate_refuses_what_is_not_safe_arithmetic(expression: str, says: str) -> None:
    with pytest.raises(ToolInputError, match=says):
        Calculate()(expression=expression)


def test_plain_numbers_carry_no_float_noise() -> None:
    assert [plain_number(v) for v in (5.0, 0.1 + 0.2, 738.925, -2.5)] == ["5", "0.3", "738.925", "-2.5"]


def test_count_words_counts_words_characters_and_sentences() -> None:
    counted = CountWords()(text="The quick brown fox jumps over the lazy dog. It's late!")
    assert counted == {"words": 11, "characters": 55, "characters_without_spaces": 45, "sentences": 2}
    with pytest.raises(ToolInputError, match="non-empty"):
        CountWords()(text="   ")


@pytest.mark.parametrize(
    ("request_text", "found"),
    [
        ("convert 30 miles to km", (30.0, "miles", "km")),
        ("sorry, how many km is 1,200 miles?", (1200.0, "miles", "km")),
        ("what is 20 °C in °F", (20.0, "°C", "°F")),
        ("5 kg in lbs please", (5.0, "kg", "lbs")),
        ("do that again for 10.5 km, but to miles this time", (10.5, "km", "miles")),
        ("convert 100 euros to dollars", None),  # a currency needs a rate: calculate's job
        ("I spent 3 days in Rome", None),
        ("translate 2 sentences to French", None),
        ("how many seconds in 3 kg", None),  # units that measure different things
    ],
)
def test_a_unit_conversion_is_found_in_a_request(request_text: str, found: tuple | None) -> None:
    assert conversion_in(request_text) == found


def test_convert_units_uses_exact_factors_and_refuses_nonsense() -> None:
    assert ConvertUnits()(value=30, from_unit="miles", to_unit="km") == {
        "expression": "30 miles in km",
        "value": 48.28,  # 48.28032: a model's "1.60 per mile" says 48
        "text": "30 miles = 48.28 km",
    }
    assert ConvertUnits()(value=98.6, from_unit="fahrenheit", to_unit="celsius")["value"] == 37.0
    assert ConvertUnits()(value=2, from_unit="mm", to_unit="inch")["value"] == 0.07874
    with pytest.raises(ToolInputError, match="different things"):
        ConvertUnits()(value=3, from_unit="kg", to_unit="km")
    with pytest.raises(ToolInputError, match="`to_unit` 'parsecs please' is no unit"):
        ConvertUnits()(value=3, from_unit="km", to_unit="parsecs please")
