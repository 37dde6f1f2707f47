"""The tree is the architecture: the import contracts hold, modules stay small, one namespace.

- The import contracts in pyproject.toml (`[tool.importlinter]`: layers, no cycles, the interfaces on top) are kept.
- No module of the packages is over `MAX_LINES` lines, but for the exceptions listed here, each with its reason.
- Nothing imports the bare top-level names `agents`, `tools`, `memory` or `validators`: only `smolcrew.…`.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("smolcrew", "agents", "tools", "memory", "validators")
"""The installed namespace: smolcrew/ and the top-level folders linked into it (smolcrew/agents -> ../agents, ...)."""
LINKED = frozenset(PACKAGES[1:])
MAX_LINES = 400
LONG_MODULES: dict[str, str] = {}
"""Modules allowed over `MAX_LINES`, with the reason. An entry whose module is back under the limit must go."""


def package_files() -> Iterator[Path]:
    """Every Python file of the packages, once: smolcrew/ without following its links, then the linked folders."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if package == "smolcrew" and path.relative_to(ROOT / package).parts[0] in LINKED:
                continue  # reached through a link: counted from its own folder
            if "__pycache__" not in path.parts:
                yield path


def python_files() -> Iterator[Path]:
    """The packages' files, the tests and the benchmarks."""
    yield from package_files()
    for folder in ("tests", "bench"):
        yield from (path for path in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in path.parts)


def test_import_contracts_are_kept() -> None:
    """`lint-imports` checks the contracts of pyproject.toml on the import graph (imports in functions count)."""
    lint_imports = require_program("lint-imports", "pip install -e '.[dev]' (it brings import-linter)")
    done = subprocess.run(
        [lint_imports, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"an import contract is broken (pyproject.toml, [tool.importlinter]):\n{done.stdout}"
    assert "BROKEN" not in done.stdout and " KEPT" in done.stdout, done.stdout


def test_the_walk_sees_each_package_once() -> None:
    files = [path.relative_to(ROOT).as_posix() for path in package_files()]
    assert len(files) == len(set(files))
    assert {name.split("/")[0] for name in files} == set(PACKAGES)
    assert "smolcrew/crew.py" in files and "memory/records.py" in files
    assert not any(name.startswith(tuple(f"smolcrew/{link}/" for link in LINKED)) for name in files)


def test_no_module_is_over_the_line_limit() -> None:
    lines = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in package_files()
    }
    too_long = {name: count for name, count in lines.items() if count > MAX_LINES and name not in LONG_MODULES}
    assert not too_long, f"modules over {MAX_LINES} lines: split them along their seams: {too_long}"
    unknown = sorted(set(LONG_MODULES) - set(lines))
    assert not unknown, f"LONG_MODULES names modules that do not exist: {unknown}"
    stale = sorted(name for name in LONG_MODULES if lines[name] <= MAX_LINES)
    assert not stale, (
        f"back under {MAX_LINES} lines: remove them from LONG_MODULES in tests/test_architecture.py: {stale}"
    )


def _bare_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, name) of each import of a bare top-level `agents`, `tools`, `memory` or `validators` in `tree`, in
    import statements, `importlib.import_module("...")` with a literal name, and code in string literals (a
    subprocess's `-c` program)."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import " in node.value:
            try:
                code = ast.parse(node.value)
            except (SyntaxError, ValueError):
                continue
            names = [name for _, name in _bare_imports(code)]
        for name in names:
            if name.split(".")[0] in LINKED:
                yield node.lineno if hasattr(node, "lineno") else 0, name


def test_nothing_imports_the_bare_top_level_names() -> None:
    this = Path(__file__).resolve()  # its own samples below are bare on purpose
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in python_files()
        if path.resolve() != this
        for line, name in _bare_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    ]
    assert not found, "import these as smolcrew.<name> (one installed namespace):\n" + "\n".join(found)


def test_the_bare_import_check_sees_every_form() -> None:
    source = """
import memory.worker
from tools import pool
importlib.import_module("validators.rules")
probe = "import sys, agents.team"
from smolcrew.memory import records
import toolsmith
"""
    found = sorted(name for _, name in _bare_imports(ast.parse(source)))
    assert found == ["agents.team", "memory.worker", "tools", "validators.rules"]
