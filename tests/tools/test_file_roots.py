"""Tools read files only under the run's folders (issue 12): `require_file` resolves `..` and symlinks, then
refuses a path outside `ToolContext.roots` and the run's workspace, naming the folders it may read.

A crew's run may read the current directory at crew start, `files.roots` and the workspace (its outputs); a tool
used on its own (no roots in its context) reads any path, as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from smolagents import Tool
from typer.testing import CliRunner

from smolcrew.agents.specialists import SPECIALISTS
from smolcrew.backends import ScriptedModel
from smolcrew.config import load_settings
from smolcrew.errors import ConfigError, ToolInputError
from smolcrew.manifest import manifest
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import FILE_INPUTS, CheckedTool
from smolcrew.tools.context import ToolContext, current_roots, use_tools
from smolcrew.tools.files import Workspace, require_file
from smolcrew.tools.tables import DescribeTable
from tests.conftest import code, home_with_shared_cache, loop_settings
from tests.tools.test_tool_contract import TOOL_CLASSES

OUTSIDE = "outside the folders this run may read"


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """`inside` (a root, with table.csv), `outside` (with secret.csv) and the run's workspace."""
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "table.csv").write_text("name,score\nada,3\nbob,5\n")
    (outside / "secret.csv").write_text("user,password\nroot,hunter2\n")
    return {"inside": inside, "outside": outside, "runs": tmp_path / "runs"}


@pytest.fixture
def run_context(folders: dict[str, Path]) -> Any:
    with use_tools(roots=(folders["inside"],), workspace=Workspace(folders["runs"], run_id="run-1")) as context:
        yield context


def refused(path: Any, tool: Tool | None = None) -> str:
    with pytest.raises(ToolInputError) as caught:
        (tool or DescribeTable())(path=str(path))
    message = str(caught.value)
    assert OUTSIDE in message and "files.roots" in message, message
    return message


