"""The timeline's shared snippets: each window's result is the per-window model's, each snippet is encoded once,
and memory holds the features of one window's neighbourhood, not of the video."""

import numpy as np
import pytest
import torch
from test_pipeline_video_emotion import TINY, save_tiny_checkpoint
from transformers import pipeline

from emotions_hf import pipeline_video_emotion
from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.data.video_writer import write_video
from emotions_hf.decoding import content_times
from emotions_hf.errors import VideoReadError
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.pipeline_video_emotion import plan_timeline
from emotions_hf.processing_avcanet import AVCANetProcessor

WINDOW = 1.0  # TINY has 4 snippets: a snippet is 0.25 s


@pytest.fixture(scope="module", params=["none", "layernorm"], ids=["plain-projection", "normed-projection"])
def pipe(tmp_path_factory, request):
    """The paper's plain F_v projection and the small preset's normalised one (`video_projection_norm`): a shared
    snippet must go through every layer a window's forward applies to it."""
    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), video_projection_norm=request.param)
    return pipeline("video-emotion", model=str(folder), device="cpu")


def textured_video(path, seconds, fps=25.0, seed=0):
    """Random frames and noisy sound: a snippet or an audio chunk taken from the wrong place changes the scores."""
    rng = np.random.default_rng(seed)
    frames = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(int(seconds * fps)))
    t = np.arange(int(seconds * 44100)) / 44100
    audio = 0.3 * np.sin(2 * np.pi * (220 + 100 * t) * t) + 0.05 * rng.standard_normal(len(t))
    return str(write_video(path, frames, fps=fps, audio=np.stack([audio, audio])))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return textured_video(tmp_path_factory.mktemp("media") / "textured.mp4", 4.0)


def per_window(pipe, video, ranges):
    """Today's per-window computation: the processor on the window, then the whole model."""
    inputs = pipe.processor([video] * len(ranges), clip_range=list(ranges), return_tensors="pt")
    with torch.no_grad():
        return pipe.model(**inputs).logits.softmax(-1)


def scores(timeline, labels):
    return torch.tensor([[window["scores"][label] for label in labels] for window in timeline])


def labels_of(pipe):
    return [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]


@pytest.mark.parametrize("stride", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_on_the_grid_every_window_is_the_per_window_model(pipe, video, stride, batch_size):
    result = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=stride, batch_size=batch_size)
    timeline = result["timeline"]
    windows = [(w["start"], w["end"]) for w in timeline]
    assert windows == plan_timeline(content_times(video), WINDOW, stride)
    expected = per_window(pipe, video, windows)
    assert torch.allclose(scores(timeline, labels_of(pipe)), expected, atol=1e-6, rtol=1e-5)
    assert expected.std(0).max() > 0.01, "windows must differ for the comparison to mean anything"
    assert pipe._snippet_features == {}, "a finished video keeps no snippet features"


def test_the_per_window_path_is_the_reference(pipe, video):
    """`share_timeline_snippets=False` is what the benchmark measures against: the two give the same timeline."""
    shared = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=0.5)
    pipe.share_timeline_snippets = False
    try:
        reference = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=0.5)
    finally:
        del pipe.share_timeline_snippets
    labels = labels_of(pipe)
    assert torch.allclose(scores(shared["timeline"], labels), scores(reference["timeline"], labels), atol=1e-6)
    assert shared["predictions"] == reference["predictions"]


def test_off_the_grid_a_window_is_the_nearest_grid_window(pipe, video):
    """Stride 0.3 s is not a multiple of the 0.25 s snippet: every window but the last is computed as the window
    starting at the nearest multiple of 0.25 s (reported with its planned bounds); the last one is exact."""
    timeline = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=0.3)["timeline"]
    planned = [(w["start"], w["end"]) for w in timeline]
    assert planned == plan_timeline(content_times(video), WINDOW, 0.3)
    snapped = [(round(a / 0.25) * 0.25, round(a / 0.25) * 0.25 + WINDOW) for a, _ in planned[:-1]] + [planned[-1]]
    assert any(a != b for a, b in zip(planned, snapped)), "some window must be off the grid"
    assert all(abs(a[0] - b[0]) <= 0.125 + 1e-9 for a, b in zip(planned, snapped))
    expected = per_window(pipe, video, snapped)
    assert torch.allclose(scores(timeline, labels_of(pipe)), expected, atol=1e-6, rtol=1e-5)


