"""Files sent with a message: checked against the server's limits, stored under names the server chooses.

A client's file name is kept for display only and never used as a path. A run reads only its conversation's
files: its uploads and what its runs wrote (`run_roots`); every other path on the server is refused to its tools.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import UnsupportedUploadError, UploadTooLargeError

if TYPE_CHECKING:
    from smolcrew.config import ServerSettings

__all__ = ["Upload", "check_upload", "run_roots", "store_upload", "uploads_folder"]


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent with a message. `filename` is the client's name, kept for display only: never a path here."""

    filename: str
    content_type: str
    data: bytes


def _media_type(upload: Upload) -> str:
    return upload.content_type.split(";")[0].strip().lower()


def check_upload(upload: Upload, server: ServerSettings) -> None:
    """Refuse a file over `server.max_upload_mb` (UploadTooLargeError), of a type not in `server.upload_types`
    or whose bytes are not of its type (UnsupportedUploadError): images must open, PDFs start with `%PDF-`, text
    is UTF-8."""
    limit = int(server.max_upload_mb * 1024 * 1024)
    if len(upload.data) > limit:
        raise UploadTooLargeError(
            f"{upload.filename!r} is {len(upload.data) / 1048576:.1f} MiB, over the {server.max_upload_mb:g} MiB "
            "limit (`server.max_upload_mb`); send a smaller file",
            limit_bytes=limit,
        )
    kind = _media_type(upload)
    family = kind.split("/")[0] + "/*"
    if kind not in server.upload_types and family not in server.upload_types:
        raise UnsupportedUploadError(
            f"{upload.filename!r} has type {kind or 'none'!r}, which is not accepted; send one of "
            f"{', '.join(server.upload_types)} (`server.upload_types`)",
            content_type=kind,
        )
    problem = None
    if family == "image/*" and _image(upload.data) is None:
        problem = "is not a readable image"
    elif kind == "application/pdf" and not upload.data.startswith(b"%PDF-"):
        problem = "is not a PDF (it does not start with %PDF-)"
    elif family == "text/*":
        try:
            upload.data.decode("utf-8")
        except UnicodeDecodeError:
            problem = "is not UTF-8 text"
    if problem is not None:
        raise UnsupportedUploadError(
            f"{upload.filename!r} {problem} although it was sent as {kind}; send the file with its real type",
            content_type=kind,
        )


def _image(data: bytes) -> Any:
    """The bytes as a loaded PIL image, or None when they are not an image."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return image


def store_upload(upload: Upload, folder: Path) -> tuple[Path, Any]:
    """Write a checked upload under `folder` with a random name (the extension from its media type) and return
    the path and, for an image, the PIL image."""
    kind = _media_type(upload)
    suffix = {"text/markdown": ".md", "image/jpeg": ".jpg"}.get(kind) or mimetypes.guess_extension(kind) or ".bin"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(8)}{suffix}"
    path.write_bytes(upload.data)
    return path, _image(upload.data) if kind.startswith("image/") else None


def uploads_folder(home: Path, conversation_id: str) -> Path:
    """Where the conversation's uploads are stored: `<home>/uploads/<conversation_id>/`."""
    return home / "uploads" / conversation_id


def run_roots(home: Path, conversation_id: str, run_ids: Sequence[str]) -> tuple[Path, ...]:
    """The folders a run of the conversation may read (`Crew.run(file_roots=...)`): its uploads and the output
    folders of its runs (`<home>/runs/<run_id>/artifacts`, so a turn can work on an earlier turn's picture);
    nothing else on the server, neither the current directory nor `files.roots`."""
    return (uploads_folder(home, conversation_id), *(home / "runs" / run_id / "artifacts" for run_id in run_ids))
