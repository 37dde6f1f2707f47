"""Generation tools, continued: pictures that follow an image's edges, upscaling, and text to video.

The roles these tools use (`controlnet_canny`, `video_generator`) are declared in `tools.generation.ROLES`, with
their loaders; the checks, seeding and the one-run-at-a-time lock come from there too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.files import Workspace, load_image
from smolcrew.tools.generation import (
    GUIDANCE_INPUT,
    NEGATIVE_INPUT,
    SEED_INPUT,
    STEPS_INPUT,
    DiffusionTool,
    check_integer,
    check_number,
    check_side,
    fit_image,
    optional_text,
    seeded_generator,
)
from smolcrew.tools.pool import PipelinePool
from smolcrew.tools.text import require_text

MAX_UPSCALED_SIDE = 4096
CLIP_ROLES = ("image_text_matcher", "clip")
"""Roles that may hold a CLIP model for video scores (tools.vision declares `image_text_matcher`)."""

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["CLIP_ROLES", "GenerateImageFromEdges", "GenerateVideo", "UpscaleImage", "clip_score", "edge_map"]


def edge_map(image: Image.Image, low: float = 0.1, high: float = 0.3) -> Image.Image:
    """A Canny-style edge map (white edges on black, RGB) in numpy: blur, Sobel, thinning, hysteresis.

    `low` and `high` are fractions of the strongest gradient: pixels above `high` are edges, pixels above `low`
    are edges when they touch one.
    """
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageFilter

    gray = np.asarray(image.convert("L").filter(ImageFilter.GaussianBlur(1.4)), dtype=np.float32) / 255.0
    p = np.pad(gray, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    magnitude = np.hypot(gx, gy)
    magnitude /= max(float(magnitude.max()), 1e-6)
    thin = _non_maximum_suppression(magnitude, np.rad2deg(np.arctan2(gy, gx)) % 180)
    edges = _hysteresis(thin >= high, thin >= low)
    pixels = np.where(edges, 255, 0).astype(np.uint8)
    return PILImage.fromarray(np.stack([pixels] * 3, axis=-1))


def _non_maximum_suppression(magnitude: np.ndarray, angle: np.ndarray) -> np.ndarray:
    import numpy as np

    height, width = magnitude.shape
    m = np.pad(magnitude, 1)

    def shifted(dr: int, dc: int) -> np.ndarray:
        return m[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]

    direction = ((angle + 22.5) // 45).astype(int) % 4  # 0: left-right, 1: diagonal, 2: up-down, 3: anti-diagonal
    neighbours = [((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1))]
    keep = np.zeros_like(magnitude, dtype=bool)
    for index, (a, b) in enumerate(neighbours):
        keep |= (direction == index) & (magnitude >= shifted(*a)) & (magnitude >= shifted(*b))
    return np.where(keep, magnitude, 0.0)


def _hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Weak pixels 8-connected (through weak pixels) to a strong one; scipy when present, else grown in numpy."""
    import numpy as np

    try:
        from scipy import ndimage
    except ImportError:
        edges = strong
        for _ in range(max(strong.shape)):
            grown = weak & _dilate(edges)
            if (grown == edges).all():
                break
            edges = grown
        return edges
    labels, _count = ndimage.label(weak, structure=np.ones((3, 3), dtype=bool))
    keep = np.unique(labels[strong & weak])
    return np.isin(labels, keep[keep > 0])


def _dilate(mask: np.ndarray) -> np.ndarray:
    import numpy as np

    p = np.pad(mask, 1)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out |= p[dr : dr + height, dc : dc + width]
    return out


