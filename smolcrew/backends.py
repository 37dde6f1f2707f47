"""LLM backends, chosen by `llm.backend`: scripted, embedded (llama.cpp), transformers, openai.

Each is a smolagents `Model`, so any smolagents agent can use it. `build_model(settings)` either returns a
working model or raises `ModelUnavailableError` saying what is missing and how to fix it.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolagents.models import ChatMessage, MessageRole, Model, get_dict_from_nested_dataclasses
from smolagents.monitoring import TokenUsage

from smolcrew.config import Settings
from smolcrew.errors import ConfigError, ModelUnavailableError

if TYPE_CHECKING:
    from smolcrew.prompt_cache import PromptCache

__all__ = ["LlamaCppModel", "ScriptedModel", "build_model", "check_openai_server", "resolve_device"]

Responder = Callable[[list[dict[str, Any]]], str]

CODE_REPLY_GRAMMAR = r"""root ::= "Thought: " [^\n<]{1,200} "\n<code>\n" [^\x00]*"""
"""GBNF for a CodeAgent reply: one thought line, then a code block (generation stops at `</code>`). Small
models otherwise drift into prose and every step fails to parse."""


def _text_of(messages: Sequence[ChatMessage | dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.content if isinstance(message, ChatMessage) else message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(item.get("text", "")) for item in content if isinstance(item, dict))
    return "\n".join(parts)


_MESSAGE_FIELDS = tuple(field.name for field in fields(ChatMessage))


def _as_dict(message: ChatMessage | dict[str, Any]) -> dict[str, Any]:
    """`ChatMessage.dict()` without its deep copy of every field: a responder sees the whole history on every
    call, and dataclasses.asdict made a 1,000-step scripted run quadratic in practice (90% of its time)."""
    if not isinstance(message, ChatMessage):
        return dict(message)
    found = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
    if isinstance(found["content"], list):
        found["content"] = [dict(part) if isinstance(part, dict) else part for part in found["content"]]
    if found["tool_calls"]:
        found["tool_calls"] = [get_dict_from_nested_dataclasses(call) for call in found["tool_calls"]]
    found["token_usage"] = get_dict_from_nested_dataclasses(found["token_usage"])
    return found


class ScriptedModel(Model):
    """Replies with canned text, in order: for tests and for demonstrating the agent loop offline.

    `replies` is a list of strings (usually `<code>...</code>` blocks), or a function that receives the
    messages (as dicts) and returns the reply. Token counts are whitespace words, so runs report usage.
    """

    def __init__(self, replies: Sequence[str] | Responder, *, model_id: str = "scripted") -> None:
        super().__init__(model_id=model_id)
        self._responder = replies if callable(replies) else None
        self._replies = list(replies) if not callable(replies) else []
        self._lock = threading.Lock()
        self.calls: deque[list[dict[str, Any]]] = deque(maxlen=50)
        """The messages of the latest calls (at most 50: a 1,000-step run must not keep them all)."""
        self.call_count = 0

    def __repr__(self) -> str:
        left = "function" if self._responder else f"{len(self._replies)} replies left"
        return f"ScriptedModel({left}, {self.call_count} calls)"

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        as_dicts = [_as_dict(m) for m in messages]
        with self._lock:
            self.calls.append(as_dicts)
            self.call_count += 1
            if self._responder is not None:
                reply = self._responder(as_dicts)
            elif self._replies:
                reply = self._replies.pop(0)
            else:
                raise ModelUnavailableError(
                    f"the scripted model has no replies left after {self.call_count - 1} calls",
                    backend="scripted",
                    fix="add replies to llm.script (or the list given to ScriptedModel)",
                )
        usage = TokenUsage(input_tokens=len(_text_of(messages).split()), output_tokens=len(reply.split()))
        return ChatMessage(role=MessageRole.ASSISTANT, content=reply, token_usage=usage)


class LlamaCppModel(Model):
    """A GGUF model run in-process by llama.cpp (xllamacpp), no HTTP hop.

    One llama.cpp slot serves one request at a time; calls from several threads queue on a lock.
    `last_timings` keeps llama.cpp's own timings of the latest call (prompt and generation tokens/s).
    With `code_grammar`, replies to a CodeAgent step (a request that stops at `</code>`) are constrained to
    `CODE_REPLY_GRAMMAR`. With `prompt_cache_dir`, the slot's KV state after each system prompt is kept on disk
    there (at most `prompt_cache_mb` MiB), so a fresh process skips re-reading the agents' prompts (see
    smolcrew.prompt_cache); `prompt_cache` is then that `PromptCache`, else None.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        model_id: str | None = None,
        code_grammar: bool = True,
        prompt_cache_dir: Path | None = None,
        prompt_cache_mb: float = 512.0,
    ) -> None:
        super().__init__(model_id=model_id or model_path.stem)
        self.code_grammar = code_grammar
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelUnavailableError(
                "the embedded backend needs xllamacpp, which is not installed",
                backend="embedded",
                fix="pip install 'smolcrew[llm]'",
            ) from exc
        import os

        threads = n_threads or max(1, min(os.cpu_count() or 1, 8))
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = n_ctx
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.offline = True
        params.verbosity = -1
        params.hostnames = ["127.0.0.1"]
        if prompt_cache_dir is not None:
            params.endpoint_slots = True  # POST /slots/0?action=save|restore on the in-process server
            params.slot_save_path = str(prompt_cache_dir) + os.sep  # llama.cpp appends the file name as is
        started = time.perf_counter()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # xllamacpp raises RuntimeError/ValueError from C++
            raise ModelUnavailableError(
                f"llama.cpp could not load {model_path}: {exc}",
                backend="embedded",
                fix="check that the file is a GGUF model (see `smolcrew doctor`)",
            ) from exc
        self.load_seconds = time.perf_counter() - started
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.last_timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self.prompt_cache = self._open_prompt_cache(prompt_cache_dir, prompt_cache_mb, xllamacpp)

    def _open_prompt_cache(self, folder: Path | None, max_mb: float, xllamacpp: Any) -> PromptCache | None:
        """The disk prompt cache, or None when off or unusable (then requests just run cold)."""
        if folder is None or max_mb <= 0:
            return None
        address = self._server.listening_address
        if not address:
            return None
        from smolcrew.prompt_cache import PromptCache, model_fingerprint

        try:
            return PromptCache(
                folder,
                address,
                model=model_fingerprint(self.model_path),
                engine=f"xllamacpp {getattr(xllamacpp, '__version__', '?')}",
                n_ctx=self.n_ctx,
                max_bytes=int(max_mb * (1 << 20)),
            )
        except OSError:  # the folder cannot be made: run without the cache
            return None

    def __repr__(self) -> str:
        return f"LlamaCppModel({self.model_path.name!r}, n_ctx={self.n_ctx})"

    @property
    def supports_stop_parameter(self) -> bool:
        return True

    supports_grammar = True
    """`generate(..., grammar=GBNF)` constrains the reply (see smolcrew.agents.grammar)."""

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one OpenAI-style chat completion request to llama.cpp and return its raw response."""
        request = {"temperature": self.temperature, "max_tokens": self.max_tokens, **request}
        stops_at_code_end = "</code>" in (request.get("stop") or ())
        if self.code_grammar and stops_at_code_end and "response_format" not in request and "grammar" not in request:
            request["grammar"] = CODE_REPLY_GRAMMAR
        with self._lock:
            cache = self.prompt_cache
            key = cache.before(request) if cache is not None else None
            try:
                response: dict[str, Any] = self._server.handle_chat_completions(request)
            except ValueError as exc:
                if cache is not None:
                    cache.after(key, ok=False)
                raise ModelUnavailableError(
                    f"llama.cpp rejected the request: {exc}", backend="embedded", fix="check the messages"
                ) from exc
            if cache is not None:
                cache.after(key, ok="error" not in response)
        if "error" in response:
            error = response["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ModelUnavailableError(
                f"llama.cpp failed: {message}",
                backend="embedded",
                fix="raise llm.n_ctx if the prompt is too long, or lower agents.max_steps",
            )
        self.last_timings = response.get("timings", {})
        return response

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self._prepare_completion_kwargs(
            messages=messages,
            stop_sequences=stop_sequences,
            response_format=response_format,
            tools_to_call_from=tools_to_call_from,
            **kwargs,
        )
        response = self.complete(request)
        choice = response["choices"][0]["message"]
        usage = response.get("usage", {})
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=choice.get("content") or "",
            raw=response,
            token_usage=TokenUsage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
        )


def check_openai_server(api_base: str, *, timeout_s: float = 3.0, api_key: str | None = None) -> None:
    """Raise ModelUnavailableError unless `GET {api_base}/models` answers."""
    url = api_base.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ModelUnavailableError(
                f"the OpenAI-compatible server at {api_base} refused the API key (HTTP {exc.code})",
                backend="openai",
                fix="set SMOLCREW_LLM__API_KEY",
            ) from exc
        return  # the server answers; some servers don't list models
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelUnavailableError(
            f"the OpenAI-compatible server at {api_base} is unreachable ({reason})",
            backend="openai",
            fix="start the server, or set SMOLCREW_LLM__API_BASE to its URL (ending in /v1)",
        ) from exc


def resolve_device(preference: str) -> str:
    """`auto` becomes cuda, mps or cpu by what torch sees; explicit choices are checked."""
    if preference == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if preference == "auto":
            return "cpu"
        raise ModelUnavailableError(
            f"device {preference!r} needs torch", backend="device", fix="pip install torch, or set device=cpu"
        ) from None
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if preference in ("auto", "mps") and torch.backends.mps.is_available():
        return "mps"
    if preference == "auto":
        return "cpu"
    raise ModelUnavailableError(
        f"device {preference!r} is not available here",
        backend="device",
        fix="set SMOLCREW_DEVICE=auto or cpu",
    )


def build_model(settings: Settings) -> Model:
    """Build the configured LLM backend.

    Raises:
        ModelUnavailableError: the backend cannot start (missing package or file, bad hash, unreachable URL).
        ConfigError: the backend's settings are incomplete.
    """
    llm = settings.llm
    if llm.backend == "scripted":
        if not llm.script:
            raise ConfigError(
                "llm.backend is 'scripted' but llm.script is empty: give the replies in order "
                "(SMOLCREW_LLM__SCRIPT='[\"<code>final_answer(1)</code>\"]')",
                field="llm.script",
            )
        return ScriptedModel(llm.script)
    if llm.backend == "embedded":
        from smolcrew.gguf import resolve_gguf

        path = resolve_gguf(llm.model, cache_dir=settings.cache_dir, explicit=llm.model_path)
        return LlamaCppModel(
            path,
            n_ctx=llm.n_ctx,
            n_threads=llm.n_threads,
            temperature=llm.temperature,
            max_tokens=llm.max_tokens,
            model_id=llm.model,
            prompt_cache_dir=settings.cache_dir / "prompt-cache" if llm.prompt_cache_mb > 0 else None,
            prompt_cache_mb=llm.prompt_cache_mb,
        )
    if llm.backend == "openai":
        if not llm.api_base:
            raise ConfigError(
                "llm.backend is 'openai' but llm.api_base is not set: set SMOLCREW_LLM__API_BASE "
                "(e.g. http://127.0.0.1:8000/v1)",
                field="llm.api_base",
            )
        key = llm.api_key.get_secret_value() if llm.api_key else None
        check_openai_server(llm.api_base, api_key=key)
        try:
            from smolagents import OpenAIServerModel
        except ImportError as exc:  # pragma: no cover - smolagents always has it
            raise ModelUnavailableError(str(exc), backend="openai", fix="pip install 'smolcrew[openai]'") from exc
        try:
            return OpenAIServerModel(
                model_id=llm.model,
                api_base=llm.api_base,
                api_key=key or "none",
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
            )
        except ModuleNotFoundError as exc:
            raise ModelUnavailableError(
                "the openai backend needs the openai package",
                backend="openai",
                fix="pip install 'smolcrew[openai]'",
            ) from exc
    # transformers
    try:
        import transformers  # noqa: F401
        from smolagents import TransformersModel
    except ImportError as exc:
        raise ModelUnavailableError(
            "the transformers backend needs torch and transformers",
            backend="transformers",
            fix="pip install torch==2.13.0 'smolcrew[ml]'",
        ) from exc
    from smolcrew.gguf import BUNDLES

    device = resolve_device(settings.device)
    bundle = BUNDLES.get(llm.model)
    model_id = bundle.hub_repo.removesuffix("-GGUF") if bundle else llm.model
    try:
        return TransformersModel(
            model_id=model_id,
            device_map=device,
            torch_dtype="float16" if device == "cuda" else None,
            max_new_tokens=llm.max_tokens,
        )
    except OSError as exc:
        raise ModelUnavailableError(
            f"transformers could not load {model_id!r}: {exc}",
            backend="transformers",
            fix="set llm.model to a local folder or a Hub id reachable from this machine",
        ) from exc
