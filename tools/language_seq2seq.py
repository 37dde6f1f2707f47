"""Language generation tools: summaries, translation, free text and chat replies.

Summaries and translation load a tokenizer and model with Auto classes (`tools.language_engines.Bundle`); text
generation and chat use the text-generation pipeline. Roles are declared here in `SEQ2SEQ_ROLES` and gathered
into `tools.language.ROLES`.
"""

from __future__ import annotations

import re
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import current_pool
from smolcrew.tools.glossary import load_dictionaries
from smolcrew.tools.language_engines import bounded, generate, load_opus_pairs, load_seq2seq

__all__ = [
    "SEQ2SEQ_ROLES",
    "GenerateText",
    "ReplyInConversation",
    "SummarizeText",
    "TranslateText",
    "chat_translation",
    "summarize",
]

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
    ModelRole(
        "glossary",
        "bilingual-dictionary",
        "/usr/share/dictd",
        "freedict",
        offline="apt install dict-freedict-eng-fra (FreeDict, a Debian package per language pair)",
        loader=load_dictionaries,
    ),
)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_INTRODUCED = re.compile(
    r"^(?=.{0,200}?(?i:translat|tradu|übersetz|voici|aquí|here|ecco|hier))"
    r'.*:\s*["\u201c\u00ab]([^"\u201d\u00bb]+)["\u201d\u00bb]\.?\s*$',
    re.S,
)
"""A lead-in the model wrote before the translation ('Voici la traduction de "..." : "..."'): the last quote."""
_LABELLED = re.compile(
    r"^\s*(?:(?:here is |the )?(?:[A-Za-z]+ )?translation(?: (?:in|into) [A-Za-z]+)?|thought|answer)\s*:\s*(.+)$",
    re.I | re.S,
)
"""A label before the translation, without quotes ("Italian translation: caffè"; "Thought: muito obrigado.", the
agent's format leaking into the chat model's reply)."""


def heading(sentence: str) -> bool:
    """A label rather than a sentence ("Team meeting, 4 March.", "Attendees: Rosa, Kwame, Lin."): never the lead."""
    return ":" in sentence[:40] or (len(sentence.split()) <= 6 and "," in sentence)


