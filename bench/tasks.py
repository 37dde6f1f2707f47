"""End-to-end task suite: what a user gets from the real Crew on requests written the way people write them.

    python bench/tasks.py [--split dev|blind|all] [--subset ci] [--ids a,b] [--limit N] [--model 0.5b|1.5b]
                          [--home DIR] [--sinks] [--keep] [--workdir DIR]

Tasks: bench/data/tasks.jsonl (see bench/task_suite.py for the format, bench/task_checks.py for the checks and
the failure causes). Each task's input files (speech from espeak-ng, text rendered into PNGs, two-page PDFs,
CSV/XLSX tables) are made fresh in a work folder; the request names them by absolute path; the run's answer
and the files it wrote are checked by the checks written with the task, never by a model.

Only tools whose models run offline here are exercised: OCR (Tesseract), speech to text (packaged Whisper
tiny.en for English, base for other languages), text to speech (espeak-ng), noise reduction and source separation
(signal processing), upscaling (Lanczos), language detection (lingua), sentence similarity and extractive
summaries (packaged MiniLM), tables (pandas), arithmetic (`calculate`), PDF text (pypdf; `answer_from_pdf` also
needs the `pdf_qa` weights, which do not ship offline); `classify_image` (packaged EfficientNet-Lite0) is offered
too. Roles with no real weights offline (captioning, detection, translation, image generation, ...) are left out.

The crew: `Crew.from_config()` (smolcrew.toml and SMOLCREW_* apply), with the embedded backend and `--model`
(default the packaged Qwen2.5-Coder-0.5B; `1.5b` needs its bundle installed, else the run is skipped), a fresh
home under the work folder whose `cache` is the configured home's (joined GGUF, router embeddings), and memory
sinks off (journal only; `--sinks` keeps the configured ones); `files.roots` gains the work folder, so its tools
may read the task files wherever the work folder is. One crew serves every task, warmed up first.
HF_HUB_OFFLINE=1 unless set: offline, a missing model fails at once instead of after a minute of retries.

Prints success per specialist (a multi-step task counts for each specialist in it) and per split, median and
p90 seconds per task, failures by cause; writes bench/results/tasks-<model>.json with every task's record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import cpu_snapshot, markdown_table, other_cores  # noqa: E402
from bench.task_checks import CAUSES  # noqa: E402
from bench.task_files import missing_programs  # noqa: E402
from bench.task_suite import (  # noqa: E402
    SPECIALISTS,
    TASKS,
    Task,
    TaskDataError,
    load_tasks,
    run_task,
    select,
    summarize,
)

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {"0.5b": "qwen2.5-coder-0.5b", "1.5b": "qwen2.5-coder-1.5b"}


def model_name(choice: str) -> str:
    return MODELS.get(choice, choice)


def model_missing(name: str, cache_dir: Path) -> str | None:
    """Why the embedded model `name` cannot be used here (None when it can); never downloads."""
    from smolcrew.gguf import BUNDLES, bundle_installed

    bundle = BUNDLES.get(name)
    if bundle is None:
        return f"unknown model {name!r}; use one of {sorted(MODELS)} or {sorted(BUNDLES)}"
    if (cache_dir / "models" / f"{name}.gguf").exists() or bundle_installed(bundle):
        return None
    return f"{bundle.title} is not installed ({bundle.pip_hint})"


def build_crew(model: str, home: Path, *, config: str | None, sinks: bool, files: Path | None = None) -> Any:
    """The Crew every task runs through: configured settings, the embedded `model`, its own `home`; its tools may
    read the task files under `files` (added to the configured `files.roots`)."""
    from smolcrew import Crew
    from smolcrew.config import load_settings

    configured = load_settings(config)
    home.mkdir(parents=True, exist_ok=True)
    cache = configured.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    if not (home / "cache").exists():
        (home / "cache").symlink_to(cache, target_is_directory=True)
    overrides: dict[str, Any] = {"home": str(home), "llm": {"backend": "embedded", "model": model}}
    if not sinks:
        overrides["memory"] = {"sinks": []}
    if files is not None:
        overrides["files"] = {"roots": [*map(str, configured.files.roots), str(files)]}
    return Crew.from_config(config, **overrides)


def warm_up(crew: Any) -> float:
    """Load the router, the LLM and the specialists before the first timed task; seconds taken."""
    started = time.perf_counter()
    crew.route("warm up: what is 2 + 2?")
    _ = crew.team
    return time.perf_counter() - started


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty": bool(git("status", "--porcelain").strip())}


def share(block: dict[str, Any]) -> str:
    if not block["n"]:
        return "n/a"
    return f"{block['passed']}/{block['n']} ({100 * block['passed'] / block['n']:.0f}%)"


def report(summary: dict[str, Any]) -> str:
    rows = [["all", share(summary["overall"])]]
    rows += [[name, share(block)] for name, block in summary["by_specialist"].items()]
    rows += [[f"split: {name}", share(block)] for name, block in summary["by_split"].items()]
    rows += [[f"{name}-step requests", share(block)] for name, block in summary["by_steps"].items() if block["n"]]
    lines = [markdown_table(["tasks", "success"], rows), ""]
    times = [["all", summary["overall"]]] + [[name, block] for name, block in summary["by_split"].items()]
    lines.append(
        markdown_table(
            ["seconds per task", "median", "p90", "max"],
            [[name, str(block["median_s"]), str(block["p90_s"]), str(block["max_s"])] for name, block in times],
        )
    )
    lines.append("")
    per_split = summary["failures_by_cause_per_split"]
    causes = [c for c in summary["failures_by_cause"] if summary["failures_by_cause"][c]] or list(CAUSES[:1])
    lines.append(
        markdown_table(
            ["failures by cause", "all", *per_split],
            [
                [c, str(summary["failures_by_cause"][c]), *(str(per_split[s].get(c, 0)) for s in per_split)]
                for c in causes
            ],
        )
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--split", default="all", choices=["dev", "blind", "all"])
    parser.add_argument("--subset", default=None, help="a named subset of the tasks, e.g. ci")
    parser.add_argument("--ids", default="", help="comma-separated task ids")
    parser.add_argument("--limit", type=int, default=None, help="run the first N selected tasks")
    parser.add_argument("--model", default="0.5b", help="0.5b (default), 1.5b, or an embedded bundle name")
    parser.add_argument("--config", default=None, help="smolcrew.toml to start from")
    parser.add_argument("--home", type=Path, default=None, help="the crew's home (default: fresh, in the work folder)")
    parser.add_argument("--workdir", type=Path, default=None, help="where input files go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (files, journal, artifacts)")
    parser.add_argument("--sinks", action="store_true", help="mirror to the configured memory stores too")
    parser.add_argument("--tasks", type=Path, default=TASKS, help="the task file")
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/tasks-<model>.json)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tasks: list[Task] = select(
            load_tasks(args.tasks), split=args.split, ids=args.ids.split(","), subset=args.subset, limit=args.limit
        )
    except TaskDataError as exc:
        print(exc)
        return 2
    if not tasks:
        print("no task matches the selection")
        return 1
    missing = missing_programs({spec["kind"] for task in tasks for spec in task.files.values()})
    if missing:
        print(f"missing programs {missing}: apt-get install {' '.join(missing)} (or `make system-deps`)")
        return 1
    from smolcrew.config import load_settings

    model = model_name(args.model)
    why = model_missing(model, load_settings(args.config).cache_dir)
    if why:
        print(f"skipped: {why}")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="smolcrew-tasks-"))
    print(f"{len(tasks)} tasks, model {model}, files in {workdir}", flush=True)
    crew = build_crew(model, args.home or workdir / "home", config=args.config, sinks=args.sinks, files=workdir)
    records: list[dict[str, Any]] = []
    load_s = 0.0
    before = cpu_snapshot()
    try:
        load_s = warm_up(crew)
        print(f"warm-up (router, model, specialists): {load_s:.1f} s", flush=True)
        for number, task in enumerate(tasks, start=1):
            record = dataclasses.asdict(run_task(crew, task, workdir / "files"))
            records.append(record)
            verdict = "pass" if record["passed"] else f"FAIL {record['cause']}"
            print(f"[{number}/{len(tasks)}] {task.id}: {verdict} ({record['seconds']:.1f} s)", flush=True)
    finally:
        crew.close()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(records)
    print()
    print(report(summary))
    out = args.out or RESULTS / f"tasks-{model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "model": model,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "selection": {"split": args.split, "subset": args.subset, "ids": args.ids or None, "limit": args.limit},
        "specialists": list(SPECIALISTS),
        "warm_up_s": round(load_s, 2),
        "other_cores": other_cores(before, cpu_snapshot()),
        "load_average": list(os.getloadavg()),
        "git": git_state(),
        "summary": summary,
        "tasks": records,
    }
    out.write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
