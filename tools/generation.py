"""Generation tools: pictures from text, edits and restyles of pictures; the shared roles, loaders and checks.

Diffusion pipelines come from the PipelinePool (fp16 with model CPU offload on CUDA, float32 elsewhere). Every
tool takes an optional integer `seed`: the same seed, inputs and model give the same pixels. Only one diffusion
run happens at a time in a process (`RUN_LOCK`): the pipelines are shared and their schedulers keep state.
Pictures from edge maps, upscaling and text to video live in `tools.generation_media` (same helpers); every
generation role is declared here, in `ROLES`.
"""

from __future__ import annotations

import inspect
import math
import random
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.files import Workspace, load_image, require_file
from smolcrew.tools.manifest import ModelRole
from smolcrew.tools.pool import PipelinePool
from smolcrew.tools.text import _PoolTool, require_text

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ROLES",
    "DiffusionTool",
    "EditImage",
    "GenerateImage",
    "RestyleImage",
    "check_integer",
    "check_number",
    "check_side",
    "default_steps_and_guidance",
    "fit_image",
    "load_controlnet",
    "load_image_to_image",
    "load_text_to_image",
    "load_text_to_video",
    "optional_text",
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


TURBO, CANNY, VIDEO = "stabilityai/sd-turbo", "lllyasviel/sd-controlnet-canny", "damo-vilab/text-to-video-ms-1.7b"
ROLES = (
    ModelRole("image_generator", "text-to-image", TURBO, TURBO, loader=load_text_to_image),
    ModelRole("image_editor", "image-to-image", TURBO, TURBO, loader=load_image_to_image),
    ModelRole("controlnet_canny", "controlnet-canny", CANNY, CANNY, loader=load_controlnet),
    ModelRole("video_generator", "text-to-video", VIDEO, VIDEO, loader=load_text_to_video),
)


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


class DiffusionTool(_PoolTool):
    """A tool that runs a diffusion pipeline from the pool and writes its pictures to the workspace."""

    def __init__(self, pool: PipelinePool, workspace: Workspace | None = None) -> None:
        super().__init__(pool)
        self.workspace = workspace or Workspace(Path(tempfile.gettempdir()) / "smolcrew")

    def run_pipeline(self, **kwargs: Any) -> Any:
        with RUN_LOCK:
            return self.pipeline(**kwargs)

    def save_images(self, images: list[Image.Image], stem: str) -> list[str]:
        paths = []
        for image in images:
            path = self.workspace.new_path(stem, ".png")
            image.save(path)
            paths.append(str(path))
        return paths

    def settings(self, steps: Any, guidance: Any) -> tuple[int, float]:
        default_steps, default_guidance = default_steps_and_guidance(self.pool.model_for(self.role))
        return (
            check_integer(steps, "steps", 1, 100, default_steps),
            check_number(guidance, "guidance", 0.0, 30.0, default_guidance),
        )


SEED_INPUT = {
    "type": "integer",
    "description": "Random seed; the same seed and inputs give the same picture.",
    "nullable": True,
}
STEPS_INPUT = {
    "type": "integer",
    "description": "Denoising steps, 1-100 (default: 2 for turbo models, else 25).",
    "nullable": True,
}
GUIDANCE_INPUT = {
    "type": "number",
    "description": "How strictly to follow the prompt, 0-30 (default: 0 for turbo models, else 7.5).",
    "nullable": True,
}
NEGATIVE_INPUT = {
    "type": "string",
    "description": "What the picture should not show (ignored when guidance is 0).",
    "nullable": True,
}


