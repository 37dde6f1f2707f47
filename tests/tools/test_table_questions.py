"""answer_table_question: plain questions about a table answered without a model, or refused with a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smolagents import Tool

from smolcrew.errors import ToolInputError
from smolcrew.tools.table_question_parser import SYNONYMS, singular, words
from smolcrew.tools.table_questions import LIST_LIMIT, AnswerTableQuestion, answer_question
from smolcrew.tools.tables import load_table

TABLES = {
    "staff": "name,department,salary,age,start_year\n"
    "Eva,Engineering,91000,41,2015\nTom,Sales,52000,29,2021\nAna,Sales,61000,35,2019\n"
    "Raj,Engineering,78000,50,2012\nLi,Marketing,47000,24,2023\nSofia,Customer Support,39000,31,2020\n"
    "Mia,Sales,58000,27,2022\n",
    "inventory": "item,category,in_stock,unit_price\n"
    "Stapler,Office,3,12.5\nPrinter paper,Office,40,4.0\nToner cartridge,Office,2,60.0\n"
    "Desk lamp,Furniture,7,25.0\nOffice chair,Furniture,12,89.0\nWhiteboard marker,Office,25,1.5\n",
    "sales": "region,rep,product,units,revenue\n"
    "North,Ana,Widget,10,1000\nNorth,Ben,Gadget,5,1250\nSouth,Ana,Widget,7,700\nSouth,Cal,Gadget,2,500\n"
    "East,Ben,Widget,20,2000\nEast,Cal,Gizmo,1,300\nNorth,Ben,Gizmo,4,1200\n",
    "weather": "date,city,temp_c,rain_mm\n"
    "2024-01-01,Oslo,-3,2.5\n2024-01-01,Seville,17,0\n2024-01-02,Oslo,-5,10.0\n"
    "2024-01-02,Seville,19,0.5\n2024-01-03,Oslo,1,4.0\n2024-01-03,Seville,15,0\n",
    "expenses": "date,category,description,amount\n"
    "2024-02-01,Supplies,Printer paper,30\n2024-02-03,Travel,Train ticket,120\n2024-02-10,Supplies,Printer paper,25\n"
    "2024-03-01,Supplies,Pens,8\n2024-03-05,Food,Team lunch,95\n2023-12-20,Travel,Taxi,40\n",
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each table as a CSV; the inventory only as an Excel workbook (its CSV twin is `inventory_csv`)."""
    folder = tmp_path_factory.mktemp("tables")
    paths = {}
    for name, text in TABLES.items():
        (folder / f"{name}.csv").write_text(text)
        paths[name] = str(folder / f"{name}.csv")
    pytest.importorskip("openpyxl")
    load_table(paths["inventory"]).to_excel(folder / "inventory.xlsx", index=False)
    paths["inventory_csv"], paths["inventory"] = paths["inventory"], str(folder / "inventory.xlsx")
    return paths


def ask(tables: dict[str, str], table: str, question: str) -> dict[str, Any]:
    return AnswerTableQuestion()(path=tables[table], question=question)


