import itertools
import math

import numpy as np
import pytest
import torch
from transformers import pipeline

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.errors import VideoReadError
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.pipeline_video_emotion import VideoEmotionPipeline, plan_windows
from emotions_hf.processing_avcanet import AVCANetProcessor

TINY = {
    "num_snippets": 4, "frames_per_snippet": 2, "image_size": 16, "patch_size": (2, 4, 4), "embed_dim": 8,
    "depths": (1, 1), "num_heads": (1, 2), "window_size": (2, 2, 2), "drop_path_rate": 0.0, "mfcc_chunk_frames": 8,
    "num_mfcc": 8, "audio_depths": (1, 1), "audio_hidden_sizes": (8, 16), "hidden_size": 16, "lgf_num_heads": 2,
    "lgf_window_sizes": (1,),
}


def save_tiny_checkpoint(folder, **overrides):
    """Save a random tiny AV-CANet and its processor to `folder`, the way a trained one is shipped."""
    torch.manual_seed(0)
    config = AVCANetConfig(**{**TINY, **overrides})
    model = AVCANetForVideoClassification(config).eval()
    with torch.no_grad():  # a confident head (and a non-zero bias), so classes and windows differ clearly
        model.head.classifier.weight.normal_(std=3.0)
        model.head.classifier.bias.normal_()
    model.save_pretrained(folder)
    AVCANetProcessor.from_model_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-avcanet"))


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return pipeline("video-emotion", model=str(checkpoint), device="cpu")


@pytest.mark.parametrize("duration", [0.4, 8.0, 8.0 + 1e-7, 20.0, 21.3, 183.7])
@pytest.mark.parametrize("window,stride", [(8.0, None), (8.0, 8.0), (5.0, 1.5)])
def test_windows_cover_the_video_without_gap(duration, window, stride):
    windows = plan_windows(duration, window, stride)
    starts, ends = np.array(windows).T
    assert starts[0] == 0.0 and math.isclose(ends[-1], duration)
    assert np.allclose(ends - starts, min(duration, window))
    assert np.all(starts[1:] <= ends[:-1]), "a gap between consecutive windows"
    assert np.all(np.diff(starts) > 0), "duplicate windows"
    step = window / 2 if stride is None else stride
    assert np.allclose(np.diff(starts[:-1]), step), "windows start every stride"
    assert len(windows) == 1 or ends[-2] < duration, "the last window is needed to reach the end"


@pytest.mark.parametrize("duration,window,stride", [(0.0, 8.0, None), (10.0, 0.0, None), (10.0, 4.0, 5.0),
                                                    (10.0, 4.0, 0.0)])
def test_windows_reject_bad_arguments(duration, window, stride):
    with pytest.raises(ValueError):
        plan_windows(duration, window, stride)


def _check_outputs_add_up(result, config, top_k):
    assert len(result["predictions"]) == top_k
    scores = [p["score"] for p in result["predictions"]]
    assert scores == sorted(scores, reverse=True)
    for prediction in result["predictions"]:
        assert prediction["polarity"] == config.label2polarity[prediction["label"]]
    part = result["contribution"]
    assert part["label"] == result["predictions"][0]["label"]
    assert part["visual"] + part["audio"] + part["bias"] == pytest.approx(part["logit"], abs=1e-5)
    assert part["bias"] != 0 and part["visual"] != 0


def test_pipeline_by_path_on_every_kind_of_video(pipe, make_video, tmp_path):
    config = pipe.model.config
    assert isinstance(pipe, VideoEmotionPipeline)
    with_sound = make_video("sound.mp4", num_frames=40)
    silent = make_video("silent.mp4", num_frames=40, audio_seconds=0)
    short = make_video("short.mp4", num_frames=3, fps=10.0)  # fewer frames than the model samples
    mono_vp9 = make_video("mono.webm", num_frames=20, channels=1, video_codec="libvpx-vp9", audio_codec="libopus",
                          sample_rate=48000)
    portrait = make_video("phone.mp4", num_frames=20, rotation=90)
    variable_rate = make_video("vfr.mp4", num_frames=20, frame_times=np.cumsum([0.0] + [0.02, 0.08] * 9 + [0.02]))
    decoded = np.random.default_rng(0).integers(0, 256, (12, 20, 24, 3), dtype=np.uint8)
    with open(portrait, "rb") as file_object:
        videos = [str(with_sound), silent, short, mono_vp9, file_object, variable_rate, decoded,
                  with_sound.read_bytes(), {"path": str(silent), "bytes": None}]
        results = pipe(videos, top_k=config.num_labels, batch_size=3)
    assert [r["has_audio"] for r in results] == [True, False, True, True, True, True, False, True, False]
    for result in results:
        _check_outputs_add_up(result, config, config.num_labels)
        assert sum(p["score"] for p in result["predictions"]) == pytest.approx(1.0, abs=1e-5)
    # the same video as a path or as bytes, batched or not, gives the same answer
    single = pipe(str(with_sound), top_k=config.num_labels)
    assert _scores(results[7]) == pytest.approx(_scores(results[0]), abs=1e-5)
    assert _scores(single) == pytest.approx(_scores(results[0]), abs=1e-5)
    assert _scores(results[1]) != pytest.approx(_scores(results[0]), abs=1e-3)


