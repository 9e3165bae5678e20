"""The learnability suite's task generator and a fast subset of `bench/learnability.py`."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emotions_hf.audio_features import MFCC, MFCCSettings, read_audio
from emotions_hf.data.cue_tasks import (
    LABELS,
    PICTURE_FAMILIES,
    SOUND_FAMILIES,
    cues_of,
    generate_task,
    parse_task,
    render_picture,
    render_sound,
)
from emotions_hf.decoding import probe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_parse_task_names_the_families():
    assert parse_task("pattern-band") == ("pattern", "band")
    with pytest.raises(ValueError, match="picture in"):
        parse_task("band-pattern")


@pytest.mark.parametrize("family", PICTURE_FAMILIES)
def test_picture_families_are_deterministic_and_differ_by_value(family):
    frames = [render_picture(np.random.default_rng(3), family, value, 6, 32) for value in range(3)]
    again = render_picture(np.random.default_rng(3), family, 1, 6, 32)
    assert frames[0].shape == (6, 32, 32, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[1], again)
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


@pytest.mark.parametrize("family", SOUND_FAMILIES)
def test_sound_families_are_bounded_and_deterministic(family):
    sound = render_sound(np.random.default_rng(5), family, 1, 0.5)
    np.testing.assert_array_equal(sound, render_sound(np.random.default_rng(5), family, 1, 0.5))
    assert sound.dtype == np.float32 and np.abs(sound).max() <= 1.0 and sound.std() > 0.01


def _spectral_centroid(samples, rate=44_100):
    spectrum = np.abs(np.fft.rfft(samples)) ** 2  # power: the light noise floor barely counts
    return float((spectrum * np.fft.rfftfreq(len(samples), 1 / rate)).sum() / spectrum.sum())


def test_sound_cues_are_what_their_names_say():
    rng = np.random.default_rng(0)
    low, high = (render_sound(rng, "band", v, 0.5) for v in (0, 1))
    assert _spectral_centroid(low) < 1000 < _spectral_centroid(high)
    white, brown = (render_sound(rng, "noise", v, 0.5) for v in (0, 1))
    assert _spectral_centroid(brown) < 0.3 * _spectral_centroid(white)
    rising, falling = (np.abs(render_sound(rng, "envelope", v, 1.0)) for v in (0, 1))
    assert rising[-4000:].mean() > 10 * rising[:4000].mean()
    assert falling[:4000].mean() > 10 * falling[-4000:].mean()
    rising, falling = (render_sound(rng, "glide", v, 1.0) for v in (0, 1))
    assert _spectral_centroid(rising[-8000:]) > 2 * _spectral_centroid(rising[:8000])
    assert _spectral_centroid(falling[:8000]) > 2 * _spectral_centroid(falling[-8000:])


def _light_share(frame: np.ndarray) -> float:
    """Share of a frame's pixels in the light discs: far brighter than the (dark) background's median."""
    brightness = frame.astype(int).sum(-1)
    return float((brightness > np.median(brightness) + 150).mean())


def test_picture_cues_are_what_their_names_say():
    """`count`: 1, 2 or 3 separate discs of one size; `size`: one disc whose area grows with the value."""
    for value in range(3):
        for k in range(4):
            frame = render_picture(np.random.default_rng(10 * value + k), "count", value, 1, 64)[0]
            assert _visible_discs(frame, (0, 0, 64, 64)) == value + 1
    shares = [[_light_share(render_picture(np.random.default_rng(k), "size", value, 1, 64)[0]) for k in range(4)]
              for value in range(3)]
    assert max(shares[0]) < 0.5 * min(shares[1]) and max(shares[1]) < 0.5 * min(shares[2])


def test_generate_task_writes_a_folder_that_prepare_reads(tmp_path):
    from emotions_hf.data.prepare import prepare

    videos = generate_task(tmp_path / "source", "count-rhythm", videos_per_class=5, seed=4, duration=(1.0, 1.2),
                           size=32)
    assert [v.label for v in videos[:6]] == list(LABELS)
    assert [(v.picture, v.sound) for v in videos[:6]] == [cues_of(i) for i in range(6)]
    first = (tmp_path / "source" / videos[0].relative_path).read_bytes()
    info = probe(str(tmp_path / "source" / videos[0].relative_path))
    assert info.has_audio and info.width == 32
    manifest = json.loads((tmp_path / "source" / "task.json").read_text())
    assert manifest["task"] == "count-rhythm" and len(manifest["videos"]) == 30
    # the same arguments write the same bytes
    generate_task(tmp_path / "again", "count-rhythm", videos_per_class=5, seed=4, duration=(1.0, 1.2), size=32)
    assert (tmp_path / "again" / videos[0].relative_path).read_bytes() == first
    prepare(tmp_path / "source", tmp_path / "dataset", seed=0, progress=False, variants=["all"])
    from emotions_hf.data.loading import load_prepared

    data = load_prepared(tmp_path / "dataset", "all")
    assert len(data["train"]) + len(data["test"]) == 30 and len(data["test"]) >= 6


def test_the_band_survives_aac_and_mfcc(tmp_path):
    """The sound cue reaches the model's input: low and high bands differ in the MFCC read back from AAC."""
    videos = generate_task(tmp_path, "colour-band", videos_per_class=1, seed=1, duration=(1.0, 1.0), size=32)
    mfcc = MFCC(MFCCSettings(num_mfcc=8))
    first = {}
    for video in videos[:2]:  # sound values 0 and 1
        samples = read_audio(str(tmp_path / video.relative_path))
        first[video.sound] = mfcc(torch.from_numpy(samples))[1].mean().item()
    assert first[0] > first[1] + 20  # energy low in frequency lifts the first cepstral coefficient


