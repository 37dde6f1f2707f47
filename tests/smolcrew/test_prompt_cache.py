"""The prompt cache on disk (smolcrew/prompt_cache.py): keys, checks, eviction and atomic saves against a fake
slot endpoint (fast), then llama.cpp's real save/restore on the packaged 0.5B (slow)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from smolcrew import backends
from smolcrew.config import load_settings
from smolcrew.prompt_cache import PromptCache, model_fingerprint, prefix_key

ROOT = Path(__file__).resolve().parents[2]


def _request(system: str, user: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}], **extra}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- a fake llama.cpp slot endpoint ------------------------------------------------------------------------------


class _Slots(http.server.BaseHTTPRequestHandler):
    """`POST /slots/0?action=save|restore` as llama.cpp answers it: save writes `state` into the folder; restore
    accepts a file that starts with b"KV" and answers 400 otherwise (llama.cpp's "invalid slot save file")."""

    server: Any

    def do_POST(self) -> None:
        action = parse_qs(urlparse(self.path).query)["action"][0]
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["filename"]
        path = Path(self.server.folder) / name
        self.server.calls.append((action, name))
        if action == "save":
            path.write_bytes(self.server.state)
            self._answer(200, {"id_slot": 0, "filename": name, "n_written": len(self.server.state)})
        elif path.is_file() and path.read_bytes().startswith(b"KV"):
            self._answer(200, {"id_slot": 0, "filename": name, "n_restored": 3, "timings": {"restore_ms": 0.1}})
        else:
            self._answer(400, {"error": {"code": 400, "message": "Unable to restore slot"}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slots(tmp_path: Path) -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slots)
    server.folder = tmp_path / "prompt-cache"  # type: ignore[attr-defined]
    server.state = b"KV" + b"x" * 1000  # type: ignore[attr-defined]
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _cache(slots: Any, *, max_bytes: int = 1 << 20) -> PromptCache:
    address = f"http://127.0.0.1:{slots.server_address[1]}"
    return PromptCache(slots.folder, address, model="m", engine="e", n_ctx=1024, max_bytes=max_bytes)


# --- fast ----------------------------------------------------------------------------------------------------------


def test_the_key_is_the_system_prompt_of_one_model_and_engine_not_the_task() -> None:
    """Same system messages, other task: one key; another system prompt, tools, model, engine or n_ctx: another."""
    key = prefix_key(_request("You are audio.", "task 1"), model="m", engine="e", n_ctx=1024)
    assert key == prefix_key(_request("You are audio.", "task 2"), model="m", engine="e", n_ctx=1024)
    others = {
        prefix_key(_request("You are vision.", "task 1"), model="m", engine="e", n_ctx=1024),
        prefix_key(_request("You are audio.", tools=[{"type": "function"}]), model="m", engine="e", n_ctx=1024),
        prefix_key(_request("You are audio."), model="m2", engine="e", n_ctx=1024),
        prefix_key(_request("You are audio."), model="m", engine="e2", n_ctx=1024),
        prefix_key(_request("You are audio."), model="m", engine="e", n_ctx=2048),
    }
    assert key is not None and key not in others and len(others) == 5
    assert prefix_key({"messages": [{"role": "user", "content": "Hi"}]}, model="m", engine="e", n_ctx=1) is None


def test_the_key_reads_smolagents_messages() -> None:
    """What `LlamaCppModel.generate` sends: roles as `MessageRole` members, content as a list of text parts."""
    from smolagents.models import ChatMessage, MessageRole

    from smolcrew.backends import ScriptedModel

    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": "You are audio."}]),
        ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "New task: hi"}]),
    ]
    request = ScriptedModel(["x"])._prepare_completion_kwargs(messages=messages, stop_sequences=["</code>"])
    key = prefix_key(request, model="m", engine="e", n_ctx=1024)
    plain = {"messages": [{"role": "system", "content": [{"type": "text", "text": "You are audio."}]}]}
    assert key is not None and key == prefix_key(plain, model="m", engine="e", n_ctx=1024)


