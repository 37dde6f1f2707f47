"""Grammars that let a small model write only calls a specialist can run.

A specialist's step is constrained (llama.cpp GBNF) to one thought line and a code block that is one of:
- `result = TOOL(key=literal, ...)` then `result`: the model sees the output before it answers;
- `final_answer(...)` with a string, a number, arithmetic, `result` or `result["key"]` (the last output).
TOOL is one of the specialist's own tools, called with its declared keyword arguments, required ones first in
their declared order, each value a literal of the declared type (or `result`, to chain). Invented function
names, positional extras and unknown keywords cannot be produced, so they cannot fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from smolcrew.tools.base import FILE_INPUTS

__all__ = ["FILE_NAME", "Step", "tool_call_grammar"]

_VALUES = r"""
string ::= "\"" strchar{0,600} "\""
strchar ::= [^"\\\n] | "\\" ["\\nt]
integer ::= "-"? [0-9]{1,9}
number ::= "-"? [0-9]{1,9} ("." [0-9]{1,6})?
boolean ::= "True" | "False"
item ::= string | number
array ::= "[" ( item ( ", " item ){0,20} )? "]"
object ::= "{" ( string ": " item ( ", " string ": " item ){0,10} )? "}"
arith ::= term ( " "? [-+*/%] " "? term ){0,12}
term ::= number | "(" arith ")"
quoted-arith ::= "\"" arith "\""
thought ::= [^\n<]{1,200}
"""

FILE_NAME = re.compile(r"\b[\w./-]+\.[A-Za-z][A-Za-z0-9]{1,3}\b(?!\w|\.\w)")
"""A file name with an extension, e.g. `meeting.wav` or `docs/report.pdf`, also at a sentence's end ("of q3.xlsx.")."""

_TYPE_RULES = {
    "string": "string",
    "image": "string",
    "audio": "string",
    "video": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "any": "string | number | array",
}


def _literal(text: str) -> str:
    return json.dumps(text)


def _rule_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_INPUT_RULES = {"expression": "quoted-arith"}
"""Inputs whose value has a shape of its own, by name: `calculate(expression="86.40 / 4")`."""


def _value_rule(spec: Mapping[str, Any], file_rule: str | None = None, key: str = "") -> str:
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    own = file_rule or _INPUT_RULES.get(key)
    alternatives = [own] if own else [_TYPE_RULES.get(kind, "string") for kind in kinds if kind != "null"]
    alternatives.append('"result"')  # the previous step's output, to chain calls
    if spec.get("nullable") or "null" in kinds:
        alternatives.append('"None"')
    return " | ".join(dict.fromkeys(alternatives))


def _arguments(inputs: Mapping[str, Mapping[str, Any]], files: bool = False) -> str:
    """Keyword arguments: the required ones in declared order, then each optional one or not, in order."""

    def one(key: str, spec: Mapping[str, Any], separator: str) -> str:
        rule = _value_rule(spec, "file" if files and key in FILE_INPUTS else None, key)
        return f"{_literal(separator + key + '=')} ( {rule} )"

    required = [(key, spec) for key, spec in inputs.items() if not spec.get("nullable")]
    optional = [(key, spec) for key, spec in inputs.items() if spec.get("nullable")]
    if required:
        parts = [one(key, spec, "" if i == 0 else ", ") for i, (key, spec) in enumerate(required)]
        parts += [f"( {one(key, spec, ', ')} )?" for key, spec in optional]
        return " ".join(parts)
    if not optional:
        return '""'
    starts = [
        " ".join([one(key, spec, ""), *(f"( {one(k, s, ', ')} )?" for k, s in optional[i + 1 :])])
        for i, (key, spec) in enumerate(optional)
    ]
    return "( " + " | ".join(f"( {start} )" for start in starts) + " )?"


Step = Literal["call", "any", "answer", "words"]
"""What a step may be: `call` a tool; `any` call or answer; `answer` with the last output, a key of it, words or
a number; `words` answer in words or a number only (a question about an output must be answered, not echoed)."""

_ANSWERS = {
    "answer": '"final_answer(" ( string | arith | "result" ( "[" string "]" )? ) ")"',
    "words": '"final_answer(" ( string | arith ) ")"',
}


def tool_call_grammar(tools: Iterable[Any], step: Step = "any", files: Sequence[str] = ()) -> str:
    """The GBNF of one step for an agent with these tools (smolagents `Tool`s; `final_answer` is skipped).

    With `files` (the paths the task names), a file input (`FILE_INPUTS`) takes one of those paths, written
    exactly, or `result`: a small model otherwise drops a leading slash or shortens the name."""
    bodies = {"call": "call-step", "any": "call-step | answer", "answer": "answer", "words": "answer"}
    lines = [
        'root ::= "Thought: " thought "\\n<code>\\n" body "\\n</code>"',
        f"body ::= {bodies[step]}",
        f"answer ::= {_ANSWERS['words' if step == 'words' else 'answer']}",
    ]
    calls: list[str] = []
    for tool in tools:
        if tool.name == "final_answer":
            continue
        rule = f"call-{_rule_name(tool.name)}"
        calls.append(rule)
        lines.append(f'{rule} ::= {_literal(tool.name + "(")} {_arguments(tool.inputs, bool(files))} ")"')
    if files:
        lines.append("file ::= " + " | ".join(_literal(json.dumps(path)) for path in dict.fromkeys(files)))
    if calls:
        lines.append(f'call-step ::= "result = " ( {" | ".join(calls)} ) "\\nresult"')
    else:
        lines[1] = "body ::= answer"
    return "\n".join(lines) + "\n" + _VALUES.strip() + "\n"
