"""What the language tools run: model loaders, the opus-mt family, language id, and the work behind each tool.

transformers 5 removed the summarization and translation pipelines, so those load a tokenizer and model with Auto
classes (a `Bundle`) and call `generate()`. The tool classes in tools.language and tools.language_seq2seq check
their inputs and call the functions here, which take what they need (a pipeline, a bundle) as arguments.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import is_available_offline
from smolcrew.tools.text import require_text

__all__ = [
    "M2M_LOCK",
    "MAX_BATCH",
    "Bundle",
    "OpusPairs",
    "acceptability",
    "batch_options",
    "bounded",
    "detect_languages",
    "entailment",
    "extract_answer",
    "generate",
    "language_code",
    "load_auto_bundle",
    "load_opus_pairs",
    "load_pair_classifier",
    "load_question_answerer",
    "load_seq2seq",
    "load_token_classifier",
    "m2m100_codes",
    "require_texts",
    "sampling",
    "strip_language_tokens",
    "tag_spans",
    "tag_texts",
]

MAX_BATCH = 32
MAX_SEED = 2**32 - 1
"""The largest seed `sampling` takes (transformers seeds numpy, which takes 32 bits)."""
M2M_LOCK = threading.Lock()
"""M2M100's tokenizer keeps the source language as state: one translation at a time sets and uses it."""
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
LANGUAGE_TOKEN = re.compile(r"__[a-z]{2,3}__")


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


def load_pair_classifier(source: str, device: str, dtype: str) -> Bundle:
    from transformers import AutoModelForSequenceClassification

    return load_auto_bundle(AutoModelForSequenceClassification, source, device, dtype)


def load_question_answerer(source: str, device: str, dtype: str) -> Bundle:
    from transformers import AutoModelForQuestionAnswering

    return load_auto_bundle(AutoModelForQuestionAnswering, source, device, dtype)


def load_token_classifier(source: str, device: str, dtype: str) -> Any:
    from transformers import pipeline

    build: Any = pipeline
    return build(
        "token-classification",
        model=source,
        device=device,
        dtype=None if dtype == "auto" else dtype,
        aggregation_strategy="simple",
    )