def test_the_small_configs_sound_spans_the_clip(tmp_path):
    """The small config's MFCC snippets see most of a loudness change that runs over a whole 3-4 s clip, as the
    paper's 4096 frames cover a typical eMotions clip. At 16 frames a snippet (0.74 s of the clip's centre) they saw
    a fifth to a third of it, and an audio-only model read the envelope family on 0.83-0.90 of the test videos."""
    import learnability
    from presets import SMALL_CONFIG

    from emotions_hf import AVCANetConfig, AVCANetProcessor

    videos = generate_task(tmp_path, "colour-envelope", videos_per_class=1, seed=3, duration=(3.2, 4.0), size=32)
    processor = AVCANetProcessor.from_model_config(AVCANetConfig(**SMALL_CONFIG),
                                                   **learnability.LEARNABILITY_PROCESSOR)
    mfcc = MFCC(MFCCSettings(num_mfcc=SMALL_CONFIG["audio_config"]["num_mfcc"]))
    for video in videos:
        path = str(tmp_path / video.relative_path)
        snippets = processor(videos=path, return_tensors="pt")["input_features"][0].mean(1)  # (s, num_mfcc)
        quarters = mfcc(torch.from_numpy(read_audio(path))).tensor_split(4, dim=1)  # the whole clip
        whole_change = (quarters[-1].mean(1) - quarters[0].mean(1)).norm()
        assert (snippets[-1] - snippets[0]).norm() >= 0.6 * whole_change, video


def test_fast_learnability_subset(tmp_path):
    """A tiny colour x band task, a few epochs: the fused model must beat the best single modality's ceiling
    (0.5), which only a model that uses both the picture and the sound can; the audio-only model must learn
    its cue (well above chance 1/6) without reaching what no sound-only model can reach on this test set."""
    import learnability

    dataset = learnability.prepared_task(tmp_path, "colour-band", videos_per_class=10, data_seed=0,
                                         duration=(1.0, 1.5), size=32)
    common = {"epochs": 10, "seed": 1, "training_overrides": {"dataloader_num_workers": 0, "logging_steps": 50}}
    fused = learnability.train_and_evaluate(dataset, "audio-visual", tmp_path / "av", int8=True, **common)
    audio = learnability.train_and_evaluate(dataset, "audio", tmp_path / "audio", **common)
    assert fused["accuracy"] >= 0.75, fused
    assert 0.0 <= fused["fused_picture_accuracy"] <= 1.0 and 0.0 <= fused["fused_sound_accuracy"] <= 1.0, fused
    if "int8_accuracy" in fused:  # absent only where this torch has no int8 kernels
        # the int8 copy of the same trained model: it may flip a near-tie, not a whole class
        assert fused["int8_agreement"] >= 0.75 and abs(fused["int8_accuracy"] - fused["accuracy"]) <= 0.25, fused
    # Each test video's sound is shared by 3 classes: the best a sound-only model can do is guess among them.
    # With 2 test videos per class, that bound is max over the 2 bands of the share predictable = 1/3 + luck;
    # any value above 0.6 would mean the sound leaks the picture.
    assert 0.25 <= audio["accuracy"] <= 0.6, audio


