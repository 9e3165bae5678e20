"""Pretrained-weight converters: every key of each public checkpoint layout is accounted for and loads strictly."""

import json
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import ResNetConfig, ResNetModel, SwinConfig, SwinModel

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.configuration_video_swin import VideoSwinConfig
from emotions_hf.convert_checkpoints import (
    convert_resnet,
    convert_video_backbone,
    detect_video_format,
    inflate_swin2d,
    load_pretrained_backbones,
    load_video_swin,
)
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification, build_audio_encoder
from emotions_hf.modeling_video_swin import VideoSwinModel

# Names, shapes and dtypes (no weights) of the published checkpoints, copied from the project's shared/checkpoints.
MANIFESTS = Path(__file__).parent / "checkpoint_manifests"

VIDEO_MANIFESTS = {
    "official_swin_t_22k_2d": ("official_swin2d", "head."),
    "torchvision_swin_t_2d": ("torchvision_swin2d", "head."),
    "official_video_swin_t_k400": ("official_video_swin", "cls_head."),
    "torchvision_swin3d_t": ("torchvision_swin3d", "head."),
}


def random_state_dict(name, generator=None):
    """Random tensors with exactly the names, shapes and dtypes of a published checkpoint's manifest."""
    manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
    dtypes = manifest["non_float32_dtypes"]
    generator = generator or torch.Generator().manual_seed(0)
    return {
        key: torch.zeros(shape, dtype=getattr(torch, dtypes[key])) if key in dtypes
        else torch.randn(shape, generator=generator)
        for key, shape in manifest["state_dict"].items()
    }


def assert_every_key_accounted_for(source, state, report, head_prefix):
    """Nothing dropped silently: each source key is mapped or ignored with a reason (the head, recomputed buffers)."""
    assert not report.unexpected_keys and not report.missing_keys
    derived = {key for key in source if key.endswith(("relative_position_index", "attn_mask"))}
    heads = {key for key in source if key.startswith(head_prefix)}
    assert derived and heads and set(report.ignored_keys) == derived | heads
    assert report.mapped == len(state) == len(source) - len(report.ignored_keys)


@pytest.fixture(scope="module")
def swin_t():
    return VideoSwinModel(VideoSwinConfig())


@pytest.mark.parametrize("name", VIDEO_MANIFESTS)
def test_video_manifest_maps_every_key_and_loads_strictly(name, swin_t):
    source = random_state_dict(name)
    expected_format, head_prefix = VIDEO_MANIFESTS[name]
    assert detect_video_format(source) == expected_format
    state, report = convert_video_backbone(source, swin_t.config)
    assert report.source_format == expected_format
    assert_every_key_accounted_for(source, state, report, head_prefix)
    swin_t.load_state_dict(state, strict=True)


def test_video_manifest_values_land_in_the_right_place():
    official = random_state_dict("official_video_swin_t_k400")
    torchvision = random_state_dict("torchvision_swin3d_t")
    config = AVCANetConfig()
    from_official, _ = convert_video_backbone(official, config)
    from_torchvision, _ = convert_video_backbone(torchvision, config)
    assert torch.equal(from_official["layers.2.blocks.5.attn.qkv.weight"],
                       official["backbone.layers.2.blocks.5.attn.qkv.weight"])
    assert torch.equal(from_torchvision["layers.2.blocks.5.mlp.fc2.weight"], torchvision["features.4.5.mlp.3.weight"])
    assert torch.equal(from_torchvision["layers.1.downsample.reduction.weight"], torchvision["features.3.reduction.weight"])
    tv2d = random_state_dict("torchvision_swin_t_2d")
    inflated, _ = inflate_swin2d(tv2d, config)
    assert torch.equal(inflated["layers.2.downsample.norm.weight"], tv2d["features.6.norm.weight"])
    assert torch.equal(inflated["patch_embed.norm.bias"], tv2d["features.0.2.bias"])
    # bias table tiled over the 15 temporal offsets; patch conv repeated over the temporal patch and halved
    table = inflated["layers.3.blocks.1.attn.relative_position_bias_table"]
    assert table.shape == (2535, 24) and torch.equal(table[169 * 7: 169 * 8], tv2d["features.7.1.attn.relative_position_bias_table"])
    torch.testing.assert_close(inflated["patch_embed.proj.weight"].sum(2), tv2d["features.0.0.weight"])


def test_inflating_a_3d_checkpoint_is_refused():
    with pytest.raises(ValueError, match="not a 2D Swin"):
        inflate_swin2d(random_state_dict("torchvision_swin3d_t"), AVCANetConfig())


