"""OCR with Tesseract: page images in (image files, PIL images, or pages of scanned PDFs), words and boxes out.

`ocr_words` and `load_page_image` serve the document and table tools; `read_text_in_image` is the plain OCR tool.
Tesseract is a program, not a model: it needs `apt-get install tesseract-ocr tesseract-ocr-eng` and no pool role.
"""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import load_image, require_file

__all__ = ["ReadTextInImage", "engine_name", "load_page_image", "ocr_words", "open_pdf", "tesseract"]

MAX_PAGES = 500


def open_pdf(path: Path, name: str = "pdf_path") -> Any:
    """A pypdf reader for `path`; ToolInputError for a file that is not a PDF, is encrypted or is too long."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:
        raise ModelUnavailableError("reading PDFs needs pypdf", backend="pdf", fix="pip install pypdf") from exc
    try:
        reader = PdfReader(path)
        locked = reader.is_encrypted and not reader.decrypt("")
        count = 0 if locked else len(reader.pages)
    except (PyPdfError, ValueError, OSError, KeyError) as exc:
        raise ToolInputError(
            f"`{name}`: {path} is not a readable PDF ({type(exc).__name__}: {exc}); pass a real PDF file"
        ) from exc
    if locked:
        raise ToolInputError(f"`{name}`: {path} is password-protected; pass a decrypted copy")
    if count > MAX_PAGES:
        raise ToolInputError(f"`{name}`: {path} has {count} pages; split it into parts under {MAX_PAGES} pages")
    return reader


def tesseract() -> Any:
    try:
        import pytesseract
    except ImportError as exc:
        raise ModelUnavailableError("OCR needs pytesseract", backend="ocr", fix="pip install pytesseract") from exc
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise ModelUnavailableError(
            "the Tesseract OCR engine is not installed",
            backend="ocr",
            fix="apt-get install -y tesseract-ocr tesseract-ocr-eng (macOS: brew install tesseract)",
        )
    return pytesseract


@cache
def engine_name() -> str:
    """`tesseract-<version>` (ModelUnavailableError when Tesseract is missing)."""
    return f"tesseract-{tesseract().get_tesseract_version()}"


def ocr_words(image: Any, language: str = "eng", psm: int = 3) -> list[dict[str, Any]]:
    """Tesseract's words: {'text', 'confidence' (0-100), 'box': [left, top, right, bottom] pixels, 'line'}."""
    pytesseract = tesseract()
    if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", language):
        raise ToolInputError(f"`language`: {language!r} is not a Tesseract language code such as 'eng' or 'eng+deu'")
    try:
        data = pytesseract.image_to_data(
            image, lang=language, config=f"--psm {psm}", output_type=pytesseract.Output.DICT
        )
    except pytesseract.TesseractError as exc:
        raise ToolInputError(
            f"Tesseract failed ({exc}); check `language` (installed: {', '.join(pytesseract.get_languages())})"
        ) from exc
    words = []
    for i, text in enumerate(data["text"]):
        if text.strip() and float(data["conf"][i]) >= 0:
            left, top = int(data["left"][i]), int(data["top"][i])
            words.append(
                {
                    "text": text.strip(),
                    "confidence": round(float(data["conf"][i]), 1),
                    "box": [left, top, left + int(data["width"][i]), top + int(data["height"][i])],
                    "line": (data["block_num"][i], data["par_num"][i], data["line_num"][i]),
                }
            )
    return words


def load_page_image(value: Any, page: int | None, name: str = "image") -> Any:
    """A PIL image from an image path, a PIL image, or a page of a scanned PDF (its largest embedded image)."""
    if isinstance(value, str | Path) and str(value).strip().lower().endswith(".pdf"):
        path = require_file(value, name)
        reader = open_pdf(path, name)
        number = 1 if page is None else page
        if not isinstance(number, int):
            raise ToolInputError("`page` must be a whole number (the first page is 1)")
        if not 1 <= number <= len(reader.pages):
            raise ToolInputError(f"`page` must be between 1 and {len(reader.pages)} for {path}")
        try:
            images = [image.image for image in reader.pages[number - 1].images]
        except Exception as exc:
            raise ToolInputError(
                f"`{name}`: the images on page {number} of {path} could not be decoded ({exc})"
            ) from exc
        images = [image for image in images if image is not None]
        if not images:
            raise ToolInputError(
                f"`{name}`: page {number} of {path} holds no scanned image; if it has text use answer_from_pdf"
            )
        return max(images, key=lambda image: image.width * image.height).convert("RGB")
    if page not in (None, 1):  # page 1 of an image is the image itself: a harmless extra
        raise ToolInputError(f"`page`: an image has one page, not {page}; leave `page` out for an image")
    return load_image(value, name)


class ReadTextInImage(CheckedTool):
    name = "read_text_in_image"
    task = "image-to-text"
    description = (
        "Reads the text in an image (a receipt, menu, sign, label, form, screenshot or scanned page: its totals, "
        "prices, names and dates) with Tesseract OCR. Returns a dict {'text': str "
        "(lines joined with newlines), 'words': [{'text', 'confidence' 0-100, 'box': [left, top, right, bottom] "
        "in pixels}], 'mean_confidence': float 0-100, 'width', 'height': image size in pixels, 'model': str}."
    )
    inputs: dict[str, Any] = {
        "image": {
            "type": ["string", "image"],
            "description": "A page image (path to a PNG/JPEG file, or a PIL image), or the path of a scanned PDF.",
        },
        "page": {"type": "integer", "description": "For a PDF: which page, from 1 (default 1).", "nullable": True},
        "language": {"type": "string", "description": "Tesseract language code (default 'eng').", "nullable": True},
    }
    output_type = "object"

    def forward(self, image: Any, page: int | None = None, language: str | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.ocr import engine_name, load_page_image, ocr_words

        if language is not None and not isinstance(language, str):
            raise ToolInputError(f"`language` must be a Tesseract language code such as 'eng', not {language!r}")
        picture = load_page_image(image, page)
        engine = engine_name()
        words = ocr_words(picture, language or "eng")
        lines: dict[tuple[int, int, int], list[str]] = {}
        for word in words:
            lines.setdefault(word.pop("line"), []).append(word["text"])
        confidence = sum([word["confidence"] for word in words]) / len(words) if words else 0.0
        return {
            "text": "\n".join([" ".join(line) for line in lines.values()]),
            "words": words,
            "mean_confidence": round(confidence, 1),
            "width": picture.width,
            "height": picture.height,
            "model": f"{engine}:{language or 'eng'}",
        }