def test_model_fingerprint_follows_content_not_path(tmp_path: Path) -> None:
    first, copy, other = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    first.write_bytes(b"GGUF" + bytes(3 << 20))
    shutil.copy(first, copy)
    other.write_bytes(b"GGUF" + bytes(3 << 20 - 1) + b"\x01")
    assert model_fingerprint(first) == model_fingerprint(copy) != model_fingerprint(other)


def test_a_new_prefix_is_saved_atomically_then_restored_when_the_slot_holds_another(slots: Any) -> None:
    """cold -> saved under `<key>.<sha>.bin` (no temp file left) -> kept while the slot holds it -> restored after
    another prefix used the slot."""
    cache = _cache(slots)
    audio, vision = _request("You are audio."), _request("You are vision.")
    key = cache.before(audio)
    assert cache.last_event == "cold"
    cache.after(key, ok=True)
    saved = list(slots.folder.iterdir())
    assert [p.name for p in saved] == [f"{key}.{_digest(saved[0])}.bin"]
    assert cache.before(audio) == key and cache.last_event == "kept"
    cache.after(key, ok=True)
    cache.after(cache.before(vision), ok=True)
    assert cache.before(audio) == key and cache.last_event == "restored"
    assert slots.calls[-1] == ("restore", saved[0].name) and cache.stats.restores == 1
    assert not [p for p in slots.folder.iterdir() if p.name.startswith("tmp-")]


def test_a_file_that_fails_its_hash_is_deleted_before_llama_cpp_sees_it(slots: Any) -> None:
    """llama.cpp aborts the process on a truncated state file, so a restore checks the name's hash first."""
    cache = _cache(slots)
    key = cache.before(_request("You are audio."))
    cache.after(key, ok=True)
    (saved,) = slots.folder.iterdir()
    with saved.open("r+b") as handle:
        handle.truncate(500)
    fresh = _cache(slots)  # a new process: nothing verified yet
    assert fresh.before(_request("You are audio.")) == key and fresh.last_event == "cold"
    assert not saved.exists() and fresh.stats.rejected == 1
    assert ("restore", saved.name) not in slots.calls


def test_a_file_llama_cpp_refuses_is_deleted_and_the_request_runs_cold(slots: Any) -> None:
    cache = _cache(slots)
    key = prefix_key(_request("You are audio."), model="m", engine="e", n_ctx=1024)
    bad = slots.folder / "bad"
    bad.write_bytes(b"not a state file")
    refused = bad.rename(slots.folder / f"{key}.{_digest(bad)}.bin")
    assert cache.before(_request("You are audio.")) == key and cache.last_event == "rejected"
    assert not refused.exists() and cache.stats.rejected == 1
    cache.after(key, ok=True)  # ran cold: saved afresh
    assert cache.lookup(key) is not None


def test_a_short_write_is_not_kept(slots: Any) -> None:
    """A save whose file is not as long as llama.cpp says it wrote (disk full) leaves nothing behind."""
    cache = _cache(slots)
    slots.state = b""
    key = cache.before(_request("You are audio."))
    cache.after(key, ok=True)
    assert list(slots.folder.iterdir()) == [] and cache.stats.saves == 0


def test_the_size_bound_evicts_the_least_recently_used_files(slots: Any) -> None:
    cache = _cache(slots, max_bytes=2500)
    now = time.time()
    for age, name in enumerate(("c", "b", "a")):  # a is oldest
        path = slots.folder / f"{name * 32}.0123456789abcdef.bin"
        path.write_bytes(b"KV" + bytes(998))
        os.utime(path, (now - 100 * age, now - 100 * age))
    os.utime(slots.folder / f"{'a' * 32}.0123456789abcdef.bin")  # used just now: the most recent
    assert cache.evict() == [f"{'b' * 32}.0123456789abcdef.bin"]
    assert cache.total_bytes() == 2000 and cache.stats.evicted == 1