def test_evaluation_set_adds_an_independent_draw_of_unseen_videos(tmp_path):
    """The suite's extra held-out videos: the split's test videos plus every video of another draw of the task,
    none of them a training video or a repeat."""
    import hashlib

    import learnability

    from emotions_hf.data.loading import load_prepared

    tiny = {"duration": (1.0, 1.2), "size": 32}
    dataset = learnability.prepared_task(tmp_path, "pattern-band", videos_per_class=4, data_seed=0, **tiny)
    split = load_prepared(dataset, "all")
    assert len(learnability.evaluation_set(tmp_path, "pattern-band", dataset, 0, 0, **tiny)) == len(split["test"])
    test_set = learnability.evaluation_set(tmp_path, "pattern-band", dataset, 3, 0, **tiny)
    assert len(test_set) == len(split["test"]) + 3 * len(LABELS)
    assert sorted(test_set["label"]) == sorted([*split["test"]["label"], *range(len(LABELS)), *range(len(LABELS)),
                                                *range(len(LABELS))])

    def digests(rows):
        return {hashlib.sha256(Path(video["path"]).read_bytes()).hexdigest() for video in rows["video"]}

    assert not digests(test_set) & digests(split["train"])
    assert len(digests(test_set)) == len(test_set)  # the other draw repeats no video either
    with pytest.raises(ValueError, match="0 \\(none\\) or 2 or more"):
        learnability.evaluation_set(tmp_path, "pattern-band", dataset, 1, 0, **tiny)


def test_cached_clip_trainer_caches_once_and_learns_an_easy_task(tmp_path, monkeypatch):
    """bench/learnability_cached.py: the processor's clips are written once (a second call finds the file; another
    processor setting or model config override gets a file of its own, with its own shapes) and the plain-loop small
    recipe learns colour x band as the Trainer does in the fast subset; its report carries the visual term's picture
    accuracy on the training clips and the probe of F_v."""
    import learnability_cached

    options = {"videos_per_class": 10, "duration": (1.0, 1.5), "size": 32}
    path = learnability_cached.cache_clips(tmp_path, "colour-band", copies=2, **options)
    written = path.stat().st_mtime_ns
    assert learnability_cached.cache_clips(tmp_path, "colour-band", copies=2, **options) == path
    assert path.stat().st_mtime_ns == written
    with monkeypatch.context() as patch:
        patch.setattr(learnability_cached, "LEARNABILITY_PROCESSOR", {"crop_scales": (1.0, 0.5)})
        other = learnability_cached.cache_clips(tmp_path, "colour-band", copies=2, **options)
    assert other != path and other.exists() and path.stat().st_mtime_ns == written
    fewer = learnability_cached.cache_clips(tmp_path, "colour-band", copies=2, config_overrides={"num_snippets": 2},
                                            **options)
    assert fewer not in (path, other) and torch.load(fewer)["test"]["pixel_values"].shape[2] == 2
    clips = torch.load(path)
    train, test = clips["train"], clips["test"]
    assert train["pixel_values"].shape[:2] == (2, len(train["labels"])) and test["pixel_values"].shape[0] == 1
    assert train["audio_mask"].all() and not torch.equal(train["pixel_values"][0], train["pixel_values"][1])

    result = learnability_cached.train_cached(clips, seed=1, epochs=10, trace_every=5)
    assert result["accuracy"] >= 0.75, result
    assert result["fused_picture_accuracy"] >= 0.75 and result["fused_sound_accuracy"] >= 0.75, result
    assert [point["epoch"] for point in result["trace"]] == [5, 10]
    assert 0.0 <= result["train_fused_picture_accuracy"] <= 1.0 and len(result["probe_picture"]) == 1
    assert "AV" in learnability_cached.summary_line("colour-band", result)
    with pytest.raises(ValueError, match="audio-visual model only"):
        learnability_cached.train_cached(clips, seed=1, epochs=1, config_overrides={"modality": "visual"})


