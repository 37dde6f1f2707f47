"""The end-to-end task suite (bench/tasks.py, bench/task_suite.py) itself: its data is well formed, every file it
needs can be made, every task's checks agree with each other, a run is recorded, classified and summarised.
(The check kinds and the failure causes are tested in test_task_checks.py.)

One slow test runs the CI subset (`--subset ci`, 14 tasks) through the real Crew with the embedded model and
fails below 90% success.
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.task_checks import LANGUAGE_NAMES, Outcome, run_check
from bench.task_files import FileSpecError, make_file, make_files
from bench.task_suite import (
    SPECIALISTS,
    Task,
    TaskDataError,
    load_tasks,
    run_task,
    select,
    summarize,
)
from smolcrew.result import RunResult
from tests.bench.conftest import CALL_STEP, step

TASKS = load_tasks()
NEEDS_ESPEAK = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed: apt-get install espeak-ng"
)


# ---- the task data --------------------------------------------------------------------------------------


def test_at_least_80_tasks_with_unique_ids() -> None:
    assert len(TASKS) >= 80
    assert len({task.id for task in TASKS}) == len(TASKS)


def test_every_specialist_has_single_step_tasks_in_both_splits() -> None:
    for split in ("dev", "blind"):
        covered = {task.specialists[0] for task in TASKS if task.split == split and not task.multi}
        assert covered == set(SPECIALISTS), split


def test_multi_step_tasks_exist_in_both_splits_and_cover_every_specialist() -> None:
    multi = [task for task in TASKS if task.multi]
    assert len(multi) >= 10
    assert {task.split for task in multi} == {"dev", "blind"}
    assert {name for task in multi for name in task.specialists} == set(SPECIALISTS)


def test_about_a_quarter_of_the_tasks_are_blind() -> None:
    blind = sum(task.split == "blind" for task in TASKS)
    assert 0.2 <= blind / len(TASKS) <= 0.3


def test_the_ci_subset_has_at_least_12_dev_tasks_over_all_five_specialists() -> None:
    ci = select(TASKS, subset="ci")
    assert len(ci) >= 12
    assert {name for task in ci for name in task.specialists} == set(SPECIALISTS)
    assert all(task.split == "dev" for task in ci), "blind tasks are never run where someone tunes against them"


def test_select_by_split_ids_subset_and_limit() -> None:
    assert all(task.split == "dev" for task in select(TASKS, split="dev"))
    assert len(select(TASKS, split="dev")) + len(select(TASKS, split="blind")) == len(TASKS)
    picked = select(TASKS, ids=[TASKS[3].id, TASKS[1].id])
    assert [task.id for task in picked] == [TASKS[1].id, TASKS[3].id]  # file order
    assert len(select(TASKS, split="all", limit=5)) == 5
    with pytest.raises(TaskDataError, match="unknown task ids"):
        select(TASKS, ids=["no-such-task"])


def test_the_first_twenty_dev_tasks_cover_every_specialist() -> None:
    """The file interleaves specialists, so `--limit 20` samples them all."""
    first = select(TASKS, split="dev", limit=20)
    assert {name for task in first for name in task.specialists} == set(SPECIALISTS)


def _write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD_ROW = {
    "id": "t1",
    "split": "dev",
    "specialists": ["vision"],
    "request": "read {a.png}",
    "files": {"a.png": {"kind": "image", "lines": ["HELLO"]}},
    "check": [{"kind": "contains_all", "terms": ["hello"]}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "test"}, "split must be"),
        ({"specialists": ["painter"]}, "not a list of specialists"),
        ({"request": "read {b.png}"}, "names files"),
        ({"check": []}, "`check` is empty"),
        ({"check": [{"kind": "vibes"}]}, "unknown check kind"),
        ({"check": [{"kind": "number"}]}, "'value' is required"),
        ({"files": {"a.png": {"kind": "video"}}}, "unknown kind"),
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_malformed_rows_are_refused_with_the_reason(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskDataError, match=message):
        load_tasks(_write(tmp_path, [{**GOOD_ROW, **change}]))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="appears twice"):
        load_tasks(_write(tmp_path, [GOOD_ROW, GOOD_ROW]))


# ---- the files ------------------------------------------------------------------------------------------


def _check_file(path: Path, spec: dict[str, Any]) -> None:
    assert path.is_file() and path.stat().st_size > 0
    kind = spec["kind"]
    if kind == "speech":
        with wave.open(str(path)) as audio:
            assert audio.getnframes() / audio.getframerate() > 0.5
            assert audio.getnchannels() == (2 if "tone_hz" in spec else 1)
    elif kind == "image":
        from PIL import Image

        with Image.open(path) as picture:
            assert picture.size[0] > 10 and picture.size[1] > 10
    elif kind == "pdf":
        from pypdf import PdfReader

        pages = PdfReader(path).pages
        assert len(pages) == len(spec["pages"])
        assert all(page.extract_text().strip() for page in pages)
    elif kind == "table":
        import pandas

        frame = pandas.read_csv(path) if path.suffix == ".csv" else pandas.read_excel(path)
        assert list(frame.columns) == spec["columns"] and len(frame) == len(spec["rows"])


@NEEDS_ESPEAK
@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
def test_every_task_files_can_be_made(task: Task, tmp_path: Path) -> None:
    paths = make_files(task.files, tmp_path)
    for name, path in paths.items():
        _check_file(path, dict(task.files[name]))
    request = task.request_for(paths)
    assert "{" not in request and all(str(path) in request for path in paths.values())


def test_file_specs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FileSpecError, match="unknown kind"):
        make_file("a.bin", {"kind": "hologram"}, tmp_path)
    with pytest.raises(FileSpecError, match="needs 'lines'"):
        make_file("a.png", {"kind": "image"}, tmp_path)
    with pytest.raises(FileSpecError, match=r"\.csv or \.xlsx"):
        make_file("a.json", {"kind": "table", "columns": ["a"], "rows": [[1]]}, tmp_path)
    with pytest.raises(FileSpecError, match="plain file name"):
        make_file("../a.txt", {"kind": "text", "text": "x"}, tmp_path)


# ---- the checks of every task ---------------------------------------------------------------------------


def _right_outcome(task: Task, folder: Path, media: dict[str, Path]) -> Outcome:
    """An outcome every check of `task` should accept, built from the checks themselves."""
    words: list[str] = []
    artifacts: list[Path] = []
    for check in task.check:
        kind = check["kind"]
        if kind in ("contains_all", "trace_contains"):
            words += check["terms"]
        elif kind == "contains_any":
            words.append(check["terms"][0])
        elif kind == "number":
            words.append(f"{check['value']}")
        elif kind == "language_code":
            words.append(LANGUAGE_NAMES.get(check["code"], (check["code"],))[0])
        elif kind == "artifact_audio":
            artifacts.append(media["long.wav"])
        elif kind == "artifact_image":
            from PIL import Image

            path = folder / f"{task.id}.png"
            Image.new("RGB", (check.get("min_width", 1), check.get("min_height", 1))).save(path)
            artifacts.append(path)
    return Outcome(answer=" ; ".join(words), artifacts=tuple(artifacts))


@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
def test_every_task_check_accepts_a_right_answer_and_refuses_an_empty_run(
    task: Task, tmp_path: Path, media: dict[str, Path]
) -> None:
    """The checks of one task agree with each other (no contains_none that refuses the expected term)."""
    for check in task.check:
        assert run_check(check, _right_outcome(task, tmp_path, media))[0], check
    assert not all(run_check(check, Outcome(answer=""))[0] for check in task.check)


# ---- one task through a crew ----------------------------------------------------------------------------


class FakeCrew:
    """Answers every request with the same RunResult (the real class), recording the request."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        self.requests: list[str] = []

    def run(self, task: str) -> RunResult:
        self.requests.append(task)
        defaults: dict[str, Any] = {
            "answer": None,
            "run_id": "r1",
            "state": "success",
            "mode": "router",
            "agents": ("vision",),
            "tools": (),
            "delegations": (),
            "steps": (),
            "input_tokens": 1,
            "output_tokens": 1,
            "duration_s": 0.1,
            "route": SimpleNamespace(specialists=["vision"]),
        }
        return RunResult(**{**defaults, **self.fields})


