"""Every tool can be shared the smolagents way, and tells a model the real types of its inputs.

smolagents rebuilds a tool from its source for remote executors, `push_to_hub` and `Tool.from_code`:
`to_dict()` / `save()` keep only the tool class's own body, on plain `Tool`. Each tool here goes through:

(a) the checks of smolagents' `ToolTesterMixin` (its tests/test_tools.py, not installed), written anew;
(b) `to_dict()` -> `Tool.from_dict()` and (c) `save()` -> `Tool.from_code()`: the same name, description, inputs,
    output type and forward signature;
(d) the rebuilt tool works: on the same input it gives the same result as the original, or raises the same error
    (a pool with no models: the same ModelUnavailableError), and refuses blank input with a ToolInputError.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smolagents import Tool
from smolagents.models import get_tool_json_schema
from smolagents.tools import AUTHORIZED_TYPES
from smolagents.utils import is_valid_name

import smolcrew.tools
from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import manifest
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import CheckedTool, input_types
from smolcrew.tools.blackboard import ReadNote, WriteNote
from smolcrew.tools.context import use_tools
from smolcrew.tools.files import Workspace
from tests.conftest import code
from tests.tools.test_tool_contract import TOOL_CLASSES, build_like_specialists

ALL_TOOLS: list[type[CheckedTool]] = sorted([*TOOL_CLASSES, ReadNote, WriteNote], key=lambda tool: tool.name)

UNIONS = {
    ("check_grammar", "text"): ["string", "array"],
    ("check_entailment", "premise"): ["string", "array"],
    ("check_entailment", "hypothesis"): ["string", "array"],
    ("classify_text_zero_shot", "text"): ["string", "array"],
    ("detect_language", "text"): ["string", "array"],
    ("extract_entities", "text"): ["string", "array"],
    ("tag_parts_of_speech", "text"): ["string", "array"],
    ("read_text_in_image", "image"): ["string", "image"],
    ("answer_from_scanned_page", "image"): ["string", "image"],
    ("read_table_in_image", "image"): ["string", "image"],
    ("query_table", "where"): ["array", "object", "string"],
    ("write_note", "value"): ["string", "number", "boolean", "array", "object"],
}
"""The inputs that take more than one type (all typed `any` before), and what a model is told they take."""


def _name(tool: type[Tool]) -> str:
    return str(tool.name)


def _image_value() -> Any:
    from PIL import Image

    return Image.new("RGB", (4, 4))


VALUES: dict[str, Callable[[], Any]] = {
    "string": lambda: "x",
    "integer": lambda: 3,
    "number": lambda: 2.5,
    "boolean": lambda: True,
    "array": lambda: ["x"],
    "object": lambda: {"x": 1},
    "image": _image_value,
}
"""One value of each input type a tool here declares."""


def test_every_tool_class_is_covered() -> None:
    """The tools of every module in smolcrew.tools are the specialists' tools plus the blackboard's two."""
    found = set()
    for module in pkgutil.iter_modules(smolcrew.tools.__path__):
        for _, value in inspect.getmembers(importlib.import_module(f"smolcrew.tools.{module.name}"), inspect.isclass):
            if (
                issubclass(value, CheckedTool)
                and value is not CheckedTool
                and isinstance(value.__dict__.get("name"), str)
            ):
                found.add(value)
    assert found == set(ALL_TOOLS)
    assert len(ALL_TOOLS) == 50


# ---- (a) smolagents' tool checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("tool_class", ALL_TOOLS, ids=_name)
def test_tool_meets_the_smolagents_tool_checks(tool_class: type[CheckedTool]) -> None:
    """Name, description, authorized input and output types, `validate_arguments()`, forward's signature equal
    to `inputs` (names in order, nullable exactly when defaulting to None), and a JSON schema with real types."""
    tool = tool_class()
    assert is_valid_name(tool.name) and isinstance(tool.description, str) and len(tool.description) > 40
    assert isinstance(tool.inputs, dict) and tool.inputs and tool.output_type in AUTHORIZED_TYPES
    for key, spec in tool.inputs.items():
        assert set(spec) <= {"type", "description", "nullable"} and spec["description"].strip(), key
        kinds = input_types(spec)
        assert kinds and len(set(kinds)) == len(kinds) and set(kinds) <= set(AUTHORIZED_TYPES), key
    tool.validate_arguments()
    parameters = inspect.signature(tool.forward).parameters
    assert list(parameters) == list(tool.inputs)
    for key, spec in tool.inputs.items():
        default = parameters[key].default
        assert default is (None if spec.get("nullable") else inspect.Parameter.empty), key
    schema = get_tool_json_schema(tool)["function"]
    assert (schema["name"], schema["description"]) == (tool.name, tool.description)
    parameters_schema = schema["parameters"]
    assert parameters_schema["required"] == [key for key, spec in tool.inputs.items() if not spec.get("nullable")]
    for key, spec in tool.inputs.items():
        told = input_types(parameters_schema["properties"][key])
        assert told == input_types(spec) and "any" not in told, key  # smolagents turns `any` into `string`
    assert tool.to_code_prompt().startswith(f"def {tool.name}(")


def test_no_input_is_typed_plain_any() -> None:
    unions = {}
    for tool_class in ALL_TOOLS:
        for key, spec in tool_class.inputs.items():
            assert "any" not in input_types(spec), f"{tool_class.name}.{key}"
            if isinstance(spec["type"], list):
                unions[(tool_class.name, key)] = spec["type"]
    assert unions == UNIONS


@pytest.mark.parametrize("tool_class", ALL_TOOLS, ids=_name)
def test_checked_tool_accepts_exactly_the_declared_types(tool_class: type[CheckedTool]) -> None:
    tool = tool_class()
    for key, spec in tool.inputs.items():
        kinds = input_types(spec)
        for kind, make in VALUES.items():
            if kind in kinds or (kind == "integer" and "number" in kinds):
                assert tool._check(key, make()) is not None, (key, kind)
            else:
                with pytest.raises(ToolInputError, match=f"`{key}` must be"):
                    tool._check(key, make())


# ---- (b), (c) round trips --------------------------------------------------------------------------------------


def _assert_same_tool(rebuilt: Tool, tool: Tool) -> None:
    assert type(rebuilt).__name__ == type(tool).__name__ and not isinstance(rebuilt, CheckedTool)
    for attribute in ("name", "description", "inputs", "output_type"):
        assert getattr(rebuilt, attribute) == getattr(tool, attribute), attribute
    assert inspect.signature(rebuilt.forward) == inspect.signature(tool.forward)
    rebuilt.validate_arguments()


def from_dict(tool: Tool) -> Tool:
    """The tool as smolagents sends it: `to_dict()` through JSON, then `Tool.from_dict()`."""
    return Tool.from_dict(json.loads(json.dumps(tool.to_dict())))


@pytest.mark.parametrize("tool_class", ALL_TOOLS, ids=_name)
def test_to_dict_from_dict_round_trip(tool_class: type[CheckedTool]) -> None:
    tool = tool_class()
    shared = tool.to_dict()
    assert shared["name"] == tool.name
    assert shared["requirements"] == ["smolagents", "smolcrew"]  # no model package needed to load the tool
    _assert_same_tool(from_dict(tool), tool)


@pytest.mark.parametrize("tool_class", ALL_TOOLS, ids=_name)
def test_save_from_code_round_trip(tool_class: type[CheckedTool], tmp_path: Path) -> None:
    tool = tool_class()
    tool.save(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app.py", "requirements.txt", "tool.py"]
    _assert_same_tool(Tool.from_code((tmp_path / "tool.py").read_text(encoding="utf-8")), tool)


# ---- (d) the rebuilt tool works --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Valid inputs of every kind: a photo, a table and its picture, a text page, a PDF, sounds, a video."""
    import numpy as np
    from PIL import Image

    from tests.tools.tiny_audio import noisy_tone_bursts, stereo_mix, tone, write_wav
    from tests.tools.tiny_documents import render_table, render_text, text_pdf

    folder = tmp_path_factory.mktemp("sharing-inputs")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / "photo.png")
    (folder / "sales.csv").write_text("region,units\nnorth,10\nsouth,7\neast,3\n")
    made = {
        "photo": folder / "photo.png",
        "csv": folder / "sales.csv",
        "table": render_table(folder / "table.png", [["item", "qty"], ["apple", "3"], ["pear", "12"]]),
        "page": render_text(folder / "page.png", ["INVOICE", "TOTAL 42.50"]),
        "pdf": text_pdf(folder / "report.pdf"),
        "tone": write_wav(folder / "tone.wav", tone(1.0, 440)),
        "noisy": write_wav(folder / "noisy.wav", noisy_tone_bursts()[0]),
        "mix": write_wav(folder / "mix.wav", stereo_mix()[0]),
    }
    try:
        from tests.tools.tiny_vision import tiny_video

        made["video"] = tiny_video(folder / "clip.mp4")
    except ImportError:  # no PyAV: the video tool's case is skipped
        pass
    return {name: str(path) for name, path in made.items()}


