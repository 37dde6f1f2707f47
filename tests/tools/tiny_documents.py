"""Tiny random QA models and real test documents (PDFs, rendered page images) for the documents tools.

The models' outputs are random: tests assert types, offsets and provenance, never meanings. The documents
are real: pypdf extracts their text, MiniLM ranks it and Tesseract reads the rendered images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = [
    "what",
    "when",
    "where",
    "who",
    "how",
    "much",
    "is",
    "the",
    "did",
    "does",
    "open",
    "opened",
    "bridge",
    "to",
    "traffic",
    "in",
    "total",
    "invoice",
    "due",
    "a",
    "of",
    "and",
    "for",
    "after",
    "years",
    "construction",
    "amount",
    "price",
]


def _tokenizer(max_length: int) -> Any:
    """A lower-casing word-level tokenizer with BERT-style [CLS] A [SEP] B [SEP] pairs (fast, so offsets work)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_length,
    )


def tiny_extractive_qa(folder: Path) -> Path:
    """A 1-layer DistilBERT span extractor (stands in for distilbert-base-cased-distilled-squad)."""
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    tokenizer = _tokenizer(64)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    DistilBertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_layoutlm_qa(folder: Path) -> Path:
    """A 1-layer LayoutLM span extractor over words + boxes (stands in for impira/layoutlm-document-qa)."""
    from transformers import LayoutLMConfig, LayoutLMForQuestionAnswering

    tokenizer = _tokenizer(64)
    config = LayoutLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    LayoutLMForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


FILLER = {
    1: "Rainfall in the northern valleys is measured every morning at six. The readings are averaged weekly and "
    "published in the regional weather bulletin, together with wind speed and humidity.",
    2: "The orchard grows apples, pears and plums. Harvest starts in late August, and the fruit is sorted by size "
    "before it is packed into wooden crates for the markets in town.",
    3: "The Halvorsen bridge opened to traffic in 1937 after four years of construction. It spans the river "
    "with a single steel arch and carries two lanes of cars and a footpath.",
    4: "Our chess club meets on Tuesday evenings in the library. Beginners are welcome, and a short lesson on "
    "openings is given before the games start.",
}


def text_pdf(path: Path, pages: dict[int, str] = FILLER) -> Path:
    """A multi-page PDF with a real text layer, one paragraph per page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for number in sorted(pages):
        pdf.add_page()
        pdf.multi_cell(0, 8, pages[number])
    pdf.output(str(path))
    return path


def render_text(path: Path, lines: list[str], size: int = 48) -> Path:
    """A white PNG with large black lines of text, as a clean scan would show them."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    image = Image.new(
        "RGB", (60 + max(len(line) for line in lines) * size * 2 // 3, 60 + len(lines) * size * 2), "white"
    )
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * size * 2), line, fill="black", font=font)
    image.save(path)
    return path


def render_table(path: Path, rows: list[list[str]], size: int = 36, column_width: int = 300) -> Path:
    """A PNG table: each cell drawn at its column's x position, wide gaps between columns, no ruling lines."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    image = Image.new("RGB", (60 + len(rows[0]) * column_width, 60 + len(rows) * size * 2), "white")
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            draw.text((30 + c * column_width, 30 + r * size * 2), cell, fill="black", font=font)
    image.save(path)
    return path


def scanned_pdf(path: Path, image: Path) -> Path:
    """A one-page PDF holding only an image (no text layer), like a scanner's output."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(image), x=10, y=10, w=190)
    pdf.output(str(path))
    return path
