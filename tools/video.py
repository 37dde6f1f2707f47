"""Video tools: a video path in, label scores over time out.

Frames and sound are decoded with PyAV (`pip install av`). Frames are scored with X-CLIP, the sound track (when
there is one) with CLAP, against the same labels; the two are averaged per time window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.vision_engines import ModelBundle, bundle_loader

__all__ = [
    "ROLES",
    "ClassifyVideoZeroShot",
    "DecodedVideo",
    "decode_video",
    "probe_video",
    "ranked",
    "score_audio",
    "score_frames",
]

ROLES = (
    ModelRole(
        "video_text_matcher",
        "zero-shot-video-classification",
        "microsoft/xclip-base-patch32",
        "microsoft/xclip-base-patch32",
        loader=bundle_loader("XCLIPModel"),
    ),
    ModelRole(
        "video_sound_matcher",
        "zero-shot-audio-classification",
        "laion/clap-htsat-unfused",
        "laion/clap-htsat-unfused",
        loader=bundle_loader("ClapModel"),
    ),
)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".gif"}


@dataclass
class DecodedVideo:
    duration: float
    """Seconds."""
    windows: list[tuple[float, float]]
    frames: list[list[Any]]
    """Per window, `frames_per_window` PIL images evenly spread over it."""
    audio: Any | None
    """Mono float32 samples at `sampling_rate`, or None when the file has no sound track."""
    sampling_rate: int


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise ToolInputError("reading video needs PyAV: pip install 'av>=14,<19'") from exc
    return av


def probe_video(path: str) -> None:
    """ToolInputError unless `path` opens as a container with a video stream (checked before any model loads)."""
    av = _av()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ToolInputError(f"`video`: {path} has no video stream; pass a video file (MP4, WebM, MKV)")
    except av.FFmpegError as exc:
        raise ToolInputError(f"`video`: {path} is not a readable video ({exc}); pass an MP4, WebM or MKV file") from exc


def decode_video(
    path: str, *, windows: int, frames_per_window: int, sampling_rate: int = 16_000, with_audio: bool = True
) -> DecodedVideo:
    """Split the video into `windows` equal spans; take frames from each, and the sound track resampled to
    `sampling_rate` (when `with_audio` and there is one)."""
    import numpy as np

    av = _av()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ToolInputError(f"`video`: {path} has no video stream; pass a video file (MP4, WebM, MKV)")
            stream = container.streams.video[0]
            decoded = [(float(frame.time or 0.0), frame) for frame in container.decode(stream)]
        if not decoded:
            raise ToolInputError(f"`video`: {path} has no frames")
        step = decoded[1][0] - decoded[0][0] if len(decoded) > 1 else 0.04
        duration = decoded[-1][0] + step
        span = duration / windows
        bounds = [(round(i * span, 3), round((i + 1) * span, 3)) for i in range(windows)]
        times = np.array([t for t, _ in decoded])
        frames = []
        for start, end in bounds:
            targets = start + (np.arange(frames_per_window) + 0.5) * (end - start) / frames_per_window
            picks = np.clip(np.searchsorted(times, targets, side="right") - 1, 0, len(decoded) - 1)
            frames.append([decoded[int(i)][1].to_image().convert("RGB") for i in picks])
        audio = None
        with av.open(path) as container:
            if with_audio and container.streams.audio:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
                chunks = [
                    out.to_ndarray().reshape(-1)
                    for frame in container.decode(container.streams.audio[0])
                    for out in resampler.resample(frame)
                ]
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
                audio = np.concatenate(chunks).astype(np.float32) if chunks else None
    except av.FFmpegError as exc:
        raise ToolInputError(f"`video`: {path} is not a readable video ({exc}); pass an MP4, WebM or MKV file") from exc
    return DecodedVideo(duration, bounds, frames, audio, sampling_rate)


def score_frames(bundle: ModelBundle, frames: list[list[Any]], labels: list[str]) -> Any:
    """X-CLIP label probabilities per window of frames, shape (windows, labels)."""
    import torch

    pixels = torch.stack(
        [bundle.processor(images=window, return_tensors="pt")["pixel_values"] for window in frames]
    )  # (windows, frames, channels, height, width)
    text = bundle.processor.tokenizer(labels, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = bundle.model(
            input_ids=text["input_ids"].to(bundle.device),
            attention_mask=text["attention_mask"].to(bundle.device),
            pixel_values=pixels.to(bundle.device, bundle.model.dtype),
        )
    return out.logits_per_video.float().softmax(dim=-1).cpu().numpy()


def score_audio(bundle: ModelBundle, pieces: list[Any], labels: list[str]) -> Any:
    """CLAP label probabilities per piece of sound, shape (pieces, labels)."""
    import torch

    rate = bundle.processor.feature_extractor.sampling_rate
    audio = bundle.processor.feature_extractor(pieces, sampling_rate=rate, return_tensors="pt")
    text = bundle.processor.tokenizer(labels, padding=True, return_tensors="pt")
    inputs = {**{k: v.to(bundle.device) for k, v in text.items()}}
    inputs.update({k: v.to(bundle.device) for k, v in audio.items()})
    inputs["input_features"] = inputs["input_features"].to(bundle.model.dtype)
    with torch.inference_mode():
        out = bundle.model(**inputs)
    return out.logits_per_audio.float().softmax(dim=-1).cpu().numpy()


def ranked(labels: list[str], scores: Any) -> list[dict[str, Any]]:
    order = sorted(range(len(labels)), key=lambda i: float(scores[i]), reverse=True)
    return [{"label": labels[i], "score": round(float(scores[i]), 4)} for i in order]


class ClassifyVideoZeroShot(CheckedTool):
    name = "classify_video_zero_shot"
    task = "video-classification"
    description = (
        "Scores what happens in a video against labels you choose (e.g. ['playing guitar', 'cooking', "
        "'a dog barking']), from its frames (X-CLIP) and, when it has sound, its audio (CLAP). Returns a dict "
        "{'labels': [{'label', 'score'}] over the whole video, best first; 'timeline': [{'start': s, 'end': s, "
        "'labels': [{'label', 'score'}], 'sources': ['frames', 'audio']}]; 'duration': s; 'used_audio': bool; "
        "'model': str, 'audio_model': str or None}. Scores in each list sum to 1."
    )
    inputs = {
        "video": {"type": "string", "description": "Path to the video file (MP4, WebM, MKV, MOV, ...)."},
        "candidate_labels": {"type": "array", "description": "Two or more labels (strings) to choose from."},
        "segments": {
            "type": "integer",
            "description": "How many equal time windows to score (1-32, default 4).",
            "nullable": True,
        },
        "use_audio": {
            "type": "boolean",
            "description": "Also score the sound track when there is one (default true).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "video_text_matcher"
    audio_role = "video_sound_matcher"

    def forward(
        self,
        video: str,
        candidate_labels: list[str],
        segments: int | None = None,
        use_audio: bool | None = None,
    ) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import require_file
        from smolcrew.tools.video import VIDEO_SUFFIXES, decode_video, probe_video, ranked, score_audio, score_frames
        from smolcrew.tools.vision import require_count, require_labels

        path = str(require_file(video, "video", VIDEO_SUFFIXES))
        labels, windows = require_labels(candidate_labels), require_count(segments, "segments", 4, 32)
        if use_audio is not None and not isinstance(use_audio, bool):
            raise ToolInputError("`use_audio` must be true or false")
        probe_video(path)
        pool = current_pool()
        vision = pool.get(self.role)
        sound = pool.get(self.audio_role) if use_audio is not False else None
        rate = int(sound.processor.feature_extractor.sampling_rate) if sound else 16_000
        per_window = int(vision.model.config.vision_config.num_frames)
        clip = decode_video(
            path, windows=windows, frames_per_window=per_window, sampling_rate=rate, with_audio=bool(sound)
        )
        frame_scores = score_frames(vision, clip.frames, labels)
        audio_scores = None
        if sound is not None and clip.audio is not None and clip.audio.size:
            pieces = [clip.audio[int(s * rate) : max(int(e * rate), int(s * rate) + 1)] for s, e in clip.windows]
            audio_scores = score_audio(sound, pieces, labels)
        fused = frame_scores if audio_scores is None else (frame_scores + audio_scores) / 2
        sources = ["frames"] if audio_scores is None else ["frames", "audio"]
        timeline = [
            {"start": window[0], "end": window[1], "labels": ranked(labels, fused[i]), "sources": sources}
            for i, window in enumerate(clip.windows)
        ]
        return {
            "labels": ranked(labels, fused.mean(axis=0)),
            "timeline": timeline,
            "duration": round(clip.duration, 3),
            "used_audio": audio_scores is not None,
            "model": pool.model_for(self.role),
            "audio_model": pool.model_for(self.audio_role) if audio_scores is not None else None,
        }