# ---- the check -------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("run_context")
def test_a_path_inside_a_root_is_read(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert DescribeTable()(path=str(folders["inside"] / "table.csv"))["rows"] == 2
    monkeypatch.chdir(folders["inside"])
    assert DescribeTable()(path="table.csv")["rows"] == 2  # relative to the current directory
    assert DescribeTable()(path="./table.csv")["rows"] == 2


@pytest.mark.usefixtures("run_context")
def test_a_text_tool_reads_a_text_file_it_is_given_only_inside_the_roots(folders: dict[str, Path]) -> None:
    from smolcrew.tools.arithmetic import CountWords

    (folders["inside"] / "notes.txt").write_text("one two three four\n")
    (folders["outside"] / "secret.md").write_text("root hunter2\n")
    assert CountWords()(text=str(folders["inside"] / "notes.txt"))["words"] == 4  # "summarize notes.txt"
    assert CountWords()(text="notes.txt is a file name")["words"] == 6  # text that names a file stays text
    with pytest.raises(ToolInputError, match=OUTSIDE):
        CountWords()(text=str(folders["outside"] / "secret.md"))


@pytest.mark.usefixtures("run_context")
def test_dot_dot_traversal_is_refused(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(folders["inside"] / ".." / "outside" / "secret.csv")
    assert str(folders["inside"].resolve()) in message  # the message names the folders it may read
    assert str(folders["runs"].resolve() / "run-1" / "artifacts") in message
    monkeypatch.chdir(folders["inside"])
    refused("../outside/secret.csv")
    refused("../../../../../../../../" + str(folders["outside"] / "secret.csv").lstrip("/"))


@pytest.mark.usefixtures("run_context")
def test_an_absolute_path_outside_is_refused(folders: dict[str, Path]) -> None:
    refused(folders["outside"] / "secret.csv")
    refused("/etc/passwd")  # refused as outside, before its suffix is looked at
    refused("~/secret.csv")
    # a missing file outside is refused the same way: whether a file exists outside cannot be probed
    assert "no file" not in refused(folders["outside"] / "missing.csv")
    with pytest.raises(ToolInputError, match="no file at"):
        DescribeTable()(path=str(folders["inside"] / "missing.csv"))


@pytest.mark.usefixtures("run_context")
def test_a_symlink_inside_a_root_that_points_outside_is_refused(folders: dict[str, Path]) -> None:
    inside, outside = folders["inside"], folders["outside"]
    (inside / "link.csv").symlink_to(outside / "secret.csv")
    (inside / "linked-folder").symlink_to(outside, target_is_directory=True)
    assert str((outside / "secret.csv").resolve()) in refused(inside / "link.csv")
    refused(inside / "linked-folder" / "secret.csv")
    (inside / "alias.csv").symlink_to(inside / "table.csv")  # a link that stays inside is fine
    assert DescribeTable()(path=str(inside / "alias.csv"))["rows"] == 2


def test_a_root_given_through_a_symlink_is_resolved_too(folders: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "root-link").symlink_to(folders["inside"], target_is_directory=True)
    with use_tools(roots=(tmp_path / "root-link",)):
        assert DescribeTable()(path=str(folders["inside"] / "table.csv"))["rows"] == 2
        assert require_file(str(tmp_path / "root-link" / "table.csv"), "path") == folders["inside"] / "table.csv"
        refused(folders["outside"] / "secret.csv")


def test_without_roots_a_tool_reads_any_path(folders: dict[str, Path]) -> None:
    """Backward compatible: a tool used on its own, outside a crew, has no roots and reads anywhere."""
    assert ToolContext().roots is None and current_roots() is None
    assert DescribeTable()(path=str(folders["outside"] / "secret.csv"))["rows"] == 1
    with use_tools(roots=(folders["inside"],)), use_tools(roots=None):
        assert DescribeTable()(path=str(folders["outside"] / "secret.csv"))["rows"] == 1


def test_empty_roots_leave_only_the_workspace(folders: dict[str, Path]) -> None:
    workspace = Workspace(folders["runs"], run_id="run-2")
    output = workspace.new_path("table", ".csv")
    output.write_text("a\n1\n")
    with use_tools(roots=(), workspace=workspace):
        assert current_roots() == (workspace.folder,)
        assert DescribeTable()(path=str(output))["rows"] == 1
        refused(folders["inside"] / "table.csv")


@pytest.mark.usefixtures("tesseract")
def test_the_workspace_outputs_are_readable(folders: dict[str, Path]) -> None:
    """upscale_image writes into the run's workspace; read_text_in_image then reads that output."""
    from PIL import Image, ImageDraw

    from smolcrew.tools.documents import ReadTextInImage
    from smolcrew.tools.generation_media import UpscaleImage

    picture = Image.new("RGB", (240, 60), "white")
    ImageDraw.Draw(picture).text((8, 12), "OPEN 24H", fill="black", font_size=28)
    picture.save(folders["inside"] / "sign.png")
    workspace = Workspace(folders["runs"], run_id="run-3")
    with use_tools(roots=(folders["inside"],), workspace=workspace):
        upscaled = UpscaleImage()(image=str(folders["inside"] / "sign.png"), scale=2)
        assert Path(upscaled["path"]).parent == workspace.folder
        assert "OPEN" in ReadTextInImage()(image=upscaled["path"])["text"]
        other_run = Workspace(folders["runs"], run_id="run-4").new_path("other", ".png")
        picture.save(other_run)
        refused(other_run, ReadTextInImage())  # another run's outputs are not this run's


# ---- every file-taking tool goes through the check ------------------------------------------------------------

FILE_TOOLS = [tool for tool in TOOL_CLASSES if FILE_INPUTS & set(tool.inputs)]
GOOD_VALUES: dict[str, Any] = {
    "candidate_labels": ["a cat", "a dog"],
    "question": "What is the total?",
    "operation": "count",
    "style": "watercolor",
    "text": "a quiet street",
    "prompt": "a quiet street",
}


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> PipelinePool:
    """Every role maps to a folder that does not exist: no model loads."""
    absent = str(tmp_path_factory.mktemp("no-models") / "absent-model")
    return PipelinePool(device="cpu", overrides=dict.fromkeys(manifest(), absent))


@pytest.mark.parametrize("tool_class", FILE_TOOLS, ids=lambda tool: str(tool.name))
def test_every_file_tool_refuses_a_path_outside(
    tool_class: type[Tool], nowhere: PipelinePool, folders: dict[str, Path]
) -> None:
    """Built the way a crew builds them (roots bound), each tool that takes a file refuses one outside, before any
    model loads; the file is a real one of the right kind, so only the roots can refuse it."""
    (secret := folders["outside"] / "secret").mkdir()
    suffix = {"audio": ".wav", "video": ".mp4", "pdf_path": ".pdf", "path": ".csv"}
    spec = next(spec for spec in SPECIALISTS.values() if tool_class in spec.tool_factories)
    roots = (folders["inside"],)
    tool = next(
        t
        for t in spec.build_tools(nowhere, Workspace(folders["runs"]), usable_only=False, roots=roots)
        if isinstance(t, tool_class)
    )
    assert isinstance(tool, CheckedTool) and tool.context is not None and tool.context.roots == roots
    kwargs: dict[str, Any] = {}
    for key, input_spec in tool.inputs.items():
        if key in FILE_INPUTS:
            path = secret / f"file{suffix.get(key, '.png')}"
            path.write_bytes(b"anything")
            kwargs[key] = str(path)
        elif not input_spec.get("nullable"):
            kwargs[key] = GOOD_VALUES.get(key, "x")
    with pytest.raises(ToolInputError, match=OUTSIDE):
        tool(**kwargs)


def test_every_tool_with_a_file_input_is_covered() -> None:
    names = {tool.name for tool in FILE_TOOLS}
    assert {"describe_table", "query_table", "answer_from_pdf", "transcribe_speech", "read_text_in_image"} <= names
    assert {"classify_video_zero_shot", "upscale_image", "separate_sources", "answer_table_question"} <= names
    assert len(FILE_TOOLS) == 24  # every input that takes a file is named in FILE_INPUTS (image, audio, ...)


# ---- settings, workspace, crew ---------------------------------------------------------------------------------


def test_files_roots_from_toml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().files.roots == []
    (tmp_path / "smolcrew.toml").write_text('[files]\nroots = ["/data/in", "shared"]\n')
    assert load_settings().files.roots == [Path("/data/in"), Path("shared")]
    monkeypatch.setenv("SMOLCREW_FILES__ROOTS", '["/srv/a", "~/b"]')
    assert load_settings().files.roots == [Path("/srv/a"), Path("~/b").expanduser()]
    monkeypatch.setenv("SMOLCREW_FILES__ROOTS", "/srv/a")
    with pytest.raises(ConfigError, match="JSON"):
        load_settings()


def test_a_workspace_never_writes_outside_its_folder(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "runs", run_id="r1")
    path = workspace.new_path("../../escape/x", ".png")
    assert path.parent == workspace.folder and path.name.startswith("escape_x-") and path.suffix == ".png"
    for bad in ("..", ".", "a/b"):
        with pytest.raises(ValueError, match="not a folder name"):
            Workspace(tmp_path / "runs", run_id=bad).new_path("x", ".png")


def test_a_crew_binds_its_roots_and_each_run_may_set_others(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.smolcrew.test_service import NoRouterCrew

    secret = folders["outside"] / "secret.csv"
    replies = [
        code(f'r = research(task="Describe {secret}")\nfinal_answer(r)'),
        code(f'd = describe_table(path="{secret}")\nfinal_answer(str(d["rows"]))'),
        code('final_answer("not allowed")'),
    ]
    monkeypatch.chdir(folders["inside"])
    settings = loop_settings(
        home=str(home_with_shared_cache(tmp_path / "crew-home")),
        routing={"mode": "manager"},
        files={"roots": ["../extra", "/srv/data"]},
    )
    with NoRouterCrew(settings, model=ScriptedModel(replies * 2)) as crew:
        assert crew.file_roots == (
            folders["inside"],
            folders["inside"] / "../extra",
            Path("/srv/data"),
            settings.home / "runs",
        )
        tools = [tool for agent in crew.team.specialists.values() for tool in agent.tools.values()]
        assert all(t.context.roots == crew.file_roots for t in tools if isinstance(t, CheckedTool) and t.context)
        result = crew.run(f"Describe the table {secret}")
        errors = [str(step.payload.get("error")) for step in result.steps if step.payload.get("error")]
        assert any(OUTSIDE in error for error in errors), errors
        assert result.answer == "not allowed"
        allowed = crew.run(f"Describe the table {secret}", file_roots=[folders["outside"]])
        assert allowed.answer == "1", allowed.steps  # this run may read the folder (secret.csv has one row)
    assert not any(OUTSIDE in str(step.payload.get("error")) for step in allowed.steps)


# ---- through the command line ------------------------------------------------------------------------------------


def test_smolcrew_run_refuses_files_outside_the_current_directory(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smolcrew.cli.app import app

    secret = folders["outside"] / "secret.csv"
    script = [
        code(f'r = research(task="Describe the tables /etc/passwd and {secret}")\nfinal_answer(r)'),
        code('d = describe_table(path="/etc/passwd")\nfinal_answer(d)'),
        code(f'd = describe_table(path="{secret}")\nfinal_answer(d)'),
        code('d = describe_table(path="table.csv")\nfinal_answer("rows: " + str(d["rows"]))'),
    ]
    monkeypatch.setenv("SMOLCREW_HOME", str(home_with_shared_cache(tmp_path / "cli-home")))
    monkeypatch.setenv("SMOLCREW_LLM__BACKEND", "scripted")
    monkeypatch.setenv("SMOLCREW_ROUTING__MODE", "manager")
    monkeypatch.setenv("SMOLCREW_LLM__SCRIPT", json.dumps(script))
    monkeypatch.setattr("smolcrew.crew.Crew.route", _no_router)
    monkeypatch.chdir(folders["inside"])
    result = CliRunner().invoke(app, ["run", "--json", f"Describe the tables /etc/passwd and {secret}"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    errors = [str(step["payload"].get("error")) for step in data["steps"] if step["payload"].get("error")]
    assert len(errors) == 2 and all(OUTSIDE in error for error in errors), errors
    assert "/etc/passwd" in errors[0] and str(secret) in errors[1]
    assert str(folders["inside"].resolve()) in errors[0]  # the current directory is what the run may read
    assert data["answer"] == "rows: 2"  # table.csv, in the current directory, was read


def _no_router(self: Any, request: str) -> Any:
    from smolcrew.errors import ModelUnavailableError

    raise ModelUnavailableError("no router in this test", backend="embeddings", fix="none needed")