def summarize(text: str, mode: Any, max_sentences: Any, min_new_tokens: Any, max_new_tokens: Any) -> dict[str, Any]:
    """What `summarize_text` returns, with the models of the current tool context."""
    pool = current_pool()
    chosen = str(mode or "extractive").strip().lower()
    if chosen == "extractive":
        keep = bounded(max_sentences, 3, "max_sentences", 1, 100)
        sentences = [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
        vectors = pool.get("embeddings").encode(sentences, normalize_embeddings=True, batch_size=32)
        centroid = vectors.mean(axis=0)
        scores = vectors @ (centroid / max(float((centroid**2).sum()) ** 0.5, 1e-12))
        # The lead: a text says what it is about first (a greeting aside). Centrality alone picked a detail ("All
        # shipments must leave before noon.", "Coffee will be provided.") in 4 of our 6 one-line summaries.
        lead = next(
            (i for i, sentence in enumerate(sentences) if len(sentence.split()) >= 4 and not heading(sentence)), 0
        )
        ranked = sorted(range(len(sentences)), key=lambda i: (i != lead, -float(scores[i])))
        kept = sorted(ranked[:keep])
        return {
            "summary": " ".join(sentences[i] for i in kept),
            "sentences": [{"index": i, "text": sentences[i], "score": round(float(scores[i]), 4)} for i in kept],
            "mode": "extractive",
            "model": pool.model_for("embeddings"),
        }
    if chosen != "abstractive":
        raise ToolInputError(f"`mode` must be 'extractive' or 'abstractive', got {mode!r}")
    shortest = bounded(min_new_tokens, 10, "min_new_tokens", 0, 1024)
    longest = bounded(max_new_tokens, 130, "max_new_tokens", 1, 1024)
    if shortest > longest:
        raise ToolInputError(f"`min_new_tokens` ({shortest}) is above `max_new_tokens` ({longest})")
    summary = generate(pool.get("summarizer"), text, min_new_tokens=shortest, max_new_tokens=longest)
    return {"summary": summary, "mode": chosen, "model": pool.model_for("summarizer")}


class SummarizeText(CheckedTool):
    name = "summarize_text"
    task = "summarization"
    description = (
        "Summarizes a text. mode 'extractive' (default) keeps the text's most central sentences, in their original "
        "order; mode 'abstractive' writes a new summary with a summarization model. Returns a dict "
        "{'summary': str, 'mode': str, 'model': str}; extractive adds 'sentences': [{'index', 'text', 'score'}] "
        "for the kept ones."
    )
    inputs = {
        "text": {"type": "string", "description": "The text to summarize."},
        "mode": {
            "type": "string",
            "description": "'extractive' (default: the first sentence, then the most central) or 'abstractive'.",
            "nullable": True,
        },
        "max_sentences": {
            "type": "integer",
            "description": "Extractive: sentences to keep (default 3).",
            "nullable": True,
        },
        "min_new_tokens": {
            "type": "integer",
            "description": "Abstractive: shortest summary in tokens (default 10).",
            "nullable": True,
        },
        "max_new_tokens": {
            "type": "integer",
            "description": "Abstractive: longest summary in tokens (default 130).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "embeddings"  # the default, extractive mode; abstractive loads the "summarizer" role when asked

    def forward(
        self,
        text: str,
        mode: str | None = None,
        max_sentences: int | None = None,
        min_new_tokens: int | None = None,
        max_new_tokens: int | None = None,
    ) -> dict[str, Any]:
        from smolcrew.tools.language_seq2seq import summarize
        from smolcrew.tools.text import require_text

        return summarize(require_text(text, "text"), mode, max_sentences, min_new_tokens, max_new_tokens)


class TranslateText(CheckedTool):
    name = "translate_text"
    task = "translation"
    description = (
        "Translates text between languages given as ISO 639-1 codes ('en', 'de', 'fr', 'zh', ...; about 100 "
        "languages) or English names ('French'). The source language is detected when not given. Returns a dict "
        "{'translation': str, 'source_language': str, 'target_language': str, 'detected': bool, 'model': str}."
    )
    inputs = {
        "text": {"type": "string", "description": "The text to translate."},
        "target_language": {"type": "string", "description": "ISO 639-1 code of the language to translate into."},
        "source_language": {
            "type": "string",
            "description": "ISO 639-1 code of the text's language (detected when omitted).",
            "nullable": True,
        },
        "max_new_tokens": {
            "type": "integer",
            "description": "Longest translation in tokens (default 256).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "translator"
    chat_fallback = True

    def forward(
        self, text: str, target_language: str, source_language: str | None = None, max_new_tokens: int | None = None
    ) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools import language_engines as engines
        from smolcrew.tools.context import current_chat_model, current_pool
        from smolcrew.tools.glossary import glossary_lines
        from smolcrew.tools.language_seq2seq import chat_translation, same_letters
        from smolcrew.tools.text import require_text

        text = require_text(text, "text")
        target = engines.language_code(target_language, "target_language")
        detected = source_language is None or not str(source_language).strip()
        if detected:
            source = engines.detect_languages(text)["language"]
        else:
            source = engines.language_code(source_language, "source_language")
        longest = engines.bounded(max_new_tokens, 256, "max_new_tokens", 1, 1024)
        result = {"source_language": source, "target_language": target, "detected": detected}
        if source == target:
            return {"translation": text, **result, "model": "none (same language)"}
        pool = current_pool()
        pairs = pool.get("translator_opus")
        if pairs.usable(source, target):
            translation = engines.generate(pairs.get(source, target), text, max_new_tokens=longest)
            return {"translation": translation, **result, "model": pairs.name(source, target)}
        chat_model = current_chat_model()
        if chat_model is not None and not pool.can_load(self.role):
            given, words = None if detected else source, []
            if pool.can_load("glossary"):  # a detected source is a guess on a few words: English is likelier
                dictionaries = pool.get("glossary")
                given, words = dictionaries.glossary(text, [source] if given else [source, "en"], target)
                given = given or (None if detected else source)
            shown = glossary_lines(words)
            translation = chat_translation(chat_model, text, given, target, longest, shown)
            if shown and same_letters(translation, text):
                shown = []  # the text said back ("good night"): again as before, the repeat penalty keeps it out
                translation = chat_translation(chat_model, text, given, target, longest)
            if words and given:
                translation = dictionaries.fill_untranslated(translation, words, given, target)
            model = f"{chat_model.model_id} (chat model{', with a dictionary' if shown else ''})"
            return {"translation": translation, **result, "model": model}
        known = engines.m2m100_codes()
        for code, name in ((source, "source_language"), (target, "target_language")):
            if code not in known:
                how = " (detected)" if detected and code == source else ""
                raise ToolInputError(
                    f"unknown language code {code!r} in `{name}`{how}; "
                    f"use an ISO 639-1 code, one of: {', '.join(known)}"
                )
        bundle = pool.get(self.role)
        with engines.M2M_LOCK:
            bundle.tokenizer.src_lang = source
            forced = bundle.tokenizer.get_lang_id(target)
            translation = engines.generate(bundle, text, max_new_tokens=longest, forced_bos_token_id=forced)
        translation = engines.strip_language_tokens(translation)
        return {"translation": translation, **result, "model": pool.model_for(self.role)}


def same_letters(one: str, other: str) -> bool:
    """Whether two texts are the same but for case, spaces and punctuation: "Goodnight!" and "good night"."""
    return re.sub(r"\W", "", one).lower() == re.sub(r"\W", "", other).lower()


def chat_translation(
    model: Any, text: str, source: str | None, target: str, max_new_tokens: int, glossary: list[str] | None = None
) -> str:
    """`text` translated by an instruction model (a smolagents `Model`): what translate_text does when no
    translation model is here. One call, temperature 0; a text without line breaks gets a one-line reply.
    `source` None: the model reads the language itself (detection is a guess on a few words). `glossary`:
    its words looked up in a dictionary ("tomorrow = demain"), put before the request (tools/glossary.py)."""
    from smolagents.models import ChatMessage, MessageRole

    from smolcrew.errors import ModelUnavailableError
    from smolcrew.tools import language_engines as engines

    given = f"{engines.language_name(source)} " if source else ""
    # Measured on the 0.5B: one user message beats a system prompt (which it often answers with the text itself).
    asked = f"Translate this {given}text into {engines.language_name(target)}:\n{text}"
    if glossary:
        asked = "Dictionary:\n" + "\n".join(glossary) + f"\n\n{asked}"
    messages = [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": asked}])]
    options: dict[str, Any] = {"max_tokens": max_new_tokens}
    if getattr(model, "supports_grammar", False):  # llama.cpp: no line of notes after it, no "¡¡¡¡" loops
        if not glossary:  # the penalty counts the prompt's tokens too: it keeps the dictionary's words out
            options["repeat_penalty"] = 1.15
        if "\n" not in text:
            options["grammar"] = "root ::= [^\\n]+"
    reply = model.generate(messages, **options).content
    translation = (reply if isinstance(reply, str) else str(reply or "")).strip()
    quotes = {'"': '"', "'": "'", "\u201c": "\u201d", "\u00ab": "\u00bb"}
    introduced = _INTRODUCED.match(translation) or (None if _LABELLED.match(text) else _LABELLED.match(translation))
    if introduced is not None:
        translation = introduced.group(1).strip()
    if len(translation) > 1 and quotes.get(translation[0]) == translation[-1] and text[:1] not in quotes:
        translation = translation[1:-1].strip()
    if not translation:
        raise ModelUnavailableError(
            f"the chat model wrote no {engines.language_name(target)} translation",
            backend="translator",
            fix="install a translation model (`models.translator`) or use a larger chat model",
        )
    return translation


class GenerateText(CheckedTool):
    name = "generate_text"
    task = "text-generation"
    description = (
        "Continues or answers a prompt with a small local language model. Returns a dict {'text': str (only the "
        "new text, without the prompt), 'model': str}."
    )
    inputs = {
        "prompt": {"type": "string", "description": "The text to continue or the instruction to follow."},
        "max_new_tokens": {"type": "integer", "description": "Most tokens to write (default 128).", "nullable": True},
        "temperature": {
            "type": "number",
            "description": "0 (default) is deterministic; up to 2, more varied.",
            "nullable": True,
        },
        "seed": {"type": "integer", "description": "Random seed, for repeatable sampling.", "nullable": True},
    }
    output_type = "object"
    role = "text_generator"

    def forward(
        self, prompt: str, max_new_tokens: int | None = None, temperature: float | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.language_engines import sampling
        from smolcrew.tools.text import require_text

        prompt = require_text(prompt, "prompt")
        options = sampling(max_new_tokens, temperature, seed)
        pool = current_pool()
        output = pool.get(self.role)(prompt, return_full_text=False, **options)
        return {"text": str(output[0]["generated_text"]), "model": pool.model_for(self.role)}


class ReplyInConversation(CheckedTool):
    name = "reply_in_conversation"
    task = "text-generation"
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
        "max_new_tokens": {"type": "integer", "description": "Most tokens to write (default 128).", "nullable": True},
        "temperature": {
            "type": "number",
            "description": "0 (default) is deterministic; up to 2, more varied.",
            "nullable": True,
        },
        "seed": {"type": "integer", "description": "Random seed, for repeatable sampling.", "nullable": True},
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
        from smolcrew.errors import ModelUnavailableError, ToolInputError
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.language_engines import sampling
        from smolcrew.tools.text import require_text

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
        options = sampling(max_new_tokens, temperature, seed)
        pool = current_pool()
        pipeline = pool.get(self.role)
        if not getattr(pipeline.tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                f"model {pool.model_for(self.role)!r} has no chat template",
                backend=self.role,
                fix="set `models.text_generator` to an instruct model, e.g. Qwen/Qwen2.5-0.5B-Instruct",
            )
        output = pipeline(chat, return_full_text=False, **options)
        generated = output[0]["generated_text"]
        reply = generated[-1]["content"] if isinstance(generated, list) else generated
        return {"reply": str(reply).strip(), "model": pool.model_for(self.role)}
