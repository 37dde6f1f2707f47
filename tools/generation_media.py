"""Generation tools, continued: pictures that follow an image's edges, upscaling, and text to video.

The roles these tools use (`controlnet_canny`, `video_generator`) are declared in `tools.generation.ROLES`; the
loaders, checks, seeding, edge maps and the one-run-at-a-time lock live in `tools.generation_engines`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.generation_engines import edge_map

MAX_UPSCALED_SIDE = 4096
CLIP_ROLES = ("image_text_matcher", "clip")
"""Roles that may hold a CLIP model for video scores (tools.vision declares `image_text_matcher`)."""

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "CLIP_ROLES",
    "GenerateImageFromEdges",
    "GenerateVideo",
    "UpscaleImage",
    "clip_score",
    "edge_fraction",
    "edge_map",
    "spread",
    "to_frames",
    "upscale",
    "write_video",
]


def edge_fraction(edges: Image.Image) -> float:
    """The share of pixels that are edges in an edge map (white on black)."""
    import numpy as np

    return round(float((np.asarray(edges)[..., 0] > 0).mean()), 4)


def upscale(picture: Image.Image, factor: int, *, sharpen: bool) -> Image.Image:
    """`picture` `factor` times larger (Lanczos), with an unsharp mask when `sharpen`."""
    from PIL import Image as PILImage
    from PIL import ImageFilter

    width, height = picture.size[0] * factor, picture.size[1] * factor
    if max(width, height) > MAX_UPSCALED_SIDE:
        raise ToolInputError(
            f"the result would be {width}x{height}; keep it within {MAX_UPSCALED_SIDE} px a side (lower `scale`)"
        )
    result = picture.resize((width, height), PILImage.Resampling.LANCZOS)
    return result.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2)) if sharpen else result


def to_frames(video: Any) -> list[Image.Image]:
    """A text-to-video pipeline's frames (floats in [0, 1], batched or not) as PIL images."""
    import numpy as np
    from PIL import Image as PILImage

    array = np.asarray(video[0] if np.ndim(video[0]) == 4 else video)  # (frames, height, width, 3) in [0, 1]
    pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return [PILImage.fromarray(frame) for frame in pixels]


def spread(images: list[Image.Image], count: int = 4) -> list[Image.Image]:
    """Up to `count` of `images`, evenly spread from the first to the last (the frames a CLIP score samples)."""
    import numpy as np

    return [images[int(i)] for i in np.linspace(0, len(images) - 1, min(count, len(images))).round()]


class GenerateImageFromEdges(CheckedTool):
    name = "generate_image_from_edges"
    task = "image-to-image"
    makes_file = True
    description = (
        "Paints a new picture that keeps the outlines of an existing one: computes a Canny-style edge map of the "
        "image and has a ControlNet (canny) Stable Diffusion model paint the prompt along those edges. Returns a "
        "dict {'path': PNG path of the picture, 'edges_path': PNG path of the edge map, 'edge_fraction': share of "
        "pixels that are edges (0-1), 'seed', 'steps', 'guidance', 'width', 'height', 'model'}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path of the picture whose outlines to keep (PNG or JPEG)."},
        "prompt": {"type": "string", "description": "What to paint, e.g. 'a bronze statue, studio light'."},
        "negative_prompt": {
            "type": "string",
            "description": "What the picture should not show (ignored when guidance is 0).",
            "nullable": True,
        },
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
        "steps": {
            "type": "integer",
            "description": "Denoising steps, 1-100 (default: 2 for turbo models, else 25).",
            "nullable": True,
        },
        "guidance": {
            "type": "number",
            "description": "How strictly to follow the prompt, 0-30 (default: 0 for turbo models, else 7.5).",
            "nullable": True,
        },
        "seed": {
            "type": "integer",
            "description": "Random seed; the same seed and inputs give the same picture.",
            "nullable": True,
        },
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
        from smolcrew.errors import ToolInputError
        from smolcrew.tools import generation_engines as engines
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.files import load_image
        from smolcrew.tools.generation_media import edge_fraction
        from smolcrew.tools.text import require_text

        text = require_text(prompt, "prompt")
        low = engines.check_number(low_threshold, "low_threshold", 0.0, 1.0, 0.1)
        high = engines.check_number(high_threshold, "high_threshold", 0.0, 1.0, max(0.3, low))
        if low > high:
            raise ToolInputError(f"`low_threshold` ({low}) must not exceed `high_threshold` ({high})")
        control = engines.check_number(conditioning_scale, "conditioning_scale", 0.0, 2.0, 1.0)
        picture = engines.fit_image(load_image(image, "image"))
        edges = engines.edge_map(picture, low, high)
        pool = current_pool()
        width, height = picture.size  # fit_image made them sides diffuse accepts
        options = {"image": edges, "controlnet_conditioning_scale": control}
        output, used = engines.diffuse(
            pool, self.role, text, negative_prompt, steps, guidance, width, height, seed, **options
        )
        result = output.images[0]
        workspace = current_workspace()
        return {
            "path": engines.save_images(workspace, [result], "controlnet")[0],
            "edges_path": engines.save_images(workspace, [edges], "edges")[0],
            "edge_fraction": edge_fraction(edges),
            **used,
            "width": result.size[0],
            "height": result.size[1],
            "model": pool.model_for(self.role),
        }