OPUS_PAIRS = frozenset(
    [
        ("en", t)
        for t in ("de", "fr", "es", "ru", "zh", "ar", "nl", "it", "fi", "hi", "ro", "sv", "cs", "da", "id", "vi", "uk")
    ]
    + [
        (s, "en")
        for s in (
            *("de", "fr", "es", "ru", "zh", "ar", "nl", "it", "fi", "hi"),
            *("ja", "ko", "tr", "uk", "sv", "pl", "cs", "da", "id", "vi"),
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

    def usable(self, source: str, target: str) -> bool:
        """Whether the pair's model is here, or can be downloaded now."""
        if self._local or is_available_offline(self.name(source, target)):
            return self.has(source, target)
        from smolcrew.gguf import hub_reachable

        return (source, target) in OPUS_PAIRS and hub_reachable()

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


def detect_languages(text: str) -> dict[str, Any]:
    """lingua's guess for `text`, codes as ISO 639-1. lingua, not langdetect: it is built for short text, where
    langdetect fails (measured: "PROHIBIDO FUMAR" -> Portuguese, "good night" -> Welsh, "merci beaucoup" ->
    Romanian; lingua gets 11 of our 12 two-word phrases). Its low-accuracy mode (trigrams only) takes 0.5 s and
    120 MB to load; the high-accuracy one, 7 s and 900 MB."""
    if not re.search(r"[^\W\d_]", text):
        raise ToolInputError("no language could be detected: the text has no letters; pass words")
    values = _language_detector().compute_language_confidence_values(text)
    candidates = [
        {"language": value.language.iso_code_639_1.name.lower(), "probability": round(float(value.value), 4)}
        for value in values[:3]
    ]
    code = candidates[0]["language"]
    return {"language": code, "name": language_name(code), "confidence": candidates[0]["probability"],
            "candidates": candidates}  # fmt: skip


@functools.cache
def _language_detector() -> Any:
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


def language_name(code: str) -> str:
    """The English name of an ISO 639-1 code ('fr' -> 'French'); the code itself when it is unknown."""
    import pycountry

    found = pycountry.languages.get(alpha_2=code)
    return str(found.name) if found is not None else code


def require_texts(value: Any, name: str) -> tuple[list[str], bool]:
    """The texts in `value` (a string or a non-empty list of strings), and whether it was a list."""
    if isinstance(value, list | tuple):
        if not value:
            raise ToolInputError(f"`{name}` is an empty list; pass a string or a list of non-empty strings")
        return [require_text(item, f"{name}[{i}]") for i, item in enumerate(value)], True
    return [require_text(value, name)], False


def batch_options(texts: list[str]) -> dict[str, Any]:
    return {"batch_size": min(len(texts), MAX_BATCH)} if len(texts) > 1 else {}


def bounded(value: Any, default: int, name: str, low: int, high: int) -> int:
    number = default if value is None else value
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ToolInputError(f"`{name}` must be an integer from {low} to {high}, got {value!r}")
    return number


def generate(bundle: Bundle, text: str, **options: Any) -> str:
    import torch

    tokenizer, model = bundle
    limit = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 1024))
    encoded = tokenizer(text, truncation=True, max_length=limit, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        output = model.generate(**encoded, **options)
    return str(tokenizer.decode(output[0], skip_special_tokens=True)).strip()


def sampling(max_new_tokens: Any, temperature: Any, seed: Any) -> dict[str, Any]:
    """generate() options from the tools' sampling inputs; ToolInputError when one is out of range."""
    options: dict[str, Any] = {"max_new_tokens": bounded(max_new_tokens, 128, "max_new_tokens", 1, 4096)}
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise ToolInputError(f"`temperature` must be from 0 (deterministic) to 2, got {temperature}")
    if temperature:
        options |= {"do_sample": True, "temperature": float(temperature)}
    else:
        options |= {"do_sample": False}
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ToolInputError(f"`seed` must be a whole number, got {seed!r}")
        if not 0 <= seed <= MAX_SEED:
            raise ToolInputError(f"`seed` is {seed}; use a whole number from 0 to {MAX_SEED}")
        from transformers import set_seed

        set_seed(int(seed))
    return options


def m2m100_codes() -> list[str]:
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    return [code.strip("_") for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]


def language_code(value: Any, name: str) -> str:
    """An ISO 639-1 code from 'de', 'DE', 'de-AT', 'de_AT' or a language's English name ('German': small models
    often write the name); ToolInputError for anything else."""
    written = str(value or "").strip()
    code = written.lower().replace("_", "-").split("-")[0]
    if LANGUAGE_CODE.match(code):
        return code
    import pycountry

    try:
        found = pycountry.languages.lookup(written)
    except LookupError:
        found = None
    if found is None or not getattr(found, "alpha_2", None):
        raise ToolInputError(f"`{name}` must be an ISO 639-1 language code such as 'en' or 'de', got {value!r}")
    return str(found.alpha_2)


def strip_language_tokens(text: str) -> str:
    """M2M100 output without `__xx__` language tokens (saved tokenizers may not skip them)."""
    return " ".join(LANGUAGE_TOKEN.sub(" ", text).split())


def acceptability(label: str) -> str:
    """CoLA checkpoints name their classes LABEL_0 (unacceptable) and LABEL_1 (acceptable), or spell them out."""
    lowered = label.lower()
    if lowered in {"label_1", "1", "acceptable"}:
        return "acceptable"
    if lowered in {"label_0", "0", "unacceptable"}:
        return "unacceptable"
    return lowered


def entailment(bundle: Bundle, premises: list[str], hypotheses: list[str]) -> list[dict[str, Any]]:
    """{'label', 'scores'} for each (premise, hypothesis) pair, scored by an NLI cross-encoder."""
    import torch

    tokenizer, model = bundle
    results: list[dict[str, Any]] = []
    for start in range(0, len(premises), MAX_BATCH):
        batch = tokenizer(
            premises[start : start + MAX_BATCH],
            hypotheses[start : start + MAX_BATCH],
            padding=True,
            truncation=True,
            return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            logits = model(**batch).logits.float()
        for row in logits:
            scores: dict[str, float]
            if row.shape[-1] == 1:  # QNLI-style cross-encoders give one logit: the probability of entailment
                probability = float(row.sigmoid()[0])
                scores = {"entailment": probability, "not_entailment": 1.0 - probability}
            else:
                scores = {model.config.id2label[i].lower(): p for i, p in enumerate(row.softmax(-1).tolist())}
            best = max(scores, key=scores.__getitem__)
            results.append({"label": best, "scores": {label: round(p, 4) for label, p in scores.items()}})
    return results


def tag_spans(pipeline: Any, texts: list[str]) -> list[list[dict[str, Any]]]:
    """For each text, its tagged spans {'text', 'label', 'start', 'end', 'score'} with character offsets."""
    results = []
    for source, spans in zip(texts, pipeline(texts, **batch_options(texts)), strict=True):
        entities = []
        for span in spans:
            start, end = span.get("start"), span.get("end")
            words = source[start:end] if start is not None and end is not None else span["word"]
            label = span.get("entity_group") or span.get("entity", "")
            score = round(float(span["score"]), 4)
            entities.append({"text": words, "label": label, "start": start, "end": end, "score": score})
        results.append(entities)
    return results


def tag_texts(text: Any, pool: Callable[[], Any], role: str) -> Any:
    """What the tagging tools return for `text` (a string, or a list of them): {'entities': its tagged spans,
    'model': str}, or a list of those. `pool` (tools.context.current_pool) is called once `text` is checked."""
    texts, many = require_texts(text, "text")
    models = pool()
    model = models.model_for(role)
    results = [{"entities": spans, "model": model} for spans in tag_spans(models.get(role), texts)]
    return results if many else results[0]


def extract_answer(bundle: Bundle, question: str, passage: str, longest: int) -> tuple[float, int, int]:
    """(probability, start, end) of the best answer span in `passage`, at most `longest` tokens; the passage is
    read in overlapping chunks. A negative probability means no chunk had room for the passage."""
    import torch

    tokenizer, model = bundle
    max_length = min(384, tokenizer.model_max_length, model.config.max_position_embeddings)
    encoded = tokenizer(
        question,
        passage,
        truncation="only_second",
        max_length=max_length,
        stride=max_length // 4,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=True,
        return_tensors="pt",
    )
    offsets = encoded.pop("offset_mapping").tolist()
    features = {
        k: v.to(model.device) for k, v in encoded.items() if k in {"input_ids", "attention_mask", "token_type_ids"}
    }
    if "token_type_ids" in features and "token_type_ids" not in tokenizer.model_input_names:
        del features["token_type_ids"]
    with torch.inference_mode():
        output = model(**features)
    best = (-1.0, 0, 0)
    for chunk in range(len(offsets)):
        context = [i for i, s in enumerate(encoded.sequence_ids(chunk)) if s == 1]
        if not context:
            continue
        first, last = context[0], context[-1] + 1  # probabilities over this chunk's passage tokens only
        starts = output.start_logits[chunk, first:last].float().softmax(-1)
        ends = output.end_logits[chunk, first:last].float().softmax(-1)
        pair = starts[:, None] * ends[None, :]
        pair = torch.triu(pair) - torch.triu(pair, diagonal=longest)
        flat = int(pair.argmax())
        score = float(pair.flatten()[flat])
        if score > best[0]:
            i, j = divmod(flat, last - first)
            best = (score, offsets[chunk][first + i][0], offsets[chunk][first + j][1])
    return best