RESULT, NO_MODEL, BAD_INPUT = "result", ModelUnavailableError, ToolInputError
OVER_5 = {"column": "units", "op": ">", "value": 5}  # one `where` condition, given as a dict
CASES: dict[str, tuple[Callable[[dict[str, str]], dict[str, Any]], Any]] = {
    "answer_from_pdf": (lambda f: {"pdf_path": f["pdf"], "question": "What is in the report?"}, NO_MODEL),
    "answer_from_scanned_page": (lambda f: {"image": f["page"], "question": "What is the total?"}, NO_MODEL),
    "answer_from_text": (lambda f: {"question": "Who?", "passage": "John lives in Paris."}, NO_MODEL),
    "answer_image_question": (lambda f: {"image": f["photo"], "question": "What is it?"}, NO_MODEL),
    "answer_with_citations": (lambda f: {"question": "When was it founded?"}, RESULT),  # an empty store
    "calculate": (lambda f: {"expression": "(98.6 - 32) * 5 / 9"}, RESULT),
    "convert_units": (lambda f: {"value": 30, "from_unit": "miles", "to_unit": "km"}, RESULT),
    "caption_image": (lambda f: {"image": f["photo"]}, NO_MODEL),
    "check_entailment": (lambda f: {"premise": "It rains.", "hypothesis": ["It is wet.", "It is dry."]}, NO_MODEL),
    "check_grammar": (lambda f: {"text": ["The cat sleeps.", "Cat the sleeps."]}, NO_MODEL),
    "classify_audio": (lambda f: {"audio": f["tone"]}, NO_MODEL),
    "classify_image": (lambda f: {"image": f["photo"], "top_k": 2}, NO_MODEL),
    "classify_image_zero_shot": (lambda f: {"image": f["photo"], "candidate_labels": ["a cat", "a car"]}, NO_MODEL),
    "classify_sentiment": (lambda f: {"text": "What a lovely day."}, NO_MODEL),
    "classify_text_zero_shot": (lambda f: {"text": "The team won.", "candidate_labels": ["sports", "art"]}, NO_MODEL),
    "classify_video_zero_shot": (lambda f: {"video": f["video"], "candidate_labels": ["a", "b"]}, NO_MODEL),
    "compare_sentences": (lambda f: {"text_a": "A man eats.", "text_b": "A person dines."}, NO_MODEL),
    "count_words": (lambda f: {"text": "The quick brown fox jumps."}, RESULT),
    "describe_image_sentiment": (lambda f: {"image": f["photo"], "text": "best day ever"}, NO_MODEL),
    "answer_table_question": (lambda f: {"path": f["csv"], "question": "how many units in total?"}, RESULT),
    "describe_table": (lambda f: {"path": f["csv"]}, RESULT),
    "detect_language": (lambda f: {"text": ["The weather is lovely today.", "Le chat dort sur la voiture."]}, RESULT),
    "detect_objects": (lambda f: {"image": f["photo"]}, NO_MODEL),
    "edit_image": (lambda f: {"image": f["photo"], "prompt": "make it snowy"}, NO_MODEL),
    "enhance_speech": (lambda f: {"audio": f["noisy"], "strength": 0.8}, RESULT),
    "estimate_depth": (lambda f: {"image": f["photo"]}, NO_MODEL),
    "extract_entities": (lambda f: {"text": "John lives in Paris."}, NO_MODEL),
    "generate_image": (lambda f: {"prompt": "a lighthouse", "steps": 1, "seed": 1}, NO_MODEL),
    "generate_image_from_edges": (lambda f: {"image": f["photo"], "prompt": "a statue", "seed": 1}, NO_MODEL),
    "generate_text": (lambda f: {"prompt": "Once upon a time"}, NO_MODEL),
    "generate_video": (lambda f: {"prompt": "waves", "frames": 2, "seed": 1}, NO_MODEL),
    "query_table": (lambda f: {"path": f["csv"], "operation": "sum", "column": "units", "where": OVER_5}, RESULT),
    "rank_passages": (lambda f: {"query": "bridge", "passages": ["A bridge.", "A cat."]}, NO_MODEL),
    "read_note": (lambda f: {}, BAD_INPUT),  # no blackboard here; see the Redis test below
    "read_table_in_image": (lambda f: {"image": f["table"]}, RESULT),
    "read_text_in_image": (lambda f: {"image": f["page"]}, RESULT),
    "recall_memory": (lambda f: {"query": "lighthouse"}, BAD_INPUT),  # no memory here; see the crew test below
    "reply_in_conversation": (lambda f: {"messages": [{"role": "user", "content": "Hi there"}]}, NO_MODEL),
    "restyle_image": (lambda f: {"image": f["photo"], "style": "watercolor"}, NO_MODEL),
    "search_documents": (lambda f: {"query": "warranty", "k": 3}, RESULT),  # an empty store
    "segment_image": (lambda f: {"image": f["photo"]}, NO_MODEL),
    "separate_sources": (lambda f: {"audio": f["mix"]}, RESULT),
    "summarize_text": (lambda f: {"text": "The bridge opened. It is long. Cats sleep."}, NO_MODEL),
    "synthesize_speech": (lambda f: {"text": "Hello there."}, NO_MODEL),
    "tag_parts_of_speech": (lambda f: {"text": ["John runs.", "Mary reads."]}, NO_MODEL),
    "trace_run": (lambda f: {"run_id": "run-1"}, BAD_INPUT),
    "transcribe_speech": (lambda f: {"audio": f["tone"]}, NO_MODEL),
    "translate_text": (lambda f: {"text": "The cat sleeps.", "target_language": "de"}, NO_MODEL),
    "upscale_image": (lambda f: {"image": f["photo"], "scale": 2}, RESULT),
    "write_note": (lambda f: {"key": "draft", "value": [1, "two"]}, BAD_INPUT),
}
"""A valid call of every tool, and what it ends in here: a result (no model needed), ModelUnavailableError
(the pool has no models) or ToolInputError (no memory or blackboard in the context)."""


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> PipelinePool:
    """A pool whose every role is a folder that does not exist: no model loads."""
    absent = str(tmp_path_factory.mktemp("no-models") / "absent-model")
    return PipelinePool(device="cpu", overrides=dict.fromkeys(manifest(), absent))


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "runs")


