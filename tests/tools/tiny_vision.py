"""Tiny random vision models built from configs, saved to a folder for the real pool to load.

Their outputs are random: tests assert types, shapes and provenance, never meanings. Image processors are the
PIL ones (torchvision is not installed); tokenizers are built from a handful of words or from bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {0: "cat", 1: "dog", 2: "car"}
WORDS = ["what", "is", "in", "the", "picture", "a", "photo", "of", "cat", "dog", "car", "yes", "no", "?"]
ATTN: dict[str, Any] = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)


def _labels() -> dict[str, Any]:
    return {"id2label": dict(LABELS), "label2id": {v: k for k, v in LABELS.items()}}


def bert_tokenizer() -> Any:
    """A WordPiece BertTokenizer over WORDS (ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4)."""
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})


def byte_bpe_vocab(specials: list[str], *, word_end: bool = False) -> dict[str, int]:
    """A byte-level BPE vocabulary with no merges (every byte its own token), for CLIP/RoBERTa tokenizers."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]
    tokens = specials + chars + ([c + "</w>" for c in chars] if word_end else [])
    return {token: i for i, token in enumerate(tokens)}


def clip_tokenizer() -> Any:
    """A CLIPTokenizer (<|startoftext|>=0, <|endoftext|>=1) over bytes; X-CLIP uses it too."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_bpe_vocab(["<|startoftext|>", "<|endoftext|>"], word_end=True), merges=[])


def _text_config(vocab_size: int, **extra: Any) -> dict[str, Any]:
    return dict(vocab_size=vocab_size, num_hidden_layers=1, max_position_embeddings=64, **ATTN, **extra)


def _vision_config(**extra: Any) -> dict[str, Any]:
    return dict(image_size=32, patch_size=8, num_hidden_layers=1, **ATTN, **extra)


def tiny_image_classifier(folder: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(**_vision_config(), **_labels())
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_object_detector(folder: Path) -> Path:
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    config = YolosConfig(
        image_size=[32, 32], patch_size=8, num_hidden_layers=1, num_detection_tokens=5, **ATTN, **_labels()
    )
    YolosForObjectDetection(config).save_pretrained(folder)
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(folder)
    return folder


def tiny_segmenter(folder: Path) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    labels = {0: "background", 1: "person", 2: "car"}
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_captioner(folder: Path) -> Path:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tokenizer = bert_tokenizer()
    text = _text_config(len(tokenizer), bos_token_id=2, sep_token_id=3, pad_token_id=0, eos_token_id=3)
    config = BlipConfig(text_config=text, vision_config=_vision_config(), projection_dim=16)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_clip(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    text = _text_config(len(tokenizer), bos_token_id=0, eos_token_id=1, pad_token_id=1)
    config = CLIPConfig(text_config=text, vision_config=_vision_config(), projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_vqa(folder: Path) -> Path:
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    tokenizer = bert_tokenizer()
    answers = {0: "yes", 1: "no", 2: "2"}
    config = ViltConfig(
        vocab_size=len(tokenizer),
        image_size=32,
        patch_size=8,
        num_hidden_layers=1,
        max_position_embeddings=40,
        id2label=answers,
        label2id={v: k for k, v in answers.items()},
        **ATTN,
    )
    ViltForQuestionAnswering(config).save_pretrained(folder)
    image_processor = ViltImageProcessor(size={"shortest_edge": 32})
    ViltProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_depth_estimator(folder: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(
        image_size=32,
        patch_size=8,
        num_hidden_layers=4,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_in_index=-1,
        **ATTN,
    )
    DPTForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


def tiny_xclip(folder: Path) -> Path:
    from transformers import CLIPImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    tokenizer = clip_tokenizer()
    text = _text_config(len(tokenizer), bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = _vision_config(num_frames=4, mit_hidden_size=32, mit_intermediate_size=64, mit_num_attention_heads=2)
    config = XCLIPConfig(
        text_config=text, vision_config=vision, projection_dim=32, prompt_layers=1, prompt_num_attention_heads=2
    )
    XCLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_clap(folder: Path) -> Path:
    """A CLAP with a 2-stage HTSAT over 16 mel bins at 16 kHz (2 s windows) and a byte-level RoBERTa tokenizer."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = RobertaTokenizer(vocab=byte_bpe_vocab(specials), merges=[])
    text = _text_config(len(tokenizer), bos_token_id=0, pad_token_id=1, eos_token_id=2, type_vocab_size=1)
    audio = dict(
        window_size=4,
        num_mel_bins=16,
        spec_size=64,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=16,
        hidden_size=32,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
    )
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).save_pretrained(folder)
    features = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16_000,
        hop_length=160,
        max_length_s=2,
        fft_window_size=1024,
        frequency_max=8_000,
        truncation="rand_trunc",
        padding="repeatpad",
    )
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def tiny_video(path: Path, *, seconds: float = 1.0, fps: int = 8, audio: bool = True) -> Path:
    """A 64x64 MPEG-4 clip of moving colour, with a 440 Hz sine track when `audio`."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=16_000) if audio else None
        for i in range(int(seconds * fps)):
            pixels = np.zeros((64, 64, 3), dtype=np.uint8)
            pixels[:, : 8 * (i % 8) + 8] = (40 * i % 255, 120, 200)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            t = np.arange(int(seconds * 16_000)) / 16_000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            step = 1024
            for start in range(0, len(samples), step):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + step], format="fltp", layout="mono")
                frame.sample_rate = 16_000
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path
