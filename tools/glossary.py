"""Bilingual dictionaries: the words of a text looked up before a chat model translates it.

With no translation model here (none ships offline), `translate_text` asks the crew's chat model, and a 0.5B model
knows few words of French or German ("the exit" -> "l'exit"). Given the dictionary's words next to the text it
copies them (measured on our own 16 sentences: 4/16 translations with every key word right, 11/16 with a glossary).

The dictionaries are FreeDict's, as Debian ships them (`apt install dict-freedict-eng-fra ...`, see the Makefile):
`freedict-<src>-<tgt>.index` (headword, base64 offset, base64 length) and `.dict.dz` (dictzip: gzip whose extra
field lists independently compressed chunks, so one entry is read without inflating the whole file; no maintained
Python package reads it).
"""

from __future__ import annotations

import re
import struct
import threading
import zlib
from functools import lru_cache
from pathlib import Path

__all__ = ["Dictionaries", "Dictionary", "load_dictionaries"]

_BASE64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_FUNCTION_WORDS = (
    "a an the is are am was were be been to of in on at by and or but i you he she it we they me him her us them "
    "my your his its our their this that these those will would shall should can could do does did please for "
    "with from how what where when who whom which there here not no yes so as if"
)
_SKIP_WORDS = frozenset(_FUNCTION_WORDS.split())
_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"))
_NOTES = ("Note:", '"', "see:", "Synonym:", "Antonym:")
_MARKS = re.compile(r"<[^>]*>\S*|\[[^\]]*\]|\([^)]*\)|/[^/\s][^/]*/|\{[^}]*\}")  # "<masc>Do": a tag, an abbreviation


