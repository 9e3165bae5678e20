"""Opt-in int8 dynamic quantization of the Linear layers (`emotions_hf.quantization`)."""

import pytest
import torch
from torch import nn

from emotions_hf import quantization
from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.configuration_video_swin import VideoSwinConfig
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.modeling_video_swin import VideoSwinModel
from emotions_hf.quantization import QuantizationUnavailableError, is_quantized, quantize_int8

pytestmark = pytest.mark.skipif(
    not set(torch.backends.quantized.supported_engines) & {"x86", "fbgemm", "onednn"},
    reason="this torch has no int8 CPU engine")


def linear_kinds(model):
    """{name: "float" | "int8"} for every Linear, float or dynamically quantized."""
    kinds = {}
    for name, module in model.named_modules():
        if type(module) is nn.Linear:
            kinds[name] = "float"
        elif type(module).__module__.startswith("torch.ao.nn.quantized") and type(module).__name__ == "Linear":
            kinds[name] = "int8"
    return kinds


def test_backbone_copy_is_quantized_and_stays_close():
    torch.manual_seed(0)
    config = VideoSwinConfig(embed_dim=24, depths=(2, 2), num_heads=(2, 4), window_size=(2, 4, 4), image_size=32,
                             num_frames=4, drop_path_rate=0.0)
    model = VideoSwinModel(config).eval()
    quantized = quantize_int8(model)
    assert quantized is not model and not is_quantized(model) and is_quantized(quantized)
    kinds = linear_kinds(quantized)
    assert kinds and all(kind == "int8" for kind in kinds.values()), kinds
    assert set(linear_kinds(model).values()) == {"float"}  # the original is left as it was
    clips = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, approximate = model(clips).pooler_output, quantized(clips).pooler_output
    difference = (expected - approximate).abs().max().item()
    assert 0 < difference < 0.05 * expected.abs().max().item()


def test_whole_model_keeps_its_classifier_in_float_and_its_predictions():
    torch.manual_seed(0)
    config = AVCANetConfig(num_snippets=2, frames_per_snippet=4, image_size=32)
    model = AVCANetForVideoClassification(config).eval()
    quantized = quantize_int8(model)
    kinds = linear_kinds(quantized)
    assert kinds["head.classifier"] == "float"
    assert sum(kind == "int8" for kind in kinds.values()) > 10
    generator = torch.Generator().manual_seed(2)
    inputs = {
        "pixel_values": torch.randn(4, 2, 4, 3, 32, 32, generator=generator),
        "input_features": torch.randn(4, 2, config.audio_config.num_frames, config.audio_config.num_mfcc,
                                      generator=generator),
        "audio_mask": torch.tensor([True, True, False, True]),
    }
    with torch.no_grad():
        expected, approximate = model(**inputs).logits, quantized(**inputs).logits
    spread = (expected.max(-1).values - expected.min(-1).values).min().item()
    assert (expected - approximate).abs().max().item() < 0.1 * spread


def test_unavailable_backend_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(quantization, "_INT8_ENGINES", ("no-such-engine",))
    with pytest.raises(QuantizationUnavailableError, match="quantized engines"):
        quantize_int8(nn.Sequential(nn.Linear(4, 4)))


def test_keep_float_names_are_left_alone():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(8, 8))
    model.add_module("head", nn.Linear(8, 2))
    quantized = quantize_int8(model, keep_float=("head",))
    assert linear_kinds(quantized) == {"body": "int8", "head": "float"}


def test_pipeline_quantize_int8_keeps_the_prediction(tmp_path):
    from media_samples import write
    from transformers import pipeline

    from emotions_hf.configuration_avcanet import AVCANetConfig
    from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
    from emotions_hf.processing_avcanet import AVCANetProcessor

    torch.manual_seed(0)
    config = AVCANetConfig(num_snippets=4, frames_per_snippet=2, image_size=32, embed_dim=12, depths=(1, 1),
                           num_heads=(1, 2), window_size=(1, 4, 4), mfcc_chunk_frames=16, num_mfcc=8,
                           audio_depths=(1, 1), audio_hidden_sizes=(8, 16), hidden_size=16, lgf_num_heads=2)
    model = AVCANetForVideoClassification(config).eval()
    processor = AVCANetProcessor.from_model_config(config)
    video = write(tmp_path / "clip.mp4", num_frames=12)
    plain = pipeline("video-emotion", model=model, processor=processor)(video, top_k=6)
    quantized_pipe = pipeline("video-emotion", model=model, processor=processor, quantize="int8")
    assert is_quantized(quantized_pipe.model) and not is_quantized(model)
    quantized = quantized_pipe(video, top_k=6)
    assert quantized["predictions"][0]["label"] == plain["predictions"][0]["label"]
    scores = {p["label"]: p["score"] for p in plain["predictions"]}
    assert max(abs(p["score"] - scores[p["label"]]) for p in quantized["predictions"]) < 0.02
    with pytest.raises(ValueError, match="only option is 'int8'"):
        pipeline("video-emotion", model=model, processor=processor, quantize="int4")
