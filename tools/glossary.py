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

__all__ = [
    "Dictionaries",
    "Dictionary",
    "Glossary",
    "frequency",
    "glossary_lines",
    "load_dictionaries",
]

_BASE64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_FUNCTION_WORDS = (
    "a an the is are am was were be been to of in on at by and or but i you he she it we they me him her us them "
    "my your his its our their this that these those will would shall should can could do does did please for "
    "with from how what where when who whom which there here not no yes so as if"
)
_SKIP_WORDS = frozenset(_FUNCTION_WORDS.split())
_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"))
_NOTES = ("Note:", '"', "see:", "Synonym:", "Synonyms:", "Antonym:")
Glossary = list[tuple[str, list[str]]]
"""Words with their translations, in the dictionary's order: [("exit", ["issue", "sortie"])]."""
_MARKS = re.compile(
    r"<[^>]*>[^\s,;]*|\[[^\]]*\]|\([^)]*\)|/[^/\s][^/]*/|\{[^}]*\}"
)  # "<masc>Do": a tag, an abbreviation


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

    def glossary(self, text: str, sources: list[str], target: str, limit: int = 16) -> tuple[str | None, Glossary]:
        """The words of `text`, and its phrases that are headwords, with up to four translations each in the
        dictionary's order, from the dictionary of whichever of `sources` knows most of them, and that source;
        (None, []) when no dictionary knows any. Left out: a name ("Martin", as much German as English), and a word
        of both languages that the dictionary does not give as its own translation ("train" -> "cortège": the
        sense of the text is likely missing)."""
        best: tuple[str | None, Glossary] = (None, [])
        for source in dict.fromkeys(sources):
            dictionary = self.get(source, target)
            if dictionary is None:
                continue
            entries = [(phrase, dictionary.translations(phrase, limit=4)) for phrase in _phrases(text, dictionary)]
            covered = {word for phrase, _ in entries for word in phrase.split()}
            for word in _words_to_look_up(text, source, target):
                if word.lower() in covered:
                    continue
                found = dictionary.translations(word, limit=4)
                shared = frequency(word, target) >= frequency(word, source) - 0.5
                if found and not (shared and word.lower() not in map(str.lower, found)):
                    entries.append((word, found))
            entries.sort(key=lambda entry: text.lower().find(entry[0].lower()))  # in the text's order
            if len(entries) > len(best[1]):
                best = (source, entries[:limit])
        return best

    def fill_untranslated(self, translation: str, glossary: Glossary, source: str, target: str) -> str:
        """`translation` with the words a chat model left in `source` ("sur Friday", "l'exit") replaced by their
        translation in `glossary` ("sur vendredi", "l'sortie"). A word counts as left over when it is far commoner
        in `source` than in `target` (wordfreq), so "budget", a word of both, stays. Its replacement is the commonest
        one-word translation that the dictionary back into `source` translates as the word ("sortie" -> "exit";
        never "report" -> "communiquer"); none when that dictionary is missing."""
        back = self.get(target, source)
        for word, translated in glossary:
            if back is None or frequency(word, target) >= frequency(word, source) - 1.0:
                continue
            means = word.lower()
            agreeing = [
                t
                for t in translated
                if " " not in t and any(means in re.findall(r"\w+", m.lower()) for m in back.translations(t, 6))
            ]
            if not agreeing:
                continue
            replacement = max(agreeing, key=lambda t: frequency(t, target))

            def replace(match: re.Match[str], replacement: str = replacement) -> str:
                before = match.string[: match.start()].rstrip()
                return replacement[:1].upper() + replacement[1:] if not before or before[-1] in ".!?" else replacement

            translation = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", replace, translation, flags=re.IGNORECASE)
        return translation


def glossary_lines(glossary: Glossary) -> list[str]:
    """The lines a prompt shows, two senses at most: "exit = issue / sortie"."""
    return [f"{word} = {' / '.join(translated[:2])}" for word, translated in glossary]


def frequency(word: str, language: str) -> float:
    """How common `word` is in `language`, on wordfreq's Zipf scale (0 unknown, 7 'the'); 0 for a language
    wordfreq does not know."""
    from wordfreq import zipf_frequency

    try:
        return float(zipf_frequency(word, language))
    except LookupError:
        return 0.0


def _phrases(text: str, dictionary: Dictionary) -> list[str]:
    """The runs of two or three words of `text` that `dictionary` has as one headword ("good night" -> "bonne
    nuit", where "good" and "night" alone give "bon nuit"), longest first, not overlapping."""
    words = [w.lower() for w in re.findall(r"[^\W\d_]+", text)]
    found: list[str] = []
    at = 0
    while at < len(words):
        for size in (3, 2):
            phrase = " ".join(words[at : at + size])
            if len(words[at : at + size]) == size and not set(phrase.split()) <= _SKIP_WORDS and phrase in dictionary:
                found.append(phrase)
                at += size
                break
        else:
            at += 1
    return found


def _words_to_look_up(text: str, source: str, target: str) -> list[str]:
    words: list[str] = []
    for match in re.finditer(r"[^\W\d_]+", text):
        word = match.group()
        if word.lower() in _SKIP_WORDS or word in words:
            continue
        before = text[: match.start()].rstrip(" \"'\u201c")
        opens_sentence = not before or before[-1] in ".!?:"
        if word[:1].isupper() and not opens_sentence and frequency(word, target) >= frequency(word, source) - 0.5:
            continue  # a name, written the same in both
        words.append(word)
    return words


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