class GenerateImageFromEdges(DiffusionTool):
    name = "generate_image_from_edges"
    description = (
        "Paints a new picture that keeps the outlines of an existing one: computes a Canny-style edge map of the "
        "image and has a ControlNet (canny) Stable Diffusion model paint the prompt along those edges. Returns a "
        "dict {'path': PNG path of the picture, 'edges_path': PNG path of the edge map, 'edge_fraction': share of "
        "pixels that are edges (0-1), 'seed', 'steps', 'guidance', 'width', 'height', 'model'}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path of the picture whose outlines to keep (PNG or JPEG)."},
        "prompt": {"type": "string", "description": "What to paint, e.g. 'a bronze statue, studio light'."},
        "negative_prompt": NEGATIVE_INPUT,
        "low_threshold": {
            "type": "number",
            "description": "Weak-edge threshold, a fraction 0-1 of the strongest edge (default 0.1).",
            "nullable": True,
        },
        "high_threshold": {
            "type": "number",
            "description": "Strong-edge threshold, 0-1, at least low_threshold "
            "(default 0.3); raise it for fewer, bolder outlines.",
            "nullable": True,
        },
        "conditioning_scale": {
            "type": "number",
            "description": "How firmly to follow the edges, 0-2 (default 1).",
            "nullable": True,
        },
        "steps": STEPS_INPUT,
        "guidance": GUIDANCE_INPUT,
        "seed": SEED_INPUT,
    }
    output_type = "object"
    role = "controlnet_canny"

    def forward(
        self,
        image: str,
        prompt: str,
        negative_prompt: str | None = None,
        low_threshold: float | None = None,
        high_threshold: float | None = None,
        conditioning_scale: float | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        import numpy as np

        text = require_text(prompt, "prompt")
        low = check_number(low_threshold, "low_threshold", 0.0, 1.0, 0.1)
        high = check_number(high_threshold, "high_threshold", 0.0, 1.0, max(0.3, low))
        if low > high:
            raise ToolInputError(f"`low_threshold` ({low}) must not exceed `high_threshold` ({high})")
        control = check_number(conditioning_scale, "conditioning_scale", 0.0, 2.0, 1.0)
        picture = fit_image(load_image(image, "image"))
        num_steps, scale = self.settings(steps, guidance)
        edges = edge_map(picture, low, high)
        generator, used_seed = seeded_generator(seed)
        result = self.run_pipeline(
            prompt=text,
            image=edges,
            negative_prompt=optional_text(negative_prompt, "negative_prompt"),
            width=picture.size[0],
            height=picture.size[1],
            controlnet_conditioning_scale=control,
            num_inference_steps=num_steps,
            guidance_scale=scale,
            generator=generator,
        ).images[0]
        return {
            "path": self.save_images([result], "controlnet")[0],
            "edges_path": self.save_images([edges], "edges")[0],
            "edge_fraction": round(float((np.asarray(edges)[..., 0] > 0).mean()), 4),
            "seed": used_seed,
            "steps": num_steps,
            "guidance": scale,
            "width": result.size[0],
            "height": result.size[1],
            "model": self.pool.model_for(self.role),
        }


class UpscaleImage(CheckedTool):
    name = "upscale_image"
    description = (
        "Enlarges a picture 2-4 times with Lanczos resampling and an optional unsharp mask. This is classic "
        "resampling, not a model: it adds no detail that is not there. Returns a dict {'path': PNG path, 'width', "
        "'height' (pixels, after), 'scale': int, 'model': 'lanczos'}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path of the picture to enlarge (PNG or JPEG)."},
        "scale": {"type": "integer", "description": "How many times larger, 2-4 (default 2).", "nullable": True},
        "sharpen": {
            "type": "boolean",
            "description": "Sharpen edges after enlarging (default true).",
            "nullable": True,
        },
    }
    output_type = "object"

    def __init__(self, pool: PipelinePool | None = None, workspace: Workspace | None = None) -> None:
        super().__init__()
        self.workspace = workspace or Workspace(Path(tempfile.gettempdir()) / "smolcrew")

    def forward(self, image: str, scale: int | None = None, sharpen: bool | None = None) -> dict[str, Any]:
        from PIL import Image as PILImage
        from PIL import ImageFilter

        factor = check_integer(scale, "scale", 2, 4, 2)
        picture = load_image(image, "image")
        width, height = picture.size[0] * factor, picture.size[1] * factor
        if max(width, height) > MAX_UPSCALED_SIDE:
            raise ToolInputError(
                f"the result would be {width}x{height}; keep it within {MAX_UPSCALED_SIDE} px a side (lower `scale`)"
            )
        result = picture.resize((width, height), PILImage.Resampling.LANCZOS)
        if sharpen is None or sharpen:
            result = result.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))
        path = self.workspace.new_path("upscaled", ".png")
        result.save(path)
        return {"path": str(path), "width": width, "height": height, "scale": factor, "model": "lanczos"}