class _SnippetCounter:
    """Counts the snippets that go through the Video Swin backbone and the most snippet features held at once."""

    def __init__(self, pipe):
        self.pipe, self.snippets, self.most_held = pipe, 0, 0

    def __call__(self, module, args):
        self.snippets += args[0].shape[0]
        self.most_held = max([self.most_held, *map(len, self.pipe._snippet_features.values())])


@pytest.mark.parametrize("stride", [0.25, 0.5])
def test_backbone_work_grows_with_the_video_not_with_the_windows(pipe, tmp_path, stride):
    counts = {}
    for seconds in (4.0, 8.0):
        video = textured_video(tmp_path / f"{seconds}.mp4", seconds, seed=1)
        counter = _SnippetCounter(pipe)
        hook = pipe.model.avcanet.video_encoder.register_forward_pre_hook(counter)
        try:
            timeline = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=stride, batch_size=2)
        finally:
            hook.remove()
        windows = len(timeline["timeline"])
        grid = seconds / 0.25
        timeline_snippets = counter.snippets - 4  # the whole-video input is 4 snippets
        assert grid <= timeline_snippets <= grid + 2 * 4, (seconds, timeline_snippets)
        assert timeline_snippets < windows * 4 * 0.6, "every window encoded whole"
        assert counter.most_held <= 3 * 4, "snippet features must be released once no window needs them"
        counts[seconds] = timeline_snippets
    assert counts[8.0] / counts[4.0] == pytest.approx(2.0, rel=0.15)


def test_a_model_without_sound_shares_snippets_too(video):
    config = AVCANetConfig(**TINY, modality="visual", use_glcf=False, use_multitask_loss=False)
    torch.manual_seed(0)
    model = AVCANetForVideoClassification(config).eval()
    with torch.no_grad():
        model.head.classifier.weight.normal_(std=3.0)
    pipe = pipeline("video-emotion", model=model, processor=AVCANetProcessor.from_model_config(config), device="cpu")
    timeline = pipe(video, timeline=True, timeline_window=WINDOW, timeline_stride=0.5, batch_size=2)["timeline"]
    windows = [(w["start"], w["end"]) for w in timeline]
    assert torch.allclose(scores(timeline, labels_of(pipe)), per_window(pipe, video, windows), atol=1e-6, rtol=1e-5)


def test_a_video_failing_mid_timeline_keeps_the_others(pipe, tmp_path, monkeypatch):
    videos = [textured_video(tmp_path / f"{name}.mp4", 2.0, seed=i) for i, name in enumerate("abc")]
    options = {"timeline": True, "timeline_window": 0.5, "timeline_stride": 0.25, "top_k": 6}
    reference = pipe(videos, batch_size=1, **options)
    frames = pipeline_video_emotion._SnippetGrid.frames

    def failing(grid, snippets):
        if grid.source.name.endswith("b.mp4") and any(index >= 25 for snippet in snippets for index in snippet):
            raise VideoReadError(grid.source.name, "frame at 1.000s cannot be decoded (truncated or corrupt file)")
        return frames(grid, snippets)

    monkeypatch.setattr(pipeline_video_emotion._SnippetGrid, "frames", failing)
    for batch_size in (1, 3, 4):
        results = pipe(videos, batch_size=batch_size, errors="return", **options)
        assert results[1] == {"error": f"{videos[1]}: frame at 1.000s cannot be decoded (truncated or corrupt file)"}
        for index in (0, 2):
            assert len(results[index]["timeline"]) == len(reference[index]["timeline"])
            for got, want in zip(results[index]["timeline"], reference[index]["timeline"]):
                assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)
        assert pipe._snippet_features == {}, "the failed video's snippet features are dropped"
