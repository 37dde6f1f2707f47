"""The tool-call grammar of every specialist admits the calls its tools take and nothing invented."""

from __future__ import annotations

from typing import Any

import pytest

from smolcrew.agents.grammar import FILE_NAME, tool_call_grammar
from smolcrew.agents.specialists import SPECIALISTS
from tests.agents.grammar_matcher import accepts

_LITERALS = {
    "string": '"photo.png"',
    "image": '"photo.png"',
    "audio": '"memo.wav"',
    "video": '"clip.mp4"',
    "integer": "3",
    "number": "0.5",
    "boolean": "True",
    "array": '["cat", "dog"]',
    "object": '{"city": "Lisbon"}',
    "any": '"some text"',
}


def _literal(spec: dict[str, Any], key: str = "") -> str:
    if key == "expression":
        return '"(86.40 - 6) / 4"'
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    return _LITERALS[next(kind for kind in kinds if kind != "null")]


def _code(body: str) -> str:
    return f"Thought: I do what the task asks.\n<code>\n{body}\n</code>"


def _call(tool: Any, *, optional: bool = False) -> str:
    inputs = tool.inputs.items()
    arguments = [f"{key}={_literal(spec, key)}" for key, spec in inputs if optional or not spec.get("nullable")]
    if optional:  # the grammar wants required arguments first
        required = [a for a, (k, s) in zip(arguments, tool.inputs.items(), strict=True) if not s.get("nullable")]
        arguments = required + [a for a in arguments if a not in required]
    return f"result = {tool.name}({', '.join(arguments)})\nresult"


SPECS = sorted(SPECIALISTS.items())


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[name for name, _ in SPECS])
def test_every_tool_call_is_admitted_with_and_without_its_optional_arguments(name: str, spec: Any) -> None:
    grammar = tool_call_grammar(spec.tool_factories)
    for tool in spec.tool_factories:
        assert accepts(grammar, _code(_call(tool))), f"{tool.name}: required arguments refused"
        assert accepts(grammar, _code(_call(tool, optional=True))), f"{tool.name}: optional arguments refused"


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[name for name, _ in SPECS])
def test_invented_functions_positional_extras_and_unknown_keywords_are_refused(name: str, spec: Any) -> None:
    grammar = tool_call_grammar(spec.tool_factories)
    tool = spec.tool_factories[0]
    first, first_spec = next(iter(tool.inputs.items()))
    assert not accepts(grammar, _code(f"result = invented_tool({first}={_literal(first_spec)})\nresult"))
    assert not accepts(grammar, _code(f"result = {tool.name}({_literal(first_spec)})\nresult"))
    assert not accepts(grammar, _code(f'result = {tool.name}(no_such_argument="x")\nresult'))
    assert not accepts(grammar, _code("import os\nfinal_answer(os.getcwd())"))
    assert not accepts(grammar, "final_answer(42)")  # no thought, no code block


def test_a_file_name_ends_a_sentence_too() -> None:
    assert FILE_NAME.findall("Pull the total of /data/q3_sales.xlsx.") == ["data/q3_sales.xlsx"]
    assert FILE_NAME.findall("e.g. this, version 1.2.3") == []


def test_an_expression_can_only_be_arithmetic() -> None:
    grammar = tool_call_grammar(SPECIALISTS["language"].tool_factories)
    assert accepts(grammar, _code('result = calculate(expression="98.6 * 5 / 9")\nresult'))
    assert not accepts(grammar, _code('result = calculate(expression="__import__(1)")\nresult'))
    assert not accepts(grammar, _code('result = calculate(expression="21.6 dollars")\nresult'))


def test_a_step_kind_narrows_what_may_be_written() -> None:
    tools = SPECIALISTS["audio"].tool_factories
    call = _code('result = transcribe_speech(audio="memo.wav")\nresult')
    words, output, key = (
        _code('final_answer("It is on Thursday.")'),
        _code("final_answer(result)"),
        _code('final_answer(result["text"])'),
    )
    assert accepts(tool_call_grammar(tools, "call"), call)
    assert not accepts(tool_call_grammar(tools, "call"), words)
    assert all(accepts(tool_call_grammar(tools, "any"), text) for text in (call, words, output))
    assert all(accepts(tool_call_grammar(tools, "answer"), text) for text in (words, output, key))
    assert not accepts(tool_call_grammar(tools, "answer"), call)
    assert accepts(tool_call_grammar(tools, "words"), words)
    assert accepts(tool_call_grammar(tools, "words"), _code("final_answer(17*23 + 5)"))
    assert not accepts(tool_call_grammar(tools, "words"), output)


def test_a_string_argument_may_chain_the_previous_output_and_strings_escape_quotes() -> None:
    grammar = tool_call_grammar(SPECIALISTS["audio"].tool_factories)
    assert accepts(grammar, _code("result = synthesize_speech(text=result)\nresult"))
    assert accepts(grammar, _code('result = synthesize_speech(text="She said \\"hi\\"")\nresult'))
    assert not accepts(grammar, _code('result = synthesize_speech(text="unclosed)\nresult'))
