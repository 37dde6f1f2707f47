"""A user's error gets one line and its fix, exit 2, never a traceback: each documented case, through the installed
`smolcrew` program in a subprocess (the way a user meets it). None of them loads a model."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import code, require_program


@dataclass(frozen=True)
class Case:
    args: list[str]
    fix: str
    """What the one line must say: the fix, or the setting to change."""
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""


CASES = {
    "empty request": Case(["run", ""], "say what the crew should do"),
    "blank request": Case(["run", "  \n "], "say what the crew should do"),
    "no request": Case(["run"], "--file PATH"),
    "negative --max-steps": Case(["run", "--max-steps", "-1", "hi"], "1 or more"),
    "zero --max-steps": Case(["run", "--max-steps", "0", "hi"], "1 or more"),
    "redis url that is no URL": Case(
        ["run", "hi"], "redis://HOST:PORT/DB", env={"SMOLCREW_SERVICES__REDIS_URL": "notaurl"}
    ),
    "script that is not JSON": Case(["run", "hi"], "SMOLCREW_LLM__SCRIPT", env={"SMOLCREW_LLM__SCRIPT": "[not json"}),
    "empty script": Case(["run", "hi"], "SMOLCREW_LLM__SCRIPT", env={"SMOLCREW_LLM__SCRIPT": "[]"}),
    "home under /proc": Case(["run", "hi"], "SMOLCREW_HOME", env={"SMOLCREW_HOME": "/proc/smolcrew-home"}),
    "home under a file": Case(["run", "hi"], "SMOLCREW_HOME", env={"SMOLCREW_HOME": "{tmp}/a-file/home"}),
    "empty stdin": Case(["run", "-"], "say what the crew should do", stdin=b" \n"),
    "stdin not UTF-8": Case(["run", "-"], "UTF-8", stdin=b"caf\xe9 au lait"),
    "missing --file": Case(["run", "--file", "{tmp}/missing.txt"], "readable text file"),
    "--file of a folder": Case(["run", "--file", "{tmp}"], "readable text file"),
    "empty --file": Case(["run", "--file", "{tmp}/empty.txt"], "say what the crew should do"),
    "--file not UTF-8": Case(["run", "--file", "{tmp}/latin1.txt"], "save it as UTF-8"),
    "--file and a request": Case(["run", "--file", "{tmp}/empty.txt", "hi"], "give it once"),
}


@pytest.fixture(scope="module")
def smolcrew_program() -> str:
    return require_program("smolcrew", "pip install -e . (it installs the `smolcrew` command)")


@pytest.mark.parametrize("name", list(CASES))
def test_a_user_error_is_one_line_with_its_fix_and_exit_2(
    name: str, smolcrew_program: str, tmp_path: Path, isolated_env: Path
) -> None:
    case = CASES[name]
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    env = {
        **os.environ,
        "SMOLCREW_LLM__BACKEND": "scripted",
        "SMOLCREW_LLM__SCRIPT": json.dumps([code("final_answer(1)")]),
        **{key: value.format(tmp=tmp_path) for key, value in case.env.items()},
    }
    done = subprocess.run(
        [smolcrew_program, *(arg.format(tmp=tmp_path) for arg in case.args)],
        input=case.stdin,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in stdout + stderr, stderr
    assert done.returncode == 2, (done.returncode, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert case.fix in lines[0], lines[0]
    assert stdout == "", stdout


def test_the_redis_hint_names_the_configured_server() -> None:
    """The fix in "Redis is unreachable" starts the server the URL names, not always 127.0.0.1:6379."""
    redis = pytest.importorskip("redis", reason="the Redis client is not installed: pip install redis")
    from smolcrew.errors import SinkUnavailableError
    from smolcrew.memory.sinks.redis import redis_errors, start_redis

    client = redis.Redis.from_url("redis://127.0.0.2:6390/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(SinkUnavailableError) as caught, redis_errors(client):
        client.ping()
    assert "Redis at 127.0.0.2:6390" in str(caught.value)
    assert "--bind 127.0.0.2 --port 6390" in str(caught.value) and "6379" not in str(caught.value)
    socket = redis.Redis.from_url("unix:///tmp/smolcrew-test.sock")
    assert "--unixsocket /tmp/smolcrew-test.sock" in start_redis(socket)
