"""AVCANetConfig: the paper's defaults, a clear error for every impossible combination, a lossless round trip."""

import json

import pytest
from transformers import AutoConfig

import emotions_hf  # noqa: F401  (registers model_type "avcanet" with AutoConfig)
from emotions_hf.configuration_avcanet import AVCANetAudioConfig, AVCANetConfig
from emotions_hf.configuration_video_swin import VideoSwinConfig
from emotions_hf.labels import EMOTIONS
from emotions_hf.modeling_avcanet import FeedForward


def test_defaults_are_the_papers():
    config = AVCANetConfig()
    vision, audio = config.vision_config, config.audio_config
    assert (config.num_snippets, vision.num_frames, vision.image_size) == (16, 8, 112)
    assert (vision.patch_size, vision.embed_dim, vision.depths, vision.num_heads, vision.window_size) == (
        (2, 4, 4), 96, (2, 2, 6, 2), (3, 6, 12, 24), (8, 7, 7))
    assert vision.drop_path_rate == 0.1 and vision.hidden_size == 768
    assert (audio.num_frames, audio.num_mfcc, audio.depths) == (256, 32, (3, 4, 6, 3))
    assert (audio.stem_kernel, audio.stem_stride, audio.hidden_size) == ((7, 1), (2, 1), 512)
    assert (config.hidden_size, config.lgf_num_heads, config.lgf_dropout) == (512, 8, 0.5)
    assert (config.fusion, config.modality, config.loss_type) == ("mid_concat", "audio-visual", "ep_ce")
    assert config.use_lisf and config.use_glcf and config.use_multitask_loss
    assert config.polarity_gamma == {"positive": 0.7, "neutral": 0.7, "negative": 0.7}
    assert config.id2label == EMOTIONS.id2label
    assert config.label2polarity == {label: EMOTIONS.polarity[label] for label in EMOTIONS.labels}


@pytest.mark.parametrize(
    "settings, names",
    [
        ({"fusion": "concat"}, "fusion='concat'"),
        ({"modality": "video"}, "modality='video'"),
        ({"loss_type": "focal"}, "loss_type='focal'"),
        ({"modality": "visual", "use_multitask_loss": False}, "set use_glcf=False"),
        ({"modality": "audio", "use_glcf": False}, "use_multitask_loss=False"),
        ({"fusion": "gated"}, "fusion='gated'.*multitask_features='encoder' or use_multitask_loss=False"),
        ({"num_heads": (3, 6, 12)}, "depths .* num_heads"),
        ({"window_size": (7, 7)}, "window_size"),
        ({"frames_per_snippet": 7}, "vision_config: .*num_frames=7"),
        ({"image_size": 110}, "image_size=110"),
        ({"embed_dim": 100}, "embed_dim=100"),
        ({"lgf_num_heads": 7}, "lgf_num_heads=7"),
        ({"lgf_window_sizes": ()}, "lgf_window_sizes"),
        ({"lgf_ffn_ratio": 0}, "lgf_ffn_ratio=0"),
        ({"gradient_modulation_alpha": -0.1}, "gradient_modulation_alpha=-0.1 must be >= 0"),
        ({"multitask_features": "fused"}, "multitask_features='fused' is not one of"),
        ({"audio_modality_dropout": 1.0}, "audio_modality_dropout=1.0 must be in \\[0, 1\\)"),
        ({"audio_modality_dropout": 0.2, "modality": "visual", "use_glcf": False, "use_multitask_loss": False},
         "audio_modality_dropout drops the sound.*modality='visual' set audio_modality_dropout=0"),
        ({"multitask_features": "fused", "fusion": "gated"}, "multitask_features='fused' is not one of"),
        ({"multitask_features": "both", "fusion": "gated"}, "fusion='gated'.*multitask_features='encoder'"),
        ({"gradient_modulation_alpha": 0.5, "fusion": "gated", "use_multitask_loss": False},
         "gradient modulation .* fusion='gated'"),
        ({"gradient_modulation_alpha": 0.5, "modality": "visual", "use_glcf": False, "use_multitask_loss": False},
         "gradient modulation .* modality='visual'"),
        ({"audio_depths": (3, 4, 6)}, "audio_config: .*depths .* hidden_sizes"),
        ({"num_mfcc": 0}, "num_mfcc"),
        ({"label2polarity": {"Excitation": "positive"}}, "label2polarity .* for \\['Fear'"),
        ({"polarity_gamma": {"positive": 0.7}}, "polarity_gamma misses \\['neutral', 'negative'\\]"),
        ({"label2polarity": EMOTIONS.polarity, "default_polarity_labels": ("Joy",)},
         "default_polarity_labels names \\['Joy'\\]"),
    ],
)
def test_impossible_combinations_name_what_to_change(settings, names):
    with pytest.raises(ValueError, match=f"AVCANetConfig: .*{names}"):
        AVCANetConfig(**settings)


def test_single_modality_builds_once_the_cross_modal_parts_are_off():
    config = AVCANetConfig(modality="visual", use_glcf=False, use_multitask_loss=False)
    assert config.uses_video and not config.uses_audio


