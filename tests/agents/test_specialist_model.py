"""The specialist's steered model in a real smolagents loop: direct calls, step grammars, no identical retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from smolagents import CodeAgent
from smolagents.models import ChatMessage

from smolcrew.agents.finish import ONE_LINE_GRAMMAR
from smolcrew.agents.specialist_model import SpecialistModel, specialist_model
from smolcrew.backends import ScriptedModel
from smolcrew.errors import ToolInputError
from smolcrew.tools.base import CheckedTool


class GrammarScripted(ScriptedModel):
    """A scripted model that takes grammars like llama.cpp, and keeps the grammar of each call."""

    supports_grammar = True

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies)
        self.grammars: list[str | None] = []

    def generate(self, messages: list[ChatMessage | dict[str, Any]], *args: Any, **kwargs: Any) -> ChatMessage:
        self.grammars.append(kwargs.pop("grammar", None))
        return super().generate(messages, *args, **kwargs)


class CountRows(CheckedTool):
    name = "count_rows"
    description = "Counts the rows of a CSV table file."
    inputs = {"path": {"type": "string", "description": "The .csv file."}}
    output_type = "integer"

    def forward(self, path: str) -> int:
        if not Path(path).is_file():
            raise ToolInputError(f"no file {path}")
        return len(Path(path).read_text().splitlines()) - 1


def _code(body: str) -> str:
    return f"Thought: I do it.\n<code>\n{body}\n</code>"


def _agent(model: GrammarScripted) -> tuple[CodeAgent, SpecialistModel]:
    tool = CountRows()
    steered = specialist_model(model, [tool], embed=lambda texts: pytest.fail("one tool fits: nothing to rank"))
    assert isinstance(steered, SpecialistModel)
    return CodeAgent(tools=[tool], model=steered, max_steps=4, verbosity_level=0), steered


def test_a_task_naming_a_file_gets_a_direct_call_and_a_question_is_answered_in_words(tmp_path: Path) -> None:
    table = tmp_path / "sales.csv"
    table.write_text("city,sales\nLisbon,120\nPorto,95\nFaro,40\n")
    model = GrammarScripted(["There are 3 cities."])
    agent, steered = _agent(model)
    answer = agent.run(f"How many cities are in {table}?")
    assert answer == "There are 3 cities."
    assert steered.direct_calls == 1 and model.call_count == 1  # the first step was written without the model
    first = agent.memory.steps[1]
    assert first.code_action == f"result = count_rows(path={str(table)!r})\nresult"
    assert "3" in str(first.observations)
    assert model.grammars == [ONE_LINE_GRAMMAR]  # a question: answered in a line, not echoed
    prompt = model.calls[-1]  # the answer step sees the task and the output, not the whole agent prompt
    assert [message["role"] for message in prompt] == ["system", "user"]
    assert f"How many cities are in {table}?" in str(prompt[1]["content"]) and "3" in str(prompt[1]["content"])


class ReadNote(CheckedTool):
    name = "read_note"
    description = "Reads the text in an image of a note."
    inputs = {"image": {"type": "string", "description": "The image file."}}
    output_type = "object"

    def forward(self, image: str) -> dict[str, str]:
        return {"text": Path(image).read_text()}


def test_the_same_request_of_several_files_calls_the_tool_on_each(tmp_path: Path) -> None:
    notes = {"note_a.png": "Meeting moved to room 204", "note_b.png": "Dentist on\nTuesday at 10:15"}
    for name, text in notes.items():
        (tmp_path / name).write_text(text)
    model = GrammarScripted([])
    tool = ReadNote()
    steered = specialist_model(model, [tool], embed=lambda texts: pytest.fail("one tool fits: nothing to rank"))
    agent = CodeAgent(tools=[tool], model=steered, max_steps=4, verbosity_level=0)
    a, b = (tmp_path / name for name in notes)
    assert agent.run(f"can u read {a} and {b} for me") == (
        "note_a.png: Meeting moved to room 204\nnote_b.png: Dentist on Tuesday at 10:15"
    )
    assert model.call_count == 0 and isinstance(steered, SpecialistModel) and steered.direct_calls == 1
    assert agent.memory.steps[1].code_action.startswith(f"result = {{'note_a.png': read_note(image={str(a)!r}), ")
    assert steered._on_each_file(f"what is the room number in {a} or {b}?") is None  # a question: the model's


def test_an_answer_that_says_the_request_back_is_replaced_by_the_output(tmp_path: Path) -> None:
    note = tmp_path / "note.png"
    note.write_text("Meeting moved to room 204")
    request = f"Boil {note} down to one line for me."
    model = GrammarScripted([request])  # the 0.5B copies a request it cannot read as a question
    tool = ReadNote()
    steered = specialist_model(model, [tool], embed=lambda texts: pytest.fail("one tool fits: nothing to rank"))
    agent = CodeAgent(tools=[tool], model=steered, max_steps=4, verbosity_level=0)
    assert agent.run(request) == "Meeting moved to room 204"


def test_without_a_file_the_model_writes_the_step_under_the_grammar(tmp_path: Path) -> None:
    model = GrammarScripted([_code("final_answer(17*23+5)")])
    agent, steered = _agent(model)
    assert agent.run("What is 17*23+5?") == 396
    assert steered.direct_calls == 0
    assert model.grammars == [steered.grammar("any")]


def test_a_reply_repeating_the_failed_code_is_asked_again_with_the_signature(tmp_path: Path) -> None:
    failing = _code('result = count_rows(path="nowhere.csv")\nresult')
    model = GrammarScripted([failing, failing, _code('final_answer("I could not find the table.")')])
    agent, _ = _agent(model)
    assert agent.run("Count the rows of the sales table") == "I could not find the table."
    assert model.call_count == 3
    hint = str(model.calls[-1][-1]["content"])
    assert "That exact code just failed" in hint and "count_rows takes: path: string" in hint
    assert '"count_rows("' in (model.grammars[1] or "")
    assert '"count_rows("' not in (model.grammars[2] or "")  # asked again, the same call cannot come back


def test_models_that_take_no_grammar_are_used_as_they_are() -> None:
    scripted = ScriptedModel([_code("final_answer(1)")])
    assert specialist_model(scripted, [CountRows()]) is scripted


def test_a_first_call_the_model_writes_is_one_of_the_three_nearest_tools() -> None:
    def table_tool(index: int) -> CheckedTool:
        key = "text" if index == 4 else "path"  # tool 4 takes no file: never a first call on sales.csv
        namespace = {
            "name": f"table_tool_{index}",
            "description": f"Table job number {index}.",
            "inputs": {key: {"type": "string", "description": "The .csv file, or a text."}},
            "output_type": "string",
            "forward": (lambda self, text: text) if index == 4 else (lambda self, path: path),
        }
        return type(f"TableTool{index}", (CheckedTool,), namespace)()

    nearness = [0.1, 0.5, 0.88, 0.9, 0.99]  # cosine of each tool to the task: 3 and 2 too close to dispatch

    def embed(texts: list[str]) -> np.ndarray:
        rows = [[1.0, 0.0]] + [[nearness[int(t.split(":")[0][-1])], 0.0] for t in texts[1:]]
        return np.array(rows)

    model = GrammarScripted([_code('result = table_tool_3(path="sales.csv")\nresult')])
    steered = SpecialistModel(model, [table_tool(i) for i in range(5)], embed)
    steered.generate([{"role": "system", "content": "s"}, {"role": "user", "content": "New task:\nSum sales.csv"}])
    assert steered.direct_calls == 0
    grammar = model.grammars[0] or ""
    assert all(f'"table_tool_{i}("' in grammar for i in (1, 2, 3))
    assert '"table_tool_0("' not in grammar and '"table_tool_4("' not in grammar


class Enlarge(CheckedTool):
    name = "enlarge"
    description = "Enlarges an image file and saves the result."
    inputs = {
        "image": {"type": "string", "description": "The image file."},
        "scale": {"type": "integer", "description": "How many times larger.", "nullable": True},
    }
    output_type = "object"

    def forward(self, image: str, scale: int | None = None) -> dict[str, Any]:
        return {"path": str(Path(image).with_name("big.png")), "scale": scale or 2, "model": "lanczos"}


def test_a_saved_file_is_reported_without_asking_the_model(tmp_path: Path) -> None:
    image = tmp_path / "logo.png"
    image.write_bytes(b"png")
    model = GrammarScripted([])
    tool = Enlarge()
    steered = specialist_model(model, [tool], embed=lambda texts: pytest.fail("one tool fits: nothing to rank"))
    agent = CodeAgent(tools=[tool], model=steered, max_steps=3, verbosity_level=0)
    answer = agent.run(f"make {image} three times as big")
    assert answer == f"Saved {tmp_path / 'big.png'} (scale 3)"  # the scale came from the request
    assert model.call_count == 0


def test_a_task_that_asks_for_the_text_gets_the_text_itself(tmp_path: Path) -> None:
    class Transcribe(CheckedTool):
        name = "transcribe"
        description = "Transcribes a recording."
        inputs = {"audio": {"type": "string", "description": "The .wav file."}}
        output_type = "object"

        def forward(self, audio: str) -> dict[str, Any]:
            return {"text": "Meet me at the station at nine.", "language": "en"}

    recording = tmp_path / "memo.wav"
    recording.write_bytes(b"RIFF")
    model = GrammarScripted([])
    tool = Transcribe()
    agent = CodeAgent(tools=[tool], model=specialist_model(model, [tool], embed=lambda t: None), max_steps=3)
    assert agent.run(f"transcribe {recording} please") == "Meet me at the station at nine."
    assert model.call_count == 0


def test_a_call_the_model_writes_can_only_name_the_tasks_own_file() -> None:
    model = GrammarScripted([_code('result = count_rows(path="/data/sales.csv")\nresult')])
    steered = SpecialistModel(model, [CountRows(), Enlarge()], embed=None)
    steered.generate([{"role": "user", "content": "New task:\nhow many rows in /data/sales.csv and /data/b.csv"}])
    grammar = model.grammars[0] or ""
    assert 'file ::= "\\"/data/sales.csv\\"" | "\\"/data/b.csv\\""' in grammar
    assert '"path=" ( file | "result" )' in grammar and '"image=" ( file | "result" )' in grammar