RECEIPT = next(task for task in TASKS if task.id == "vision-cafe-total")
ALOUD = next(task for task in TASKS if task.id == "multi-receipt-total-aloud")


def test_run_task_passes_a_right_answer_and_names_the_file_in_the_request(tmp_path: Path) -> None:
    crew = FakeCrew(answer="The total is 12.70")
    record = run_task(crew, RECEIPT, tmp_path)
    assert record.passed and record.cause is None
    assert str(tmp_path / RECEIPT.id / "receipt.png") in crew.requests[0]
    assert record.handled_by == ["vision"] and record.seconds >= 0


def test_run_task_puts_a_failed_run_down_to_its_cause(tmp_path: Path) -> None:
    record = run_task(FakeCrew(state="max_steps_error", steps=(CALL_STEP,)), RECEIPT, tmp_path)
    assert not record.passed and record.cause == "call" and record.symptoms == {"call": 1}
    misrouted = run_task(FakeCrew(answer="12.70", route=SimpleNamespace(specialists=["research"])), ALOUD, tmp_path)
    assert misrouted.cause == "routing"


def test_run_task_finds_files_the_run_wrote(tmp_path: Path, media: dict[str, Path]) -> None:
    said = step(None, ["synthesize_speech"], observations=f"{{'path': '{media['long.wav']}', 'text': 'TOTAL 12.70'}}")
    record = run_task(
        FakeCrew(answer="Done.", route=SimpleNamespace(specialists=["vision", "audio"]), steps=(said,)), ALOUD, tmp_path
    )
    assert record.passed, record.checks
    assert record.artifacts == [str(media["long.wav"])]