def test_round_trip_through_save_pretrained_and_auto_config(tmp_path):
    config = AVCANetConfig(num_snippets=8, window_size=(4, 7, 7), lgf_window_sizes=(1, 2, 4), fusion="sum",
                           lgf_ffn_ratio=2.0, polarity_gamma={"positive": 0.5, "neutral": 0.0, "negative": 0.9})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is AVCANetConfig
    assert {**loaded.to_dict(), "_name_or_path": ""} == config.to_dict()
    assert loaded.vision_config.window_size == (4, 7, 7) and loaded.lgf_window_sizes == (1, 2, 4)  # tuples, not lists


def test_lgf_ffn_ratio_sets_the_feed_forward_width():
    assert FeedForward(AVCANetConfig())[0].out_features == 2048
    assert FeedForward(AVCANetConfig(lgf_ffn_ratio=2.0))[0].out_features == 1024


def test_num_labels_without_a_polarity_map_gets_the_default_polarity_and_ce():
    config = AVCANetConfig(num_labels=3)
    assert config.label2polarity == dict.fromkeys(["LABEL_0", "LABEL_1", "LABEL_2"], "neutral")
    assert config.default_polarity_labels == ("LABEL_0", "LABEL_1", "LABEL_2")
    assert config.loss_type == "ep_ce" and not config.uses_ep_ce


def test_full_polarity_maps_keep_ep_ce():
    assert AVCANetConfig().uses_ep_ce and AVCANetConfig().default_polarity_labels == ()
    assert not AVCANetConfig(loss_type="ce").uses_ep_ce


def test_two_label_fine_tune_round_trips(tmp_path):
    # transformers leaves the id2label of num_labels=2 (its default) out of config.json.
    config = AVCANetConfig(num_labels=2, label2polarity={"LABEL_0": "positive", "LABEL_1": "negative"})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.id2label == {0: "LABEL_0", 1: "LABEL_1"} and loaded.polarity_ids() == [0, 2]
    assert loaded.uses_ep_ce


# The flat config.json of version 0.1 (every setting at the top level), as its save_pretrained wrote it.
FLAT_V01 = {
    "model_type": "avcanet", "num_snippets": 4, "frames_per_snippet": 4, "image_size": 32, "num_channels": 3,
    "patch_size": [2, 4, 4], "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": [2, 4, 4],
    "mlp_ratio": 2.0, "qkv_bias": True, "drop_path_rate": 0.0, "attention_dropout": 0.0, "hidden_dropout": 0.0,
    "layer_norm_eps": 1e-5, "mfcc_chunk_frames": 32, "num_mfcc": 16, "audio_depths": [1, 1],
    "audio_hidden_sizes": [64, 128], "audio_stem_kernel": [7, 1], "audio_stem_stride": [2, 1], "hidden_size": 64,
    "lgf_window_sizes": [1, 2], "lgf_num_heads": 4, "lgf_dropout": 0.5, "lgf_ffn_ratio": 4.0, "fusion": "mid_concat",
    "use_lisf": True, "use_glcf": True, "modality": "audio-visual", "loss_type": "ep_ce",
    "label2polarity": dict(EMOTIONS.polarity), "default_polarity_labels": [],
    "polarity_gamma": {"positive": 0.7, "neutral": 0.7, "negative": 0.7}, "use_multitask_loss": True,
    "initializer_range": 0.02, "id2label": {str(i): label for i, label in EMOTIONS.id2label.items()},
    "label2id": dict(EMOTIONS.label2id), "architectures": ["AVCANetForVideoClassification"],
}


def test_flat_config_of_version_0_1_loads_into_the_sub_configs(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(FLAT_V01))
    loaded = AutoConfig.from_pretrained(tmp_path)
    vision, audio = loaded.vision_config, loaded.audio_config
    assert type(vision) is VideoSwinConfig and type(audio) is AVCANetAudioConfig
    assert (vision.num_frames, vision.image_size, vision.embed_dim, vision.depths, vision.window_size) == (
        4, 32, 16, (1, 1), (2, 4, 4))
    assert (audio.num_frames, audio.num_mfcc, audio.depths, audio.hidden_sizes) == (32, 16, (1, 1), (64, 128))
    assert (loaded.num_snippets, loaded.hidden_size, loaded.lgf_num_heads) == (4, 64, 4)
    for flat in ("image_size", "frames_per_snippet", "audio_depths", "mfcc_chunk_frames"):
        assert not hasattr(loaded, flat)  # moved, not kept twice
    loaded.save_pretrained(tmp_path / "again")  # saved in the nested form, which reads back the same
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert "image_size" not in saved and saved["vision_config"]["image_size"] == 32
    again = AutoConfig.from_pretrained(tmp_path / "again")
    assert {**again.to_dict(), "_name_or_path": ""} == {**loaded.to_dict(), "_name_or_path": ""}


def test_sub_configs_are_configs_or_dicts_that_flat_settings_override():
    config = AVCANetConfig(vision_config={"embed_dim": 16, "depths": (1, 1), "num_heads": (1, 2)},
                           audio_config=AVCANetAudioConfig(num_mfcc=20))
    assert config.vision_config.embed_dim == 16 and config.audio_config.num_mfcc == 20
    assert AVCANetConfig(vision_config={"embed_dim": 16, "image_size": 64}, embed_dim=48).vision_config.to_dict() == (
        VideoSwinConfig(embed_dim=48, image_size=64).to_dict())  # a flat setting overrides the dict's
    with pytest.raises(ValueError, match="set them on the audio_config you pass"):
        AVCANetConfig(audio_config=AVCANetAudioConfig(), num_mfcc=20)
