"""Startup time: `smolcrew --help` and `import smolcrew`, against the bare interpreter.

    python bench/startup.py [--quick]

Each command runs in a fresh subprocess, 1 warm-up then 10 timed runs (3 with --quick), the commands taking
turns so that a passing load on the machine hits them alike. Also checks which heavy packages (torch,
transformers, smolagents) each entry point loads, and lists the slowest imports (`python -X importtime`).
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import cpu_snapshot, markdown_table, other_cores

HEAVY = ("torch", "transformers", "smolagents")


def smolcrew_script() -> Path:
    """The venv's `smolcrew` console script (the venv this benchmark runs in), else the one on PATH."""
    for folder in (Path(sys.prefix) / "bin", Path(sys.prefix) / "Scripts", Path(sys.executable).parent):
        for name in ("smolcrew", "smolcrew.exe"):
            if (folder / name).is_file():
                return folder / name
    found = shutil.which("smolcrew")
    if found is None:
        sys.exit("no `smolcrew` console script found: run `pip install -e .` in the venv first")
    return Path(found)


def run_once(argv: list[str], cwd: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def loaded_heavy(code: str, cwd: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter and report which heavy packages sys.modules holds at exit."""
    probe = (
        "import atexit, json, sys\n"
        "def _report():\n"
        f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "    sys.stderr.write('\\n@@' + json.dumps({'heavy': heavy, 'modules': len(sys.modules)}) + '\\n')\n"
        "atexit.register(_report)\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    line = [x for x in done.stderr.decode(errors="replace").splitlines() if x.startswith("@@")]
    if not line:
        return {"heavy": None, "modules": None, "error": done.stderr.decode(errors="replace")[-500:]}
    return json.loads(line[-1][2:])


def slowest_imports(code: str, cwd: str, top: int = 5) -> list[tuple[str, float]]:
    """The top-level packages (other than the one probed) with the largest cumulative import time (ms), from
    `-X importtime`; a package's time includes what it imports."""
    skip = {code.split()[-1].split(".")[0], "site", "encodings"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    cumulative: dict[str, float] = {}
    for line in done.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        name = fields[2].strip()
        if "." in name or name.startswith("_") or name in skip:  # count each top-level package once
            continue
        cumulative[name] = max(cumulative.get(name, 0.0), int(fields[1]) / 1000)
    return sorted(cumulative.items(), key=lambda item: item[1], reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed runs instead of 10")
    args = parser.parse_args()
    runs = 3 if args.quick else 10
    cwd = tempfile.gettempdir()  # neutral folder: no ./smolcrew.toml, no source tree on sys.path
    script = smolcrew_script()
    commands: dict[str, dict[str, Any]] = {
        "python -c pass": {"argv": [sys.executable, "-c", "pass"], "goal": None},
        "python -c 'import smolcrew'": {"argv": [sys.executable, "-c", "import smolcrew"], "goal": 1.0},
        "smolcrew --help": {"argv": [str(script), "--help"], "goal": 0.5},
    }
    cpu_start = cpu_snapshot()
    for spec in commands.values():  # warm-up: disk cache, .pyc files
        run_once(spec["argv"], cwd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, spec in commands.items():
            times[name].append(run_once(spec["argv"], cwd))
    foreign = other_cores(cpu_start, cpu_snapshot())

    probes = {
        "python -c 'import smolcrew'": loaded_heavy("import smolcrew", cwd),
        "smolcrew --help": loaded_heavy(
            "sys.argv = ['smolcrew', '--help']\nfrom smolcrew.cli.app import main\nmain()", cwd
        ),
        "from smolcrew import Crew, Settings": loaded_heavy("from smolcrew import Crew, Settings", cwd),
    }
    slow = {
        "import smolcrew": slowest_imports("import smolcrew", cwd),
        "smolcrew.cli.app": slowest_imports("import smolcrew.cli.app", cwd),
    }

    baseline = statistics.median(times["python -c pass"])
    rows = []
    results: dict[str, Any] = {}
    for name, spec in commands.items():
        values = times[name]
        low, mid = min(values), statistics.median(values)
        goal = spec["goal"]
        verdict = "baseline" if goal is None else f"≤ {goal:g} s {'✅' if mid <= goal else '❌'}"
        probe = probes.get(name)
        heavy = "—" if probe is None else (", ".join(probe["heavy"]) or "none") if probe["heavy"] is not None else "?"
        rows.append([f"`{name}`", f"{low:.3f}", f"{mid:.3f}", f"{mid - baseline:+.3f}", verdict, heavy])
        results[name] = {
            "argv": spec["argv"],
            "runs_s": values,
            "min_s": low,
            "median_s": mid,
            "over_baseline_s": mid - baseline,
            "goal_s": goal,
            "meets_goal": None if goal is None else mid <= goal,
            "heavy_loaded": None if probe is None else probe["heavy"],
        }

    print(f"## Startup time ({runs} runs each after 1 warm-up, {os.cpu_count()} CPUs)\n")
    print(
        markdown_table(
            ["command", "min s", "median s", "median − `pass`", "goal (median)", "torch / transformers / smolagents"],
            rows,
        )
    )
    extra = probes["from smolcrew import Crew, Settings"]
    print(
        f"\n`from smolcrew import Crew, Settings` loads: {', '.join(extra['heavy'] or []) or 'none'} of "
        f"{', '.join(HEAVY)}"
    )
    print(
        "slowest packages imported by smolcrew.cli.app (cumulative ms): "
        + ", ".join(f"{n} {ms:.0f}" for n, ms in slow["smolcrew.cli.app"])
    )
    print(f"CPU cores busy with other processes (avg): {foreign:.2f}" if foreign is not None else "")
    import_clean = not probes["python -c 'import smolcrew'"]["heavy"]
    out = Path(__file__).resolve().parent / "results" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "startup",
        "quick": args.quick,
        "runs": runs,
        "python": sys.executable,
        "smolcrew_script": str(script),
        "cwd": cwd,
        "cpu_count": os.cpu_count(),
        "other_processes_cores": foreign,
        "commands": results,
        "heavy_modules_probe": probes,
        "import_smolcrew_loads_no_heavy_package": import_clean,
        "slowest_imports_ms": slow,
    }
    out.write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
