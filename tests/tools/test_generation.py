from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageSequence

from smolcrew.errors import ModelUnavailableError, ToolInputError
from smolcrew.manifest import ModelRole, manifest
from smolcrew.pool import PipelinePool
from smolcrew.tools.context import use_tools
from smolcrew.tools.files import Workspace
from smolcrew.tools.generation import ROLES, STYLES, EditImage, GenerateImage, RestyleImage
from smolcrew.tools.generation_engines import check_side
from smolcrew.tools.generation_media import (
    CLIP_ROLES,
    GenerateImageFromEdges,
    GenerateVideo,
    UpscaleImage,
    clip_score,
    edge_map,
)
from tests.tools import tiny_generation as tiny

CLIP_HUB_ID = "openai/clip-vit-base-patch32"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The tiny models gain nothing from threads, and on a busy 2-core machine threads make them 5x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-diffusion")
    return {
        "sd": tiny.tiny_stable_diffusion(root / "sd"),
        "controlnet": tiny.tiny_controlnet(root / "controlnet"),
        "video": tiny.tiny_text_to_video(root / "video"),
        "pix2pix": tiny.tiny_instruct_pix2pix(root / "pix2pix"),
        "clip": tiny.tiny_clip(root / "clip"),
    }


@pytest.fixture(scope="module")
def tiny_pool(folders: dict[str, Path]) -> PipelinePool:
    return PipelinePool(
        device="cpu",
        overrides={
            "image_generator": str(folders["sd"]),
            "image_editor": str(folders["sd"]),
            "controlnet_canny": str(folders["controlnet"]),
            "video_generator": str(folders["video"]),
            **{role: str(folders["clip"]) for role in CLIP_ROLES},  # the CLIP score's model, where declared
        },
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture
def pool(tiny_pool: PipelinePool, workspace: Workspace) -> Iterator[PipelinePool]:
    """The tiny models' pool and the module's workspace, as the tools' context for the test."""
    with use_tools(pool=tiny_pool, workspace=workspace):
        yield tiny_pool


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40x48 picture with a bright square on a dark ground: clear edges, nothing else."""
    pixels = np.full((48, 40, 3), 30, dtype=np.uint8)
    pixels[12:36, 10:30] = (220, 180, 60)
    path = tmp_path_factory.mktemp("inputs") / "square.png"
    Image.fromarray(pixels).save(path)
    return path


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_roles_are_in_the_manifest() -> None:
    roles = manifest()
    for role in ROLES:
        assert roles[role.role] is role and role.loader is not None
    assert roles["image_generator"].default == "stabilityai/sd-turbo"
    assert roles["controlnet_canny"].hub_id == "lllyasviel/sd-controlnet-canny"


def test_generate_image_same_seed_same_pixels(pool: PipelinePool, workspace: Workspace) -> None:
    tool = GenerateImage()
    first = tool(prompt="a red lighthouse", steps=2, width=32, height=32, seed=7)
    again = tool(prompt="a red lighthouse", steps=2, width=32, height=32, seed=7)
    other = tool(prompt="a red lighthouse", steps=2, width=32, height=32, seed=8, count=2)
    assert set(first) == {"paths", "seed", "steps", "guidance", "width", "height", "model"}
    assert (first["seed"], first["steps"], first["width"], first["height"]) == (7, 2, 32, 32)
    assert first["guidance"] == 7.5 and first["model"] == pool.model_for("image_generator")
    [path] = first["paths"]
    assert Path(path).suffix == ".png" and Path(path).parent == workspace.folder
    assert pixels(path).shape == (32, 32, 3)
    assert np.array_equal(pixels(path), pixels(again["paths"][0]))
    assert len(other["paths"]) == 2 and not np.array_equal(pixels(path), pixels(other["paths"][0]))
    unseeded = tool(prompt="a red lighthouse", steps=1, width=32, height=40)
    assert isinstance(unseeded["seed"], int) and pixels(unseeded["paths"][0]).shape == (40, 32, 3)
    assert pool.stats.misses == 1  # one pipeline load served every call


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prompt": "  "}, "non-empty string"),
        ({"prompt": "a cat", "width": 36}, "multiple of 8"),
        ({"prompt": "a cat", "height": 4096}, "between 32 and 1024"),
        ({"prompt": "a cat", "steps": 0}, "between 1 and 100"),
        ({"prompt": "a cat", "guidance": -1.0}, "guidance"),
        ({"prompt": "a cat", "seed": -5}, "seed"),
        ({"prompt": "a cat", "count": 9}, "count"),
    ],
)
def test_generate_image_rejects_bad_input(
    pool: PipelinePool, workspace: Workspace, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolInputError, match=message):
        GenerateImage()(**arguments)


def test_edit_image_img2img(pool: PipelinePool, workspace: Workspace, photo: Path, tmp_path: Path) -> None:
    tool = EditImage()
    first = tool(image=str(photo), prompt="a golden frame", strength=0.5, steps=4, seed=3)
    again = tool(image=str(photo), prompt="a golden frame", strength=0.5, steps=4, seed=3)
    other = tool(image=str(photo), prompt="a golden frame", strength=0.5, steps=4, seed=4)
    assert first["mode"] == "img2img" and first["strength"] == 0.5 and first["model"] == pool.model_for("image_editor")
    assert (first["width"], first["height"]) == (40, 48)
    assert np.array_equal(pixels(first["path"]), pixels(again["path"]))
    assert not np.array_equal(pixels(first["path"]), pixels(other["path"]))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"strength": 0.0}, r"\(0.0, 1.0\]"),
        ({"strength": 1.5}, r"\(0.0, 1.0\]"),
        ({"strength": 0.2, "steps": 2}, "raise steps or strength"),
        ({"image": str(tmp_path / "missing.png")}, "no file at"),
        ({"image": str(broken)}, "not a readable image"),
        ({"prompt": ""}, "non-empty string"),
    ]
    for arguments, message in cases:
        with pytest.raises(ToolInputError, match=message):
            tool(**{"image": str(photo), "prompt": "a golden frame", **arguments})
    restyled = RestyleImage()(image=str(photo), style="Watercolor", subject="a box", seed=3)
    assert restyled["prompt"] == f"a box, {STYLES['watercolor']}" and restyled["strength"] == 0.5
    assert restyled["style"] == "Watercolor" and pixels(restyled["path"]).shape == (48, 40, 3)
    with pytest.raises(ToolInputError, match="`style` must be a non-empty string"):
        RestyleImage()(image=str(photo), style=" ")


def test_edit_image_with_instruct_pix2pix(folders: dict[str, Path], workspace: Workspace, photo: Path) -> None:
    pool = PipelinePool(device="cpu", overrides={"image_editor": str(folders["pix2pix"])})
    with use_tools(pool=pool, workspace=workspace):
        result = EditImage()(image=str(photo), prompt="make it snowy", steps=2, seed=1)
        restyled = RestyleImage()(image=str(photo), style="a mosaic of tiles", seed=2)
    assert result["mode"] == "instruction" and result["model"] == str(folders["pix2pix"])
    assert pixels(result["path"]).shape == (48, 40, 3)
    assert restyled["prompt"] == "turn it into a mosaic of tiles" and restyled["mode"] == "instruction"


def test_restyle_description_names_every_style() -> None:
    listed = RestyleImage.description.split("Styles: ")[1].split(", or describe")[0].split(", ")
    assert listed == list(STYLES)


def test_edge_map_marks_the_square_outline(photo: Path) -> None:
    edges = np.asarray(edge_map(Image.open(photo)))[..., 0]
    assert edges.shape == (48, 40) and set(np.unique(edges)) <= {0, 255}
    assert edges[12:36, 8:12].any() and edges[10:14, 10:30].any()  # the square's left and top sides
    assert not edges[:6].any() and not edges[18:30, 16:24].any()  # flat ground and flat inside


def test_generate_image_from_edges(pool: PipelinePool, workspace: Workspace, photo: Path) -> None:
    tool = GenerateImageFromEdges()
    first = tool(image=str(photo), prompt="a bronze statue", steps=2, seed=5)
    again = tool(image=str(photo), prompt="a bronze statue", steps=2, seed=5)
    assert np.array_equal(pixels(first["path"]), pixels(again["path"]))
    assert first["steps"] == 2 and first["guidance"] == 7.5 and first["model"] == pool.model_for("controlnet_canny")
    assert pixels(first["path"]).shape == pixels(first["edges_path"]).shape == (48, 40, 3)
    assert 0 < first["edge_fraction"] < 0.5
    with pytest.raises(ToolInputError, match="must not exceed"):
        tool(image=str(photo), prompt="x", low_threshold=0.5, high_threshold=0.2)
    with pytest.raises(ToolInputError, match="no file at"):
        tool(image="/nowhere/picture.png", prompt="x")


def test_generate_video_gif_and_mp4(pool: PipelinePool, workspace: Workspace) -> None:
    tool = GenerateVideo()
    gif = tool(prompt="a panda surfing", frames=3, steps=2, width=32, height=32, seed=11)
    again = tool(prompt="a panda surfing", frames=3, steps=2, width=32, height=32, seed=11, fps=4, format="mp4")
    assert (gif["frames"], gif["fps"], gif["seconds"], gif["width"], gif["height"]) == (3, 8, 0.375, 32, 32)
    assert gif["model"] == pool.model_for("video_generator") and gif["seed"] == 11
    with Image.open(gif["path"]) as image:
        assert image.format == "GIF" and getattr(image, "n_frames", 1) == 3
    import av

    with av.open(again["path"]) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (32, 32, 3)
    if any(role in manifest() for role in CLIP_ROLES):
        assert isinstance(gif["clip_score"], float) and 0.0 <= gif["clip_score"] <= 100.0, gif["clip_note"]
    else:  # no CLIP role in this build: the score is missing, and the note says so
        assert gif["clip_score"] is None and "no CLIP score" in gif["clip_note"]
    with pytest.raises(ToolInputError, match="'gif' or 'mp4'"):
        tool(prompt="a panda", format="avi")
    with pytest.raises(ToolInputError, match="between 2 and 64"):
        tool(prompt="a panda", frames=1)


def test_video_frames_repeat_with_the_same_seed(pool: PipelinePool, workspace: Workspace) -> None:
    tool = GenerateVideo()
    runs = [tool(prompt="waves", frames=2, steps=1, width=32, height=32, seed=seed) for seed in (1, 1, 2)]
    frames = []
    for run in runs:
        with Image.open(run["path"]) as image:
            frames.append([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
    assert all(np.array_equal(a, b) for a, b in zip(frames[0], frames[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(frames[0], frames[2], strict=True))


def test_clip_score_with_a_tiny_clip(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    roles = dict(manifest())
    role = next((name for name in CLIP_ROLES if name in roles), None)
    if role is None:  # no module declares a CLIP role yet: declare one for this test, as tools.vision would
        role = CLIP_ROLES[0]
        roles[role] = ModelRole(role, "zero-shot-image-classification", CLIP_HUB_ID, CLIP_HUB_ID)
        monkeypatch.setattr("smolcrew.manifest.manifest", lambda: roles)
        monkeypatch.setattr("smolcrew.pool.manifest", lambda: roles)
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    score, note = clip_score(PipelinePool(device="cpu", overrides={role: str(folders["clip"])}), frames, "a red square")
    assert isinstance(score, float) and 0.0 <= score <= 100.0, note
    assert "2 sampled frames" in note
    for name in CLIP_ROLES:
        roles.pop(name, None)
    monkeypatch.setattr("smolcrew.manifest.manifest", lambda: roles)
    score, note = clip_score(PipelinePool(device="cpu"), frames, "a red square")
    assert score is None and "no CLIP model role" in note


def test_upscale_image(workspace: Workspace, photo: Path) -> None:
    tool = UpscaleImage()
    with use_tools(workspace=workspace):
        result = tool(image=str(photo), scale=3)
        with pytest.raises(ToolInputError, match="between 2 and 4"):
            tool(image=str(photo), scale=8)
        with pytest.raises(ToolInputError, match="no file at"):
            tool(image="missing.png")
    assert (result["width"], result["height"], result["model"]) == (120, 144, "lanczos")
    assert Path(result["path"]).parent == workspace.folder and pixels(result["path"]).shape == (144, 120, 3)


def test_missing_model_folder_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pool = PipelinePool(device="cpu", overrides={"image_generator": str(tmp_path / "no-such-model")})
    with use_tools(pool=pool), pytest.raises(ModelUnavailableError, match=r"models\.image_generator"):
        GenerateImage()(prompt="a cat", steps=1, seed=1)
    assert check_side(None, "width") is None


@pytest.mark.gpu
def test_cuda_runs_fp16_with_model_cpu_offload(folders: dict[str, Path], workspace: Workspace) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pool = PipelinePool(
        device="cuda",
        overrides={"image_generator": str(folders["sd"]), "video_generator": str(folders["video"])},
    )
    tool = GenerateImage()
    with use_tools(pool=pool, workspace=workspace):
        first, again = (tool(prompt="a red lighthouse", steps=2, width=32, height=32, seed=7) for _ in range(2))
        video = GenerateVideo()(prompt="waves", frames=2, steps=2, width=32, height=32, seed=1)
    assert np.array_equal(pixels(first["paths"][0]), pixels(again["paths"][0]))
    pipeline = pool.get("image_generator")
    assert pipeline.unet.dtype == torch.float16 and pool.loaded()[0].dtype == "float16"
    assert getattr(pipeline, "_offload_gpu_id", None) is not None or pipeline.unet.device.type == "cpu"
    assert video["frames"] == 2 and Path(video["path"]).is_file()