def test_a_save_evicts_beyond_the_bound_and_temp_files_of_dead_processes(slots: Any) -> None:
    cache = _cache(slots, max_bytes=1500)
    old = slots.folder / f"{'a' * 32}.0123456789abcdef.bin"
    old.write_bytes(bytes(1000))
    os.utime(old, (time.time() - 60, time.time() - 60))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = slots.folder / f"tmp-{dead.stdout.strip()}-abc.bin"
    orphan.write_bytes(b"half")
    mine = slots.folder / f"tmp-{os.getpid()}-abc.bin"
    mine.write_bytes(b"writing")
    cache.after(cache.before(_request("You are audio.")), ok=True)
    names = {p.name for p in slots.folder.iterdir()}
    assert old.name not in names and orphan.name not in names and mine.name in names
    assert len([n for n in names if not n.startswith("tmp-")]) == 1


def test_two_processes_saving_one_prefix_leave_only_whole_files(slots: Any) -> None:
    """Each writer has its own temp name and renames it into place: concurrent saves never mix."""
    caches = [_cache(slots) for _ in range(4)]
    request = _request("You are audio.")
    threads = [threading.Thread(target=lambda c=c: c.after(c.before(request), ok=True)) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = list(slots.folder.iterdir())
    assert files and all(p.name.endswith(f".{_digest(p)}.bin") for p in files)
    assert caches[0].lookup(str(caches[0].key_for(request))) is not None


def test_build_model_turns_the_cache_on_under_the_home_and_off_at_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(backends, "LlamaCppModel", lambda path, **kwargs: made.append(kwargs))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for extra in ({}, {"prompt_cache_mb": 0}):
        settings = load_settings(home=str(tmp_path / "home"), llm={"backend": "embedded", "model_path": gguf, **extra})
        backends.build_model(settings)
    assert made[0]["prompt_cache_dir"] == tmp_path / "home" / "cache" / "prompt-cache"
    assert made[0]["prompt_cache_mb"] == 512
    assert made[1]["prompt_cache_dir"] is None


# --- slow: llama.cpp's real slots --------------------------------------------------------------------------------

SYSTEM_A = "You are a precise assistant. " + " ".join(f"Rule {i}: item {i} costs {i * 3} coins." for i in range(12))
SYSTEM_B = "You are a precise assistant. " + " ".join(f"Rule {i}: item {i} weighs {i * 7} grams." for i in range(12))
N_CTX = 1024

_PROBE = """
import json, sys
from pathlib import Path
from smolcrew.backends import LlamaCppModel
model = LlamaCppModel(Path(sys.argv[1]), n_ctx=int(sys.argv[3]), max_tokens=6, prompt_cache_dir=Path(sys.argv[2]))
request = json.loads(sys.stdin.read())
response = model.complete(request)
print(json.dumps({"event": model.prompt_cache.last_event, "prompt_n": response["timings"]["prompt_n"],
                  "answer": response["choices"][0]["message"]["content"]}))
"""


@pytest.fixture(scope="module")
def cached_model(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> backends.LlamaCppModel:
    folder = tmp_path_factory.mktemp("prompt-cache")
    return backends.LlamaCppModel(embedded_gguf, n_ctx=N_CTX, max_tokens=6, prompt_cache_dir=folder)


def _ask(model: backends.LlamaCppModel, system: str, user: str, **extra: Any) -> tuple[str, int]:
    response = model.complete(_request(system, user, temperature=0, **extra))
    return response["choices"][0]["message"]["content"], int(response["timings"]["prompt_n"])


@pytest.mark.slow
def test_a_fresh_process_restores_the_saved_prefix(cached_model: backends.LlamaCppModel, embedded_gguf: Path) -> None:
    """The first process reads the whole prompt and saves the slot; a second one restores it and reads only the
    tokens after the common prefix."""
    cache = cached_model.prompt_cache
    assert cache is not None
    _, cold_n = _ask(cached_model, SYSTEM_A, "What does item 4 cost?")
    assert cache.last_event in ("cold", "restored") and cache.lookup(str(cache.key_for(_request(SYSTEM_A))))
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(embedded_gguf), str(cache.folder), str(N_CTX)],
        input=json.dumps(_request(SYSTEM_A, "What does item 7 cost?", temperature=0)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    second = json.loads(probe.stdout.strip().splitlines()[-1])
    assert second["event"] == "restored"
    assert cold_n > 150 and second["prompt_n"] < 20, (cold_n, second)


@pytest.mark.slow
def test_a_different_prefix_gets_exactly_the_cold_answer(cached_model: backends.LlamaCppModel) -> None:
    """Switching between two saved prefixes restores each one's own state: the answers (temperature 0) are the
    cold ones. Even B's key pointing at A's file cannot change B's answer: llama.cpp reuses only the tokens
    the two prompts share, and reads the rest."""
    cache = cached_model.prompt_cache
    assert cache is not None
    cold_b = _ask(cached_model, SYSTEM_B, "What does item 5 weigh?", cache_prompt=False)
    _ask(cached_model, SYSTEM_B, "What does item 1 weigh?")  # saved
    _ask(cached_model, SYSTEM_A, "What does item 1 cost?")  # saved (by the test above, or now)
    answer_b, restored_n = _ask(cached_model, SYSTEM_B, "What does item 5 weigh?")
    assert cache.last_event == "restored" and restored_n < 20
    assert answer_b == cold_b[0]

    key_b = str(cache.key_for(_request(SYSTEM_B)))
    for stale in cache.folder.glob(f"{key_b}.*.bin"):
        stale.unlink()
    file_a = cache.folder / str(cache.lookup(str(cache.key_for(_request(SYSTEM_A)))))
    shutil.copy(file_a, cache.folder / f"{key_b}.{file_a.name.split('.')[1]}.bin")
    _ask(cached_model, SYSTEM_A, "What does item 2 cost?")  # the slot holds A: the next request restores
    answer_b, wrong_file_n = _ask(cached_model, SYSTEM_B, "What does item 5 weigh?")
    assert cache.last_event == "restored"
    assert answer_b == cold_b[0]
    assert 20 < wrong_file_n < cold_b[1]  # the shared start was reused, the rest read again


@pytest.mark.slow
def test_a_corrupt_file_is_deleted_and_the_run_still_answers(cached_model: backends.LlamaCppModel) -> None:
    cache = cached_model.prompt_cache
    assert cache is not None
    system = "You are a careful assistant. Rule 3: item 3 costs 9 coins."  # short: this test reads it 3 times
    cold = _ask(cached_model, system, "What does item 3 cost?", cache_prompt=False)
    key = str(cache.key_for(_request(system)))
    junk = cache.folder / "junk"
    junk.write_bytes(os.urandom(4096))  # passes the hash check, but llama.cpp refuses it
    refused = junk.rename(cache.folder / f"{key}.{_digest(junk)}.bin")
    _ask(cached_model, SYSTEM_B, "Hi")  # the slot holds another prefix
    assert _ask(cached_model, system, "What does item 3 cost?")[0] == cold[0]
    assert cache.last_event == "rejected" and not refused.exists()
    saved = cache.folder / str(cache.lookup(key))  # the cold run saved a good file in its place
    with saved.open("r+b") as handle:
        handle.truncate(saved.stat().st_size // 2)  # truncated: llama.cpp would abort the process
    cache._verified.clear()  # as a fresh process sees it
    _ask(cached_model, SYSTEM_B, "Hi")
    assert _ask(cached_model, system, "What does item 3 cost?")[0] == cold[0]
    assert cache.last_event == "cold" and not saved.exists()