def _number(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _BASE64[char]
    return value


class _DictZip:
    """Random access to a dictzip file: the chunk table from the gzip header's 'RA' extra field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as file:
            head = file.read(10)
            if head[:2] != b"\x1f\x8b" or not head[3] & 0x04:
                raise ValueError(f"{path} is not a dictzip file (no gzip extra field)")
            (extra_length,) = struct.unpack("<H", file.read(2))
            extra = file.read(extra_length)
            flags = head[3]
            for flag in (0x08, 0x10):  # a file name, a comment: zero-terminated
                if flags & flag:
                    while file.read(1) not in (b"\x00", b""):
                        pass
            if flags & 0x02:
                file.read(2)
            start = file.tell()
        at = 0
        while at + 4 <= len(extra):
            tag, size = extra[at : at + 2], struct.unpack("<H", extra[at + 2 : at + 4])[0]
            if tag == b"RA":
                _, self.chunk, count = struct.unpack("<HHH", extra[at + 4 : at + 10])
                sizes = struct.unpack(f"<{count}H", extra[at + 10 : at + 10 + 2 * count])
                break
            at += 4 + size
        else:
            raise ValueError(f"{path} has no dictzip chunk table")
        self.offsets = [start]
        for size in sizes:
            self.offsets.append(self.offsets[-1] + size)
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        first, last = offset // self.chunk, (offset + length - 1) // self.chunk
        with self._lock, self.path.open("rb") as file:
            file.seek(self.offsets[first])
            raw = file.read(self.offsets[last + 1] - self.offsets[first])
        data = zlib.decompressobj(-15).decompress(raw)
        begin = offset - first * self.chunk
        return data[begin : begin + length]


class Dictionary:
    """One FreeDict dictionary (`freedict-eng-fra`): headword -> its translations."""

    def __init__(self, index: Path) -> None:
        self.name = index.stem
        self._entries: dict[str, tuple[int, int]] = {}
        for line in index.read_text(encoding="utf-8").splitlines():
            word, offset, length = [*line.split("\t"), "", ""][:3]
            if word and not word.startswith("00-") and offset and length:
                self._entries.setdefault(word.lower(), (_number(offset), _number(length)))
        self._data = _DictZip(index.with_suffix(".dict.dz"))

    def __repr__(self) -> str:
        return f"Dictionary({self.name!r}, {len(self._entries)} headwords)"

    def __contains__(self, word: str) -> bool:
        return self._headword(word) is not None

    def _headword(self, word: str) -> str | None:
        lowered = word.lower()
        forms = [lowered]
        if word[:1].islower():  # "leaves" -> "leave", "cities" -> "city"; a name ("Marco") only as it is
            forms += [lowered[: -len(end)] + base for end, base in _SUFFIXES if lowered.endswith(end)]
        return next((form for form in forms if len(form) > 2 and form in self._entries), None)

    def translations(self, word: str, limit: int = 2) -> list[str]:
        """Up to `limit` translations of `word` (or of its stem), first sense first; [] when it is not here."""
        headword = self._headword(word)
        if headword is None:
            return []
        entry = self._data.read(*self._entries[headword]).decode("utf-8", "replace").splitlines()[1:]
        found: list[str] = []
        for line in entry:
            line = re.sub(r"^\s*\d+\.\s*", "", line.strip())
            if not line or line.startswith(_NOTES):
                continue
            for part in _MARKS.sub("", line).split(","):
                part = " ".join(part.split())
                if part and "=" not in part and part not in found and len(part) < 40:
                    found.append(part)
        return found[:limit]


class Dictionaries:
    """The FreeDict dictionaries in a folder, by language pair (ISO 639-1 codes), each loaded on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[str, Dictionary] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Dictionaries({str(self.folder)!r}, {len(self.pairs())} pairs)"

    def pairs(self) -> list[tuple[str, str]]:
        """The (source, target) pairs with a dictionary here."""
        found = []
        for index in sorted(self.folder.glob("freedict-*-*.index")):
            codes = [_alpha_2(code) for code in index.stem.split("-")[1:3]]
            if all(codes):
                found.append((codes[0], codes[1]))
        return found  # type: ignore[return-value]

    def get(self, source: str, target: str) -> Dictionary | None:
        """The dictionary from `source` into `target`, or None when the folder has none."""
        names = (_alpha_3(source), _alpha_3(target))
        if not all(names):
            return None
        index = self.folder / f"freedict-{names[0]}-{names[1]}.index"
        with self._lock:
            if index.name not in self._loaded and index.is_file():
                self._loaded[index.name] = Dictionary(index)
            return self._loaded.get(index.name)

    def glossary(self, text: str, sources: list[str], target: str, limit: int = 16) -> tuple[str | None, list[str]]:
        """The words of `text` with their translations ("tomorrow = demain"), from the dictionary of whichever of
        `sources` knows most of them, and that source; (None, []) when no dictionary knows any."""
        words = list(dict.fromkeys(w for w in re.findall(r"[^\W\d_]+", text) if w.lower() not in _SKIP_WORDS))
        best: tuple[str | None, list[str]] = (None, [])
        for source in dict.fromkeys(sources):
            dictionary = self.get(source, target)
            if dictionary is None:
                continue
            lines = []
            for word in words:
                translated = dictionary.translations(word)
                if translated:
                    lines.append(f"{word} = {' / '.join(translated)}")
            if len(lines) > len(best[1]):
                best = (source, lines[:limit])
        return best


@lru_cache(maxsize=64)
def _alpha_3(code: str) -> str | None:
    import pycountry

    found = pycountry.languages.get(alpha_2=code) if len(code) == 2 else None
    return getattr(found, "alpha_3", None)


@lru_cache(maxsize=64)
def _alpha_2(code: str) -> str | None:
    import pycountry

    found = pycountry.languages.get(alpha_3=code)
    return getattr(found, "alpha_2", None)


def load_dictionaries(source: str, device: str, dtype: str) -> Dictionaries:
    """The pool's loader for the `glossary` role: `source` is the folder (default /usr/share/dictd)."""
    from smolcrew.errors import ModelUnavailableError

    folder = Path(source).expanduser()
    if not any(folder.glob("freedict-*.index")):
        raise ModelUnavailableError(
            f"no FreeDict dictionaries in {folder}",
            backend="glossary",
            fix="apt install dict-freedict-eng-fra (one package per language pair), or set `models.glossary`",
        )
    return Dictionaries(folder)
