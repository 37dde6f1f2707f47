"""The wheel, built from this checkout and installed into a fresh venv.

It holds every module under smolcrew/ (the top-level agents/, tools/, memory/ and validators/ folders land as
smolcrew/agents/..., through the symlinks in smolcrew/), the agents' data files and prompts, and nothing else at the
top of site-packages: no `agents`, `tools`, `memory` or `validators` package to shadow, or be shadowed by, a user's
own. Installed, `smolcrew run` answers from a folder that has packages of those names (their `base` modules raise
when imported), and `python -c` there imports every smolcrew module from the venv, never from the folder.

The shadowing bug coming back fails here: a top-level package in the wheel fails the file list; a module that
imports `tools.x` instead of `smolcrew.tools.x` fails the run (no such package), and if the top-level packages were
installed too (the old layout), the probe from the folder imports the folder's raising `tools/base.py`.

The fresh venv borrows the dependencies: a `.pth` line adds this venv's site-packages after its own. A path line in
a `.pth` file does not run the `.pth` files of that folder, so this venv's editable install of smolcrew (its
`__editable__` finder) stays off and the wheel's copy is the one imported (asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import code, home_with_shared_cache

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("minilm_available")]

ROOT = Path(__file__).resolve().parents[1]
SHADOWS = ("agents", "tools", "memory", "validators")
"""Folders that are smolcrew.<name> once installed; a top-level package of one of these names is the bug."""
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "build", "dist", "*.egg-info", ".*_cache", ".hypothesis", ".smolcrew"
)
"""What the copy of the checkout leaves out (as .gitignore does): venvs, caches, build output, run data."""
PROBE = """
import importlib, json, pkgutil, sys
import smolcrew, smolcrew.tools.base
names = [m.name for m in pkgutil.walk_packages(smolcrew.__path__, "smolcrew.") if not m.name.endswith("__main__")]
errors = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = repr(exc)
files = [m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "smolcrew" and m.__file__]
print(json.dumps({"smolcrew": smolcrew.__file__, "tools.base": smolcrew.tools.base.__file__, "files": files,
                  "modules": len(names), "errors": errors,
                  "shadows": [name for name in sys.argv[1:] if name in sys.modules]}))
"""
"""Run with `python -c PROBE agents tools ...` from a folder: import smolcrew.tools.base and every smolcrew module,
then say where each came from, what failed and which of the named top-level packages got imported."""


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, **options)
    assert done.returncode == 0, f"{command[:4]} exited {done.returncode}:\n{done.stdout[:3000]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout without its venv, caches and build output (setuptools' build/ keeps deleted files)."""
    copy = tmp_path_factory.mktemp("source") / "smolcrew"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline with this venv's setuptools (no build isolation: nothing is downloaded)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools: pip install 'setuptools>=69'")
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)])
    (built,) = out.glob("smolcrew-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies come from this venv's site-packages, after its own."""
    folder = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)])
    python = folder / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    _run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return folder


def _package_data(source: Path) -> list[Path]:
    """The agents' data files and prompts, the tools' data files (pyproject.toml, [tool.setuptools.package-data])."""
    agents, tools = source / "agents", source / "tools"
    return [*agents.glob("data/*.jsonl"), *agents.glob("prompts/*.jinja"), *tools.glob("data/*.txt")]


def test_the_wheel_holds_every_module_and_data_file_and_nothing_at_the_top_but_smolcrew(
    wheel: Path, source: Path
) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    name, version = wheel.name.split("-")[:2]
    assert {path.split("/")[0] for path in names} == {"smolcrew", f"{name}-{version}.dist-info"}
    assert not {path.split("/")[0] for path in names} & set(SHADOWS)
    package = source / "smolcrew"
    modules = {
        (Path(folder) / file).relative_to(source).as_posix()
        for folder, _, files in os.walk(package, followlinks=True)  # agents/ etc. are linked in
        for file in files
        if file.endswith(".py") and "__pycache__" not in Path(folder).parts
    }
    assert {f"smolcrew/{shadow}/__init__.py" for shadow in SHADOWS} <= modules
    assert {path for path in names if path.endswith(".py")} == modules
    data = {f"smolcrew/{p.relative_to(source).as_posix()}" for p in _package_data(source)}
    assert "smolcrew/agents/data/routing_examples.jsonl" in data and "smolcrew/agents/prompts/" in " ".join(data)
    assert "smolcrew/tools/data/imagenet_labels.txt" in data
    assert data <= names


def test_the_installed_wheel_runs_in_a_folder_with_its_own_agents_tools_memory_validators(
    venv: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    for shadow in SHADOWS:
        (project / shadow).mkdir(parents=True)
        (project / shadow / "__init__.py").write_text("", encoding="utf-8")
        (project / shadow / "base.py").write_text(f"raise ImportError('the folder\\'s {shadow}.base was imported')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "SMOLCREW_HOME": str(home_with_shared_cache(tmp_path / "home")),
        "SMOLCREW_LLM__BACKEND": "scripted",
        "SMOLCREW_LLM__SCRIPT": json.dumps([code("final_answer(17*23+5)")]),
    }
    done = _run([str(venv / "bin" / "smolcrew"), "run", "--json", "What is 17*23+5?"], cwd=project, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["state"], result["answer"]) == ("success", 396)

    # python -c puts the working folder first on sys.path: a top-level `tools` import would find the folder's
    probe = _run([str(venv / "bin" / "python"), "-c", PROBE, *SHADOWS], cwd=project, env=env)
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["errors"] == {} and found["shadows"] == [] and found["modules"] > 50
    site = Path(found["smolcrew"]).resolve().parent.parent  # the venv's site-packages, not the checkout
    assert site.is_relative_to(venv.resolve()) and site.name == "site-packages", found["smolcrew"]
    assert Path(found["tools.base"]).resolve() == site / "smolcrew" / "tools" / "base.py"
    assert [file for file in found["files"] if not Path(file).resolve().is_relative_to(site)] == []