def _outcome(call: Callable[[], Any], workspace: Workspace) -> Any:
    """What a call ends in, comparable across runs: the result with each file it wrote replaced by a hash of
    its bytes, or the error's type and message."""
    try:
        result = call()
    except (ModelUnavailableError, ToolInputError) as exc:
        return type(exc), str(exc)

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, str) and value.startswith(str(workspace.root)):
            return "file", hashlib.sha256(Path(value).read_bytes()).hexdigest()
        return value

    return RESULT, plain(result)


def test_every_tool_has_a_case() -> None:
    assert set(CASES) == {tool.name for tool in ALL_TOOLS}


@pytest.mark.parametrize("tool_class", ALL_TOOLS, ids=_name)
def test_rebuilt_tool_behaves_like_the_original(
    tool_class: type[CheckedTool], files: dict[str, str], nowhere: PipelinePool, workspace: Workspace
) -> None:
    """Built like the specialists (bound to the run's context) or rebuilt from its source (finding the same
    context at call time), a tool gives the same result or the same error."""
    arguments, expected = CASES[tool_class.name]
    if tool_class.name == "classify_video_zero_shot" and "video" not in files:
        pytest.skip("writing the test video needs PyAV: pip install av")
    if tool_class in (ReadNote, WriteNote):
        original: Tool = tool_class()
    else:
        original = build_like_specialists(tool_class, nowhere, workspace)
    kwargs = arguments(files)
    first = _outcome(lambda: original(**kwargs), workspace)
    assert first[0] is expected, first
    for rebuilt in (from_dict(original), _from_saved(original, workspace.root / "saved")):
        with use_tools(pool=nowhere, workspace=workspace):
            assert _outcome(lambda tool=rebuilt: tool(**kwargs), workspace) == first
    if expected is NO_MODEL:
        assert "fix:" in first[1]  # the message says how to get the model


