"""Tiny random language models built from configs, saved to a folder and loaded through the real pool.

Every tokenizer is built offline: a word-level `tokenizers.Tokenizer` wrapped in PreTrainedTokenizerFast, or, for
Marian and M2M100 (which read sentencepiece files), a sentencepiece model trained here on a few sentences.
Outputs are random: tests assert types, shapes and provenance, never meanings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

_WORD_LIST = (
    "the a an is are was be to of and in on at for with from by it this that he she they we you i "
    "cat dog man woman paris berlin london john mary city river house car tree book sun moon sky "
    "eats runs sleeps reads sees likes went lives works good bad big small red blue green old new "
    "what where who when why how , . ? ! ' : ; -"
)
WORDS = _WORD_LIST.split()

CORPUS = [
    "the cat sleeps on the red car .",
    "john lives in paris and works in berlin .",
    "mary reads a good book by the river .",
    "where is the old house ? it is in london .",
    "der hund schläft im haus . le chat dort sur la voiture .",
    "we like the blue sky and the green tree .",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def word_tokenizer(specials: list[str], *, bert_pairs: bool = False, max_length: int = 64) -> Any:
    """A lowercasing word-level fast tokenizer over WORDS; `specials` come first, in this order."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    unk = next(token for token in specials if "unk" in token.lower())
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    named = {"unk_token": unk}
    if bert_pairs:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        named |= {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, **named)


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _bert_config(**extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(BERT_SPECIALS) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )


def _labels(names: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def tiny_sequence_classifier(folder: Path, labels: list[str] | None = None) -> Path:
    """A 1-layer BERT sequence classifier; with no labels it keeps the Hub-style LABEL_0/LABEL_1 names."""
    from transformers import BertForSequenceClassification

    config = _bert_config(**(_labels(labels) if labels else {}))
    BertForSequenceClassification(config).save_pretrained(folder)
    word_tokenizer(BERT_SPECIALS, bert_pairs=True).save_pretrained(folder)
    return folder


def tiny_cross_encoder(folder: Path) -> Path:
    """A 1-layer ELECTRA pair classifier with labels contradiction/entailment/neutral (as nli-deberta-v3)."""
    from transformers import ElectraConfig, ElectraForSequenceClassification

    config = ElectraConfig(
        vocab_size=len(BERT_SPECIALS) + len(WORDS),
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **_labels(["contradiction", "entailment", "neutral"]),
    )
    ElectraForSequenceClassification(config).save_pretrained(folder)
    word_tokenizer(BERT_SPECIALS, bert_pairs=True).save_pretrained(folder)
    return folder


def tiny_token_classifier(folder: Path, labels: list[str]) -> Path:
    from transformers import BertForTokenClassification

    BertForTokenClassification(_bert_config(**_labels(labels))).save_pretrained(folder)
    word_tokenizer(BERT_SPECIALS, bert_pairs=True).save_pretrained(folder)
    return folder


def tiny_question_answerer(folder: Path) -> Path:
    """A 1-layer DistilBERT extractive QA model; its tokenizer has pair templates and offsets (fast)."""
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    config = DistilBertConfig(
        vocab_size=len(BERT_SPECIALS) + len(WORDS),
        dim=32,
        n_layers=1,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
    )
    DistilBertForQuestionAnswering(config).save_pretrained(folder)
    word_tokenizer(BERT_SPECIALS, bert_pairs=True).save_pretrained(folder)
    return folder


GPT_SPECIALS = ["<unk>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def tiny_text_generator(folder: Path) -> Path:
    """A 1-layer GPT-2 with a word-level tokenizer and a chat template set on it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer(GPT_SPECIALS)
    tokenizer.eos_token = tokenizer.bos_token = tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=1,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _tiny_seq2seq_config(config_class: Any, vocab_size: int, **extra: Any) -> Any:
    return config_class(
        vocab_size=vocab_size,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        **extra,
    )


def tiny_bart_summarizer(folder: Path) -> Path:
    """A 1+1-layer BART with a word-level fast tokenizer (ids as BART's: <s>=0, <pad>=1, </s>=2)."""
    from tokenizers import processors
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = word_tokenizer(BART_SPECIALS, max_length=128)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.bos_token, tokenizer.pad_token, tokenizer.eos_token = "<s>", "<pad>", "</s>"
    config = _tiny_seq2seq_config(
        BartConfig,
        len(tokenizer),
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=0,
    )
    BartForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _sentencepiece_model(vocab_size: int = 60) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
    )
    return model.getvalue()


def _sentencepiece_pieces(model: bytes) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def tiny_marian_translator(folder: Path) -> Path:
    """A 1+1-layer Marian model with a MarianTokenizer over a sentencepiece model trained on CORPUS."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    raw = folder.parent / f"{folder.name}-spm"
    raw.mkdir(parents=True, exist_ok=True)
    model = _sentencepiece_model()
    (raw / "source.spm").write_bytes(model)
    (raw / "target.spm").write_bytes(model)
    pieces = [p for p in _sentencepiece_pieces(model) if p not in {"<unk>", "<s>", "</s>"}]
    vocab = {token: i for i, token in enumerate(["</s>", "<unk>", *pieces, "<pad>"])}
    (raw / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = MarianTokenizer(str(raw / "source.spm"), str(raw / "target.spm"), str(raw / "vocab.json"))
    config = _tiny_seq2seq_config(
        MarianConfig,
        len(vocab),
        pad_token_id=vocab["<pad>"],
        eos_token_id=0,
        decoder_start_token_id=vocab["<pad>"],
        decoder_vocab_size=len(vocab),
    )
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_m2m100_translator(folder: Path) -> Path:
    """A 1+1-layer M2M100 with an M2M100Tokenizer over a tiny sentencepiece model.

    Its 100 language codes take the ids after the vocabulary, then 8 made-up words: the model covers them all.
    """
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    raw = folder.parent / f"{folder.name}-spm"
    raw.mkdir(parents=True, exist_ok=True)
    model = _sentencepiece_model()
    (raw / "sentencepiece.bpe.model").write_bytes(model)
    pieces = [p for p in _sentencepiece_pieces(model) if p not in {"<unk>", "<s>", "</s>"}]
    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *pieces])}
    (raw / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = M2M100Tokenizer(str(raw / "vocab.json"), str(raw / "sentencepiece.bpe.model"))
    config = _tiny_seq2seq_config(
        M2M100Config,
        max(tokenizer.lang_code_to_id.values()) + 9,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    M2M100ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
