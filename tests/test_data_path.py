"""The uint8 data path (`output_dtype="uint8"`, normalised on the device) against the default float one, and the
host-path speed-ups that must not change a value (fused rotation, cached proxy tags)."""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_proxy import textured_video

from emotions_hf.feature_extraction_avcanet import AVCANetFeatureExtractor
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.proxy import StaleCacheError, check_proxy, write_mfcc_cache, write_proxy
from emotions_hf.training.data import normalize_on_device
from emotions_hf.video_processing_avcanet import MULTI_SCALE_CROP_SCALES, AVCANetVideoProcessor
from emotions_hf.video_transforms import IMAGENET_STD, Augmentation, rotate

SETTINGS = {"num_snippets": 4, "frames_per_snippet": 2, "image_size": 32}


def processors(output_dtype, **settings):
    video = AVCANetVideoProcessor(**SETTINGS, output_dtype=output_dtype, **settings)
    return AVCANetProcessor(video_processor=video, feature_extractor=AVCANetFeatureExtractor(
        num_snippets=SETTINGS["num_snippets"], mfcc_frames=256))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data_path")
    original = textured_video(folder / "clip.mp4", num_frames=60, size=(72, 96))
    proxy = write_proxy(original, folder / "clip.proxy.mp4", short_side=48)
    cache = write_mfcc_cache(original, folder / "clip.mfcc.safetensors", processors("float32"))
    return {"video": str(original), "proxy": str(proxy), "mfcc": str(cache)}


