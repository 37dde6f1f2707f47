"""The end-to-end task suite: requests as users write them, run through the real `Crew`, judged by checks.

Tasks live in bench/data/tasks.jsonl, one JSON object a line:

    {"id": "vision-receipt-total", "split": "dev", "specialists": ["vision"], "also": [],
     "request": "what's the total on {receipt.png}?", "files": {"receipt.png": {"kind": "image", ...}},
     "check": [{"kind": "number", "value": 12.7}], "subsets": ["ci"]}

- `specialists`: who should handle the request, in order; `also`: other orders that are just as right.
- `request`: `{name}` stands for the absolute path of the task's file `name`, made by bench/task_files.py.
- `check`: checks that must all pass (bench/task_checks.py); never a model's opinion.
- `split`: "dev" (may be looked at while improving the agents) or "blind" (never used for tuning: reported
  apart). `subsets`: named selections, e.g. "ci" (the tasks CI runs).

`run_task` makes the files, runs the request, checks what came back and says why it failed; `summarize` turns
the per-task records into success per specialist and per split, time percentiles and failures by cause.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.task_checks import CAUSES, CheckError, Outcome, classify, run_checks, validate_check
from bench.task_files import FILE_KINDS

__all__ = [
    "SPECIALISTS",
    "TASKS",
    "Task",
    "TaskDataError",
    "load_tasks",
    "outcome_of",
    "run_task",
    "select",
    "summarize",
]

TASKS = Path(__file__).resolve().parent / "data" / "tasks.jsonl"
SPECIALISTS = ("vision", "audio", "generation", "language", "research")
SPLITS = ("dev", "blind")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_ -]+\.[A-Za-z0-9]+)\}")  # a name may have spaces, as people's files do
_PATH = re.compile(r"(/[^\s'\"(),;:*?<>|]+\.[A-Za-z0-9]{2,5})\b")


class TaskDataError(ValueError):
    """The task file is malformed: the message names the task and what is wrong."""


class RunsRequests(Protocol):
    """What `run_task` needs of a crew: `Crew.run`."""

    def run(self, task: str) -> Any: ...


@dataclass(frozen=True)
class Task:
    id: str
    split: str
    specialists: tuple[str, ...]
    request: str
    files: Mapping[str, Mapping[str, Any]]
    check: tuple[Mapping[str, Any], ...]
    also: tuple[tuple[str, ...], ...] = ()
    subsets: tuple[str, ...] = ()
    note: str = ""

    @property
    def accepted(self) -> list[tuple[str, ...]]:
        """Every sequence of specialists that counts as the right route."""
        return [self.specialists, *self.also]

    @property
    def multi(self) -> bool:
        return len(self.specialists) > 1

    def request_for(self, paths: Mapping[str, Path]) -> str:
        """The request with each `{name}` replaced by the absolute path of that file."""
        return _PLACEHOLDER.sub(lambda m: str(paths[m.group(1)]), self.request)


def _task(row: Mapping[str, Any], line: int) -> Task:
    where = f"task {row.get('id', f'on line {line}')!r}"
    known = {"id", "split", "specialists", "also", "request", "files", "check", "subsets", "note"}
    if set(row) - known:
        raise TaskDataError(f"{where}: unknown keys {sorted(set(row) - known)}")
    for key in ("id", "split", "specialists", "request", "files", "check"):
        if key not in row:
            raise TaskDataError(f"{where}: {key!r} is missing")
    if row["split"] not in SPLITS:
        raise TaskDataError(f"{where}: split must be one of {SPLITS}, not {row['split']!r}")
    routes = [row["specialists"], *row.get("also", [])]
    for route in routes:
        if not route or any(name not in SPECIALISTS for name in route):
            raise TaskDataError(f"{where}: {route!r} is not a list of specialists from {SPECIALISTS}")
    named = set(_PLACEHOLDER.findall(row["request"]))
    if named != set(row["files"]):
        raise TaskDataError(f"{where}: the request names files {sorted(named)}, `files` has {sorted(row['files'])}")
    for name, spec in row["files"].items():
        if spec.get("kind") not in FILE_KINDS:
            raise TaskDataError(f"{where}: file {name!r} has unknown kind {spec.get('kind')!r}")
    if not row["check"]:
        raise TaskDataError(f"{where}: `check` is empty; say what a right answer contains")
    for check in row["check"]:
        try:
            validate_check(check)
        except CheckError as exc:
            raise TaskDataError(f"{where}: {exc}") from exc
    return Task(
        id=row["id"],
        split=row["split"],
        specialists=tuple(row["specialists"]),
        request=row["request"],
        files=row["files"],
        check=tuple(row["check"]),
        also=tuple(tuple(route) for route in row.get("also", [])),
        subsets=tuple(row.get("subsets", [])),
        note=row.get("note", ""),
    )


def load_tasks(path: Path = TASKS) -> list[Task]:
    """Every task in `path`, in file order.

    Raises:
        TaskDataError: a row is malformed, or two tasks share an id.
    """
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path.name} line {number}: not JSON ({exc})") from exc
        task = _task(row, number)
        if task.id in seen:
            raise TaskDataError(f"task id {task.id!r} appears twice")
        seen.add(task.id)
        tasks.append(task)
    return tasks


def select(
    tasks: Sequence[Task],
    *,
    split: str = "all",
    ids: Iterable[str] = (),
    subset: str | None = None,
    limit: int | None = None,
) -> list[Task]:
    """Tasks of `split` ("dev", "blind" or "all"), restricted to `ids` and `subset` when given, first `limit`.

    Raises:
        TaskDataError: an id in `ids` is unknown.
    """
    wanted = [i for i in ids if i]
    unknown = sorted(set(wanted) - {task.id for task in tasks})
    if unknown:
        raise TaskDataError(f"unknown task ids {unknown}")
    chosen = [
        task
        for task in tasks
        if (split == "all" or task.split == split)
        and (not wanted or task.id in wanted)
        and (subset is None or subset in task.subsets)
    ]
    return chosen if limit is None else chosen[:limit]


# ---- running one task ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def outcome_of(result: Any, inputs: Path) -> Outcome:
    """What the user got from a RunResult: the answer, the files the run wrote, and the run's trace.

    Files: `result.artifacts`, plus any existing file the answer or a tool output names, except the task's
    own inputs (under `inputs`).
    """
    answer = _text(result.answer)
    parts: list[str] = []
    for step in result.steps:
        payload = step.payload or {}
        for key in ("task", "code", "observations", "output"):
            if payload.get(key):
                parts.append(_text(payload[key]))
    trace = "\n".join(parts)
    files: dict[Path, None] = {Path(p): None for p in result.artifacts}
    for match in _PATH.finditer(answer + "\n" + trace):
        path = Path(match.group(1))
        try:
            if path.is_file() and inputs.resolve() not in path.resolve().parents:
                files[path] = None
        except OSError:
            continue
    return Outcome(answer=answer, artifacts=tuple(files), trace=trace, tools=tuple(result.tools))


@dataclass
class TaskRecord:
    """One task's run, as written to the results file."""

    id: str
    split: str
    expected: list[str]
    multi: bool
    passed: bool = False
    cause: str | None = None
    handled_by: list[str] | None = None
    state: str | None = None
    seconds: float = 0.0
    answer: str = ""
    checks: list[str] = field(default_factory=list)
    symptoms: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    run_id: str | None = None
    request: str = ""