def test_architecture_mismatch_names_the_tensor():
    with pytest.raises(ValueError, match=r"patch_embed\.proj\.weight has shape .* different architecture"):
        convert_video_backbone(random_state_dict("torchvision_swin3d_t"), AVCANetConfig(embed_dim=64, num_heads=(2, 4, 8, 16)))


def test_extra_source_blocks_are_reported_unexpected():
    config = AVCANetConfig(depths=(2, 2, 2, 2))
    state, report = convert_video_backbone(random_state_dict("official_video_swin_t_k400"), config)
    assert report.unexpected_keys and all(key.startswith("layers.2.blocks.") for key in report.unexpected_keys)
    assert {key.split(".")[3] for key in report.unexpected_keys} == {"2", "3", "4", "5"}
    VideoSwinModel(config.vision_config).load_state_dict(state, strict=True)


def test_resnet34_manifest_maps_every_key_into_the_audio_encoder():
    config = AVCANetConfig()
    source = random_state_dict("torchvision_resnet34")
    state, report = convert_resnet(source, config)
    assert report.source_format == "torchvision_resnet"
    assert not report.unexpected_keys and not report.missing_keys
    assert set(report.ignored_keys) == {"fc.weight", "fc.bias"} and report.mapped == len(source) - 2
    assert state["embedder.embedder.convolution.weight"].shape == (64, 1, 7, 1)
    torch.testing.assert_close(state["embedder.embedder.convolution.weight"], source["conv1.weight"].sum((1, 3), keepdim=True))
    assert torch.equal(state["encoder.stages.3.layers.0.shortcut.normalization.running_var"],
                       source["layer4.0.downsample.1.running_var"])
    build_audio_encoder(config.audio_config).load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------- tiny transformers checkpoints

TINY_SWIN_2D = {"image_size": 24, "patch_size": 4, "embed_dim": 8, "depths": [2, 2], "num_heads": [2, 2],
                "window_size": 3, "drop_path_rate": 0.0}
TINY_VIDEO = {"embed_dim": 8, "depths": (2, 2), "num_heads": (2, 2), "window_size": (2, 3, 3), "patch_size": (2, 4, 4),
              "image_size": 24, "frames_per_snippet": 4, "drop_path_rate": 0.0}


@pytest.fixture
def tiny_swin_folder(tmp_path):
    torch.manual_seed(0)
    swin = SwinModel(SwinConfig(**TINY_SWIN_2D)).eval()
    with torch.no_grad():  # visible, distinct values everywhere (bias tables start at zero)
        for parameter in swin.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    swin.save_pretrained(tmp_path / "swin")
    return swin, tmp_path / "swin"


def test_inflated_hf_swin_reproduces_the_2d_model_on_a_static_clip(tiny_swin_folder):
    swin, folder = tiny_swin_folder
    config = AVCANetConfig(**TINY_VIDEO)
    state, report = inflate_swin2d(folder, config)
    assert report.source_format == "hf_swin2d" and not report.unexpected_keys and not report.missing_keys
    video = VideoSwinModel(config.vision_config).eval()
    video.load_state_dict(state, strict=True)
    image = torch.randn(2, 3, 24, 24)
    clip = image[:, :, None].expand(-1, -1, 4, -1, -1)  # 4 identical frames
    with torch.no_grad():
        embedded_2d = swin.embeddings(image)[0].view(2, 6, 6, 8)
        embedded_3d = video.patch_embed(clip)  # (2, D=2, 6, 6, 8)
        torch.testing.assert_close(embedded_3d, embedded_2d[:, None].expand(-1, 2, -1, -1, -1))
        # and the whole network: identical frames give each 2D key D times with the same (tiled) bias
        torch.testing.assert_close(video(clip).pooler_output, swin(image).pooler_output, rtol=1e-4, atol=1e-5)


def test_a_convolutional_stem_refuses_pretrained_swin_weights(tiny_swin_folder):
    _, folder = tiny_swin_folder
    config = AVCANetConfig(**TINY_VIDEO)
    config.vision_config.stem_channels = 4
    with pytest.raises(ValueError, match=r"stem_channels=4.*stem_channels=0"):
        inflate_swin2d(folder, config)


def test_hf_swin_instance_and_folder_agree(tiny_swin_folder):
    swin, folder = tiny_swin_folder
    config = AVCANetConfig(**TINY_VIDEO)
    from_folder, _ = inflate_swin2d(folder, config)
    from_instance, report = inflate_swin2d(swin, config)  # in-memory names: attention.q_proj / o_proj
    assert from_folder.keys() == from_instance.keys() and report.mapped == len(from_instance)
    for key in from_folder:
        assert torch.equal(from_folder[key], from_instance[key]), key