def _levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| of normalised frames in 1/255 steps of the [0, 1] frames."""
    return ((a - b) * torch.tensor(IMAGENET_STD).view(-1, 1, 1) * 255).abs()


def _seeds_of_every_kind(crop_scales, probability=0.3) -> dict:
    """A seed for each augmentation kind (and none), drawn as the processor draws them (after the frame offsets)."""
    video = AVCANetVideoProcessor(**SETTINGS, crop_scales=crop_scales)
    found = {}
    for seed in range(400):
        rng = np.random.default_rng(seed).spawn(1)[0]
        rng.random(SETTINGS["num_snippets"])  # the training frame offsets come first
        draw = Augmentation.draw(rng, crop_scales, probability, video.max_rotation, video.brightness)
        found.setdefault(draw.kind, seed)
    assert set(found) == {None, "flip", "rotate", "brightness"}
    return found


@pytest.mark.parametrize("source", ["original", "item"])
def test_eval_uint8_then_device_normalisation_is_bit_identical(prepared, source):
    item = prepared["video"] if source == "original" else prepared
    reference = processors("float32")(item)
    raw = processors("uint8")(item)
    assert reference["pixel_values"].dtype == torch.float32
    assert raw["pixel_values"].dtype == torch.uint8 and raw["pixel_values"].shape == reference["pixel_values"].shape
    normaliser = processors("uint8").video_processor.device_normalizer()
    assert torch.equal(normaliser(raw["pixel_values"]), reference["pixel_values"])
    assert torch.equal(raw["input_features"], reference["input_features"])


@pytest.mark.parametrize("crop_scales", [(1.0,), MULTI_SCALE_CROP_SCALES], ids=["full-side", "multi-scale"])
def test_training_uint8_matches_the_float_path_for_a_seed(prepared, crop_scales):
    float_processor, uint8_processor = processors("float32", crop_scales=crop_scales), processors(
        "uint8", crop_scales=crop_scales)
    normaliser = uint8_processor.video_processor.device_normalizer()
    for kind, seed in _seeds_of_every_kind(crop_scales).items():
        reference = float_processor(prepared, training=True, seed=seed)["pixel_values"]
        raw = uint8_processor(prepared, training=True, seed=seed)["pixel_values"]
        assert raw.dtype == torch.uint8
        levels = _levels(normaliser(raw), reference)
        # the same frames, crop and augmentation; only the uint8 rounding of the resize / augmentation differs
        assert levels.max() <= 1.5, (kind, seed, float(levels.max()))
        assert levels.mean() <= 0.5, (kind, seed, float(levels.mean()))
        other = float_processor(prepared, training=True, seed=seed + 1000)["pixel_values"]
        assert _levels(other, reference).mean() > 2  # the comparison can tell different clips apart


def test_uint8_training_without_resize_or_pixel_augmentation_rounds_nothing(prepared):
    """Full-side crops of frames decoded at the model's size need no resize, a flip rounds nothing: the same values,
    up to float32 rounding (the float path divides by 255 before normalising, the device after)."""
    seeds = _seeds_of_every_kind((1.0,))
    float_processor, uint8_processor = processors("float32"), processors("uint8")
    normaliser = uint8_processor.video_processor.device_normalizer()
    for kind in (None, "flip"):
        reference = float_processor(prepared, training=True, seed=seeds[kind])["pixel_values"]
        raw = uint8_processor(prepared, training=True, seed=seeds[kind])["pixel_values"]
        torch.testing.assert_close(normaliser(raw), reference, rtol=0, atol=1e-5)


def test_pre_decoded_frames_in_uint8(prepared):
    frames = torch.randint(0, 256, (20, 40, 56, 3), dtype=torch.uint8)
    raw = processors("uint8")(frames)["pixel_values"]
    reference = processors("float32")(frames)["pixel_values"]
    assert raw.dtype == torch.uint8 and raw.shape == reference.shape
    normaliser = AVCANetVideoProcessor(**SETTINGS).device_normalizer()
    assert _levels(normaliser(raw), reference).max() <= 1.5


def test_normalize_on_device_only_touches_uint8_pixels():
    normaliser = AVCANetVideoProcessor(**SETTINGS).device_normalizer()
    pixels = torch.randint(0, 256, (2, 4, 2, 3, 8, 8), dtype=torch.uint8)
    batch = normalize_on_device({"pixel_values": pixels, "labels": torch.tensor([0, 1])}, normaliser)
    expected = (pixels.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(-1, 1, 1)
    assert batch["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(batch["pixel_values"], expected)
    floats = {"pixel_values": expected}
    assert normalize_on_device(floats, normaliser)["pixel_values"] is expected


def test_output_dtype_is_saved_and_checked(tmp_path):
    AVCANetVideoProcessor(output_dtype="uint8").save_pretrained(tmp_path)
    assert AVCANetVideoProcessor.from_pretrained(tmp_path).output_dtype == "uint8"
    assert AVCANetVideoProcessor().output_dtype == "float32"
    with pytest.raises(ValueError, match="output_dtype"):
        AVCANetVideoProcessor(output_dtype="float16")


def _rotate_frame_by_frame(frames, degrees):
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    aspect = frames.shape[-1] / frames.shape[-2]
    theta = torch.tensor([[cos, -sin / aspect, 0.0], [sin * aspect, cos, 0.0]], dtype=frames.dtype)
    grid = F.affine_grid(theta.expand(frames.shape[0], 2, 3), list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@pytest.mark.parametrize("shape", [(6, 3, 32, 32), (3, 3, 20, 36)])
def test_rotation_with_one_grid_equals_one_grid_per_frame(shape):
    frames = torch.rand(shape, generator=torch.manual_seed(0))
    for degrees in (-19.5, 3.0, 12.25):
        assert torch.equal(rotate(frames, degrees), _rotate_frame_by_frame(frames, degrees))


def test_rewritten_proxy_is_checked_again(prepared, tmp_path):
    path = tmp_path / "proxy.mp4"
    write_proxy(prepared["video"], path, short_side=48)
    check_proxy(path, 32)
    write_proxy(prepared["video"], path, short_side=24)  # same path, smaller: its tag must be read anew
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1))
    with pytest.raises(StaleCacheError, match="short_side=24"):
        check_proxy(path, 32)


def test_trainer_normalises_uint8_batches_on_the_device(prepared, tmp_path):
    """With a uint8 processor the Trainer's batches reach the model exactly as the float processor's would."""
    from emotions_hf.configuration_avcanet import AVCANetConfig
    from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
    from emotions_hf.training import AVCANetDataCollator, AVCANetTrainer, AVCANetTrainingArguments

    config = AVCANetConfig(num_snippets=4, frames_per_snippet=2, image_size=32, embed_dim=12, depths=(1, 1),
                           num_heads=(1, 2), window_size=(1, 4, 4), mfcc_chunk_frames=64, num_mfcc=32,
                           audio_depths=(1, 1), audio_hidden_sizes=(8, 16), hidden_size=16, lgf_num_heads=2)
    args = AVCANetTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], eval_strategy="no",
                                    save_strategy="no")
    batches = {}
    for dtype in ("uint8", "float32"):
        processor = processors(dtype)
        trainer = AVCANetTrainer(model=AVCANetForVideoClassification(config), args=args, processing_class=processor)
        example = {"row": {"video": prepared["video"], "label": 1}, "training": False, "epoch": 0, "index": 0}
        batches[dtype] = trainer._prepare_inputs(AVCANetDataCollator(processor, seed=0)([example]))
    assert batches["uint8"]["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(batches["uint8"]["pixel_values"], batches["float32"]["pixel_values"], rtol=0, atol=0)