def run_task(crew: RunsRequests, task: Task, workdir: Path) -> TaskRecord:
    """Make the task's files under `workdir/<id>/`, run its request through `crew`, check and classify."""
    from bench.task_files import make_files

    folder = workdir / task.id
    paths = make_files(task.files, folder)
    request = task.request_for(paths)
    record = TaskRecord(task.id, task.split, list(task.specialists), task.multi, request=request)
    started = time.perf_counter()
    try:
        result = crew.run(request)
    except Exception as exc:  # the suite must go on: a crew that raises is a failure of this task
        record.seconds = time.perf_counter() - started
        record.cause, record.errors = "error", [f"{type(exc).__name__}: {exc}"[:500]]
        return record
    record.seconds = time.perf_counter() - started
    outcome = outcome_of(result, folder)
    passed, lines = run_checks(task.check, outcome)
    route = getattr(result, "route", None)
    handled = list(route.specialists) if result.mode == "router" and route is not None else list(result.agents)
    specialists = set(SPECIALISTS) | set(result.agents)
    cause, symptoms = classify(
        passed=passed,
        state=result.state,
        handled_by=handled,
        accepted=task.accepted,
        steps=result.steps,
        specialists=specialists,
    )
    errors = [str((s.payload or {}).get("error"))[:300] for s in result.steps if (s.payload or {}).get("error")]
    if result.error:
        errors.append(str(result.error)[:300])
    errors = list(dict.fromkeys(errors))
    record.passed, record.cause, record.symptoms = passed, cause, symptoms
    record.handled_by, record.state, record.run_id = handled, result.state, result.run_id
    record.answer, record.checks, record.errors = outcome.answer[:500], lines, errors
    record.tools, record.artifacts = list(result.tools), [str(p) for p in outcome.artifacts]
    return record


# ---- the report ------------------------------------------------------------------------------------------


def _rate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    passed = sum(1 for r in records if r["passed"])
    return {"passed": passed, "n": len(records), "rate": round(passed / len(records), 4) if records else None}


def _times(records: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    seconds = sorted(float(r["seconds"]) for r in records)
    if not seconds:
        return {"median_s": None, "p90_s": None, "max_s": None}
    p90 = statistics.quantiles(seconds, n=10, method="inclusive")[-1] if len(seconds) > 1 else seconds[0]
    return {"median_s": round(statistics.median(seconds), 2), "p90_s": round(p90, 2), "max_s": round(seconds[-1], 2)}


def _causes(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(CAUSES, 0)
    for record in records:
        if not record["passed"]:
            counts[record["cause"] or "error"] = counts.get(record["cause"] or "error", 0) + 1
    return counts


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Success overall, per specialist (every task a specialist should take part in), per split and for single
    vs multi-step requests; time per task; failures by cause, overall and per split."""
    splits = {name: [r for r in records if r["split"] == name] for name in SPLITS}
    return {
        "overall": {**_rate(records), **_times(records)},
        "by_specialist": {
            name: _rate([r for r in records if name in r["expected"]])
            for name in SPECIALISTS
            if any(name in r["expected"] for r in records)
        },
        "by_split": {name: {**_rate(rows), **_times(rows)} for name, rows in splits.items() if rows},
        "by_steps": {
            "single": _rate([r for r in records if not r["multi"]]),
            "multi": _rate([r for r in records if r["multi"]]),
        },
        "failures_by_cause": _causes(records),
        "failures_by_cause_per_split": {name: _causes(rows) for name, rows in splits.items() if rows},
    }