class GenerateVideo(DiffusionTool):
    name = "generate_video"
    description = (
        "Makes a short silent video clip from a text description with a text-to-video diffusion model. Returns a "
        "dict {'path': GIF or MP4 path, 'frames': int, 'fps': int, 'seconds': float, 'width', 'height', 'seed', "
        "'steps', 'clip_score': float 0-100 or None (how well sampled frames match the prompt; above ~25 is "
        "typical for a good match), 'clip_note': str, 'model': str}."
    )
    inputs = {
        "prompt": {"type": "string", "description": "What happens in the clip, e.g. 'a panda surfing a wave'."},
        "negative_prompt": NEGATIVE_INPUT,
        "frames": {"type": "integer", "description": "Number of frames, 2-64 (default 16).", "nullable": True},
        "fps": {"type": "integer", "description": "Frames per second of the file, 1-30 (default 8).", "nullable": True},
        "steps": STEPS_INPUT,
        "guidance": GUIDANCE_INPUT,
        "width": {
            "type": "integer",
            "description": "Width in pixels, a multiple of 8, 32-1024 (default: the model's size, 256 for damo-vilab).",
            "nullable": True,
        },
        "height": {"type": "integer", "description": "Height in pixels, like width.", "nullable": True},
        "format": {"type": "string", "description": "'gif' (default) or 'mp4'.", "nullable": True},
        "seed": SEED_INPUT,
    }
    output_type = "object"
    role = "video_generator"

    def forward(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        frames: int | None = None,
        fps: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        format: str | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        import numpy as np
        from PIL import Image as PILImage

        text = require_text(prompt, "prompt")
        count = check_integer(frames, "frames", 2, 64, 16)
        rate = check_integer(fps, "fps", 1, 30, 8)
        suffix = (optional_text(format, "format") or "gif").lower().lstrip(".")
        if suffix not in {"gif", "mp4"}:
            raise ToolInputError(f"`format` is {format!r}; use 'gif' or 'mp4'")
        num_steps, scale = self.settings(steps, guidance)
        w, h = check_side(width, "width"), check_side(height, "height")
        generator, used_seed = seeded_generator(seed)
        video = self.run_pipeline(
            prompt=text,
            negative_prompt=optional_text(negative_prompt, "negative_prompt"),
            num_frames=count,
            num_inference_steps=num_steps,
            guidance_scale=scale,
            width=w,
            height=h,
            generator=generator,
            output_type="np",
        ).frames
        array = np.asarray(video[0] if np.ndim(video[0]) == 4 else video)  # (frames, height, width, 3) in [0, 1]
        pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        images = [PILImage.fromarray(frame) for frame in pixels]
        path = self.workspace.new_path("video", f".{suffix}")
        write_video(images, path, rate)
        sampled = [images[int(i)] for i in np.linspace(0, len(images) - 1, min(4, len(images))).round()]
        score, note = clip_score(self.pool, sampled, text)
        return {
            "path": str(path),
            "frames": len(images),
            "fps": rate,
            "seconds": round(len(images) / rate, 3),
            "width": images[0].size[0],
            "height": images[0].size[1],
            "seed": used_seed,
            "steps": num_steps,
            "clip_score": score,
            "clip_note": note,
            "model": self.pool.model_for(self.role),
        }


def write_video(images: list[Image.Image], path: Path, fps: int) -> None:
    """An animated GIF (PIL) or an H.264 MP4 (PyAV), by the path's suffix."""
    import numpy as np

    if path.suffix == ".gif":
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return
    try:
        import av
    except ImportError as exc:
        raise ToolInputError("writing MP4 needs PyAV (pip install av); ask for format='gif' instead") from exc
    with av.open(str(path), mode="w") as container:
        stream: Any = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = images[0].size
        stream.pix_fmt = "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")))
        container.mux(stream.encode())


def clip_score(pool: PipelinePool, images: list[Image.Image], prompt: str) -> tuple[Any, str]:
    """CLIPScore of `images` against `prompt` with the pool's CLIP model: mean of max(100 x cosine, 0).

    The model is the first role of `CLIP_ROLES` the manifest declares. Returns (score or None, a note saying how
    it was computed or why there is none); a missing or unusable CLIP model never fails the caller.
    """
    from smolcrew.tools.manifest import manifest

    role = next((name for name in CLIP_ROLES if name in manifest()), None)
    if role is None:
        return None, f"no CLIP score: no CLIP model role is declared (looked for {', '.join(CLIP_ROLES)})"
    try:
        bundle = pool.get(role)
    except ModelUnavailableError as exc:
        return None, f"no CLIP score: the {role!r} model is not available ({str(exc).splitlines()[0]})"
    model = getattr(bundle, "model", bundle)
    processor = getattr(bundle, "processor", None)
    tokenizer = getattr(bundle, "tokenizer", None) or getattr(processor, "tokenizer", None)
    image_processor = getattr(bundle, "image_processor", None) or getattr(processor, "image_processor", None)
    if tokenizer is None or image_processor is None or not hasattr(model, "get_image_features"):
        return None, f"no CLIP score: the {role!r} role is not a CLIP model with a tokenizer and image processor"
    try:
        import torch

        parameter = next(model.parameters())
        with torch.no_grad():
            text = tokenizer([prompt], padding=True, truncation=True, return_tensors="pt").to(parameter.device)
            pixels = image_processor(images=images, return_tensors="pt")["pixel_values"]
            text_features = _features(model.get_text_features(**text))
            image_features = _features(
                model.get_image_features(pixel_values=pixels.to(parameter.device, parameter.dtype))
            )
        image_features = torch.nn.functional.normalize(image_features.float(), dim=-1)
        text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)
        score = (100 * image_features @ text_features.T).clamp(min=0).mean()
    except (RuntimeError, ValueError, TypeError, AttributeError, KeyError) as exc:
        return None, f"no CLIP score: scoring failed ({type(exc).__name__}: {str(exc)[:160]})"
    return round(float(score), 2), f"CLIPScore: mean over {len(images)} sampled frames of max(100 x cosine, 0)"


def _features(output: Any) -> Any:
    """CLIP feature methods return a tensor, or (newer transformers) an output object with `pooler_output`."""
    return output if hasattr(output, "norm") else output.pooler_output
