"""The model a specialist thinks with: the crew's model, steered step by step so that a small model cannot
write a call that fails, cannot repeat a failing step, and answers the question it was asked.

Per step (the messages tell which):
1. The first step of a task that names one file that exactly one tool fits is written here, not by the model
   (`plan_direct_call`): `result = TOOL(file=...)` then `result`, so the next step sees the output.
2. Otherwise the model writes it under the tool-call grammar (`tool_call_grammar`): a call of one of the
   specialist's tools, or an answer; a first step about a file must call a tool that takes that kind of file,
   one of the three whose descriptions are nearest the task (a small model favours the first tool listed).
3. After a call that worked, the answer is written from the task and the output (agents.finish): a saved file
   is reported, a requested text returned, a question answered by the model in one line from a short prompt.
4. A step whose request asks for arithmetic (split a bill, a 10% tip on the total a tool read, a conversion)
   calls `calculate` with an expression the model writes under an arithmetic grammar (agents.calculation);
   the answer is then `calculate`'s "EXPRESSION = VALUE".
5. A reply that repeats the code of the step that just failed is asked for again once, with the error, the
   tool's exact signature and an example filled with the task's own file, under a grammar without that tool.
A file argument can only be one of the files the task names, written exactly (`tool_call_grammar(files=...)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from smolcrew.agents.calculation import (
    CALCULATION_GRAMMAR,
    asks_calculation,
    calculation_messages,
    expression_of,
    is_calculation,
)
from smolcrew.agents.dispatch import (
    EARLIER_RESULT,
    DirectCall,
    Embedder,
    asks_for_output,
    asks_question,
    file_kinds,
    files_named,
    nearest_tools,
    plan_direct_call,
    quoted_passage,
    split_previous,
    step_files,
)
from smolcrew.agents.finish import (
    ONE_LINE_GRAMMAR,
    answer_messages,
    computed,
    counted_answer,
    echoes,
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
from smolcrew.agents.grammar import FILE_NAME, Step, tool_call_grammar
from smolcrew.errors import ModelUnavailableError
from smolcrew.tools.arithmetic import conversion_in
from smolcrew.tools.base import input_types

__all__ = ["SpecialistModel", "specialist_model"]

_CODE = "<code>"
_ANSWER_TOKENS = 120
_EXPRESSION_TOKENS = 60
_ERROR = re.compile(r"^\s*(?:Call id: \S+\n)?Error:")


def _role(message: ChatMessage | dict[str, Any]) -> str:
    role = message.role if isinstance(message, ChatMessage) else message.get("role")
    return str(getattr(role, "value", role))


def _text(message: ChatMessage | dict[str, Any]) -> str:
    content = message.content if isinstance(message, ChatMessage) else message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _added(usage: TokenUsage, more: TokenUsage | None) -> TokenUsage:
    if more is None:
        return usage
    return TokenUsage(usage.input_tokens + more.input_tokens, usage.output_tokens + more.output_tokens)


def _code(reply: str) -> str:
    return reply.split(_CODE, 1)[-1].split("</code>", 1)[0].strip()


def _read_off(own: str, output: Any) -> str | None:
    """An answer read off the tool's output, or off the earlier result the request points at ("and the cheapest
    thing on it?": the receipt's lines, whatever the tool made of them); None when neither has it."""
    asked, _, material = own.partition(EARLIER_RESULT)
    found = priced_answer(asked, output) or priced_answer(asked, material) or counted_answer(asked, output)
    return found or language_answer(asked, output)