def test_cue_accuracies_score_each_cue_of_the_predicted_class():
    import learnability

    # classes 2·picture + sound: 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1), 4 = (2, 0), 5 = (2, 1)
    scores = learnability.cue_accuracies(np.array([0, 1, 2, 5]), np.array([0, 0, 3, 4]))
    assert scores == {"picture_accuracy": 1.0, "sound_accuracy": 0.25}
    table = learnability.format_table([{"task": "pattern-band", "audio-visual": [0.95], "visual": [0.3],
                                        "audio": [0.3], "visual_cue": [1.0], "audio_cue": [0.8],
                                        "fused_visual_cue": [0.5], "fused_audio_cue": [1.0],
                                        learnability.INT8_COLUMN: [0.85]}], "t")
    row = table.splitlines()[3].split()
    assert row[1:9] == ["0.95", "0.30*", "0.30", "1.00", "0.80*", "0.50*", "1.00", "0.85*"]


def test_fused_cue_accuracies_read_each_cue_from_its_own_logit_term():
    import learnability

    labels = np.array([0, 3, 4, 5])  # (picture, sound) = (0, 0), (1, 1), (2, 0), (2, 1)
    visual = np.full((4, 6), -5.0)
    audio = np.full((4, 6), -5.0)
    for row, (picture, sound) in enumerate([(0, 0), (1, 1), (0, 0), (2, 1)]):
        visual[row, 2 * picture:2 * picture + 2] = 3.0  # the picture value's two classes, whatever the sound
        audio[row, sound::2] = 3.0  # the sound value's three classes, whatever the picture
    # the top class (5) has sound 1, but the three classes of sound 0 together outweigh it (log-sum-exp)
    audio[3] = np.array([5.0, 0.0, 5.0, 0.0, 5.0, 5.5])
    scores = learnability.fused_cue_accuracies(visual, audio, labels)
    assert scores == {"fused_picture_accuracy": 0.75, "fused_sound_accuracy": 0.75}


def _small_model(**overrides):
    from presets import SMALL_CONFIG

    from emotions_hf.configuration_avcanet import AVCANetConfig
    from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

    torch.manual_seed(0)
    return AVCANetForVideoClassification(AVCANetConfig(**{**SMALL_CONFIG, **overrides})).eval()


def test_paper_defaults_keep_the_residual_relu_and_the_plain_video_projection():
    from emotions_hf.configuration_avcanet import AVCANetConfig

    config = AVCANetConfig()
    assert config.lgf_residual_relu is True and config.video_projection_norm == "none"
    model = _small_model(lgf_residual_relu=True, video_projection_norm="none")  # the preset turns both off
    assert model.avcanet.video_projection_norm is None
    block = model.avcanet.lisf.levels[0].temporal["video"]
    assert bool((block(torch.randn(2, 4, 32)) >= 0).all())  # ReLU(x + update)


def test_issue14_switches_change_the_model():
    model = _small_model(lgf_residual_relu=False, video_projection_norm="layernorm")
    block = model.avcanet.lisf.levels[0].temporal["video"]
    hidden = torch.randn(2, 4, 32)
    update = block.pointwise(torch.relu(block.dilated(hidden.transpose(1, 2)))).transpose(1, 2)
    torch.testing.assert_close(block(hidden), hidden + update)
    assert bool((block(hidden) < 0).any())
    pixels = torch.randn(2, 4, 2, 3, 32, 32)
    features = model.avcanet.encode_video(pixels)
    torch.testing.assert_close(features.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.std(-1, unbiased=False), torch.ones(2, 4), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="video_projection_norm"):
        _small_model(video_projection_norm="batchnorm")


