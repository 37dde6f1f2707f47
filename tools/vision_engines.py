"""What the vision tools run: the processor-and-model loader, and the steps that need numpy, PIL or torch.

The tool classes in tools.vision and tools.video check their inputs, take their models from the pool of the
current tool context, and call these functions with what they need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolcrew.errors import ModelUnavailableError
from smolcrew.manifest import resolve_source
from smolcrew.tools.files import Workspace

__all__ = [
    "BACKGROUND_LABELS",
    "IMAGENET_LABELS",
    "EfficientNetLite",
    "ModelBundle",
    "answer_question",
    "bundle_loader",
    "caption",
    "draw_boxes",
    "imagenet_labels",
    "load_image_classifier",
    "write_depth",
    "write_segments",
]

IMAGENET_LABELS = Path(__file__).parent / "data" / "imagenet_labels.txt"
"""The 1000 ImageNet-1k class names in class order (the packaged weights ship none)."""


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


def imagenet_labels() -> list[str]:
    lines = IMAGENET_LABELS.read_text(encoding="utf-8").splitlines()
    labels = [line for line in lines if line and not line.startswith("#")]
    if len(labels) != 1000:
        raise ModelUnavailableError(
            f"{IMAGENET_LABELS} lists {len(labels)} class names, not 1000", backend="pool", fix="reinstall smolcrew"
        )
    return labels


class EfficientNetLite:
    """An EfficientNet-Lite ImageNet classifier, called like a transformers image-classification pipeline:
    `(image, top_k=5) -> [{'label': str, 'score': float}]`, best first.

    Preprocessing is the TF reference's: the shorter side scaled to size * 256/224 (bicubic), a center crop of
    `size`, pixels mapped to [-1, 1] (mean 127, std 128: EfficientNet-Lite's, not the usual ImageNet mean/std).
    """

    def __init__(self, model: Any, labels: list[str], device: str, size: int) -> None:
        self.model, self.labels, self.device, self.size = model, labels, device, size

    def __repr__(self) -> str:
        return f"EfficientNetLite(size={self.size}, device={self.device!r})"

    def __call__(self, picture: Any, top_k: int = 5) -> list[dict[str, Any]]:
        import numpy as np
        import torch
        from PIL import Image

        image = picture.convert("RGB")
        scale = self.size * 256 / 224 / min(image.size)
        width, height = (max(self.size, round(side * scale)) for side in image.size)
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - self.size) // 2, (height - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
        batch = torch.from_numpy(pixels.transpose(2, 0, 1).copy()).unsqueeze(0)
        weight = next(self.model.parameters())
        with torch.inference_mode():
            scores = self.model(batch.to(weight.device, weight.dtype))[0].float().softmax(-1)
        best = torch.topk(scores, k=min(top_k, scores.numel()))
        return [
            {"label": self.labels[int(i)], "score": float(s)} for s, i in zip(best.values, best.indices, strict=True)
        ]


def _load_efficientnet_lite(path: Path, variant: str, device: str, dtype: str) -> EfficientNetLite:
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelUnavailableError(
            "EfficientNet-Lite needs efficientnet-lite-pytorch",
            backend="pool",
            fix="pip install efficientnet-lite-pytorch",
        ) from exc
    model = EfficientNet.from_name(variant)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model = model.to(device, torch.float16 if dtype == "float16" else torch.float32).eval()
    return EfficientNetLite(model, imagenet_labels(), device, int(model.input_image_size))


def load_image_classifier(source: str, device: str, dtype: str) -> Any:
    """An EfficientNet-Lite state dict (`efficientnet-liteN-*.pth`, e.g. the packaged efficientnet-lite0) ->
    EfficientNetLite; anything else (a folder or Hub id such as microsoft/resnet-50) -> a transformers pipeline."""
    path = Path(resolve_source(source)).expanduser()
    variant = re.match(r"efficientnet-lite[0-4]", path.name)
    if path.suffix == ".pth":
        if variant is None or not path.is_file():
            raise ModelUnavailableError(
                f"{path} is not an EfficientNet-Lite state dict (efficientnet-lite0-*.pth ... lite4)",
                backend="pool",
                fix="set `models.image_classifier` to an image-classification model folder or Hub id",
            )
        return _load_efficientnet_lite(path, variant.group(0), device, dtype)
    from transformers import pipeline

    build: Any = pipeline
    return build("image-classification", model=source, device=device, dtype=None if dtype == "auto" else dtype)


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