class SpecialistModel(Model):
    """`model` steered for one specialist with these `tools` (see the module docstring); `embed` picks the
    tool for a direct call (without it, the model always writes the first call)."""

    def __init__(self, model: Model, tools: Iterable[Any], embed: Embedder | None = None) -> None:
        super().__init__(model_id=model.model_id)
        self.model = model
        self.tools = [tool for tool in tools if tool.name != "final_answer"]
        self.embed = embed
        self._grammars: dict[Step, str] = {}
        self.direct_calls = 0
        """Steps written here instead of by the model (see `plan_direct_call`)."""

    def __repr__(self) -> str:
        return f"SpecialistModel({self.model!r}, tools={[tool.name for tool in self.tools]})"

    @property
    def supports_stop_parameter(self) -> bool:
        return self.model.supports_stop_parameter

    def grammar(self, step: Step) -> str:
        if step not in self._grammars:
            self._grammars[step] = tool_call_grammar(self.tools, step)
        return self._grammars[step]

    def plan_step(self, messages: list[ChatMessage | dict[str, Any]]) -> tuple[str, Step]:
        """(the task, what this step may be), read from the agent's messages."""
        users = [_text(m) for m in messages if _role(m) in ("user", "tool-response")]
        task = users[0].removeprefix("New task:").strip() if users else ""
        replies = [_text(m) for m in messages if _role(m) == "assistant"]
        if not replies:
            return task, "call" if self._names_its_input(task) else "any"
        last_reply, last_result = replies[-1], users[-1] if len(users) > 1 else ""
        if "result = " in _code(last_reply) and not _ERROR.match(last_result):
            return task, "answer" if asks_for_output(task) else "words"
        return task, "any"

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        def ask(
            extra: Sequence[ChatMessage | dict[str, Any]] = (),
            step: Step = "any",
            grammar: str | None = None,
        ) -> ChatMessage:
            return self.model.generate(
                [*messages, *extra],
                stop_sequences=stop_sequences,
                response_format=response_format,
                tools_to_call_from=tools_to_call_from,
                grammar=grammar or self.grammar(step),
                **kwargs,
            )

        task, step = self.plan_step(messages)
        first = not any(_role(m) == "assistant" for m in messages)
        if first and self._has("convert_units") and (conversion := conversion_in(split_previous(task)[0])):
            value, source, target = conversion  # "convert 30 miles to km": pint knows the factor, the model not
            call = f"result = convert_units(value={value!r}, from_unit={source!r}, to_unit={target!r})"
            return ChatMessage(
                role=MessageRole.ASSISTANT,
                content=f"Thought: I convert the units.\n{_CODE}\n{call}\nresult\n</code>",
                token_usage=TokenUsage(input_tokens=0, output_tokens=0),
            )
        if first and self._has("calculate") and not files_named(split_previous(task)[0]) and asks_calculation(task):
            calculation = self._calculate(task)
            if calculation is not None:
                return calculation
        if self.embed is not None and first:
            try:
                planned = plan_direct_call(task, self.tools, self.embed)
                reply = planned.reply() if planned is not None else self._on_each_file(task)
            except ModelUnavailableError:
                reply = None  # no embedding model: the model writes the call
            if reply is not None:
                self.direct_calls += 1
                return ChatMessage(
                    role=MessageRole.ASSISTANT,
                    content=reply,
                    token_usage=TokenUsage(input_tokens=0, output_tokens=0),
                )
        if step in ("answer", "words"):
            return self._finish(task, messages)
        named = step_files(task)
        files = [path for path, _ in named]
        if step == "call" and self.embed is not None:
            kinds = {kind for _, kind in named if kind}
            able = [tool for tool in self.tools if file_kinds([tool]) & kinds] or self.tools
            try:
                shortlist = nearest_tools(task, able, self.embed)
            except ModelUnavailableError:
                shortlist = able
            reply = ask(step=step, grammar=tool_call_grammar(shortlist, "call", files))
        else:
            reply = ask(step=step, grammar=tool_call_grammar(self.tools, step, files) if files else None)
        failed = self._failed_code(messages)
        if failed is not None and _code(str(reply.content)) == failed:
            hint = [{"role": "user", "content": [{"type": "text", "text": self._hint(task, failed)}]}]
            others = [tool for tool in self.tools if f"{tool.name}(" not in failed]
            reply = ask(hint, step, grammar=tool_call_grammar(others, step, files))  # the same call cannot come back
        return reply

    def _on_each_file(self, task: str) -> str | None:
        """ "can you read a.png and b.png": the one call each file of the same kind would get alone, every file's
        output kept under its name (the 0.5B read the first file and answered); None when that is not it."""
        own, named = split_previous(task)[0], step_files(task)
        paths = list(dict.fromkeys(path for path, _ in named))
        if len(paths) < 2 or len({kind for _, kind in named}) != 1 or not asks_for_output(own) or self.embed is None:
            return None
        calls: list[DirectCall] = []
        any_file = re.compile("|".join(re.escape(path) for path in paths))
        for path in paths:
            alone = any_file.sub(path.replace("\\", "\\\\"), task)  # the task as if it named this file only
            call = plan_direct_call(alone, self.tools, self.embed)
            if call is None or (calls and call.tool != calls[0].tool):
                return None
            calls.append(call)
        each = ", ".join(
            f"{path.rsplit('/', 1)[-1]!r}: {call.code().splitlines()[0].removeprefix('result = ')}"
            for path, call in zip(paths, calls, strict=True)
        )
        return f"Thought: I call {calls[0].tool} on each file.\n{_CODE}\nresult = {{{each}}}\nresult\n</code>"

    def _names_its_input(self, task: str) -> bool:
        """A file, or a quoted passage that one of the tools takes as `text`: the first step must call a tool."""
        if not self.tools:
            return False
        own = split_previous(task)[0]
        takes_text = any("text" in tool.inputs for tool in self.tools)
        return bool(FILE_NAME.search(own)) or (takes_text and quoted_passage(own) is not None)

    def _finish(self, task: str, messages: list[ChatMessage | dict[str, Any]]) -> ChatMessage:
        """The answer after a call that worked (see agents.finish)."""
        own, previous = split_previous(task)
        observation = next((_text(m) for m in reversed(messages) if _role(m) in ("user", "tool-response")), "")
        output = tool_output(observation)
        usage = TokenUsage(input_tokens=0, output_tokens=0)
        key = text_key(output)
        if (each := per_file_text(output)) is not None:
            code = f"final_answer({each!r})"
        elif saved_file(output) is not None and not asks_question(own):
            code = f"final_answer({saved_summary(output)!r})"
        elif is_calculation(output):
            code = "final_answer(result['text'])"
        elif (
            self._has("calculate")
            and not computed(own, output)
            and asks_calculation(own, after_output=True)
            and (calculation := self._calculate(task, output_text(output)))
        ):
            return calculation
        elif key is not None and (asks_for_output(own) or key == "answer_text"):
            code = f"final_answer(result[{key!r}])"
        elif (read_off := _read_off(own, output)) is not None:
            code = f"final_answer({read_off!r})"
        else:
            answers = []
            for question in sub_questions(own):
                reply = self.model.generate(
                    answer_messages(question, output, previous), grammar=ONE_LINE_GRAMMAR, max_tokens=_ANSWER_TOKENS
                )
                usage = _added(usage, reply.token_usage)
                answers.append(re.sub(r"^\s*(?:answer\s*:\s*)", "", str(reply.content or ""), flags=re.I).strip())
            answer = "; ".join(part for part in answers if part)
            if key is not None and echoes(answer, own):  # "Boil it down to one sentence." said back, not done
                code = f"final_answer(result[{key!r}])"
            else:
                code = f"final_answer({(answer or output_text(output)[:500])!r})"
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=f"Thought: I answer from the tool's output.\n{_CODE}\n{code}\n</code>",
            token_usage=usage,
        )

    def _has(self, tool_name: str) -> bool:
        return any(tool.name == tool_name for tool in self.tools)

    def _calculate(self, task: str, facts: str | None = None) -> ChatMessage | None:
        """The step that works out the arithmetic the task asks for (see agents.calculation), or None when the
        model wrote no expression."""
        reply = self.model.generate(
            calculation_messages(task, facts), grammar=CALCULATION_GRAMMAR, max_tokens=_EXPRESSION_TOKENS
        )
        expression = expression_of(str(reply.content or ""))
        if not expression:
            return None
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=f"Thought: I work out the arithmetic.\n{_CODE}\nresult = calculate(expression={expression!r})"
            "\nresult\n</code>",
            token_usage=reply.token_usage or TokenUsage(input_tokens=0, output_tokens=0),
        )

    def _failed_code(self, messages: list[ChatMessage | dict[str, Any]]) -> str | None:
        """The code of the previous step if it failed, else None."""
        replies = [_text(m) for m in messages if _role(m) == "assistant"]
        users = [_text(m) for m in messages if _role(m) in ("user", "tool-response")]
        if replies and users and _ERROR.match(users[-1]):
            return _code(replies[-1])
        return None

    def _hint(self, task: str, failed: str) -> str:
        named = next((tool for tool in self.tools if f"{tool.name}(" in failed), None)
        found = FILE_NAME.search(task)
        lines = ["That exact code just failed; do not send it again. Change the call or answer from what you have."]
        if named is not None:
            signature = ", ".join(
                f"{key}: {' | '.join(input_types(spec))}{' (optional)' if spec.get('nullable') else ''}"
                for key, spec in named.inputs.items()
            )
            lines.append(f"{named.name} takes: {signature}.")
            first = next(iter(named.inputs), None)
            if found and first:
                lines.append(f'For example: result = {named.name}({first}="{found.group(0)}")')
        return "\n".join(lines)


def specialist_model(model: Model, tools: Iterable[Any], embed: Embedder | None = None) -> Model:
    """The steered model for a specialist with `tools`, where `model` takes grammars (llama.cpp); else `model`
    itself: the scripted, transformers and server backends are used as they are."""
    if not getattr(model, "supports_grammar", False):
        return model
    return SpecialistModel(model, tools, embed)