class GenerateImage(DiffusionTool):
    name = "generate_image"
    description = (
        "Paints pictures from a text description with a Stable Diffusion model. Returns a dict {'paths': list of "
        "PNG file paths, 'seed': int, 'steps': int, 'guidance': float, 'width': int, 'height': int (pixels), "
        "'model': str}; pass the same seed again to reproduce a picture."
    )
    inputs = {
        "prompt": {"type": "string", "description": "What to paint, e.g. 'a lighthouse at dusk, oil painting'."},
        "negative_prompt": NEGATIVE_INPUT,
        "steps": STEPS_INPUT,
        "guidance": GUIDANCE_INPUT,
        "width": {
            "type": "integer",
            "description": "Width in pixels, a multiple of 8, 32-1024 (default: the model's size, 512 for SD).",
            "nullable": True,
        },
        "height": {"type": "integer", "description": "Height in pixels, like width.", "nullable": True},
        "count": {"type": "integer", "description": "How many pictures, 1-4 (default 1).", "nullable": True},
        "seed": SEED_INPUT,
    }
    output_type = "object"
    role = "image_generator"

    def forward(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        count: int | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        text = require_text(prompt, "prompt")
        num_steps, scale = self.settings(steps, guidance)
        w, h = check_side(width, "width"), check_side(height, "height")
        n = check_integer(count, "count", 1, 4, 1)
        generator, used_seed = seeded_generator(seed)
        images = self.run_pipeline(
            prompt=text,
            negative_prompt=optional_text(negative_prompt, "negative_prompt"),
            num_inference_steps=num_steps,
            guidance_scale=scale,
            width=w,
            height=h,
            num_images_per_prompt=n,
            generator=generator,
        ).images
        return {
            "paths": self.save_images(images, "image"),
            "seed": used_seed,
            "steps": num_steps,
            "guidance": scale,
            "width": images[0].size[0],
            "height": images[0].size[1],
            "model": self.pool.model_for(self.role),
        }


class EditImage(DiffusionTool):
    name = "edit_image"
    description = (
        "Redraws an existing picture to match a text prompt (image-to-image diffusion); `strength` says how much "
        "may change: 0.2 keeps the layout and colours, 1.0 keeps almost nothing. With an InstructPix2Pix model the "
        "prompt is an instruction ('make it winter') and strength is not used. Returns a dict {'path': PNG path, "
        "'seed', 'steps', 'strength', 'mode': 'img2img' or 'instruction', 'width', 'height', 'model'}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path of the picture to edit (PNG or JPEG)."},
        "prompt": {"type": "string", "description": "What the result should show, or the edit to make."},
        "strength": {"type": "number", "description": "How much to change, in (0, 1] (default 0.6).", "nullable": True},
        "negative_prompt": NEGATIVE_INPUT,
        "steps": STEPS_INPUT,
        "guidance": GUIDANCE_INPUT,
        "seed": SEED_INPUT,
    }
    output_type = "object"
    role = "image_editor"

    def follows_instructions(self) -> bool:
        """True for InstructPix2Pix-style pipelines (no `strength`; the prompt is an edit instruction)."""
        return "strength" not in inspect.signature(self.pipeline.__call__).parameters

    def forward(
        self,
        image: str,
        prompt: str,
        strength: float | None = None,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        text = require_text(prompt, "prompt")
        amount = check_number(strength, "strength", 0.0, 1.0, 0.6, open_low=True)
        picture = fit_image(load_image(image, "image"))
        num_steps, scale = self.settings(steps, guidance)
        instruct = self.follows_instructions()
        if not instruct and int(num_steps * amount) < 1:
            raise ToolInputError(f"steps x strength is {num_steps * amount:.2f}; raise steps or strength so it is >= 1")
        generator, used_seed = seeded_generator(seed)
        options: dict[str, Any] = {} if instruct else {"strength": amount}
        result = self.run_pipeline(
            prompt=text,
            image=picture,
            negative_prompt=optional_text(negative_prompt, "negative_prompt"),
            num_inference_steps=num_steps,
            guidance_scale=scale,
            generator=generator,
            **options,
        ).images[0]
        return {
            "path": self.save_images([result], "edited")[0],
            "seed": used_seed,
            "steps": num_steps,
            "strength": amount,
            "mode": "instruction" if instruct else "img2img",
            "width": result.size[0],
            "height": result.size[1],
            "model": self.pool.model_for(self.role),
        }


STYLES = {
    "watercolor": "a watercolor painting, soft washes of colour, paper texture",
    "oil painting": "an oil painting, thick brush strokes, rich colours",
    "pencil sketch": "a detailed pencil sketch, graphite shading on white paper",
    "anime": "an anime illustration, clean line art, cel shading",
    "comic": "a comic book panel, bold ink outlines, halftone shading",
    "pixel art": "pixel art, a 16-bit video game scene",
    "photograph": "a realistic photograph, natural light, sharp focus",
}


class RestyleImage(EditImage):
    name = "restyle_image"
    description = (
        "Redraws a picture in another art style while keeping its layout (image-to-image diffusion). Styles: "
        + ", ".join(STYLES)
        + ", or describe your own. Returns the dict edit_image returns plus 'style' and 'prompt' (the prompt used)."
    )
    inputs = {
        "image": {"type": "string", "description": "Path of the picture to restyle (PNG or JPEG)."},
        "style": {"type": "string", "description": "A style named above, or a short description of one."},
        "subject": {
            "type": "string",
            "description": "What the picture shows, e.g. 'a harbour with boats' (helps keep it recognisable).",
            "nullable": True,
        },
        "strength": {"type": "number", "description": "How far to go, in (0, 1] (default 0.5).", "nullable": True},
        "seed": SEED_INPUT,
    }

    def forward(  # type: ignore[override]
        self, image: str, style: str, subject: str | None = None, strength: float | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        wanted = require_text(style, "style")
        look = STYLES.get(wanted.lower(), wanted)
        what = optional_text(subject, "subject")
        require_file(image, "image")  # checked before follows_instructions() loads the model
        if self.follows_instructions():
            prompt = f"turn {what or 'it'} into {look}"
        else:
            prompt = f"{what}, {look}" if what else look
        result = super().forward(image=image, prompt=prompt, strength=0.5 if strength is None else strength, seed=seed)
        return {**result, "style": wanted, "prompt": prompt}
