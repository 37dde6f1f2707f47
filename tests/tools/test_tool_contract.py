"""Every tool, fuzzed: whatever the agent passes, a tool returns a result or raises ToolInputError (bad input)
or ModelUnavailableError (no model) with a message; never another exception, never an error string.

The pool here maps every role to a folder that does not exist, so no model loads: the fuzzing reaches each
tool's input checks and its model-loading path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smolagents import Tool

from smolcrew.agents.specialists import SPECIALISTS
from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import manifest
from smolcrew.pool import PipelinePool
from smolcrew.tools.files import Workspace

TOOL_CLASSES = sorted(
    {factory for spec in SPECIALISTS.values() for factory in spec.tool_factories}, key=lambda factory: factory.name
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real files of the wrong kind: text posing as an image, audio, PDF, CSV; and a missing path."""
    folder = tmp_path_factory.mktemp("fuzz-files")
    paths = []
    for name in ("notes.txt", "fake.png", "fake.wav", "fake.pdf", "fake.csv", "fake.mp4"):
        path = folder / name
        path.write_text("not really what the name says\n")
        paths.append(str(path))
    return [*paths, str(folder / "missing.jpg")]


def _strategy(spec: dict[str, Any], files: list[str]) -> st.SearchStrategy[Any]:
    text = st.one_of(st.text(max_size=40), st.sampled_from(["", "   ", "\x00", "é" * 3]), st.sampled_from(files))
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "string": text,
        "image": st.sampled_from(files),
        "audio": st.sampled_from(files),
        "integer": st.integers(min_value=-5, max_value=10_000),
        "number": st.floats(allow_nan=True, allow_infinity=True),
        "boolean": st.booleans(),
        "array": st.lists(st.one_of(st.text(max_size=12), st.integers()), max_size=4),
        "object": st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=3),
        "any": st.one_of(text, st.lists(st.text(max_size=12), max_size=3), st.integers()),
    }
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    strategy = st.one_of(*(by_type.get(kind, text) for kind in kinds), text, st.integers())
    return st.one_of(strategy, st.none()) if spec.get("nullable") else strategy


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> PipelinePool:
    nowhere = str(tmp_path_factory.mktemp("no-models") / "absent-model")
    return PipelinePool(device="cpu", overrides=dict.fromkeys(manifest(), nowhere))


@pytest.mark.parametrize("tool_class", TOOL_CLASSES, ids=lambda factory: factory.name)
def test_tool_never_fails_with_an_unexpected_error(
    tool_class: type[Tool], pool: PipelinePool, files: list[str], tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "runs")
    tool = build_like_specialists(tool_class, pool, workspace)
    arguments = st.fixed_dictionaries({key: _strategy(spec, files) for key, spec in tool.inputs.items()})

    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(arguments)
    def call(kwargs: dict[str, Any]) -> None:
        try:
            result = tool(**kwargs)
        except (ToolInputError, ModelUnavailableError) as exc:
            assert str(exc).strip(), "errors must say what went wrong"
            return
        assert not (isinstance(result, str) and result.lower().startswith("error")), "errors are raised, not returned"

    call()


def build_like_specialists(tool_class: type[Tool], pool: PipelinePool, workspace: Workspace) -> Tool:
    """Build a tool the way the specialists do."""
    for spec in SPECIALISTS.values():
        if tool_class in spec.tool_factories:
            return next(
                tool for tool in spec.build_tools(pool, workspace, usable_only=False) if isinstance(tool, tool_class)
            )
    raise AssertionError(f"{tool_class.name} belongs to no specialist")


def test_tool_names_are_unique_and_described() -> None:
    names = [factory.name for factory in TOOL_CLASSES]
    assert len(names) == len(set(names)) >= 30
    for factory in TOOL_CLASSES:
        assert len(factory.description) > 40, factory.name
        assert all(spec.get("description") for spec in factory.inputs.values()), factory.name


def test_roles_are_snake_case_so_env_vars_can_name_them() -> None:
    for role in manifest():
        assert role.replace("_", "").isalnum() and role == role.lower(), role


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"file": "a.png", "lang": "eng"}, {"image": "a.png", "language": "eng"}),
        ({"image_path": "a.png"}, {"image": "a.png"}),
        ({"path": "a.png", "page": 1}, {"image": "a.png", "page": 1}),
        ({"image": "a.png", "file": "b.png"}, {"image": "a.png", "file": "b.png"}),  # the real name wins
    ],
)
def test_common_aliases_of_argument_names_are_accepted(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    from smolcrew.tools.base import resolve_aliases
    from smolcrew.tools.documents import ReadTextInImage

    assert resolve_aliases(ReadTextInImage.inputs, arguments) == expected


@pytest.mark.usefixtures("tesseract")
def test_a_harmless_extra_is_accepted_and_a_wrong_one_says_what_works(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    from smolcrew.tools.documents import ReadTextInImage

    picture = Image.new("RGB", (360, 80), "white")
    ImageDraw.Draw(picture).text((10, 20), "OPEN ALL DAY", fill="black", font_size=32)
    picture.save(tmp_path / "sign.png")
    result = ReadTextInImage()(file=str(tmp_path / "sign.png"), page=1, lang="eng")  # aliases and page 1
    assert "OPEN" in result["text"]
    with pytest.raises(ToolInputError, match="leave `page` out for an image"):
        ReadTextInImage()(image=str(tmp_path / "sign.png"), page=2)
    with pytest.raises(ToolInputError, match=r"unknown argument\(s\) colour: call it as read_text_in_image\(image"):
        ReadTextInImage()(image=str(tmp_path / "sign.png"), colour="red")
