"""A saved AV-CANet folder carries its code: a process that cannot import emotions_hf still loads and runs it."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
from without_package import HUB_ROUTES, run_without_package

import emotions_hf  # noqa: F401  (registers the Auto classes and the remote-code auto_map)
from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification, AVCANetModel

TINY = {
    "num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "embed_dim": 12, "depths": (1, 1),
    "num_heads": (1, 2), "window_size": (1, 4, 4), "mfcc_chunk_frames": 16, "num_mfcc": 8, "audio_depths": (1, 1),
    "audio_hidden_sizes": (8, 16), "hidden_size": 16, "lgf_num_heads": 2,
}

LOADER = """
import torch
from safetensors.torch import load_file
from transformers import AutoModelForVideoClassification

folder, tensors = sys.argv[1], load_file(sys.argv[2])
model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    out = model(pixel_values=tensors["pixel_values"], input_features=tensors["input_features"],
                audio_mask=tensors["audio_mask"])
# Same weights, same code and the parent's thread count: the logits must be bit-identical.
torch.testing.assert_close(out.logits, tensors["logits"], rtol=0, atol=0)
print("REMOTE-CODE-OK", type(model).__name__)
"""


@pytest.mark.parametrize("stem_channels", [0, 4])  # the paper's patch embedding; the small config's stem
def test_saved_folder_loads_without_the_package(tmp_path, stem_channels):
    torch.manual_seed(0)
    config = AVCANetConfig(**TINY, vision_config={"stem_channels": stem_channels})
    model = AVCANetForVideoClassification(config).eval()
    assert (model.avcanet.video_encoder.patch_embed.stem is not None) == bool(stem_channels)
    folder = tmp_path / "avcanet-tiny"
    model.save_pretrained(folder)

    saved_config = json.loads((folder / "config.json").read_text())
    assert saved_config["auto_map"] == {
        "AutoConfig": "configuration_avcanet.AVCANetConfig",
        "AutoModel": "modeling_avcanet.AVCANetModel",
        "AutoModelForVideoClassification": "modeling_avcanet.AVCANetForVideoClassification",
    }
    for code_file in ("modeling_avcanet.py", "configuration_avcanet.py", "modeling_video_swin.py",
                      "loss_avcanet.py", "labels.py"):
        assert (folder / code_file).exists(), code_file

    generator = torch.Generator().manual_seed(1)
    inputs = {
        "pixel_values": torch.randn(2, 4, 2, 3, 32, 32, generator=generator),
        "input_features": torch.randn(2, 4, 16, 8, generator=generator),
        "audio_mask": torch.tensor([True, False]),
    }
    with torch.no_grad():
        inputs["logits"] = model(**inputs).logits
    tensors_path = tmp_path / "inputs.safetensors"
    save_file(inputs, str(tensors_path))

    stdout = run_without_package(tmp_path, LOADER, folder, tensors_path)
    assert "REMOTE-CODE-OK AVCANetForVideoClassification" in stdout


def test_auto_classes_resolve_to_avcanet():
    config = AVCANetConfig(**TINY)
    assert type(AutoConfig.for_model("avcanet", **TINY)) is AVCANetConfig
    assert type(AutoModel.from_config(config)) is AVCANetModel
    assert type(AutoModelForVideoClassification.from_config(config)) is AVCANetForVideoClassification


def test_saved_pipeline_runs_every_hub_route_without_the_package(tmp_path):
    from media_samples import write
    from transformers import pipeline

    from emotions_hf.processing_avcanet import AVCANetProcessor

    config = AVCANetConfig(**TINY)
    pipe = pipeline("video-emotion", model=AVCANetForVideoClassification(config).eval(),
                    processor=AVCANetProcessor.from_model_config(config))
    pipe.save_pretrained(tmp_path / "repo")
    saved_config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert saved_config["custom_pipelines"] == {"video-emotion": {
        "impl": "pipeline_video_emotion.VideoEmotionPipeline", "pt": ["AutoModelForVideoClassification"],
        "type": "multimodal"}}
    video = write(tmp_path / "clip.mp4", num_frames=12)
    stdout = run_without_package(tmp_path, HUB_ROUTES, tmp_path / "repo", video)
    assert stdout.count("PIPELINE VideoEmotionPipeline") == 2 and "HUB-ROUTES-OK" in stdout
