"""Language generation tools: summaries, translation, free text and chat replies; plus offline language id.

transformers 5 removed the summarization and translation pipelines, so those load a tokenizer and model with Auto
classes (a `Bundle`) and call `generate()`. Text generation and chat use the text-generation pipeline. Roles are
declared here in `SEQ2SEQ_ROLES` and gathered into `tools.language.ROLES`.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, NamedTuple

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.tools.manifest import ModelRole, is_available_offline
from smolcrew.tools.text import _PoolTool, require_text

__all__ = [
    "SEQ2SEQ_ROLES",
    "Bundle",
    "GenerateText",
    "OpusPairs",
    "ReplyInConversation",
    "SummarizeText",
    "TranslateText",
    "detect_languages",
    "load_auto_bundle",
    "optional",
]


class Bundle(NamedTuple):
    """A tokenizer and a model loaded with Auto classes, for tasks transformers 5 has no pipeline for."""

    tokenizer: Any
    model: Any


def load_auto_bundle(auto_class: Any, source: str, device: str, dtype: str) -> Bundle:
    from transformers import AutoTokenizer

    model = auto_class.from_pretrained(source, dtype="auto" if dtype == "auto" else dtype)
    return Bundle(AutoTokenizer.from_pretrained(source), model.to(device).eval())


def load_seq2seq(source: str, device: str, dtype: str) -> Bundle:
    from transformers import AutoModelForSeq2SeqLM

    return load_auto_bundle(AutoModelForSeq2SeqLM, source, device, dtype)


OPUS_PAIRS = frozenset(
    [
        ("en", t)
        for t in ("de", "fr", "es", "ru", "zh", "ar", "nl", "it", "fi", "hi", "ro", "sv", "cs", "da", "id", "vi", "uk")
    ]
    + [
        (s, "en")
        for s in (
            "de",
            "fr",
            "es",
            "ru",
            "zh",
            "ar",
            "nl",
            "it",
            "fi",
            "hi",
            "ja",
            "ko",
            "tr",
            "uk",
            "sv",
            "pl",
            "cs",
            "da",
            "id",
            "vi",
        )
    ]
    + [("de", "fr"), ("fr", "de"), ("fr", "es"), ("es", "fr"), ("de", "es"), ("es", "de")]
)
"""Helsinki-NLP/opus-mt-{src}-{tgt} pairs known to exist on the Hub; other pairs go to M2M100."""


class OpusPairs:
    """The opus-mt family: `{prefix}-{src}-{tgt}` models, each loaded on first use of its pair and then kept.

    A local prefix (a folder path) knows exactly the pair folders that exist next to it; a Hub prefix knows
    OPUS_PAIRS and whatever is in the local Hugging Face cache.
    """

    def __init__(self, prefix: str, device: str, dtype: str) -> None:
        self.prefix, self.device, self.dtype = prefix, device, dtype
        self._local = Path(prefix).parent.is_dir() and not prefix.startswith("Helsinki-NLP/")
        self._bundles: dict[str, Bundle] = {}
        self._lock = threading.Lock()

    def name(self, source: str, target: str) -> str:
        return f"{self.prefix}-{source}-{target}"

    def has(self, source: str, target: str) -> bool:
        if self._local:
            return Path(self.name(source, target)).is_dir()
        return (source, target) in OPUS_PAIRS or is_available_offline(self.name(source, target))

    def get(self, source: str, target: str) -> Bundle:
        from transformers import MarianMTModel

        name = self.name(source, target)
        with self._lock:
            if name not in self._bundles:
                try:
                    self._bundles[name] = load_auto_bundle(MarianMTModel, name, self.device, self.dtype)
                except (OSError, ValueError) as exc:
                    raise ModelUnavailableError(
                        f"translation model {name!r} could not be loaded ({type(exc).__name__})",
                        backend="translator_opus",
                        fix="download it while online, or set `models.translator_opus` to a folder prefix",
                    ) from exc
            return self._bundles[name]


def load_opus_pairs(source: str, device: str, dtype: str) -> OpusPairs:
    return OpusPairs(source, device, dtype)


SEQ2SEQ_ROLES = (
    ModelRole(
        "summarizer",
        "abstractive-summarization",
        "sshleifer/distilbart-cnn-12-6",
        "sshleifer/distilbart-cnn-12-6",
        loader=load_seq2seq,
    ),
    ModelRole(
        "translator_opus",
        "translation-pairs",
        "Helsinki-NLP/opus-mt",
        "Helsinki-NLP/opus-mt-{src}-{tgt}",
        loader=load_opus_pairs,
    ),
    ModelRole(
        "translator", "translation-any-pair", "facebook/m2m100_418M", "facebook/m2m100_418M", loader=load_seq2seq
    ),
    ModelRole("text_generator", "text-generation", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
)


def detect_languages(text: str) -> dict[str, Any]:
    """langdetect's guess for `text` (deterministic: seeded), codes as ISO 639-1 ('zh-cn' becomes 'zh')."""
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    try:
        guesses = detect_langs(text)
    except LangDetectException as exc:
        raise ToolInputError("no language could be detected: the text has no letters; pass words") from exc
    candidates = [{"language": g.lang.split("-")[0], "probability": round(float(g.prob), 4)} for g in guesses]
    return {"language": candidates[0]["language"], "confidence": candidates[0]["probability"], "candidates": candidates}


