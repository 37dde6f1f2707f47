"""The learned tool-level planner: its training labels, a real (small) training run, plans, and the router using it.

Accuracy is measured by `bench/routing.py --planner` on the blind set; here a planner trained on a few generated
plans for one epoch checks that every part works end to end and that plans are well formed.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from smolcrew.agents.plan_data import PlanExample, PlanStep
from smolcrew.agents.planner import (
    PlannedStep,
    ToolPlanner,
    _dependencies,
    _Fragment,
    _topological,
    _without_folders,
    tool_tasks,
)
from smolcrew.agents.planner_train import (
    BASE_MODEL,
    PlannerTraining,
    bank_examples,
    labels_for,
    load_planner,
    planner_folder,
    tag_tokens,
    train_planner,
)
from smolcrew.agents.router import Router
from smolcrew.agents.specialists import SPECIALISTS, load_examples

TINY = PlannerTraining(examples=160, epochs=1, held_out=20, bank_copies=0)
TOOLS = sorted(tool_tasks())


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory, minilm_available: None) -> Path:
    cache = tmp_path_factory.mktemp("planner-cache")
    train_planner(cache, TINY)
    return cache


@pytest.fixture(scope="session")
def planner(tiny_cache: Path) -> ToolPlanner:
    found = load_planner(tiny_cache, TINY)
    assert found is not None
    return found


def _words(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in re.finditer(r"\S+", text)]


def test_each_token_is_labelled_with_its_innermost_step() -> None:
    request = "please read aloud the translation of 'good morning'"
    example = PlanExample(
        request,
        (
            PlanStep("language", "translate_text", "translation", (), "the translation of 'good morning'"),
            PlanStep(
                "audio", "synthesize_speech", "text-to-speech", (0,), "read aloud the translation of 'good morning'"
            ),
        ),
    )
    labels = labels_for(TOOLS)
    ids = {label: index for index, label in enumerate(labels)}
    tagged = [labels[i] for i in tag_tokens(example, [(0, 0), *_words(request), (0, 0)], ids)[1:-1]]
    assert tagged == [
        "O",
        "B-synthesize_speech",
        "I-synthesize_speech",
        "B-translate_text",
        "I-translate_text",
        "I-translate_text",
        "I-translate_text",
        "I-translate_text",
    ]
    assert tag_tokens(example, [(0, 0)], ids) == [-100]  # special tokens are not scored


def _fragments(request: str, parts: list[tuple[str, str]]) -> list[_Fragment]:
    found = []
    for text, tool in parts:
        start = request.index(text)
        mass = np.zeros(len(TOOLS))
        mass[TOOLS.index(tool)] = 5.0
        found.append(_Fragment(start, start + len(text), mass, 5))
    return found


@pytest.mark.parametrize(
    ("request_text", "parts", "expected"),
    [
        (
            "transcribe call.wav, then translate it into French",
            [("transcribe call.wav", "transcribe_speech"), ("translate it into French", "translate_text")],
            [[], [0]],
        ),
        (
            "caption beach.jpg and transcribe call.wav",
            [("caption beach.jpg", "caption_image"), ("transcribe call.wav", "transcribe_speech")],
            [[], []],
        ),
        (
            "transcribe call.wav and caption beach.jpg, then translate the transcript into German",
            [
                ("transcribe call.wav", "transcribe_speech"),
                ("caption beach.jpg", "caption_image"),
                ("translate the transcript into German", "translate_text"),
            ],
            [[], [], [0]],  # the output it names, not the nearest
        ),
        (
            "caption beach.jpg and transcribe call.wav, then compare the two",
            [
                ("caption beach.jpg", "caption_image"),
                ("transcribe call.wav", "transcribe_speech"),
                ("compare the two", "compare_sentences"),
            ],
            [[], [], [1, 0]],  # a tool that takes two inputs
        ),
        (
            "read aloud the translation of 'good morning everyone'",
            [("read aloud", "synthesize_speech"), ("the translation of 'good morning everyone'", "translate_text")],
            [[1], []],
        ),
    ],
)
def test_dependencies_follow_references_and_the_tools_types(
    request_text: str, parts: list[tuple[str, str]], expected: list[list[int]]
) -> None:
    deps = _dependencies(request_text, _fragments(request_text, parts), TOOLS)
    assert deps == expected
    order = _topological(len(deps), deps)
    assert all(order.index(d) < order.index(k) for k in range(len(deps)) for d in deps[k])


@pytest.mark.parametrize(
    ("request_text", "shown"),
    [
        ("count rows in /tmp/run-4mk3/files/staff.xlsx now", "count rows in staff.xlsx now"),
        ("sum C:\\Users\\me\\budget.csv", "sum budget.csv"),
        ("no paths here. Note: yes", "no paths here. Note: yes"),
    ],
)
def test_the_tagger_reads_file_names_without_their_folders(request_text: str, shown: str) -> None:
    text, origin = _without_folders(request_text)
    assert text == shown and len(origin) == len(text)
    if "/" in request_text:  # a file name starts where its folders do, so a step keeps the whole path
        assert origin[text.index("staff")] == request_text.index("/tmp")


def test_a_step_keeps_the_whole_path_of_its_file(planner: ToolPlanner) -> None:
    request = "transcribe /data/in/calls/2024/call_07.wav, then translate it into French"
    _, offsets = planner._probabilities(request)
    spans = [request[start:end] for start, end in offsets if start < end]
    assert any(span.startswith("/data/in/calls/2024/c") for span in spans)  # a file name covers its folders
    assert "".join(spans).replace(" ", "") == request.replace(" ", "")


def test_the_example_bank_becomes_one_step_plans_with_its_specialists_tools(minilm_available: None) -> None:
    from smolcrew.agents.plan_data import generate
    from smolcrew.agents.specialists import load_examples
    from smolcrew.manifest import resolve_source

    plans = bank_examples(generate(400, seed=5), resolve_source(BASE_MODEL))
    specialists = dict((text, name) for name, text in load_examples())
    assert len(plans) >= len(specialists)
    for plan in plans:
        (step,) = plan.steps
        assert step.text == plan.request and step.task == tool_tasks()[step.tool]
        if plan.request in specialists and step.tool != "calculate":
            offered = {f.name for f in SPECIALISTS[specialists[plan.request]].tool_factories}
            assert step.tool in offered and step.specialist == specialists[plan.request]


def test_training_is_cached_under_a_digest_of_the_data_and_plan(tiny_cache: Path) -> None:
    folder = planner_folder(tiny_cache, TINY)
    metrics = folder / "metrics.json"
    assert metrics.is_file() and (folder / "labels.json").is_file()
    before = metrics.stat().st_mtime_ns
    started = time.perf_counter()
    assert train_planner(tiny_cache, TINY) == folder
    assert time.perf_counter() - started < 1.0 and metrics.stat().st_mtime_ns == before
    assert planner_folder(tiny_cache, PlannerTraining(examples=161, epochs=1, held_out=20, bank_copies=0)) != folder
    assert load_planner(tiny_cache) is None  # the default plan was never trained here


@pytest.mark.parametrize(
    "request_text",
    [
        "transcribe meeting.wav, then translate it into German and read it aloud",
        "caption beach.jpg",
        "What is 17 * 23?",
        "x",
    ],
)
def test_a_plan_names_offered_tools_with_their_tags_and_earlier_dependencies(
    planner: ToolPlanner, request_text: str
) -> None:
    steps = planner.plan(request_text)
    assert steps
    owners = {f.name: name for name, spec in SPECIALISTS.items() for f in spec.tool_factories}
    for index, step in enumerate(steps):
        assert isinstance(step, PlannedStep)
        assert step.task == tool_tasks()[step.tool] and step.task
        assert step.specialist in SPECIALISTS and (owners[step.tool] == step.specialist or step.tool == "calculate")
        assert all(0 <= dep < index for dep in step.depends_on)
        assert 0.0 <= step.confidence <= 1.0 and step.text


def test_an_empty_request_is_refused(planner: ToolPlanner) -> None:
    with pytest.raises(ValueError, match="empty request"):
        planner.plan("   ")


def test_the_router_plans_with_the_planner_unless_a_specialist_is_named(
    planner: ToolPlanner, embed: Callable[[list[str]], np.ndarray]
) -> None:
    descriptions = {name: spec.description for name, spec in SPECIALISTS.items()}
    router = Router(embed, descriptions, load_examples(), planner=planner)
    plan = router.route("transcribe meeting.wav, then summarize it in two sentences")
    assert all(step.decided_by == "planner" for step in plan.steps)
    assert all(len(step.tools) == 1 and step.tool_tasks == (tool_tasks()[step.tools[0]],) for step in plan.steps)
    data = plan.to_dict()
    assert all({"tools", "tool_tasks", "depends_on"} <= set(step) for step in data["steps"])
    assert "planner=learned" in repr(router)
    directed = router.route("Use the language specialist. Summarize 'the meeting moved to Friday at noon'.")
    assert [step.decided_by for step in directed.steps] == ["embeddings"]


def test_the_cli_plans_with_a_trained_planner_in_the_home(
    tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from smolcrew.cli.app import app

    home = tmp_path / "planner-home"  # not the test home, whose cache is shared
    shutil.copytree(planner_folder(tiny_cache, TINY), planner_folder(home / "cache"))
    monkeypatch.setenv("SMOLCREW_HOME", str(home))
    monkeypatch.setenv("SMOLCREW_ROUTING__PLANNER", "learned")
    runner = CliRunner()
    result = runner.invoke(app, ["route", "--json", "transcribe call.wav, then translate it into French"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["steps"] and all(step["decided_by"] == "planner" for step in data["steps"])
    assert all(step["tools"] and step["tool_tasks"] for step in data["steps"])
    missing = runner.invoke(app, ["route"])
    assert missing.exit_code == 2 and "give a request" in missing.output


def test_doctor_says_whether_the_planner_is_on_and_trained(
    tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smolcrew.config import load_settings
    from smolcrew.doctor import _check_planner

    monkeypatch.setenv("SMOLCREW_HOME", str(tmp_path / "doctor-home"))
    assert _check_planner(load_settings()).status == "ok"  # off by default
    monkeypatch.setenv("SMOLCREW_ROUTING__PLANNER", "learned")
    untrained = _check_planner(load_settings())
    assert untrained.status == "warn" and "smolcrew route --train" in untrained.detail
    shutil.copytree(planner_folder(tiny_cache, TINY), planner_folder(tmp_path / "doctor-home" / "cache"))
    assert _check_planner(load_settings()).status == "ok"
