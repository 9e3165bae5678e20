import io
import json
import pickle

import numpy as np
import pytest
import torch
from media_samples import grey, write

import emotions_hf  # noqa: F401  (registers the Auto classes)
from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.decoding import sample_frame_indices
from emotions_hf.errors import VideoReadError
from emotions_hf.feature_extraction_avcanet import AVCANetFeatureExtractor
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.video_processing_avcanet import AVCANetVideoProcessor

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def small_processor(**kwargs):
    settings = {"num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "mfcc_frames": 64}
    settings.update(kwargs)
    return AVCANetProcessor(**settings)


def without_auto_map(settings: dict) -> dict:
    """Saving adds `auto_map` (where the code lives) to the saved object: compare the settings only."""
    return {key: without_auto_map(value) if isinstance(value, dict) else value
            for key, value in settings.items() if key != "auto_map"}


def frame_indices(pixel_values: torch.Tensor) -> np.ndarray:
    """Frame index of each (normalised, grey) frame of a (s, T, 3, H, W) eval clip."""
    red = pixel_values[..., 0, :, :].mean(dim=(-2, -1)).numpy() * STD[0] + MEAN[0]
    return np.rint((red * 255 - 4) / 8).astype(int)


@pytest.fixture
def clip(tmp_path):
    return write(tmp_path / "clip.mp4", num_frames=30, fps=25, size=(48, 64))


def test_output_layout(clip):
    batch = small_processor()([clip, clip])
    assert batch["pixel_values"].shape == (2, 4, 2, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["input_features"].shape == (2, 4, 16, 32) and batch["input_features"].dtype == torch.float32
    assert batch["audio_mask"].tolist() == [True, True]
    # eval takes the centred pair of each 0.3 s segment: frames 3-4, 10-11, 18-19, 25-26
    np.testing.assert_array_equal(frame_indices(batch["pixel_values"][0]), [[3, 4], [10, 11], [18, 19], [25, 26]])
    np.testing.assert_allclose(batch["pixel_values"][0, 0, 0, 1].mean() * STD[1] + MEAN[1], grey(3) / 255, atol=0.02)


def test_full_size_defaults_match_the_model_contract(clip):
    config = AVCANetConfig()
    processor = AVCANetProcessor.from_model_config(config)
    batch = processor(clip)
    assert batch["pixel_values"].shape == (1, 16, 8, 3, 112, 112)
    assert batch["input_features"].shape == (1, 16, config.audio_config.num_frames, config.audio_config.num_mfcc)


def test_input_features_are_the_mfcc_cut_into_snippet_chunks(clip):
    from emotions_hf.audio_features import MFCC, fit_frames, read_audio

    processor = small_processor()
    features = processor(clip)["input_features"][0]
    expected = fit_frames(MFCC()(torch.from_numpy(read_audio(clip, 44100))), 64)  # (32, 64)
    torch.testing.assert_close(features.reshape(64, 32), expected.T)


def test_no_audio_track_gives_zeros_and_false_mask(tmp_path, clip):
    silent = write(tmp_path / "silent.mp4", num_frames=10, channels=0)
    batch = small_processor()([clip, silent])
    assert batch["audio_mask"].tolist() == [True, False]
    assert (batch["input_features"][1] == 0).all() and batch["input_features"][0].abs().sum() > 0


def test_every_input_kind_gives_the_same_tensors(clip):
    processor = small_processor()
    reference = processor(clip)
    data = clip.read_bytes()
    for item in (str(clip), data, io.BytesIO(data), {"path": str(clip), "bytes": data}, {"video": str(clip)}):
        batch = processor(item)
        for key in reference:
            torch.testing.assert_close(batch[key], reference[key])


def test_decoded_frames_and_waveform_inputs(clip):
    processor = small_processor()
    frames = np.stack([np.full((40, 50, 3), grey(i), np.uint8) for i in range(30)])
    batch = processor(frames)
    assert set(batch) == {"pixel_values", "input_features", "audio_mask"} and not batch["audio_mask"][0]
    np.testing.assert_array_equal(frame_indices(batch["pixel_values"][0]), [[3, 4], [10, 11], [18, 19], [25, 26]])
    waveform = np.sin(np.linspace(0, 2000, 44100)).astype(np.float32)
    with_audio = processor({"frames": frames, "audio": waveform, "sample_rate": 44100})
    assert with_audio["audio_mask"][0] and with_audio["input_features"].abs().sum() > 0


def test_training_is_random_but_seeded(clip):
    processor = small_processor()
    first = processor([clip, clip], training=True, seed=1)["pixel_values"]
    again = processor([clip, clip], training=True, seed=1)["pixel_values"]
    other = processor([clip, clip], training=True, seed=2)["pixel_values"]
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # each video of a batch draws its own positions


def test_training_augmentations_all_occur(clip):
    from emotions_hf.video_transforms import Augmentation

    rng = np.random.default_rng(0)
    draws = [Augmentation.draw(rng, (1.0, 0.5), 0.3, 20.0, 0.2) for _ in range(400)]
    kinds = [d.kind for d in draws]
    assert 0.24 < 1 - kinds.count(None) / len(kinds) < 0.36
    assert {"flip", "rotate", "brightness"} <= set(kinds)
    assert all(-20 <= d.amount <= 20 for d in draws if d.kind == "rotate")
    assert {d.position for d in draws} == {"c", "tl", "tr", "bl", "br"}


def test_clip_range_restricts_frames_and_audio(tmp_path):
    path = write(tmp_path / "long.mp4", num_frames=30, fps=10, audio_seconds=3.0)  # frames i at i / 10 s
    processor = small_processor(num_snippets=2, mfcc_frames=32)
    batch = processor([path, path], clip_range=[(1.0, 2.0), None])
    np.testing.assert_array_equal(frame_indices(batch["pixel_values"][0]), [[11, 12], [16, 17]])
    np.testing.assert_array_equal(frame_indices(batch["pixel_values"][1]), [[6, 7], [21, 22]])
    whole, window = (processor(path, clip_range=r)["input_features"] for r in (None, (1.0, 2.0)))
    assert not torch.allclose(whole, window)  # the MFCC follows the window too
    with pytest.raises(ValueError, match="clip_range"):
        processor([path, path], clip_range=[(0.0, 1.0)])


def test_broken_video_fails_the_whole_batch_naming_it(tmp_path, clip):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        small_processor()([clip, broken])


def test_visual_only_processor_skips_audio(clip):
    batch = small_processor(modality="visual")(clip)
    assert set(batch) == {"pixel_values"}
    audio = small_processor(modality="audio")(clip)
    assert set(audio) == {"input_features", "audio_mask"}


def test_probe_and_validation(clip):
    processor = small_processor()
    info = processor.probe({"video": str(clip), "proxy": None, "mfcc": None})
    assert (info.num_frames, info.has_audio, info.width, info.height) == (30, True, 64, 48)
    with pytest.raises(ValueError, match="multiple of num_snippets"):
        AVCANetProcessor(num_snippets=3, mfcc_frames=64)
    with pytest.raises(ValueError, match="backend"):
        AVCANetProcessor(backend="opencv")


def test_save_load_and_auto_classes(tmp_path, clip):
    from transformers import AutoFeatureExtractor, AutoProcessor

    processor = small_processor(backend="pyav", brightness=0.1)
    processor.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "processor_config.json").exists()
    for loader in (AVCANetProcessor, AutoProcessor):
        loaded = loader.from_pretrained(tmp_path / "saved")
        assert type(loaded) is AVCANetProcessor
        assert without_auto_map(loaded.to_dict()) == without_auto_map(processor.to_dict())
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "saved")
    assert type(extractor) is AVCANetFeatureExtractor
    assert extractor.to_dict() == processor.feature_extractor.to_dict()
    restored = pickle.loads(pickle.dumps(processor))
    torch.testing.assert_close(restored(clip)["pixel_values"], processor(clip)["pixel_values"])


