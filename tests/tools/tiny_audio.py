"""Tiny random audio models and synthetic test signals.

The models are built from configs and saved to a folder, to load through the real pool; their outputs are
random, so tests assert types, shapes and files, never meanings. The signals are numpy arrays written as WAV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16_000


def tiny_audio_classifier(folder: Path) -> Path:
    """A 1-layer Audio Spectrogram Transformer with 16 mel bins, 64 frames and 4 labels."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    labels = ["Speech", "Music", "Dog", "Silence"]
    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=16,
        max_length=64,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    ASTForAudioClassification(config).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=16, max_length=64).save_pretrained(folder)
    return folder


def tiny_speecht5(folder: Path) -> Path:
    """A 1-layer SpeechT5 text-to-speech model, a character tokenizer, and a tiny HiFi-GAN in `vocoder/`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        SpeechT5Config,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    symbols = ["<pad>", "<unk>", "</s>", " ", *"abcdefghijklmnopqrstuvwxyz.,!?'"]
    tokenizer = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    config = SpeechT5Config(
        vocab_size=len(symbols),
        hidden_size=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        speech_decoder_prenet_units=32,
        speech_decoder_postnet_units=32,
        speech_decoder_postnet_layers=2,
        speaker_embedding_dim=16,
        num_mel_bins=20,
        max_text_positions=128,
        max_speech_positions=256,
        pad_token_id=0,
        eos_token_id=2,
    )
    SpeechT5ForTextToSpeech(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    vocoder = SpeechT5HifiGanConfig(
        model_in_dim=20,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    SpeechT5HifiGan(vocoder).save_pretrained(folder / "vocoder")
    return folder


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    import soundfile

    soundfile.write(str(path), samples.astype(np.float32), rate)
    return path


def tone(seconds: float, hz: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def noisy_tone_bursts(rate: int = RATE, noise_level: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean): 440 Hz bursts with pauses, as speech has, plus steady white noise. 3 seconds."""
    clean = np.concatenate([np.zeros(rate // 2), tone(1.0, 440, rate), np.zeros(rate // 2), tone(1.0, 440, rate)])
    noise = np.random.default_rng(seed).normal(0, noise_level, clean.size)
    return (clean + noise).astype(np.float32), clean.astype(np.float32)


def stereo_mix(rate: int = RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mix, center, side): a 440 Hz 'vocal' in both channels plus a 1000 Hz 'guitar' in the left only. 2 s."""
    center = tone(2.0, 440, rate, 0.4)
    side = tone(2.0, 1000, rate, 0.4)
    mix = np.stack([center + side, center], axis=1)
    return mix.astype(np.float32), center, side


def tone_with_clicks(rate: int = RATE) -> np.ndarray:
    """A 2 s 440 Hz tone with a sharp click every 0.25 s."""
    signal = tone(2.0, 440, rate, 0.3)
    signal[:: rate // 4] += 0.9
    return signal


def band_energy(samples: np.ndarray, hz: float, rate: int = RATE, width: float = 50) -> float:
    """Energy of `samples` within `width` Hz of `hz`."""
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    return float(spectrum[np.abs(freqs - hz) < width].sum())
