"""The video-emotion pipeline on hostile inputs: timestamps that jump by days, bad files in a list, file
objects that were partly read. Every file is written here (tiny models from test_pipeline_video_emotion)."""

import time

import numpy as np
import pytest
from media_samples import grey_frames
from test_pipeline_video_emotion import _CountingProcessor, _scores, save_tiny_checkpoint
from transformers import pipeline

from emotions_hf.data.video_writer import write_video
from emotions_hf.decoding import content_times, probe
from emotions_hf.errors import VideoReadError
from emotions_hf.pipeline_video_emotion import DEFAULT_MAX_TIMELINE_WINDOWS, plan_timeline, plan_windows


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return pipeline("video-emotion", model=str(save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))), device="cpu")


def write_jumping(path):
    """Three frames, the last one 10^6 s after the others: about 1.3 KB (mp4 cannot store such a jump)."""
    return write_video(path, grey_frames(3), frame_times=[0.0, 0.04, 1e6])


def test_a_timestamp_jump_of_a_million_seconds_gives_a_few_windows(pipe, tmp_path):
    video = str(write_jumping(tmp_path / "jump.mkv"))
    assert (tmp_path / "jump.mkv").stat().st_size < 4096
    duration = probe(video).duration
    assert duration > 1e6 and len(plan_windows(duration)) > 500_000  # what the timeline used to plan
    original, counting = pipe.processor, _CountingProcessor(pipe.processor)
    pipe.processor = counting
    started = time.perf_counter()
    try:
        result = pipe(video, timeline=True, batch_size=4)
    finally:
        pipe.processor = original
    assert time.perf_counter() - started < 30
    timeline = result["timeline"]
    assert 3 <= len(timeline) <= 12 and counting.calls == 1 + len(timeline)
    starts = np.array([window["start"] for window in timeline])
    assert np.all(np.diff(starts) > 0)
    frames = content_times(video).frames
    for frame in frames:  # every frame is seen by some window
        assert any(w["start"] <= frame < w["end"] for w in timeline), frame
    assert timeline[0]["start"] == 0.0 and timeline[-1]["end"] == pytest.approx(content_times(video).end)
    for window in timeline:
        assert sum(window["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_the_window_cap_fails_before_decoding_anything(pipe, make_video, tmp_path):
    video = str(make_video("clip.mp4", num_frames=60, fps=20.0))  # 3 s
    expected = len(plan_windows(content_times(video).end, 0.1, 0.05))
    original, counting = pipe.processor, _CountingProcessor(pipe.processor)
    pipe.processor = counting
    try:
        with pytest.raises(VideoReadError, match=rf"clip\.mp4: .*{expected} windows.*max_timeline_windows=10\b"):
            pipe(video, timeline=True, timeline_window=0.1, timeline_stride=0.05, max_timeline_windows=10)
        assert counting.calls == 0
        jumping = str(write_jumping(tmp_path / "jump.mkv"))
        with pytest.raises(VideoReadError, match=r"jump\.mkv: .*max_timeline_windows=2\b.*larger"):
            pipe(jumping, timeline=True, max_timeline_windows=2)
        assert counting.calls == 0
    finally:
        pipe.processor = original
    result = pipe(video, timeline=True, timeline_window=0.1, timeline_stride=0.05, max_timeline_windows=expected)
    assert len(result["timeline"]) == expected <= DEFAULT_MAX_TIMELINE_WINDOWS
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_timeline_windows"):
            pipe(video, timeline=True, max_timeline_windows=bad)


@pytest.mark.parametrize("window,stride", [(5.0, None), (1.0, 0.5), (0.3, 0.3), (0.01, 0.005)])
def test_ordinary_videos_keep_every_window(make_video, window, stride):
    """Planning by content changes nothing on videos whose frames and sound are under a second apart."""
    videos = [make_video("sound.mp4", num_frames=60, fps=20.0),
              make_video("silent.mkv", num_frames=30, audio_seconds=0),
              make_video("vfr.mp4", num_frames=20, frame_times=np.cumsum([0.0] + [0.02, 0.3] * 9 + [0.02])),
              make_video("one.mp4", num_frames=1, audio_seconds=0)]
    for video in videos:
        content = content_times(str(video))
        assert plan_timeline(content, window, stride) == plan_windows(content.end, window, stride)


def test_sound_keeps_windows_between_distant_frames(make_video):
    """Slides under speech (no frame for 6 s, sound throughout): the sound's windows stay."""
    frame_times = [0.0, 0.04, 0.08, 6.0, 6.04]
    with_sound = make_video("slides.mkv", num_frames=5, frame_times=frame_times, audio_seconds=6.08)
    silent = make_video("slides-silent.mkv", num_frames=5, frame_times=frame_times, audio_seconds=0)
    sound, no_sound = content_times(str(with_sound)), content_times(str(silent))
    assert sound.end == pytest.approx(no_sound.end)
    everything = plan_windows(sound.end, 1.0, 0.5)
    assert plan_timeline(sound, 1.0, 0.5) == everything
    gapped = plan_timeline(no_sound, 1.0, 0.5)
    assert gapped[:2] == everything[:2] and gapped[-1] == everything[-1] and len(gapped) < len(everything) / 2


def _bad_files(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return broken, tmp_path / "missing.mp4"


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_errors_return_keeps_the_good_results_in_order(pipe, make_video, tmp_path, batch_size):
    good = str(make_video("good.mp4", num_frames=20))
    silent = str(make_video("silent.mp4", num_frames=20, audio_seconds=0))
    broken, missing = _bad_files(tmp_path)
    videos = [good, str(broken), silent, str(missing), broken.read_bytes(), good]
    with pytest.raises(VideoReadError, match="broken.mp4"):  # the default: raise, as documented
        pipe(videos, batch_size=batch_size)
    results = pipe(videos, batch_size=batch_size, errors="return", top_k=6)
    assert len(results) == len(videos)
    assert results[1] == {"error": results[1]["error"]} and results[1]["error"].startswith(f"{broken}: ")
    assert results[3] == {"error": f"{missing}: no such file"}
    assert results[4]["error"].startswith("<bytes>: ")
    for index, video in ((0, good), (2, silent), (5, good)):
        assert _scores(results[index]) == pytest.approx(_scores(pipe(video, top_k=6)), abs=1e-5)
    assert [results[i]["has_audio"] for i in (0, 2, 5)] == [True, False, True]


class _FailingLater(_CountingProcessor):
    """A processor whose timeline windows of one file fail from `after` seconds on, as a file truncated
    there does: the video's first chunks are already batched when its error comes."""

    def __init__(self, processor, name, after):
        super().__init__(processor)
        self.name, self.after = name, after

    def __call__(self, video, clip_range=None, **kwargs):
        if clip_range is not None and str(video).endswith(self.name) and clip_range[0] >= self.after:
            raise VideoReadError(video, f"frame at {clip_range[0]:.3f}s cannot be decoded (truncated or corrupt file)")
        return super().__call__(video, clip_range=clip_range, **kwargs)


def test_a_video_failing_mid_timeline_does_not_take_the_others_down(pipe, make_video):
    videos = [str(make_video(name, num_frames=40, fps=20.0)) for name in ("a.mp4", "b.mp4", "c.mp4")]  # 2 s each
    options = {"timeline": True, "timeline_window": 0.5, "timeline_stride": 0.25, "top_k": 6}
    reference = pipe(videos, batch_size=1, **options)
    original = pipe.processor
    pipe.processor = _FailingLater(original, "b.mp4", after=1.0)
    pipe.share_timeline_snippets = False  # windows read through the processor (shared snippets: test_pipeline_timeline)
    try:
        for batch_size in (1, 3, 4):
            results = pipe(videos, batch_size=batch_size, errors="return", **options)
            assert results[1] == {"error": f"{videos[1]}: frame at 1.000s cannot be decoded (truncated or corrupt file)"}
            for index in (0, 2):
                assert _scores(results[index]) == pytest.approx(_scores(reference[index]), abs=1e-5)
                assert len(results[index]["timeline"]) == len(reference[index]["timeline"])
                for got, want in zip(results[index]["timeline"], reference[index]["timeline"]):
                    assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
        with pytest.raises(VideoReadError, match="b.mp4: frame at 1.000s"):
            pipe(videos, batch_size=3, **options)
    finally:
        pipe.processor = original
        del pipe.share_timeline_snippets


def test_bad_call_arguments_are_named(pipe, make_video):
    with pytest.raises(ValueError, match="no videos given"):
        pipe([])
    with pytest.raises(ValueError, match="no videos given"):
        pipe(())
    video = str(make_video())
    with pytest.raises(ValueError, match="errors='skip' is not one of"):
        pipe(video, errors="skip")
    for window, stride in ((0.0, None), (1.0, 2.0), (-1.0, 0.5)):  # raised, not returned as the video's error
        with pytest.raises(ValueError, match="timeline (window|stride)"):
            pipe([video], timeline=True, timeline_window=window, timeline_stride=stride, errors="return")


def test_a_partly_read_file_object_is_read_from_its_start(pipe, make_video, tmp_path):
    video = make_video("clip.mp4", num_frames=20)
    expected = _scores(pipe(str(video), top_k=6))
    with open(video, "rb") as file_object:
        file_object.read(100)
        assert _scores(pipe(file_object, top_k=6)) == pytest.approx(expected, abs=1e-6)
        file_object.read(50)
        result = pipe(file_object, top_k=6, timeline=True, timeline_window=0.3)
    assert _scores(result) == pytest.approx(expected, abs=1e-6) and len(result["timeline"]) > 1
    broken, _ = _bad_files(tmp_path)
    with open(broken, "rb") as file_object, pytest.raises(VideoReadError, match="broken.mp4: not a readable media"):
        pipe(file_object)  # errors name the file, not "<bytes>"
    closed = open(video, "rb")  # noqa: SIM115
    closed.close()
    assert pipe([closed, str(video)], errors="return")[0]["error"].startswith(f"{video}: cannot read the file object")
