"""Every tool declares its task: a Hugging Face pipeline tag (`HUB_TASKS`) or one of ours (`LOCAL_TASKS`)."""

from __future__ import annotations

import pytest

from smolcrew.agents.specialists import SPECIALISTS
from smolcrew.tools.base import HUB_TASKS, LOCAL_TASKS, CheckedTool
from smolcrew.tools.blackboard import ReadNote, WriteNote

TOOLS: list[type[CheckedTool]] = sorted(
    {
        factory
        for spec in SPECIALISTS.values()
        for factory in (*spec.tool_factories, ReadNote, WriteNote)
        if issubclass(factory, CheckedTool)
    },
    key=lambda factory: factory.name,
)
"""Every CheckedTool a specialist carries, and the blackboard's two (given to every agent of a team)."""


def test_task_vocabularies_are_distinct_and_without_repeats() -> None:
    assert len(set(HUB_TASKS)) == len(HUB_TASKS)
    assert len(set(LOCAL_TASKS)) == len(LOCAL_TASKS)
    assert not set(HUB_TASKS) & set(LOCAL_TASKS)
    for tag in (*HUB_TASKS, *LOCAL_TASKS):
        assert tag == tag.lower() and tag.replace("-", "").isalpha(), tag


def test_every_specialist_tool_is_checked() -> None:
    carried = {factory for spec in SPECIALISTS.values() for factory in spec.tool_factories}
    assert carried <= set(TOOLS), sorted(factory.name for factory in carried - set(TOOLS))
    assert len(TOOLS) >= 40


@pytest.mark.parametrize("tool", TOOLS, ids=lambda factory: factory.name)
def test_tool_declares_a_known_task(tool: type[CheckedTool]) -> None:
    assert "task" in vars(tool), f"{tool.name} declares no `task` of its own"
    assert tool.task in (*HUB_TASKS, *LOCAL_TASKS), f"{tool.name}: unknown task {tool.task!r}"


def test_every_declared_tag_is_used() -> None:
    assert {tool.task for tool in TOOLS} == {*HUB_TASKS, *LOCAL_TASKS}


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("transcribe_speech", "automatic-speech-recognition"),
        ("caption_image", "image-to-text"),
        ("synthesize_speech", "text-to-speech"),
        ("translate_text", "translation"),
        ("classify_image_zero_shot", "zero-shot-image-classification"),
        ("answer_image_question", "visual-question-answering"),
        ("answer_table_question", "table-question-answering"),
        ("calculate", "calculation"),
    ],
)
def test_key_tools_have_the_right_task(name: str, task: str) -> None:
    assert {tool.name: tool.task for tool in TOOLS}[name] == task
