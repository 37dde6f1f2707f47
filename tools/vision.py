"""Vision tools: an image path in, labels, boxes, masks, captions, answers or a depth map out.

Models come from the PipelinePool. Inputs are checked before a model is loaded, so a bad path costs nothing.
Written images (annotated boxes, masks, cutouts, depth maps) go through the Workspace and come back as paths.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.tools.files import Workspace, load_image
from smolcrew.tools.manifest import ModelRole
from smolcrew.tools.pool import PipelinePool
from smolcrew.tools.text import _PoolTool, require_text

__all__ = [
    "ROLES",
    "AnswerImageQuestion",
    "CaptionImage",
    "ClassifyImage",
    "ClassifyImageZeroShot",
    "DescribeImageSentiment",
    "DetectObjects",
    "EstimateDepth",
    "ModelBundle",
    "SegmentImage",
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


ROLES = (
    ModelRole("image_classifier", "image-classification", "microsoft/resnet-50", "microsoft/resnet-50"),
    # facebook/detr-resnet-50 needs timm, which needs torchvision; YOLOS runs on transformers alone.
    ModelRole("object_detector", "object-detection", "hustvl/yolos-tiny", "hustvl/yolos-tiny"),
    ModelRole(
        "image_segmenter",
        "image-segmentation",
        "nvidia/segformer-b0-finetuned-ade-512-512",
        "nvidia/segformer-b0-finetuned-ade-512-512",
    ),
    ModelRole(
        "image_captioner",
        "image-captioning",
        "Salesforce/blip-image-captioning-base",
        "Salesforce/blip-image-captioning-base",
        loader=bundle_loader("BlipForConditionalGeneration"),
    ),
    ModelRole(
        "image_text_matcher",
        "zero-shot-image-classification",
        "openai/clip-vit-base-patch32",
        "openai/clip-vit-base-patch32",
    ),
    ModelRole(
        "image_question_answerer",
        "visual-question-answering",
        "dandelin/vilt-b32-finetuned-vqa",
        "dandelin/vilt-b32-finetuned-vqa",
        loader=bundle_loader("ViltForQuestionAnswering"),
    ),
    ModelRole(
        "depth_estimator", "depth-estimation", "LiheYoung/depth-anything-small-hf", "LiheYoung/depth-anything-small-hf"
    ),
    ModelRole("vision_language", "image-text-to-text", "Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"),
)

BACKGROUND_LABELS = frozenset(
    {
        *("background", "wall", "building", "sky", "floor", "ceiling", "road", "grass", "sidewalk", "earth"),
        *("ground", "mountain", "water", "sea", "field", "sand", "river", "hill", "land", "path"),
    }
)
"""Segment labels treated as background when removing the background (ADE20K 'stuff' classes and 'background')."""


def require_labels(value: Any, name: str = "candidate_labels") -> list[str]:
    """A non-empty list of distinct non-empty strings, or ToolInputError."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ToolInputError(f"`{name}` must be a non-empty list of strings, e.g. ['a cat', 'a dog']")
    labels = [require_text(label, f"{name}[{i}]") for i, label in enumerate(value)]
    if len(set(labels)) != len(labels):
        raise ToolInputError(f"`{name}` has duplicates; give each label once")
    return labels