@pytest.mark.parametrize("multitask_features", ["lgf", "encoder"])
def test_fan_in_readout_init_covers_the_readout_linears_only(tmp_path, multitask_features):
    from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

    readouts = ["avcanet.video_projection", "head.classifier"]
    if multitask_features == "encoder":
        readouts += ["branch_heads.video", "branch_heads.audio"]
    default = _small_model(readout_init="trunc_normal", multitask_features=multitask_features)
    model = _small_model(readout_init="fan_in", multitask_features=multitask_features)
    for inspected in (default, model):  # only read here: float() of a parameter that requires grad warns
        inspected.requires_grad_(False)
    for name in readouts:
        layer, plain = model.get_submodule(name), default.get_submodule(name)
        bound = layer.in_features ** -0.5
        for tensor in (layer.weight, layer.bias):  # U(-bound, bound): std bound / sqrt(3)
            assert float(tensor.abs().max()) <= bound
        assert abs(float(layer.weight.std()) / (bound / 3 ** 0.5) - 1) < 0.15, name
        assert abs(float(plain.weight.std()) - 0.02) < 0.004 and not plain.bias.any(), name
    others = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in readouts
              and not n.startswith("avcanet.video_encoder") and m.weight.numel() >= 256]
    assert len(others) > 10
    assert all(abs(float(m.weight.std()) - 0.02) < 0.004 and not m.bias.any() for m in others)
    model.save_pretrained(tmp_path)  # loading keeps the trained weights, whatever the init
    loaded = AVCANetForVideoClassification.from_pretrained(tmp_path)
    for name in readouts:
        torch.testing.assert_close(loaded.get_submodule(name).weight, model.get_submodule(name).weight)
    with pytest.raises(ValueError, match="readout_init"):
        _small_model(readout_init="xavier")


def test_mfcc_normalization_is_saved_with_the_feature_extractor(tmp_path):
    from emotions_hf.processing_avcanet import AVCANetProcessor

    processor = AVCANetProcessor(num_snippets=4, num_mfcc=8, mfcc_frames=64, mfcc_normalization="dataset")
    assert processor.needs_mfcc_statistics
    raw = torch.randn(8, 200) * 30 - 100
    processor.feature_extractor.fit_mfcc_statistics([raw, None])
    processor.save_pretrained(tmp_path)
    loaded = AVCANetProcessor.from_pretrained(tmp_path)
    assert not loaded.needs_mfcc_statistics
    normalized = loaded.feature_extractor.normalized(raw)
    torch.testing.assert_close(normalized.mean(-1), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalized.std(-1, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="fit_mfcc_statistics"):
        AVCANetProcessor(num_snippets=4, num_mfcc=8, mfcc_frames=64,
                         mfcc_normalization="dataset").feature_extractor.normalized(raw)


def _visible_discs(frame: np.ndarray, box) -> int:
    """Discs (connected blobs of at least ~a third of a disc, far from the background colour) inside `box`."""
    from scipy import ndimage

    pixels = frame.astype(int)
    background = np.median(pixels.reshape(-1, 3), 0)
    top, left, height, width = box
    mask = (np.abs(pixels - background).sum(-1) > 90)[top : top + height, left : left + width]
    blobs, count = ndimage.label(mask)
    sizes = ndimage.sum(np.ones_like(blobs), blobs, range(1, count + 1)) if count else []
    return sum(1 for size in sizes if size >= 20)


def _count_changed(scales) -> float:
    """Share of (clip, crop position, scale) whose crop shows another number of discs than the count label."""
    from emotions_hf.video_transforms import CROP_POSITIONS, crop_box

    changed = total = 0
    for value in range(3):
        for k in range(8):
            frame = render_picture(np.random.default_rng(100 * value + k), "count", value, 1, 64)[0]
            for scale in scales:
                for position in CROP_POSITIONS:
                    changed += _visible_discs(frame, crop_box(64, 64, scale, position)) != value + 1
                    total += 1
    return changed / total


def test_the_suites_training_crops_keep_the_count_cue():
    """The suite's processor crops must keep every picture cue; the demo's multi-scale crops do not keep the
    number of discs (why `bench/learnability.py` does not use SMALL_PROCESSOR's crop scales)."""
    import learnability
    from presets import SMALL_PROCESSOR

    assert _count_changed(learnability.LEARNABILITY_PROCESSOR["crop_scales"]) <= 0.02
    assert _count_changed(SMALL_PROCESSOR["crop_scales"]) >= 0.2
