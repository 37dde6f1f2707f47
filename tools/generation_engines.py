"""What the generation tools run: diffusion loaders, input checks, seeding, one run at a time, edge maps.

Diffusion pipelines load fp16 with model CPU offload on CUDA, float32 elsewhere. Only one diffusion run happens at
a time in a process (`RUN_LOCK`): the pipelines are shared and their schedulers keep state. The tool classes in
tools.generation and tools.generation_media check their inputs and call these functions.
"""

from __future__ import annotations

import inspect
import math
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.pool import PipelinePool
from smolcrew.tools.files import Workspace

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "RUN_LOCK",
    "check_integer",
    "check_number",
    "check_side",
    "default_steps_and_guidance",
    "diffuse",
    "diffusion_settings",
    "edge_map",
    "fit_image",
    "follows_instructions",
    "load_controlnet",
    "load_image_to_image",
    "load_text_to_image",
    "load_text_to_video",
    "optional_text",
    "run_diffusion",
    "save_images",
    "seeded_generator",
]

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""The base model under a bare ControlNet checkpoint (the old runwayml/stable-diffusion-v1-5 id left the Hub)."""
MIN_SIDE, MAX_SIDE = 32, 1024
MAX_SEED = 2**32 - 1
RUN_LOCK = threading.Lock()


def _torch_dtype(dtype: str) -> Any:
    import torch

    return torch.float16 if dtype == "float16" else torch.float32


def _ready(pipeline: Any, device: str) -> Any:
    pipeline.set_progress_bar_config(disable=True)
    if device == "cuda":
        pipeline.enable_model_cpu_offload()
    else:
        pipeline.to(device)
    return pipeline


def _hub(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a diffusers load. Hub client errors (offline, 404) are not all OSErrors; the pool reports OSErrors."""
    try:
        return call(*args, **kwargs)
    except (ImportError, OSError, ValueError):
        raise
    except Exception as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def _from_pretrained(build: Any, source: str, **kwargs: Any) -> Any:
    return _hub(build.from_pretrained, source, **kwargs)


def load_text_to_image(source: str, device: str, dtype: str) -> Any:
    from diffusers import AutoPipelineForText2Image

    return _ready(_from_pretrained(AutoPipelineForText2Image, source, dtype=_torch_dtype(dtype)), device)


def load_image_to_image(source: str, device: str, dtype: str) -> Any:
    """An img2img pipeline for any text-to-image checkpoint, or InstructPix2Pix when the checkpoint is one."""
    from diffusers import AutoPipelineForImage2Image, DiffusionPipeline

    instruct = "InstructPix2Pix" in str(dict(_hub(DiffusionPipeline.load_config, source)).get("_class_name", ""))
    build = DiffusionPipeline if instruct else AutoPipelineForImage2Image
    return _ready(_from_pretrained(build, source, dtype=_torch_dtype(dtype)), device)


def load_controlnet(source: str, device: str, dtype: str) -> Any:
    """A folder holding a whole ControlNet pipeline loads as is; a bare ControlNet goes on top of SD 1.5."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    torch_dtype = _torch_dtype(dtype)
    if (Path(source) / "model_index.json").is_file():
        pipeline = _from_pretrained(StableDiffusionControlNetPipeline, source, dtype=torch_dtype)
    else:
        controlnet = _from_pretrained(ControlNetModel, source, dtype=torch_dtype)
        pipeline = _from_pretrained(StableDiffusionControlNetPipeline, SD15, controlnet=controlnet, dtype=torch_dtype)
    return _ready(pipeline, device)


def load_text_to_video(source: str, device: str, dtype: str) -> Any:
    from diffusers import DiffusionPipeline

    return _ready(_from_pretrained(DiffusionPipeline, source, dtype=_torch_dtype(dtype)), device)


def default_steps_and_guidance(model: str) -> tuple[int, float]:
    """Distilled "turbo" checkpoints want 1-4 steps and no guidance; the others about 25 steps at 7.5."""
    return (2, 0.0) if "turbo" in model.lower() else (25, 7.5)


def check_integer(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value % 1:
        raise ToolInputError(f"`{name}` must be a whole number between {low} and {high}")
    if not low <= int(value) <= high:
        raise ToolInputError(f"`{name}` is {value}; use a whole number between {low} and {high}")
    return int(value)


def check_number(value: Any, name: str, low: float, high: float, default: float, *, open_low: bool = False) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ToolInputError(f"`{name}` must be a finite number")
    ok = (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ToolInputError(f"`{name}` is {value}; it must be in {bracket}{low}, {high}]")
    return float(value)


def optional_text(value: Any, name: str) -> str | None:
    """None for a missing or blank optional text, the stripped text otherwise; ToolInputError for a non-string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ToolInputError(f"`{name}` must be a string (or left out)")
    return value.strip() or None


