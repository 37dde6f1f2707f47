"""What the vision tools run: the processor-and-model loader, and the steps that need numpy, PIL or torch.

The tool classes in tools.vision and tools.video check their inputs, take their models from the pool of the
current tool context, and call these functions with what they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolcrew.tools.files import Workspace

__all__ = [
    "BACKGROUND_LABELS",
    "ModelBundle",
    "answer_question",
    "bundle_loader",
    "caption",
    "draw_boxes",
    "write_depth",
    "write_segments",
]


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """A model with its processor, for tasks transformers 5 has no pipeline for (captioning, VQA, X-CLIP)."""

    model: Any
    processor: Any
    device: str


def bundle_loader(model_class: str) -> Any:
    """A pool loader building `transformers.<model_class>` plus its AutoProcessor, in eval mode on `device`."""

    def load(source: str, device: str, dtype: str) -> ModelBundle:
        import transformers

        processor = transformers.AutoProcessor.from_pretrained(source)
        model = getattr(transformers, model_class).from_pretrained(source, dtype=None if dtype == "auto" else dtype)
        return ModelBundle(model.to(device).eval(), processor, device)

    return load


BACKGROUND_LABELS = frozenset(
    {
        *("background", "wall", "building", "sky", "floor", "ceiling", "road", "grass", "sidewalk", "earth"),
        *("ground", "mountain", "water", "sea", "field", "sand", "river", "hill", "land", "path"),
    }
)
"""Segment labels treated as background when removing the background (ADE20K 'stuff' classes and 'background')."""


def draw_boxes(picture: Any, objects: list[dict[str, Any]], workspace: Workspace) -> str:
    """Draw each object's box and label on `picture`; the path of the PNG written."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(picture)
    for obj in objects:
        box = obj["box"]
        draw.rectangle((box["xmin"], box["ymin"], box["xmax"], box["ymax"]), outline="red", width=2)
        draw.text((box["xmin"] + 2, box["ymin"] + 2), f"{obj['label']} {obj['score']:.2f}", fill="red")
    path = workspace.new_path("detections", ".png")
    picture.save(path)
    return str(path)


def write_segments(
    results: list[dict[str, Any]], picture: Any, workspace: Workspace, *, remove_background: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """Each segment's mask as a PNG ({'label', 'area', 'mask'}), and the foreground cutout's path when asked."""
    import numpy as np
    from PIL import Image

    segments, masks = [], []
    for result in results:
        mask = np.asarray(result["mask"].convert("L")) > 127
        path = workspace.new_path(f"mask-{result['label'].split(',')[0].replace(' ', '_')[:24]}", ".png")
        result["mask"].convert("L").save(path)
        segments.append({"label": result["label"], "area": round(float(mask.mean()), 4), "mask": str(path)})
        masks.append((result["label"], mask))
    if not (remove_background and masks):
        return segments, None
    keep = [mask for label, mask in masks if label.split(",")[0].strip().lower() not in BACKGROUND_LABELS]
    if not keep:  # everything is background-like: keep all but the largest region
        keep = sorted((mask for _, mask in masks), key=lambda m: m.sum())[:-1]
    alpha = np.any(keep, axis=0) if keep else np.zeros(picture.size[::-1], dtype=bool)
    rgba = picture.convert("RGBA")
    rgba.putalpha(Image.fromarray((alpha * 255).astype(np.uint8), mode="L"))
    cutout = workspace.new_path("cutout", ".png")
    rgba.save(cutout)
    return segments, str(cutout)


def caption(bundle: ModelBundle, picture: Any, limit: int) -> str:
    import torch

    encoded = bundle.processor(images=picture, return_tensors="pt").to(bundle.device, bundle.model.dtype)
    with torch.inference_mode():
        tokens = bundle.model.generate(**encoded, max_new_tokens=limit)
    return str(bundle.processor.decode(tokens[0], skip_special_tokens=True)).strip()


def answer_question(bundle: ModelBundle, picture: Any, question: str) -> list[dict[str, Any]]:
    """The three likeliest answers {'answer', 'score'} of a VQA classifier, best first."""
    import torch

    encoded = bundle.processor(picture, question, return_tensors="pt", truncation=True)
    encoded = encoded.to(bundle.device, bundle.model.dtype)
    with torch.inference_mode():
        scores = bundle.model(**encoded).logits[0].float().sigmoid()
    top = torch.topk(scores, k=min(3, scores.numel()))
    return [
        {"answer": bundle.model.config.id2label[int(i)], "score": round(float(s), 4)}
        for s, i in zip(top.values, top.indices, strict=True)
    ]


def write_depth(result: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
    """The depth map as a grayscale PNG, with the raw depth's min, max and mean."""
    depth = result["predicted_depth"].float()
    path = workspace.new_path("depth", ".png")
    result["depth"].convert("L").save(path)
    return {"depth_map": str(path), **{k: round(float(getattr(depth, k)()), 4) for k in ("min", "max", "mean")}}