ANSWERS = [
    # argmax / argmin over rows, through synonyms (earns, paid, youngest, cheapest, expensive, hottest)
    ("staff", "Who earns the most?", "Eva", "max"),
    ("staff", "Who is the highest-paid employee?", "Eva", "max"),
    ("staff", "Who is the youngest person on the team?", "Li", "min"),
    ("inventory", "What is the cheapest item?", "Whiteboard marker", "min"),
    ("inventory", "Which item is the most expensive?", "Office chair", "max"),
    ("weather", "Which city was the hottest?", "Seville", "max"),
    # "what is the highest X": the value itself
    ("staff", "What is the highest salary?", 91000, "max"),
    ("weather", "What was the coldest temperature in Oslo?", -5, "min"),
    ("expenses", "What is the largest expense?", 120, "max"),
    # sum, with multi-word values, "spend"/"spent", years in a date column, negation, several values
    ("expenses", "How much did we spend on printer paper?", 55, "sum"),
    ("expenses", "How much was spent on travel?", 160, "sum"),
    ("expenses", "How much did we spend in 2024?", 278, "sum"),
    ("expenses", "How much did we spend on supplies other than printer paper?", 8, "sum"),
    ("expenses", "What is the total spent on travel and food?", 255, "sum"),
    ("sales", "What was the total revenue in the North region?", 3450, "sum"),
    ("weather", "How much rain fell in Oslo in total?", 16.5, "sum"),
    ("staff", "Total salary of staff aged 30 or over", 269000, "sum"),
    # "how many <quantity column>": a sum; "how many <people/items>": a count of rows
    ("sales", "How many units did North sell?", 19, "sum"),
    ("sales", "How many widgets were sold in East?", 20, "sum"),
    ("inventory", "How many office chairs are in stock?", 12, "sum"),
    ("staff", "How many employees earn more than 50,000?", 5, "count"),
    ("staff", "How many people work in customer support?", 1, "count"),
    ("staff", "How many employees are not in Sales?", 4, "count"),
    ("staff", "How many staff started after 2020?", 3, "count"),
    ("inventory", "How many items have fewer than 5 in stock?", 2, "count"),
    ("weather", "On how many days was there more than 1 mm of rain?", 3, "count"),
    ("weather", "How many days was it warmer than 10 degrees?", 3, "count"),
    ("expenses", "How many expenses were over 50?", 2, "count"),
    ("staff", "How many different departments are there?", 4, "count_distinct"),
    ("sales", "How many products are there?", 3, "count_distinct"),
    ("staff", "How many different ages are there?", 7, "count_distinct"),
    # mean
    ("staff", "What is the average salary in Sales?", 57000, "mean"),
    ("staff", "What is the typical salary in engineering?", 84500, "mean"),
    ("weather", "What is the mean temperature in Seville?", 17, "mean"),
    ("staff", "Average age of staff between 25 and 45", 32.6, "mean"),
    ("staff", "Average salary of people under 30", 52333.333333, "mean"),  # "under 30" can only be an age
    # group by a named text column, then the group with the highest / lowest total, mean or count
    ("sales", "Which region sold the most units?", "East", "max"),
    ("sales", "Which region had the fewest units sold?", "South", "min"),
    ("inventory", "Which item do we have the fewest of?", "Toner cartridge", "min"),  # of in_stock, not unit_price
    ("sales", "Which product brought in the highest revenue?", "Widget", "max"),
    ("sales", "Which rep sold the most?", "Ben", "max"),
    ("staff", "Which department has the most staff?", "Sales", "max"),
    ("staff", "Which department pays the highest average salary?", "Engineering", "max"),
    ("weather", "Which city had the most rain?", "Oslo", "max"),
    # lists and lookups
    ("inventory", "Which items have fewer than 5 in stock?", ["Stapler", "Toner cartridge"], "list"),
    ("inventory", "List the items with at least 20 in stock", ["Printer paper", "Whiteboard marker"], "list"),
    ("staff", "Which employees earn less than 50k?", ["Li", "Sofia"], "list"),
    ("staff", "Who are the top 2 earners?", ["Eva", "Raj"], "top"),
    ("sales", "What are the top 2 regions by revenue?", ["North", "East"], "top"),
    ("staff", "What is the salary of the oldest employee?", 78000, "lookup"),
    ("staff", "What is Raj's salary?", 78000, "lookup"),
    ("staff", "How old is Tom?", 29, "lookup"),
    ("inventory", "What is the unit price of printer paper?", 4, "lookup"),
    ("weather", "What was the temperature in Oslo on 2024-01-02?", -5, "lookup"),
    # per group, and the columns
    ("sales", "Total revenue by region", {"East": 2300, "North": 3450, "South": 1200}, "sum"),
    ("sales", "what's the total revenue, just the north ones", 3450, "sum"),  # a narrowed request (a chat's)
    ("sales", "Which region contributes the largest share of the revenue?", "North", "max"),
    ("inventory", "What columns does the sheet have?", ["item", "category", "in_stock", "unit_price"], "columns"),
]


@pytest.mark.parametrize(("table", "question", "answer", "operation"), ANSWERS, ids=[a[1] for a in ANSWERS])
def test_answers(tables: dict[str, str], table: str, question: str, answer: Any, operation: str) -> None:
    result = ask(tables, table, question)
    assert (result["answer"], result["operation"]) == (answer, operation), result["answer_text"]
    assert str(answer if not isinstance(answer, (list, dict)) else next(iter(answer))) in result["answer_text"]
    json.dumps(result)


