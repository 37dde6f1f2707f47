"""Generation tools: pictures from text, edits and restyles of pictures; every generation role is declared here.

Diffusion pipelines come from the pool of the current tool context (tools.context); the pictures go to its
workspace. Every tool takes an optional integer `seed`: the same seed, inputs and model give the same pixels.
Loaders, checks, seeding and the one-run-at-a-time lock live in `tools.generation_engines`; pictures from edge
maps, upscaling and text to video in `tools.generation_media`.
"""

from __future__ import annotations

from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import current_pool, current_workspace
from smolcrew.tools.files import load_image
from smolcrew.tools.generation_engines import (
    check_number,
    diffusion_settings,
    fit_image,
    follows_instructions,
    load_controlnet,
    load_image_to_image,
    load_text_to_image,
    load_text_to_video,
    optional_text,
    run_diffusion,
    save_images,
    seeded_generator,
)

__all__ = ["ROLES", "STYLES", "EditImage", "GenerateImage", "RestyleImage", "edit_picture"]

TURBO, CANNY, VIDEO = "stabilityai/sd-turbo", "lllyasviel/sd-controlnet-canny", "damo-vilab/text-to-video-ms-1.7b"
ROLES = (
    ModelRole("image_generator", "text-to-image", TURBO, TURBO, loader=load_text_to_image),
    ModelRole("image_editor", "image-to-image", TURBO, TURBO, loader=load_image_to_image),
    ModelRole("controlnet_canny", "controlnet-canny", CANNY, CANNY, loader=load_controlnet),
    ModelRole("video_generator", "text-to-video", VIDEO, VIDEO, loader=load_text_to_video),
)


STYLES = {
    "watercolor": "a watercolor painting, soft washes of colour, paper texture",
    "oil painting": "an oil painting, thick brush strokes, rich colours",
    "pencil sketch": "a detailed pencil sketch, graphite shading on white paper",
    "anime": "an anime illustration, clean line art, cel shading",
    "comic": "a comic book panel, bold ink outlines, halftone shading",
    "pixel art": "pixel art, a 16-bit video game scene",
    "photograph": "a realistic photograph, natural light, sharp focus",
}


def edit_picture(
    role: str,
    image: Any,
    prompt: str,
    strength: Any,
    negative_prompt: Any,
    steps: Any,
    guidance: Any,
    seed: Any,
    *,
    instruct: bool | None = None,
) -> dict[str, Any]:
    """What `edit_image` returns: `image` redrawn to match `prompt` by the role's image-to-image pipeline.
    `instruct` says whether the pipeline follows instructions, when the caller already asked it."""
    amount = check_number(strength, "strength", 0.0, 1.0, 0.6, open_low=True)
    picture = fit_image(load_image(image, "image"))
    pool = current_pool()
    num_steps, scale = diffusion_settings(pool, role, steps, guidance)
    pipeline = pool.get(role)
    instruct = follows_instructions(pipeline) if instruct is None else instruct
    if not instruct and int(num_steps * amount) < 1:
        raise ToolInputError(f"steps x strength is {num_steps * amount:.2f}; raise steps or strength so it is >= 1")
    generator, used_seed = seeded_generator(seed)
    options: dict[str, Any] = {} if instruct else {"strength": amount}
    result = run_diffusion(
        pipeline,
        prompt=prompt,
        image=picture,
        negative_prompt=optional_text(negative_prompt, "negative_prompt"),
        num_inference_steps=num_steps,
        guidance_scale=scale,
        generator=generator,
        **options,
    ).images[0]
    return {
        "path": save_images(current_workspace(), [result], "edited")[0],
        "seed": used_seed,
        "steps": num_steps,
        "strength": amount,
        "mode": "instruction" if instruct else "img2img",
        "width": result.size[0],
        "height": result.size[1],
        "model": pool.model_for(role),
    }


class GenerateImage(CheckedTool):
    name = "generate_image"
    task = "text-to-image"
    makes_file = True
    description = (
        "Paints pictures from a text description with a Stable Diffusion model. Returns a dict {'paths': list of "
        "PNG file paths, 'seed': int, 'steps': int, 'guidance': float, 'width': int, 'height': int (pixels), "
        "'model': str}; pass the same seed again to reproduce a picture."
    )
    inputs = {
        "prompt": {"type": "string", "description": "What to paint, e.g. 'a lighthouse at dusk, oil painting'."},
        "negative_prompt": {
            "type": "string",
            "description": "What the picture should not show (ignored when guidance is 0).",
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
        "width": {
            "type": "integer",
            "description": "Width in pixels, a multiple of 8, 32-1024 (default: the model's size, 512 for SD).",
            "nullable": True,
        },
        "height": {"type": "integer", "description": "Height in pixels, like width.", "nullable": True},
        "count": {"type": "integer", "description": "How many pictures, 1-4 (default 1).", "nullable": True},
        "seed": {
            "type": "integer",
            "description": "Random seed; the same seed and inputs give the same picture.",
            "nullable": True,
        },
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
        from smolcrew.tools import generation_engines as engines
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.text import require_text

        text = require_text(prompt, "prompt")
        n = engines.check_integer(count, "count", 1, 4, 1)
        pool = current_pool()
        output, used = engines.diffuse(
            pool, self.role, text, negative_prompt, steps, guidance, width, height, seed, num_images_per_prompt=n
        )
        images = output.images
        return {
            "paths": engines.save_images(current_workspace(), images, "image"),
            **used,
            "width": images[0].size[0],
            "height": images[0].size[1],
            "model": pool.model_for(self.role),
        }


class EditImage(CheckedTool):
    name = "edit_image"
    task = "image-to-image"
    makes_file = True
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
        "negative_prompt": {
            "type": "string",
            "description": "What the picture should not show (ignored when guidance is 0).",
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
    role = "image_editor"

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
        from smolcrew.tools.generation import edit_picture
        from smolcrew.tools.text import require_text

        text = require_text(prompt, "prompt")
        return edit_picture(self.role, image, text, strength, negative_prompt, steps, guidance, seed)


class RestyleImage(CheckedTool):
    name = "restyle_image"
    task = "image-to-image"
    makes_file = True
    description = (
        "Redraws a picture in another art style while keeping its layout (image-to-image diffusion). Styles: "
        "watercolor, oil painting, pencil sketch, anime, comic, pixel art, photograph, or describe your own. "
        "Returns the dict edit_image returns plus 'style' and 'prompt' (the prompt used)."
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
        "seed": {
            "type": "integer",
            "description": "Random seed; the same seed and inputs give the same picture.",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "image_editor"

    def forward(
        self, image: str, style: str, subject: str | None = None, strength: float | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import require_file
        from smolcrew.tools.generation import STYLES, edit_picture
        from smolcrew.tools.generation_engines import follows_instructions, optional_text
        from smolcrew.tools.text import require_text

        wanted = require_text(style, "style")
        look = STYLES.get(wanted.lower(), wanted)
        what = optional_text(subject, "subject")
        require_file(image, "image")  # checked before the model loads
        instruct = follows_instructions(current_pool().get(self.role))
        prompt = f"turn {what or 'it'} into {look}" if instruct else (f"{what}, {look}" if what else look)
        amount = 0.5 if strength is None else strength
        result = edit_picture(self.role, image, prompt, amount, None, None, None, seed, instruct=instruct)
        return {**result, "style": wanted, "prompt": prompt}
