"""Tiny random diffusion pipelines built from configs (the way diffusers' own tests build them), saved to a folder.

Their outputs are noise: tests assert types, shapes, files, seeds and provenance, never what the pictures show.
Every builder seeds torch first so the weights (and therefore the pixels for a given seed) are the same each run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HIDDEN = 32
MAX_TOKENS = 16


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (as in GPT-2 and CLIP)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for byte in range(256):
        if byte in keep:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_clip_tokenizer() -> Any:
    """A CLIPTokenizer over single bytes (no merges): every text tokenizes, offline, in a few KB."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(tokens)}, merges=[], model_max_length=MAX_TOKENS)


def _text_encoder(vocab_size: int) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def _vae(channels: tuple[int, ...] = (8, 16)) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        latent_channels=4,
        norm_num_groups=4,
    )


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _sd_parts(folder: Path) -> dict[str, Any]:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    return {
        "unet": unet,
        "vae": _vae(),
        "text_encoder": _text_encoder(len(tokenizer)),
        "tokenizer": tokenizer,
        "scheduler": _scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def tiny_stable_diffusion(folder: Path) -> Path:
    """A StableDiffusionPipeline (UNet and VAE 8/16 channels, 1 layer per block); default size 32x32 pixels."""
    from diffusers import StableDiffusionPipeline

    pipeline: Any = StableDiffusionPipeline(**_sd_parts(folder))
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def tiny_controlnet(folder: Path) -> Path:
    """A StableDiffusionControlNetPipeline: the tiny SD parts plus a tiny ControlNetModel."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    parts = _sd_parts(folder)
    torch.manual_seed(1)
    controlnet = ControlNetModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=4,
        conditioning_embedding_out_channels=(4, 8),
    )
    pipeline: Any = StableDiffusionControlNetPipeline(controlnet=controlnet, **parts)
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def tiny_text_to_video(folder: Path) -> Path:
    """A TextToVideoSDPipeline with a tiny UNet3DConditionModel (8/16 channels); default size 32x32."""
    import torch
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    pipe: Any = TextToVideoSDPipeline(
        unet=unet,
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def tiny_clip(folder: Path) -> Path:
    """A CLIPModel (text + 32x32 vision towers, 32 hidden) with its processor, for CLIP scores."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    tower = {"hidden_size": HIDDEN, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": MAX_TOKENS,
            "bos_token_id": len(tokenizer) - 2,
            "eos_token_id": len(tokenizer) - 1,
            "pad_token_id": len(tokenizer) - 1,
        },
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPModel(config).save_pretrained(folder / "model")
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder / "model")
    return folder / "model"


def tiny_instruct_pix2pix(folder: Path) -> Path:
    """A StableDiffusionInstructPix2PixPipeline: the tiny SD parts with an 8-channel-input UNet."""
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    parts = _sd_parts(folder)
    torch.manual_seed(2)
    parts["unet"] = UNet2DConditionModel(**{**dict(parts["unet"].config), "in_channels": 8})
    pipeline: Any = StableDiffusionInstructPix2PixPipeline(**parts)
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"