def _from_saved(tool: Tool, folder: Path) -> Tool:
    tool.save(folder)
    return Tool.from_code((folder / "tool.py").read_text(encoding="utf-8"))


WITH_REQUIRED_INPUTS = [tool for tool in ALL_TOOLS if any(not spec.get("nullable") for spec in tool.inputs.values())]
"""read_note has no required input: a blank call is a valid one."""


@pytest.mark.parametrize("tool_class", WITH_REQUIRED_INPUTS, ids=_name)
def test_rebuilt_tool_refuses_blank_input(tool_class: type[CheckedTool]) -> None:
    """With no CheckedTool around it, forward() itself says which input is wrong, before it asks for a model."""
    required = [key for key, spec in tool_class.inputs.items() if not spec.get("nullable")]
    asked: list[str] = []

    class Watched(PipelinePool):
        def get(self, role: str) -> Any:
            asked.append(role)
            return super().get(role)

    rebuilt = from_dict(tool_class())
    with use_tools(pool=Watched(device="cpu")), pytest.raises(ToolInputError) as caught:
        rebuilt(**dict.fromkeys(required, ""))
    assert any(f"`{key}" in str(caught.value) for key in required), str(caught.value)
    assert asked == []


@pytest.mark.usefixtures("minilm_available")
def test_rebuilt_memory_tools_read_the_crew_memory(scripted_crew: Callable[..., Any]) -> None:
    from smolcrew.tools.recall import RecallMemory, TraceRun

    crew = scripted_crew(
        [code('r = compare_sentences(text_a="a lighthouse keeper", text_b="a lamp warden")\nfinal_answer(r)')]
    )
    done = crew.run("How similar are 'a lighthouse keeper' and 'a lamp warden'?")
    assert done.ok, done
    calls = {RecallMemory: {"query": "lighthouse keeper"}, TraceRun: {"run_id": done.run_id}}
    with use_tools(memory=crew.mirror):
        for tool_class, kwargs in calls.items():
            original = tool_class()(**kwargs)
            assert original and from_dict(tool_class())(**kwargs) == original


def test_rebuilt_note_tools_share_the_blackboard() -> None:
    pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")
    from smolcrew.tools.blackboard import Blackboard
    from tests.memory.backends.redis import REDIS_URL, fresh_namespace, require_redis

    require_redis()
    with Blackboard.from_url(REDIS_URL, namespace=fresh_namespace(), run_id="r") as board:
        try:
            with use_tools(blackboard=board):
                assert from_dict(WriteNote())(key="draft", value={"pages": [1, 2]}) == "saved note 'draft'"
                assert ReadNote()(key="draft") == {"pages": [1, 2]} == from_dict(ReadNote())(key="draft")
                with pytest.raises(ToolInputError, match="no note named 'gone'"):
                    from_dict(ReadNote())(key="gone")
        finally:
            board.clear()


@pytest.fixture(autouse=True)
def _no_leaked_context() -> Iterator[None]:
    """Each test starts and ends outside any tool context."""
    from smolcrew.tools.context import current_blackboard, current_memory

    assert current_memory() is None and current_blackboard() is None
    yield
    assert current_memory() is None and current_blackboard() is None