REFUSALS = [
    ("staff", "What is the median salary?", "'median'"),
    ("staff", "Does Eva earn more than Tom?", "no number"),
    ("sales", "How many more units did North sell than South?", "'than'"),
    ("staff", "How many people work in Finance?", "'finance' is neither a column nor a value"),
    ("expenses", "How much did we spend on coffee?", "'coffee' is neither"),
    ("sales", "What is the total revenue for Antarctica?", "'antarctica'"),
    ("sales", "Which region has the most returns?", "returns is no column"),
    ("staff", "Who is the most popular employee?", "popular is no column"),
    ("expenses", "How much did we spend in March?", "'march'"),
    ("staff", "What is the average?", "does not say which column to take the mean of"),
    ("weather", "How many rainy days were there in Oslo?", "'rainy days' needs a number"),
    ("staff", "What's the weather like?", "names no operation, column or value"),
    ("weather", "How many days were below freezing?", "no number"),
    ("staff", "Which employees earn more than the average?", "no number"),
    ("inventory", "How many items are under 20?", "does not say of which column"),
    ("sales", "Compare units and revenue for the North", "'compare'"),
    ("sales", "What is the total revenue minus costs?", "'minus'"),
    ("sales", "Which region grew the most?", "'most' does not say of which column"),
    ("staff", "What are the salary and age of Eva?", "several numeric columns"),
    ("weather", "How many days had 3 storms?", "the number 3 is tied to no column"),
]


@pytest.mark.parametrize(("table", "question", "message"), REFUSALS, ids=[r[1] for r in REFUSALS])
def test_refuses_what_it_cannot_read(tables: dict[str, str], table: str, question: str, message: str) -> None:
    with pytest.raises(ToolInputError, match="cannot answer this from the table") as caught:
        ask(tables, table, question)
    text = str(caught.value)
    assert message in text and "query_table" in text and "describe_table" in text
    for column in load_table(tables[table]).columns:
        assert column in text  # the message names every column


def test_two_numeric_filters_each_find_their_column(tables: dict[str, str]) -> None:
    result = ask(tables, "inventory", "How many items cost under 10 and have under 50 in stock?")
    assert result["answer"] == 2  # printer paper and the markers
    assert result["where"] == [
        {"column": "unit_price", "op": "<", "value": 10},
        {"column": "in_stock", "op": "<", "value": 50},
    ]


def test_values_become_filters(tables: dict[str, str]) -> None:
    result = ask(tables, "expenses", "How much did we spend on supplies other than printer paper?")
    assert result["where"] == [
        {"column": "category", "op": "==", "value": "Supplies"},
        {"column": "description", "op": "!=", "value": "Printer paper"},
    ]
    both = ask(tables, "expenses", "What is the total spent on travel and food?")
    assert both["where"] == [{"column": "category", "op": "in", "value": ["Travel", "Food"]}]
    assert both["answer_text"] == "255 (sum of amount over 3 rows where category in Travel, Food)"


def test_long_lists_are_cut_for_a_small_model() -> None:
    import pandas as pd

    frame = pd.DataFrame({"part": [f"P{i}" for i in range(120)], "qty": [i % 4 for i in range(120)]})
    result = answer_question(frame, "Which parts have a qty of at least 2?")
    assert result["matched_rows"] == 60 and len(result["answer"]) == LIST_LIMIT and len(result["rows"]) == 10
    assert (
        result["answer"][:2] == ["P2", "P3"]
        and "(part of 60 rows where qty >= 2; the first 50 of 60)" in result["answer_text"]
    )


def test_the_output_says_how_the_answer_was_computed(tables: dict[str, str]) -> None:
    result = ask(tables, "sales", "How many units did the North region sell?")
    keys = {"answer", "answer_text", "operation", "column", "where", "matched_rows", "rows", "columns", "file"}
    assert set(result) == keys
    assert result["answer_text"] == "19 (sum of units over 3 rows where region == North)"
    assert (result["column"], result["matched_rows"], result["file"]) == ("units", 3, tables["sales"])
    assert result["where"] == [{"column": "region", "op": "==", "value": "North"}]
    assert [row["product"] for row in result["rows"]] == ["Widget", "Gadget", "Gizmo"]
    assert result["columns"] == ["region", "rep", "product", "units", "revenue"]


def test_highest_row_gives_the_name_and_the_value(tables: dict[str, str]) -> None:
    result = ask(tables, "staff", "Who earns the most?")
    assert (result["answer"], result["value"], result["column"]) == ("Eva", 91000, "salary")
    assert result["answer_text"] == "Eva (salary 91000, the highest; all 7 rows)"
    assert result["rows"] == [
        {"name": "Eva", "department": "Engineering", "salary": 91000, "age": 41, "start_year": 2015}
    ]
    grouped = ask(tables, "sales", "Which region sold the most units?")
    assert (grouped["answer"], grouped["value"], grouped["by"], grouped["aggregate"]) == ("East", 21, "region", "sum")
    assert "sum of units 21, the highest of 3 region values" in grouped["answer_text"]


