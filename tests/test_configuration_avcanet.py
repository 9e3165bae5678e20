"""AVCANetConfig: the paper's defaults, a clear error for every impossible combination, a lossless round trip."""

import pytest
from transformers import AutoConfig

import emotions_hf  # noqa: F401  (registers model_type "avcanet" with AutoConfig)
from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.labels import EMOTIONS
from emotions_hf.modeling_avcanet import FeedForward


def test_defaults_are_the_papers():
    config = AVCANetConfig()
    assert (config.num_snippets, config.frames_per_snippet, config.image_size) == (16, 8, 112)
    assert (config.patch_size, config.embed_dim, config.depths, config.num_heads, config.window_size) == (
        (2, 4, 4), 96, (2, 2, 6, 2), (3, 6, 12, 24), (8, 7, 7))
    assert config.drop_path_rate == 0.1 and config.backbone_hidden_size == 768
    assert (config.mfcc_chunk_frames, config.num_mfcc, config.audio_depths) == (256, 32, (3, 4, 6, 3))
    assert (config.audio_stem_kernel, config.audio_stem_stride) == ((7, 1), (2, 1))
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
        ({"fusion": "gated"}, "fusion='gated'.*use_multitask_loss=False"),
        ({"num_heads": (3, 6, 12)}, "depths .* num_heads"),
        ({"window_size": (7, 7)}, "window_size"),
        ({"frames_per_snippet": 7}, "frames_per_snippet=7"),
        ({"image_size": 110}, "image_size=110"),
        ({"embed_dim": 100}, "embed_dim=100"),
        ({"lgf_num_heads": 7}, "lgf_num_heads=7"),
        ({"lgf_window_sizes": ()}, "lgf_window_sizes"),
        ({"lgf_ffn_ratio": 0}, "lgf_ffn_ratio=0"),
        ({"audio_depths": (3, 4, 6)}, "audio_depths"),
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
    assert loaded.window_size == (4, 7, 7) and loaded.lgf_window_sizes == (1, 2, 4)  # tuples again, not lists


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