def test_run_task_survives_a_crew_that_raises(tmp_path: Path) -> None:
    class Broken:
        def run(self, task: str) -> RunResult:
            raise RuntimeError("backend died")

    record = run_task(Broken(), RECEIPT, tmp_path)
    assert not record.passed and record.cause == "error" and "backend died" in record.errors[0]


def test_summary_per_specialist_split_cause_and_time() -> None:
    def rec(expected: list[str], split: str, passed: bool, cause: str | None, seconds: float) -> dict[str, Any]:
        return {"expected": expected, "split": split, "passed": passed, "cause": cause, "seconds": seconds,
                "multi": len(expected) > 1}  # fmt: skip

    records = [
        rec(["vision"], "dev", True, None, 10.0),
        rec(["vision", "audio"], "dev", False, "call", 30.0),
        rec(["research"], "blind", False, "routing", 20.0),
        rec(["audio"], "blind", True, None, 40.0),
    ]
    summary = summarize(records)
    assert summary["overall"]["passed"] == 2 and summary["overall"]["median_s"] == 25.0
    assert summary["by_specialist"]["vision"] == {"passed": 1, "n": 2, "rate": 0.5}
    assert summary["by_specialist"]["audio"]["n"] == 2 and "generation" not in summary["by_specialist"]
    assert summary["by_split"]["blind"]["passed"] == 1
    assert summary["by_steps"]["multi"]["n"] == 1
    assert summary["failures_by_cause"]["call"] == 1 and summary["failures_by_cause"]["routing"] == 1
    assert summary["failures_by_cause_per_split"]["dev"]["call"] == 1
    assert summary["overall"]["p90_s"] >= summary["overall"]["median_s"]


# ---- the CI subset through the real crew -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("minilm_available")
def test_the_ci_subset_succeeds_with_the_embedded_model(
    embedded_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    from smolcrew import Crew
    from tests.conftest import SHARED_CACHE

    # offline, a model that is not here fails at once instead of after a minute of retries (read at import)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    home = tmp_path / "home"
    home.mkdir()
    (SHARED_CACHE / "home" / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(SHARED_CACHE / "home" / "cache", target_is_directory=True)
    tasks = select(TASKS, subset="ci")
    with Crew.from_config(
        home=str(home), llm={"backend": "embedded", "model_path": str(embedded_gguf)}, memory={"sinks": []}
    ) as crew:
        records = [run_task(crew, task, tmp_path / "files") for task in tasks]
    failed = [f"{r.id}: {r.cause} {r.checks} {r.errors[:1]}" for r in records if not r.passed]
    assert sum(r.passed for r in records) >= 0.9 * len(records), "\n".join(failed)