def test_hf_resnet_folder_stem_response_is_exact_for_inputs_constant_along_coefficients(tmp_path):
    torch.manual_seed(0)
    resnet = ResNetModel(ResNetConfig(num_channels=3, embedding_size=64, hidden_sizes=[64, 128], depths=[1, 1],
                                      layer_type="basic", downsample_in_first_stage=False))
    resnet.save_pretrained(tmp_path / "resnet")
    config = AVCANetConfig(audio_depths=(1, 1), audio_hidden_sizes=(64, 128))
    state, report = convert_resnet(tmp_path / "resnet", config)
    assert report.source_format == "hf_resnet" and not report.unexpected_keys and not report.missing_keys
    encoder = build_audio_encoder(config.audio_config)
    encoder.load_state_dict(state, strict=True)
    mfcc = torch.randn(2, 1, 40, 1).expand(-1, -1, -1, 16)  # (time, coefficient), constant along coefficients
    rgb_kernel = resnet.embedder.embedder.convolution.weight
    expected = F.conv2d(mfcc.expand(-1, 3, -1, -1), rgb_kernel, stride=(2, 1), padding=(3, 3))
    got = encoder.embedder.embedder.convolution(mfcc)
    torch.testing.assert_close(got[..., 3:-3], expected[..., 3:-3], rtol=1e-5, atol=1e-5)


def test_load_pretrained_backbones_from_files(tmp_path):
    config = AVCANetConfig(embed_dim=8, depths=(2, 2), num_heads=(2, 2), window_size=(2, 3, 3), image_size=24,
                           frames_per_snippet=4, num_snippets=2, audio_depths=(1, 1), audio_hidden_sizes=(64, 128),
                           hidden_size=16, lgf_num_heads=2, mfcc_chunk_frames=16, num_mfcc=8)
    model = AVCANetForVideoClassification(config)
    donor = VideoSwinModel(config.vision_config)
    with torch.no_grad():
        for parameter in donor.parameters():
            parameter.normal_()
    video_file = tmp_path / "video.safetensors"
    save_file({f"backbone.{k}": v for k, v in donor.state_dict().items()} | {"cls_head.fc_cls.bias": torch.zeros(3)},
              str(video_file))
    resnet = ResNetModel(ResNetConfig(num_channels=3, embedding_size=64, hidden_sizes=[64, 128], depths=[1, 1],
                                      layer_type="basic", downsample_in_first_stage=False))
    audio_file = tmp_path / "resnet.pth"
    torch.save({"state_dict": {f"resnet.{k}": v for k, v in resnet.state_dict().items()}}, audio_file)

    reports = load_pretrained_backbones(model, video=video_file, audio=audio_file)
    assert reports["video"].source_format == "official_video_swin" and not reports["video"].missing_keys
    assert reports["audio"].source_format == "hf_resnet" and not reports["audio"].missing_keys
    assert list(reports["video"].ignored_keys) == ["cls_head.fc_cls.bias"]
    for key, value in donor.state_dict().items():
        assert torch.equal(model.avcanet.video_encoder.state_dict()[key], value), key
    assert torch.equal(model.avcanet.audio_encoder.encoder.stages[1].layers[0].shortcut.convolution.weight,
                       resnet.encoder.stages[1].layers[0].shortcut.convolution.weight)


class Payload:
    """Anything but tensors: unpickling it would run code chosen by the file's author."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_are_loaded_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": Payload()}, protocol=2))
    with pytest.raises(ValueError, match=r"evil\.pth: cannot be read as a weights-only"):
        convert_video_backbone(path, AVCANetConfig())


def test_bad_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert_video_backbone(tmp_path / "missing.pth", AVCANetConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        convert_resnet(tmp_path / "empty", AVCANetConfig())
    with pytest.raises(ValueError, match="not a recognised Swin"):
        convert_video_backbone({"fc.weight": torch.zeros(2, 2)}, AVCANetConfig())
    with pytest.raises(ValueError, match="has no audio_encoder"):
        load_pretrained_backbones(AVCANetForVideoClassification(AVCANetConfig(
            modality="visual", use_glcf=False, use_multitask_loss=False, embed_dim=8, depths=(1,), num_heads=(1,),
            image_size=16, frames_per_snippet=2, num_snippets=2, hidden_size=16, lgf_num_heads=2)),
            audio={"conv1.weight": torch.zeros(1)})


def test_load_video_swin_gives_a_model_that_saves_and_reloads_through_auto_model(tmp_path):
    from transformers import AutoModel

    source = random_state_dict("official_video_swin_t_k400")
    model, report = load_video_swin(source)
    assert report.source_format == "official_video_swin" and not report.missing_keys
    torch.testing.assert_close(model.patch_embed.proj.weight, source["backbone.patch_embed.proj.weight"])
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is VideoSwinModel
    torch.testing.assert_close(loaded.state_dict()["norm.weight"], source["backbone.norm.weight"])