class _GenerativeTool(_PoolTool):
    """Loads its models per call from the pool (which keeps them), so a mode never loads a model it does not use."""

    def setup(self) -> None:
        self.is_initialized = True


def optional(kind: str, description: str) -> dict[str, Any]:
    """A tool input the agent may leave out (forward gives it a default)."""
    return {"type": kind, "description": description, "nullable": True}


def _bounded(value: int | None, default: int, name: str, low: int, high: int) -> int:
    number = default if value is None else value
    if not isinstance(number, int) or not low <= number <= high:
        raise ToolInputError(f"`{name}` must be an integer from {low} to {high}, got {value!r}")
    return number


def _generate(bundle: Bundle, text: str, **options: Any) -> str:
    import torch

    tokenizer, model = bundle
    limit = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 1024))
    encoded = tokenizer(text, truncation=True, max_length=limit, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        output = model.generate(**encoded, **options)
    return str(tokenizer.decode(output[0], skip_special_tokens=True)).strip()


SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class SummarizeText(_GenerativeTool):
    name = "summarize_text"
    description = (
        "Summarizes a text. mode 'extractive' (default) keeps the text's most central sentences, in their original "
        "order; mode 'abstractive' writes a new summary with a summarization model. Returns a dict {'summary': str, "
        "'mode': str, 'model': str}; extractive adds 'sentences': [{'index', 'text', 'score'}] for the kept ones."
    )
    inputs = {
        "text": {"type": "string", "description": "The text to summarize."},
        "mode": optional("string", "'extractive' (default) or 'abstractive'."),
        "max_sentences": optional("integer", "Extractive: sentences to keep (default 3)."),
        "min_new_tokens": optional("integer", "Abstractive: shortest summary in tokens (default 10)."),
        "max_new_tokens": optional("integer", "Abstractive: longest summary in tokens (default 130)."),
    }
    output_type = "object"
    role = "summarizer"

    def forward(
        self,
        text: str,
        mode: str | None = None,
        max_sentences: int | None = None,
        min_new_tokens: int | None = None,
        max_new_tokens: int | None = None,
    ) -> dict[str, Any]:
        text = require_text(text, "text")
        mode = (mode or "extractive").strip().lower()
        if mode == "extractive":
            return self._extractive(text, _bounded(max_sentences, 3, "max_sentences", 1, 100))
        if mode != "abstractive":
            raise ToolInputError(f"`mode` must be 'extractive' or 'abstractive', got {mode!r}")
        shortest = _bounded(min_new_tokens, 10, "min_new_tokens", 0, 1024)
        longest = _bounded(max_new_tokens, 130, "max_new_tokens", 1, 1024)
        if shortest > longest:
            raise ToolInputError(f"`min_new_tokens` ({shortest}) is above `max_new_tokens` ({longest})")
        summary = _generate(self.pool.get(self.role), text, min_new_tokens=shortest, max_new_tokens=longest)
        return {"summary": summary, "mode": mode, "model": self.pool.model_for(self.role)}

    def _extractive(self, text: str, keep: int) -> dict[str, Any]:
        sentences = [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
        vectors = self.pool.get("embeddings").encode(sentences, normalize_embeddings=True, batch_size=32)
        centroid = vectors.mean(axis=0)
        scores = vectors @ (centroid / max(float((centroid**2).sum()) ** 0.5, 1e-12))
        kept = sorted(sorted(range(len(sentences)), key=lambda i: float(scores[i]), reverse=True)[:keep])
        return {
            "summary": " ".join(sentences[i] for i in kept),
            "sentences": [{"index": i, "text": sentences[i], "score": round(float(scores[i]), 4)} for i in kept],
            "mode": "extractive",
            "model": self.pool.model_for("embeddings"),
        }


LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
LANGUAGE_TOKEN = re.compile(r"__[a-z]{2,3}__")


def _m2m100_codes() -> list[str]:
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    return [code.strip("_") for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]


class TranslateText(_GenerativeTool):
    name = "translate_text"
    description = (
        "Translates text between languages given as ISO 639-1 codes ('en', 'de', 'fr', 'zh', ...; about 100 "
        "languages). The source language is detected when not given. Returns a dict {'translation': str, "
        "'source_language': str, 'target_language': str, 'detected': bool, 'model': str}."
    )
    inputs = {
        "text": {"type": "string", "description": "The text to translate."},
        "target_language": {"type": "string", "description": "ISO 639-1 code of the language to translate into."},
        "source_language": optional("string", "ISO 639-1 code of the text's language (detected when omitted)."),
        "max_new_tokens": optional("integer", "Longest translation in tokens (default 256)."),
    }
    output_type = "object"
    role = "translator"
    _lock = threading.Lock()

    def forward(
        self, text: str, target_language: str, source_language: str | None = None, max_new_tokens: int | None = None
    ) -> dict[str, Any]:
        text = require_text(text, "text")
        target = self._code(target_language, "target_language")
        detected = source_language is None or not str(source_language).strip()
        source = detect_languages(text)["language"] if detected else self._code(source_language, "source_language")
        longest = _bounded(max_new_tokens, 256, "max_new_tokens", 1, 1024)
        result = {"source_language": source, "target_language": target, "detected": detected}
        if source == target:
            return {"translation": text, **result, "model": "none (same language)"}
        pairs: OpusPairs = self.pool.get("translator_opus")
        if pairs.has(source, target):
            translation = _generate(pairs.get(source, target), text, max_new_tokens=longest)
            return {"translation": translation, **result, "model": pairs.name(source, target)}
        known = _m2m100_codes()
        for code, name in ((source, "source_language"), (target, "target_language")):
            if code not in known:
                how = " (detected)" if detected and code == source else ""
                raise ToolInputError(
                    f"unknown language code {code!r} in `{name}`{how}; "
                    f"use an ISO 639-1 code, one of: {', '.join(known)}"
                )
        bundle = self.pool.get(self.role)
        with self._lock:  # the tokenizer's source language is shared state
            bundle.tokenizer.src_lang = source
            translation = _generate(
                bundle, text, max_new_tokens=longest, forced_bos_token_id=bundle.tokenizer.get_lang_id(target)
            )
        translation = " ".join(LANGUAGE_TOKEN.sub(" ", translation).split())  # saved tokenizers may not skip them
        return {"translation": translation, **result, "model": self.pool.model_for(self.role)}

    @staticmethod
    def _code(value: Any, name: str) -> str:
        code = str(value or "").strip().lower().replace("_", "-").split("-")[0]
        if not LANGUAGE_CODE.match(code):
            raise ToolInputError(f"`{name}` must be an ISO 639-1 language code such as 'en' or 'de', got {value!r}")
        return code


def _sampling(max_new_tokens: int | None, temperature: float | None, seed: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {"max_new_tokens": _bounded(max_new_tokens, 128, "max_new_tokens", 1, 4096)}
    if temperature is not None and not 0 <= temperature <= 2:
        raise ToolInputError(f"`temperature` must be from 0 (deterministic) to 2, got {temperature}")
    if temperature:
        options |= {"do_sample": True, "temperature": float(temperature)}
    else:
        options |= {"do_sample": False}
    if seed is not None:
        from transformers import set_seed

        set_seed(int(seed))
    return options


GENERATION_INPUTS: dict[str, dict[str, Any]] = {
    "max_new_tokens": optional("integer", "Most tokens to write (default 128)."),
    "temperature": optional("number", "0 (default) is deterministic; up to 2, more varied."),
    "seed": optional("integer", "Random seed, for repeatable sampling."),
}


class GenerateText(_PoolTool):
    name = "generate_text"
    description = (
        "Continues or answers a prompt with a small local language model. Returns a dict {'text': str (only the "
        "new text, without the prompt), 'model': str}."
    )
    inputs = {
        "prompt": {"type": "string", "description": "The text to continue or the instruction to follow."},
        **GENERATION_INPUTS,
    }
    output_type = "object"
    role = "text_generator"

    def forward(
        self, prompt: str, max_new_tokens: int | None = None, temperature: float | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        prompt = require_text(prompt, "prompt")
        options = _sampling(max_new_tokens, temperature, seed)
        output = self.pipeline(prompt, return_full_text=False, **options)
        return {"text": str(output[0]["generated_text"]), "model": self.pool.model_for(self.role)}


class ReplyInConversation(_PoolTool):
    name = "reply_in_conversation"
    description = (
        "Writes the assistant's next reply in a conversation, with a small local chat model. Returns a dict "
        "{'reply': str, 'model': str}."
    )
    inputs = {
        "messages": {
            "type": "array",
            "description": "The conversation so far: a list of {'role': 'system' | 'user' | 'assistant', "
            "'content': str}.",
        },
        **GENERATION_INPUTS,
    }
    output_type = "object"
    role = "text_generator"

    def forward(
        self,
        messages: list[dict[str, Any]],
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        if not isinstance(messages, list) or not messages:
            raise ToolInputError("`messages` must be a non-empty list of {'role': ..., 'content': ...} dicts")
        chat = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in {"system", "user", "assistant"}:
                raise ToolInputError(f"`messages[{i}]` must be a dict with role 'system', 'user' or 'assistant'")
            chat.append(
                {"role": message["role"], "content": require_text(message.get("content"), f"messages[{i}].content")}
            )
        if not any(message["role"] == "user" for message in chat):
            raise ToolInputError("`messages` has no 'user' message to reply to")
        if not getattr(self.pipeline.tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                f"model {self.pool.model_for(self.role)!r} has no chat template",
                backend=self.role,
                fix="set `models.text_generator` to an instruct model, e.g. Qwen/Qwen2.5-0.5B-Instruct",
            )
        options = _sampling(max_new_tokens, temperature, seed)
        output = self.pipeline(chat, return_full_text=False, **options)
        generated = output[0]["generated_text"]
        reply = generated[-1]["content"] if isinstance(generated, list) else generated
        return {"reply": str(reply).strip(), "model": self.pool.model_for(self.role)}