def check_side(value: Any, name: str) -> int | None:
    """A width or height: None (the model's own size) or a multiple of 8 within [MIN_SIDE, MAX_SIDE]."""
    if value is None:
        return None
    side = check_integer(value, name, MIN_SIDE, MAX_SIDE, 0)
    if side % 8:
        raise ToolInputError(f"`{name}` is {side}; it must be a multiple of 8 (try {side - side % 8 or 8})")
    return side


def seeded_generator(seed: Any) -> tuple[Any, int]:
    """A CPU torch.Generator seeded with `seed` (a fresh random seed when None), and the seed used."""
    import torch

    chosen = random.randint(0, MAX_SEED) if seed is None else check_integer(seed, "seed", 0, MAX_SEED, 0)
    return torch.Generator("cpu").manual_seed(chosen), chosen


def fit_image(image: Image.Image, max_side: int = 768) -> Image.Image:
    """Scale `image` so its longer side is at most `max_side`, then crop both sides to multiples of 8."""
    from PIL import Image as PILImage

    scale = min(1.0, max_side / max(image.size))
    width, height = (int(side * scale) // 8 * 8 for side in image.size)
    if min(width, height) < MIN_SIDE:
        raise ToolInputError(f"the image is {image.size[0]}x{image.size[1]}; it must be at least {MIN_SIDE} px a side")
    return image.resize((width, height), PILImage.Resampling.LANCZOS) if (width, height) != image.size else image


def run_diffusion(pipeline: Any, **kwargs: Any) -> Any:
    """Call a diffusion pipeline, one run at a time in this process."""
    with RUN_LOCK:
        return pipeline(**kwargs)


def save_images(workspace: Workspace, images: list[Image.Image], stem: str) -> list[str]:
    paths = []
    for image in images:
        path = workspace.new_path(stem, ".png")
        image.save(path)
        paths.append(str(path))
    return paths


def diffusion_settings(pool: PipelinePool, role: str, steps: Any, guidance: Any) -> tuple[int, float]:
    """(steps, guidance): the given ones checked, else the defaults for the role's model."""
    default_steps, default_guidance = default_steps_and_guidance(pool.model_for(role))
    return (
        check_integer(steps, "steps", 1, 100, default_steps),
        check_number(guidance, "guidance", 0.0, 30.0, default_guidance),
    )


def diffuse(
    pool: PipelinePool,
    role: str,
    prompt: str,
    negative_prompt: Any,
    steps: Any,
    guidance: Any,
    width: Any,
    height: Any,
    seed: Any,
    **options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Check steps, guidance, width, height, negative prompt and seed (in that order), then run the role's
    pipeline on `prompt` with them and `options`. Returns its output and {'seed', 'steps', 'guidance'} as used."""
    num_steps, scale = diffusion_settings(pool, role, steps, guidance)
    w, h = check_side(width, "width"), check_side(height, "height")
    negative = optional_text(negative_prompt, "negative_prompt")
    generator, used_seed = seeded_generator(seed)
    output = run_diffusion(
        pool.get(role),
        prompt=prompt,
        negative_prompt=negative,
        num_inference_steps=num_steps,
        guidance_scale=scale,
        width=w,
        height=h,
        generator=generator,
        **options,
    )
    return output, {"seed": used_seed, "steps": num_steps, "guidance": scale}


def follows_instructions(pipeline: Any) -> bool:
    """True for InstructPix2Pix-style pipelines (no `strength`; the prompt is an edit instruction)."""
    return "strength" not in inspect.signature(pipeline.__call__).parameters


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