def test_groups_by_count_or_total_and_names_ties(tables: dict[str, str]) -> None:
    result = ask(tables, "expenses", "Which category has the fewest entries?")
    assert (result["answer"], result["value"], result["aggregate"]) == ("Food", 1, "count")
    least = ask(tables, "sales", "Which rep sold the least revenue?")  # Ana 1700, Cal 800, Ben 4450
    assert (least["answer"], least["value"], least["aggregate"]) == ("Cal", 800, "sum")
    both = answer_question(load_table(tables["sales"]).assign(units=1), "Which region sold the fewest units?")
    assert both["answer"] == "East and South" and both["value"] == 2


def test_excel_and_csv_give_the_same_answers(tables: dict[str, str]) -> None:
    questions = ("Which items have fewer than 5 in stock?", "What is the cheapest item?", "Total stock of office items")
    for question in questions:
        from_excel = ask(tables, "inventory", question)
        from_csv = ask(tables, "inventory_csv", question)
        assert {**from_excel, "file": None} == {**from_csv, "file": None}
    assert ask(tables, "inventory", "Total stock of office items")["answer"] == 70


def test_columns_match_across_case_plurals_units_and_underscores() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"City": ["Lima", "Quito"], "MaxTemp_C": [24.5, 19.0], "Rain (mm)": [1.0, 6.5], "wind_speeds": [3, 9]}
    )
    assert answer_question(frame, "What is the max temp in Lima?")["answer"] == 24.5
    assert answer_question(frame, "Which cities had over 5 mm of rain?")["answer"] == "Quito"
    assert answer_question(frame, "What was the average wind speed?")["answer"] == 6
    assert answer_question(frame, "Where was it warmest?")["answer"] == "Lima"
    assert answer_question(frame, "How many cities are there?")["answer"] == 2
    assert [singular(w) for w in ("cities", "boxes", "units", "status", "sales", "gas")] == [
        "city", "box", "unit", "status", "sale", "gas",
    ]  # fmt: skip
    assert words("unit_price") == ["unit", "price"] and words("MaxTempC") == ["max", "temp", "c"]


@pytest.mark.parametrize(
    ("question", "column", "answer"),
    [
        ("Who earns the least?", "monthly_pay", "b"),
        ("Who had the hottest day?", "temp_f", "b"),
        ("What was the total spent?", "cost_eur", 3),
        ("Who is the oldest?", "age_years", "b"),
        ("What was the total rainfall?", "rain_in", 3),
        ("Who sold the most?", "qty_sold", "b"),
    ],
)
def test_synonyms_point_at_their_columns(question: str, column: str, answer: Any) -> None:
    import pandas as pd

    frame = pd.DataFrame({"who": ["a", "b"], column: [2.0, 1.0] if "least" in question else [1.0, 2.0], "id": [7, 8]})
    assert any(singular(word.strip("?")) in SYNONYMS for word in question.lower().split())
    result = answer_question(frame, question)
    assert (result["column"], result["answer"]) == (column, answer)


def test_empty_question_and_bad_files(tables: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="`question` is empty"):
        ask(tables, "staff", "   ")
    with pytest.raises(ToolInputError, match="no file at"):
        AnswerTableQuestion()(path=str(tmp_path / "missing.csv"), question="How many rows?")
    with pytest.raises(ToolInputError, match="`question` must be string"):
        AnswerTableQuestion()(path=tables["staff"], question=3)


def test_rebuilt_from_its_source_it_answers_the_same(tables: dict[str, str]) -> None:
    original = AnswerTableQuestion()
    rebuilt = Tool.from_dict(json.loads(json.dumps(original.to_dict())))
    question = "Which region sold the most units?"
    assert rebuilt(path=tables["sales"], question=question) == original(path=tables["sales"], question=question)


_WORDS = """how many much what which who is the of in total average most least more than fewer under over at
least between and or not top 3 5 50k 2024 -1 region units revenue North south widget sold sell per by columns median
Antarctica , ? 1,000 0.5 than a an each different highest cheapest hottest older 10 or more rep Ben"""
VOCABULARY = _WORDS.split()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.lists(st.sampled_from(VOCABULARY), max_size=12).map(" ".join), st.text(max_size=40)))
def test_any_question_is_answered_or_refused_with_a_message(tables: dict[str, str], question: str) -> None:
    frame = load_table(tables["sales"])
    try:
        result = answer_question(frame, question)
    except ToolInputError as exc:
        assert "cannot answer this" in str(exc) or "`" in str(exc)
    else:
        json.dumps(result)
        assert {"answer", "answer_text", "operation", "where"} <= set(result)