def _scores(result):
    return {p["label"]: p["score"] for p in result["predictions"]}


def test_pipeline_equals_processor_plus_model(pipe, make_video):
    video = make_video("clip.mp4", num_frames=30)
    inputs = pipe.processor(str(video), return_tensors="pt")
    with torch.no_grad():
        expected = pipe.model(**inputs).logits.softmax(-1)[0]
    result = pipe(str(video), top_k=2)
    labels = pipe.model.config.id2label
    top = expected.topk(2)
    assert _scores(result) == pytest.approx({labels[i]: s for s, i in zip(top.values.tolist(), top.indices.tolist())}, abs=1e-6)


def test_timeline_covers_the_whole_video_batched(pipe, make_video):
    video = str(make_video("long.mp4", num_frames=60, fps=20.0))  # 3 s
    duration = pipe.processor.probe(video).duration
    result = pipe(video, timeline=True, timeline_window=1.0, timeline_stride=0.5, batch_size=4)
    timeline = result["timeline"]
    assert len(timeline) == len(plan_windows(duration, 1.0, 0.5)) > 3
    assert timeline[0]["start"] == 0.0 and timeline[-1]["end"] == pytest.approx(duration)
    assert all(b["start"] <= a["end"] for a, b in itertools.pairwise(timeline))
    for window in timeline:
        assert sum(window["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    # windows really are different model inputs, and batching does not change them
    assert len({round(w["scores"]["Neutral"], 6) for w in timeline}) > 1
    unbatched = pipe(video, timeline=True, timeline_window=1.0, timeline_stride=0.5, batch_size=1)
    for a, b in zip(timeline, unbatched["timeline"]):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    assert _scores(result) == pytest.approx(_scores(pipe(video)))


def test_timeline_of_a_video_shorter_than_a_window_is_one_window(pipe, make_video):
    video = make_video("tiny.mp4", num_frames=10)
    with open(video, "rb") as file_object:  # read more than once: probed, then processed
        result = pipe(file_object, timeline=True, timeline_window=5.0, top_k=6)
    (window,) = result["timeline"]
    assert window["start"] == 0.0 and window["end"] > 0
    assert window["scores"] == pytest.approx(_scores(result))


def test_nonlinear_fusion_has_no_contribution(tmp_path, make_video):
    folder = save_tiny_checkpoint(tmp_path / "gated", fusion="gated", use_multitask_loss=False)
    result = pipeline("video-emotion", model=str(folder), device="cpu")(str(make_video(num_frames=12)))
    assert result["contribution"] is None and len(result["predictions"]) == 3


def test_visual_only_model_uses_no_sound(make_video):
    config = AVCANetConfig(**TINY, modality="visual", use_glcf=False, use_multitask_loss=False)
    model = AVCANetForVideoClassification(config).eval()
    pipe = pipeline("video-emotion", model=model, processor=AVCANetProcessor.from_model_config(config), device="cpu")
    result = pipe(str(make_video(num_frames=12)))
    part = result["contribution"]
    assert result["has_audio"] is False and part["audio"] is None
    assert part["visual"] + part["bias"] == pytest.approx(part["logit"], abs=1e-5)


def test_a_model_built_in_memory_needs_its_processor():
    model = AVCANetForVideoClassification(AVCANetConfig(**TINY))
    with pytest.raises(ValueError, match="AVCANetProcessor"):
        pipeline("video-emotion", model=model, device="cpu")


def test_unreadable_video_raises_a_named_error(pipe, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        pipe(str(broken))
    with pytest.raises(VideoReadError, match="missing.mp4"):
        pipe(str(tmp_path / "missing.mp4"), timeline=True)


def test_bfloat16_pipeline_agrees_with_float32(checkpoint, pipe, make_video):
    """The dtype path used for fp16/bf16 on GPU: inputs are cast to the model's dtype, outputs back to float32."""
    video = str(make_video("clip.mp4", num_frames=20))
    half = pipeline("video-emotion", model=str(checkpoint), device="cpu", dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    result, reference = half(video, top_k=6), pipe(video, top_k=6)
    assert _scores(result) == pytest.approx(_scores(reference), abs=0.02)
    part = result["contribution"]
    assert part["visual"] + part["audio"] + part["bias"] == pytest.approx(part["logit"], rel=0.01, abs=0.05)


class _CountingProcessor:
    """Delegates to a processor and counts the model inputs it has built."""

    def __init__(self, processor):
        self.processor, self.calls = processor, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.processor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.processor, name)


def test_timeline_windows_are_built_one_at_a_time(pipe, make_video):
    """Memory must not grow with the video: a window's input exists only when the batch needs it."""
    video = str(make_video("long.mp4", num_frames=60, fps=20.0))
    original, counting = pipe.processor, _CountingProcessor(pipe.processor)
    pipe.processor = counting
    try:
        chunks = pipe.preprocess(video, timeline=True, timeline_window=1.0, timeline_stride=0.5)
        whole = next(chunks)
        assert whole["overall"] and counting.calls == 1
        first_window = next(chunks)
        assert first_window["window"] == (0.0, 1.0) and counting.calls == 2
        remaining = len(plan_windows(original.probe(video).duration, 1.0, 0.5)) - 1
        assert sum(1 for _ in chunks) == remaining and counting.calls == 2 + remaining
    finally:
        pipe.processor = original
