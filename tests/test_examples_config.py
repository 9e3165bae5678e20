"""examples/train.py's model config: the preset, then --config_overrides, flat or per sub-config."""

import pytest
from presets import SMALL_CONFIG
from train import ModelArguments, build_config

from emotions_hf.configuration_avcanet import AVCANetConfig


def test_overrides_change_single_fields_of_the_small_preset():
    overrides = "vision_config={'image_size': 48},drop_path_rate=0.0,num_mfcc=8,lgf_dropout=0.1"
    config = build_config(ModelArguments(config_name="small", config_overrides=overrides), {})
    vision, audio = config.vision_config, config.audio_config
    assert (vision.image_size, vision.embed_dim, vision.depths, vision.drop_path_rate) == (48, 24, (1, 1), 0.0)
    assert (audio.num_mfcc, audio.num_frames, audio.hidden_sizes) == (8, SMALL_CONFIG["audio_config"]["num_frames"], (16, 32))
    assert (config.num_snippets, config.hidden_size, config.lgf_dropout) == (4, 32, 0.1)


def test_single_modality_override_turns_off_the_cross_modal_parts():
    config = build_config(ModelArguments(config_name="small", config_overrides="modality=visual"), {})
    assert config.modality == "visual" and not config.use_glcf and not config.use_multitask_loss


def test_single_modality_override_turns_off_every_cross_modal_setting_it_does_not_ask_for(tmp_path):
    """A saved audio-visual config with modality dropout and OGM trains one modality alone on `modality=...`;
    a cross-modal setting the overrides ask for explicitly is kept, so the config names the conflict."""
    path = tmp_path / "config.json"
    AVCANetConfig(audio_modality_dropout=0.3, gradient_modulation_alpha=0.2).to_json_file(path)
    config = build_config(ModelArguments(config_name=str(path), config_overrides="modality=audio"), {})
    assert config.modality == "audio" and not config.use_glcf and not config.use_multitask_loss
    assert (config.audio_modality_dropout, config.gradient_modulation_alpha) == (0.0, 0.0)
    with pytest.raises(ValueError, match="audio_modality_dropout drops the sound"):
        build_config(ModelArguments(config_name=str(path),
                                    config_overrides="modality=audio,audio_modality_dropout=0.3"), {})
