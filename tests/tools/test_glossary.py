"""Bilingual dictionaries for the chat model's translations: the dictzip reader on a file built here, and the
FreeDict dictionaries the Makefile installs (Debian's dict-freedict-*)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from smolcrew.backends import ScriptedModel
from smolcrew.errors import ModelUnavailableError
from smolcrew.pool import PipelinePool
from smolcrew.tools.context import use_tools
from smolcrew.tools.glossary import Dictionaries, glossary_lines, load_dictionaries
from smolcrew.tools.language import TranslateText

DEBIAN = Path("/usr/share/dictd")
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(number: int) -> str:
    digits = ""
    while True:
        digits = _BASE64[number % 64] + digits
        number //= 64
        if not number:
            return digits


def write_dictionary(folder: Path, name: str, entries: dict[str, str], chunk: int = 16) -> None:
    """A dictd dictionary as dictfmt + dictzip write it: an index, and gzip data in independent chunks of `chunk`
    bytes (small, so entries straddle chunks)."""
    data, index = b"", []
    for word, body in entries.items():
        entry = f"{body}\n".encode()  # its first line is the headword, as FreeDict writes it
        index.append(f"{word}\t{_b64(len(data))}\t{_b64(len(entry))}")
        data += entry
    compressed = []
    for start in range(0, len(data), chunk):
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        compressed.append(packer.compress(data[start : start + chunk]) + packer.flush(zlib.Z_FULL_FLUSH))
    table = struct.pack("<HHH", 1, chunk, len(compressed)) + struct.pack(f"<{len(compressed)}H", *map(len, compressed))
    extra = b"RA" + struct.pack("<H", len(table)) + table
    header = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x02\x03" + struct.pack("<H", len(extra)) + extra
    (folder / f"{name}.dict.dz").write_bytes(header + b"".join(compressed) + packer.flush())
    (folder / f"{name}.index").write_text("\n".join(sorted(index)) + "\n", encoding="utf-8")


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    write_dictionary(
        tmp_path,
        "freedict-eng-fra",
        {
            "tomorrow": "tomorrow /təmɔrou/\ndemain",
            "exit": "exit /eksit/\n1. issue, sortie\n2. aboutir, descendre",
            "window": "window <noun>\n1. fenêtre [arch.]\n   Note: a glazed opening\n2. guichet",
            "city": "city\nville",
            "car": "car /kɑː/\nvoiture <fem>, auto <fem> [fam.]",
        },
    )
    return tmp_path


def test_words_are_read_from_their_chunks(folder: Path) -> None:
    dictionaries = load_dictionaries(str(folder), "cpu", "auto")
    french = dictionaries.get("en", "fr")
    assert dictionaries.pairs() == [("en", "fr")] and french is not None
    assert french.translations("tomorrow") == ["demain"]
    assert french.translations("exit") == ["issue", "sortie"]  # the first two, tags and notes left out
    assert french.translations("Window", limit=3) == ["fenêtre", "guichet"]
    assert french.translations("cities") == ["ville"]  # a plural finds its headword
    assert french.translations("car") == ["voiture", "auto"]  # a gender tag does not swallow the comma after it
    assert french.translations("train") == [] and dictionaries.get("en", "de") is None


def test_a_glossary_comes_from_the_source_that_knows_most_words(folder: Path) -> None:
    source, words = Dictionaries(folder).glossary("Where is the exit? Tomorrow, not today.", ["fr", "en"], "fr")
    assert source == "en" and words == [("exit", ["issue", "sortie", "aboutir", "descendre"]), ("Tomorrow", ["demain"])]
    assert glossary_lines(words) == ["exit = issue / sortie", "Tomorrow = demain"]  # two senses at most
    assert Dictionaries(folder).glossary("Bonjour", ["de"], "fr") == (None, [])


def test_names_and_words_both_languages_share_are_left_to_the_model(folder: Path) -> None:
    write_dictionary(folder, "freedict-eng-fra", {"martin": "martin\nmartinet", "train": "train\ncortège"})
    _, words = Dictionaries(folder).glossary("Ask Martin about the train", ["en"], "fr")
    assert words == []  # "Martin" is a name; "train" is French too, and the dictionary offers only "cortège"
    _, words = Dictionaries(folder).glossary("Martin, the train", ["en"], "fr")
    assert words == []


def test_words_left_untranslated_are_replaced_when_the_dictionary_back_agrees(folder: Path) -> None:
    write_dictionary(
        folder,
        "freedict-fra-eng",
        {"sortie": "sortie\nexit, outing", "issue": "issue\nexit", "aboutir": "aboutir\nlead"},
    )
    dictionaries = Dictionaries(folder)
    words = [("exit", ["aboutir", "issue", "sortie"]), ("budget", ["budget"]), ("tomorrow", ["demain"])]
    filled = dictionaries.fill_untranslated("Exit: où est l'exit ? Le budget, tomorrow.", words, "en", "fr")
    assert filled == "Sortie: où est l'sortie ? Le budget, tomorrow."  # the commonest that means "exit"; no "demain"
    assert Dictionaries(folder).get("fr", "en") is not None
    only_forward = Dictionaries(folder)
    (folder / "freedict-fra-eng.index").unlink()
    assert only_forward.fill_untranslated("l'exit", words, "en", "fr") == "l'exit"


def test_a_phrase_the_dictionary_holds_is_looked_up_whole(folder: Path) -> None:
    write_dictionary(
        folder,
        "freedict-eng-fra",
        {"good night": "good night\nbonne nuit", "good": "good\nbon", "trip": "trip\nvoyage"},
    )
    _, words = Dictionaries(folder).glossary("Good night, and a safe trip", ["en"], "fr")
    assert words == [("good night", ["bonne nuit"]), ("trip", ["voyage"])]  # not "good" and "night" again


def test_an_empty_folder_says_which_packages_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="dict-freedict"):
        load_dictionaries(str(tmp_path), "cpu", "auto")


def test_the_chat_models_translation_gets_the_dictionarys_words(folder: Path) -> None:
    asked: list[str] = []

    def translator(messages: list[dict]) -> str:
        asked.append(" ".join(part["text"] for m in messages for part in m["content"]))
        return 'Voici la traduction en français : "La sortie ouvre demain."'

    pool = PipelinePool(device="cpu", overrides={"glossary": str(folder)})
    with use_tools(pool=pool, chat_model=ScriptedModel(translator, model_id="qwen")):
        result = TranslateText()(text="The exit opens tomorrow.", target_language="fr")
    assert asked[0].startswith("Dictionary:\nexit = issue / sortie\ntomorrow = demain\n\nTranslate this English text")
    assert result["translation"] == "La sortie ouvre demain."  # the model's lead-in is cut
    assert result["model"] == "qwen (chat model, with a dictionary)"


@pytest.mark.parametrize(
    ("text", "reply", "kept"),
    [
        ("see you tomorrow", "French translation: à demain", "à demain"),
        ("see you tomorrow", "Thought: à demain.", "à demain."),  # the agent's format, leaking into the chat model
        ("Answer: see you tomorrow", "Réponse : à demain", "Réponse : à demain"),
        ("Answer: see you tomorrow", "Answer: à demain", "Answer: à demain"),  # the text's own label stays
    ],
)
def test_a_label_before_the_translation_is_cut(folder: Path, text: str, reply: str, kept: str) -> None:
    pool = PipelinePool(device="cpu", overrides={"glossary": str(folder)})
    with use_tools(pool=pool, chat_model=ScriptedModel(lambda messages: reply, model_id="q")):
        result = TranslateText()(text=text, source_language="en", target_language="fr")
    assert result["translation"] == kept


@pytest.mark.skipif(not (DEBIAN / "freedict-eng-fra.index").is_file(), reason="make system-deps installs FreeDict")
def test_the_installed_freedict_dictionaries_load() -> None:
    dictionaries = load_dictionaries(str(DEBIAN), "cpu", "auto")
    assert {("en", "fr"), ("en", "es"), ("en", "de"), ("pl", "en")} <= set(dictionaries.pairs())
    source, words = dictionaries.glossary("The train leaves tomorrow", ["en"], "fr")
    assert source == "en" and ("tomorrow", ["demain"]) in words
    spanish = dictionaries.get("en", "es")
    assert spanish is not None and "viernes" in spanish.translations("Friday")


@pytest.mark.parametrize(("text", "said_back"), [("tomorrow", "Tomorrow!"), ("good night", "Goodnight.")])
def test_a_text_said_back_is_translated_again_without_the_dictionary(folder: Path, text: str, said_back: str) -> None:
    write_dictionary(folder, "freedict-eng-fra", {"tomorrow": "tomorrow\ndemain", "night": "night\nnuit"})
    replies = iter([said_back, "Demain !"])
    asked: list[str] = []

    def translator(messages: list[dict]) -> str:
        asked.append(" ".join(part["text"] for m in messages for part in m["content"]))
        return next(replies)

    pool = PipelinePool(device="cpu", overrides={"glossary": str(folder)})
    with use_tools(pool=pool, chat_model=ScriptedModel(translator, model_id="qwen")):
        result = TranslateText()(text=text, source_language="en", target_language="fr")
    assert result["translation"] == "Demain !" and result["model"] == "qwen (chat model)"
    assert asked[0].startswith("Dictionary:") and not asked[1].startswith("Dictionary:")