class UpscaleImage(CheckedTool):
    name = "upscale_image"
    task = "image-to-image"
    makes_file = True
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

    def forward(self, image: str, scale: int | None = None, sharpen: bool | None = None) -> dict[str, Any]:
        from smolcrew.tools.context import current_workspace
        from smolcrew.tools.files import load_image
        from smolcrew.tools.generation_engines import check_integer
        from smolcrew.tools.generation_media import upscale

        factor = check_integer(scale, "scale", 2, 4, 2)
        result = upscale(load_image(image, "image"), factor, sharpen=sharpen is None or bool(sharpen))
        path = current_workspace().new_path("upscaled", ".png")
        result.save(path)
        return {"path": str(path), "width": result.width, "height": result.height, "scale": factor, "model": "lanczos"}


class GenerateVideo(CheckedTool):
    name = "generate_video"
    task = "text-to-video"
    makes_file = True
    description = (
        "Makes a short silent video clip from a text description with a text-to-video diffusion model. Returns a "
        "dict {'path': GIF or MP4 path, 'frames': int, 'fps': int, 'seconds': float, 'width', 'height', 'seed', "
        "'steps', 'clip_score': float 0-100 or None (how well sampled frames match the prompt; above ~25 is "
        "typical for a good match), 'clip_note': str, 'model': str}."
    )
    inputs = {
        "prompt": {"type": "string", "description": "What happens in the clip, e.g. 'a panda surfing a wave'."},
        "negative_prompt": {
            "type": "string",
            "description": "What the picture should not show (ignored when guidance is 0).",
            "nullable": True,
        },
        "frames": {"type": "integer", "description": "Number of frames, 2-64 (default 16).", "nullable": True},
        "fps": {"type": "integer", "description": "Frames per second of the file, 1-30 (default 8).", "nullable": True},
        "steps": {
            "type": "integer",
            "description": "Denoising steps, 1-100 (default: 2 for turbo models, else 25).",
            "nullable": True,
        },
        "guidance": {
            "type": "number",
            "description": "How strictly to follow the prompt, 0-30 (default: 0 for turbo models, else 7.5).",
            "nullable": True,
        },
        "width": {
            "type": "integer",
            "description": "Width in pixels, a multiple of 8, 32-1024 (default: the model's size, 256 for damo-vilab).",
            "nullable": True,
        },
        "height": {"type": "integer", "description": "Height in pixels, like width.", "nullable": True},
        "format": {"type": "string", "description": "'gif' (default) or 'mp4'.", "nullable": True},
        "seed": {
            "type": "integer",
            "description": "Random seed; the same seed and inputs give the same picture.",
            "nullable": True,
        },
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
        from smolcrew.errors import ToolInputError
        from smolcrew.tools import generation_engines as engines
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.generation_media import clip_score, spread, to_frames, write_video
        from smolcrew.tools.text import require_text

        text = require_text(prompt, "prompt")
        count = engines.check_integer(frames, "frames", 2, 64, 16)
        rate = engines.check_integer(fps, "fps", 1, 30, 8)
        suffix = (engines.optional_text(format, "format") or "gif").lower().lstrip(".")
        if suffix not in {"gif", "mp4"}:
            raise ToolInputError(f"`format` is {format!r}; use 'gif' or 'mp4'")
        pool = current_pool()
        options = {"num_frames": count, "output_type": "np"}
        output, used = engines.diffuse(
            pool, self.role, text, negative_prompt, steps, guidance, width, height, seed, **options
        )
        images = to_frames(output.frames)
        path = current_workspace().new_path("video", f".{suffix}")
        write_video(images, path, rate)
        score, note = clip_score(pool, spread(images), text)
        return {
            "path": str(path),
            "frames": len(images),
            "fps": rate,
            "seconds": round(len(images) / rate, 3),
            "width": images[0].size[0],
            "height": images[0].size[1],
            "seed": used["seed"],
            "steps": used["steps"],
            "clip_score": score,
            "clip_note": note,
            "model": pool.model_for(self.role),
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
    from smolcrew.manifest import manifest

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