def test_works_in_dataloader_workers(clip):
    processor = small_processor()

    class Videos(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return {k: v[0] for k, v in processor(clip, training=True, seed=index).items()}

    loader = torch.utils.data.DataLoader(Videos(), batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["pixel_values"].shape == (2, 4, 2, 3, 32, 32)
    torch.testing.assert_close(batches[1]["pixel_values"][1], processor(clip, training=True, seed=3)["pixel_values"][0])


@pytest.mark.slow
def test_three_minute_video(tmp_path):
    path = write(tmp_path / "long.mp4", num_frames=4500, fps=25, audio_seconds=180.0, size=(32, 48),
                 video_options={"preset": "ultrafast"})
    batch = AVCANetProcessor(image_size=32)(path)
    assert batch["pixel_values"].shape == (1, 16, 8, 3, 32, 32) and batch["audio_mask"].all()
    expected = sample_frame_indices(np.arange(4500) / 25, 16, 8).indices  # segments of 11.25 s
    assert expected[0, 0] == 137 and expected[-1, -1] == 4362
    np.testing.assert_array_equal(frame_indices(batch["pixel_values"][0]), expected % 32)  # grey repeats every 32


def test_sub_processors_save_under_their_own_file_names_and_work_alone(tmp_path, clip):
    processor = small_processor()
    processor.video_processor.save_pretrained(tmp_path / "video")
    processor.feature_extractor.save_pretrained(tmp_path / "audio")
    assert (tmp_path / "video" / "video_preprocessor_config.json").exists()
    assert (tmp_path / "audio" / "preprocessor_config.json").exists()
    video_processor = AVCANetVideoProcessor.from_pretrained(tmp_path / "video")
    extractor = AVCANetFeatureExtractor.from_pretrained(tmp_path / "audio")
    torch.testing.assert_close(video_processor(clip)["pixel_values"], processor(clip)["pixel_values"])
    together = processor(clip)
    alone = extractor(str(clip))
    torch.testing.assert_close(alone["input_features"], together["input_features"])
    assert alone["audio_mask"].tolist() == together["audio_mask"].tolist() == [True]


def test_video_processor_loads_through_auto_video_processor_where_torchvision_is(tmp_path):
    """transformers' AutoVideoProcessor needs torchvision, which the CPU setup here does not install."""
    pytest.importorskip("torchvision")
    from transformers import AutoVideoProcessor

    small_processor().save_pretrained(tmp_path)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is AVCANetVideoProcessor


def test_folder_saved_by_version_0_1_still_loads(tmp_path, clip):
    """Version 0.1 saved one flat preprocessor_config.json naming AVCANetProcessor."""
    flat = {"num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "mfcc_frames": 64, "num_mfcc": 32,
            "sample_rate": 44100, "backend": "auto", "modality": "audio-visual",
            "feature_extractor_type": "AVCANetProcessor", "processor_class": "AVCANetProcessor"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(flat))
    loaded = AVCANetProcessor.from_pretrained(tmp_path)
    assert (loaded.video_processor.num_snippets, loaded.video_processor.image_size) == (4, 32)
    assert (loaded.feature_extractor.num_snippets, loaded.feature_extractor.mfcc_frames) == (4, 64)
    assert loaded(clip)["pixel_values"].shape == (1, 4, 2, 3, 32, 32)


def test_processor_and_model_mismatch_names_both_values():
    config = AVCANetConfig(num_snippets=4, image_size=32, frames_per_snippet=2, mfcc_chunk_frames=16)
    AVCANetProcessor.from_model_config(config).check_model_config(config)
    with pytest.raises(ValueError, match=r"processor video_processor.image_size=64 but model "
                                         r"vision_config.image_size=32"):
        AVCANetProcessor.from_model_config(config, image_size=64).check_model_config(config)
    with pytest.raises(ValueError, match=r"feature_extractor.mfcc_chunk_frames=32 but model audio_config.num_frames=16"):
        AVCANetProcessor.from_model_config(config, mfcc_frames=128).check_model_config(config)
    with pytest.raises(ValueError, match=r"modality='visual' makes no audio input"):
        AVCANetProcessor.from_model_config(config, modality="visual").check_model_config(config)
    with pytest.raises(ValueError, match="num_snippets=4 snippets, the feature extractor into 2"):
        AVCANetProcessor(AVCANetVideoProcessor(num_snippets=4), AVCANetFeatureExtractor(num_snippets=2))


def test_return_tensors_none_gives_one_numpy_array_per_video(clip):
    processor = small_processor()
    batch = processor([clip, clip], return_tensors=None)
    assert isinstance(batch["pixel_values"], list) and len(batch["pixel_values"]) == 2
    assert all(isinstance(value, np.ndarray) for value in batch["pixel_values"] + batch["input_features"])
    np.testing.assert_allclose(batch["pixel_values"][0], processor(clip)["pixel_values"][0].numpy())