def require_fraction(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ToolInputError(f"`{name}` must be a number between 0 and 1, got {value!r}")
    return float(value)


def require_count(value: Any, name: str, default: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ToolInputError(f"`{name}` must be a whole number from 1 to {high}, got {value!r}")
    return value


class _VisionTool(_PoolTool):
    @property
    def model(self) -> Any:
        return self.pipeline

    def provenance(self) -> dict[str, str]:
        return {"model": self.pool.model_for(self.role)}


class _WritingTool(_VisionTool):
    def __init__(self, pool: PipelinePool, workspace: Workspace | None = None) -> None:
        super().__init__(pool)
        self.workspace = workspace or Workspace(Path(tempfile.gettempdir()) / "smolcrew")


IMAGE_INPUT = {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."}


class ClassifyImage(_VisionTool):
    name = "classify_image"
    description = (
        "Says what an image shows, with an image classifier (1000 ImageNet classes by default). Returns a dict "
        "{'labels': [{'label': str, 'score': float 0-1}, ...] best first, 'model': str}."
    )
    inputs = {
        "image": IMAGE_INPUT,
        "top_k": {"type": "integer", "description": "How many labels to return (1-20, default 5).", "nullable": True},
    }
    output_type = "object"
    role = "image_classifier"

    def forward(self, image: str, top_k: int | None = None) -> dict[str, Any]:
        picture, k = load_image(image), require_count(top_k, "top_k", 5, 20)
        results = self.model(picture, top_k=k)
        labels = [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results]
        return {"labels": labels, **self.provenance()}


class DetectObjects(_WritingTool):
    name = "detect_objects"
    description = (
        "Finds objects in an image (80 COCO classes by default) and draws their boxes. Returns a dict "
        "{'objects': [{'label': str, 'score': float 0-1, 'box': {'xmin','ymin','xmax','ymax'} in pixels}], "
        "'count': int, 'annotated_image': path of a PNG with the boxes drawn, 'model': str}."
    )
    inputs = {
        "image": IMAGE_INPUT,
        "threshold": {"type": "number", "description": "Minimum score, 0-1 (default 0.5).", "nullable": True},
    }
    output_type = "object"
    role = "object_detector"

    def forward(self, image: str, threshold: float | None = None) -> dict[str, Any]:
        from PIL import ImageDraw

        picture, cutoff = load_image(image), require_fraction(threshold, "threshold", 0.5)
        objects = [
            {"label": r["label"], "score": round(float(r["score"]), 4), "box": {k: int(v) for k, v in r["box"].items()}}
            for r in self.model(picture, threshold=cutoff)
        ]
        draw = ImageDraw.Draw(picture)
        for obj in objects:
            box = obj["box"]
            draw.rectangle((box["xmin"], box["ymin"], box["xmax"], box["ymax"]), outline="red", width=2)
            draw.text((box["xmin"] + 2, box["ymin"] + 2), f"{obj['label']} {obj['score']:.2f}", fill="red")
        path = self.workspace.new_path("detections", ".png")
        picture.save(path)
        return {"objects": objects, "count": len(objects), "annotated_image": str(path), **self.provenance()}


class SegmentImage(_WritingTool):
    name = "segment_image"
    description = (
        "Splits an image into labelled regions (150 ADE20K classes by default: person, car, sky, wall, ...). "
        "Returns a dict {'segments': [{'label': str, 'area': fraction of the image 0-1, 'mask': path of a "
        "black/white PNG}], 'cutout': path of a transparent PNG of the foreground or None, 'model': str}. "
        "With remove_background=true, 'cutout' keeps everything that is not background (sky, wall, floor, ...)."
    )
    inputs = {
        "image": IMAGE_INPUT,
        "remove_background": {
            "type": "boolean",
            "description": "Also write a transparent PNG of the foreground (default false).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "image_segmenter"

    def forward(self, image: str, remove_background: bool | None = None) -> dict[str, Any]:
        import numpy as np
        from PIL import Image

        picture = load_image(image)
        if remove_background is not None and not isinstance(remove_background, bool):
            raise ToolInputError("`remove_background` must be true or false")
        segments, masks = [], []
        for result in self.model(picture):
            mask = np.asarray(result["mask"].convert("L")) > 127
            path = self.workspace.new_path(f"mask-{result['label'].split(',')[0].replace(' ', '_')[:24]}", ".png")
            result["mask"].convert("L").save(path)
            segments.append({"label": result["label"], "area": round(float(mask.mean()), 4), "mask": str(path)})
            masks.append((result["label"], mask))
        cutout = None
        if remove_background and masks:
            keep = [mask for label, mask in masks if label.split(",")[0].strip().lower() not in BACKGROUND_LABELS]
            if not keep:  # everything is background-like: keep all but the largest region
                keep = sorted((mask for _, mask in masks), key=lambda m: m.sum())[:-1]
            alpha = np.any(keep, axis=0) if keep else np.zeros(picture.size[::-1], dtype=bool)
            rgba = picture.convert("RGBA")
            rgba.putalpha(Image.fromarray((alpha * 255).astype(np.uint8), mode="L"))
            cutout_path = self.workspace.new_path("cutout", ".png")
            rgba.save(cutout_path)
            cutout = str(cutout_path)
        return {"segments": segments, "cutout": cutout, **self.provenance()}


class CaptionImage(_VisionTool):
    name = "caption_image"
    description = "Writes a one-sentence description of an image. Returns a dict {'caption': str, 'model': str}."
    inputs = {
        "image": IMAGE_INPUT,
        "max_new_tokens": {
            "type": "integer",
            "description": "Longest caption in tokens (1-100, default 30).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "image_captioner"

    def forward(self, image: str, max_new_tokens: int | None = None) -> dict[str, Any]:
        import torch

        picture, limit = load_image(image), require_count(max_new_tokens, "max_new_tokens", 30, 100)
        bundle: ModelBundle = self.model
        encoded = bundle.processor(images=picture, return_tensors="pt").to(bundle.device, bundle.model.dtype)
        with torch.inference_mode():
            tokens = bundle.model.generate(**encoded, max_new_tokens=limit)
        caption = bundle.processor.decode(tokens[0], skip_special_tokens=True).strip()
        return {"caption": caption, **self.provenance()}


class ClassifyImageZeroShot(_VisionTool):
    name = "classify_image_zero_shot"
    description = (
        "Scores an image against labels you choose (CLIP), e.g. ['a photo of a cat', 'a photo of a dog']. "
        "Returns a dict {'labels': [{'label': str, 'score': float}, ...] best first, scores summing to 1, "
        "'model': str}."
    )
    inputs = {
        "image": IMAGE_INPUT,
        "candidate_labels": {"type": "array", "description": "Two or more labels (strings) to choose from."},
    }
    output_type = "object"
    role = "image_text_matcher"

    def forward(self, image: str, candidate_labels: list[str]) -> dict[str, Any]:
        picture, labels = load_image(image), require_labels(candidate_labels)
        results = self.model(picture, candidate_labels=labels)
        return {
            "labels": [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results],
            **self.provenance(),
        }


class AnswerImageQuestion(_VisionTool):
    name = "answer_image_question"
    description = (
        "Answers a short question about an image ('How many dogs are there?', 'What color is the car?') with a "
        "word or two. Returns a dict {'answer': str, 'score': float 0-1, 'alternatives': [{'answer', 'score'}], "
        "'model': str}."
    )
    inputs = {"image": IMAGE_INPUT, "question": {"type": "string", "description": "The question, in English."}}
    output_type = "object"
    role = "image_question_answerer"

    def forward(self, image: str, question: str) -> dict[str, Any]:
        import torch

        picture, text = load_image(image), require_text(question, "question")
        bundle: ModelBundle = self.model
        encoded = bundle.processor(picture, text, return_tensors="pt", truncation=True)
        encoded = encoded.to(bundle.device, bundle.model.dtype)
        with torch.inference_mode():
            scores = bundle.model(**encoded).logits[0].float().sigmoid()
        top = torch.topk(scores, k=min(3, scores.numel()))
        answers = [
            {"answer": bundle.model.config.id2label[int(i)], "score": round(float(s), 4)}
            for s, i in zip(top.values, top.indices, strict=True)
        ]
        return {**answers[0], "alternatives": answers[1:], **self.provenance()}


class EstimateDepth(_WritingTool):
    name = "estimate_depth"
    description = (
        "Estimates how far each pixel is from the camera. Returns a dict {'depth_map': path of a grayscale PNG "
        "(brighter = closer), 'min': float, 'max': float, 'mean': float, 'model': str}; the values are relative "
        "(unitless, larger = closer) unless the model is a metric-depth one."
    )
    inputs = {"image": IMAGE_INPUT}
    output_type = "object"
    role = "depth_estimator"

    def forward(self, image: str) -> dict[str, Any]:
        picture = load_image(image)
        result = self.model(picture)
        depth = result["predicted_depth"].float()
        path = self.workspace.new_path("depth", ".png")
        result["depth"].convert("L").save(path)
        stats = {k: round(float(getattr(depth, k)()), 4) for k in ("min", "max", "mean")}
        return {"depth_map": str(path), **stats, **self.provenance()}


SENTIMENTS = ("positive", "negative", "neutral")


class DescribeImageSentiment(_VisionTool):
    name = "describe_image_sentiment"
    description = (
        "Judges the mood an image and its accompanying text convey together (a post, an ad, a meme), with a "
        "vision-language model. Returns a dict {'sentiment': 'positive'|'negative'|'neutral'|'unclear', "
        "'explanation': str, 'model': str}."
    )
    inputs = {
        "image": IMAGE_INPUT,
        "text": {"type": "string", "description": "The text shown with the image (caption, post, slogan)."},
    }
    output_type = "object"
    role = "vision_language"
    prompt = (
        'Here is an image and the text posted with it:\n"{text}"\nIs the overall sentiment positive, negative or '
        "neutral? Answer with that one word first, then one short sentence why."
    )

    def forward(self, image: str, text: str) -> dict[str, Any]:
        picture, words = load_image(image), require_text(text, "text")
        content = [{"type": "image", "image": picture}, {"type": "text", "text": self.prompt.format(text=words)}]
        messages = [{"role": "user", "content": content}]
        [result] = self.model(text=messages, max_new_tokens=60, return_full_text=False)
        reply = str(result["generated_text"]).strip()
        first = reply.lower().lstrip("*#\"' ").split(maxsplit=1)
        head = first[0].strip(".,:;!*\"'") if first else ""
        found = head if head in SENTIMENTS else next((s for s in SENTIMENTS if s in reply.lower()), "unclear")
        return {"sentiment": found, "explanation": reply, **self.provenance()}
