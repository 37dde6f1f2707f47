"""Checks a text against a GBNF grammar with llguidance (the grammar engine llama.cpp can use), byte by byte."""

from __future__ import annotations

from functools import cache
from typing import Any

import llguidance


class _Bytes:
    """A tokenizer whose tokens are the 256 bytes (plus an end token), so a matcher reads text as bytes."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([i]) for i in range(256)] + [b""]
    special_token_ids = [256]

    def __call__(self, data: bytes) -> list[int]:
        return list(data)


@cache
def _tokenizer() -> Any:
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Bytes()))


def accepts(gbnf: str, text: str) -> bool:
    """Whether `text` is a complete sentence of the grammar; a grammar llguidance cannot compile fails the test."""
    matcher = llguidance.LLMatcher(_tokenizer(), llguidance.grammar_from("gbnf", gbnf))
    assert not matcher.is_error(), matcher.get_error()
    return all(matcher.consume_token(byte) for byte in text.encode()) and matcher.is_accepting()
