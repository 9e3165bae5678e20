import io
from fractions import Fraction

import av
import numpy as np
import pytest
from media_samples import bright_corner, corner_marked, frame_index, grey_frames, tone, write

from emotions_hf.data.video_writer import write_video
from emotions_hf.decoding import (
    FrameDecoder,
    as_source,
    open_container,
    packet_timestamps,
    probe,
    read_clip,
    sample_frame_indices,
    video_stream,
)
from emotions_hf.errors import VideoReadError

BACKENDS = ["pyav", "decord"]


# ------------------------------------------------------------------------------------------------ probe


def test_probe_h264_aac(tmp_path):
    info = probe(write(tmp_path / "a.mp4", num_frames=30, fps=25))
    assert (info.num_frames, info.fps, info.width, info.height, info.rotation) == (30, 25.0, 64, 48, 0)
    assert info.duration == pytest.approx(1.2)
    assert info.has_audio and info.audio_sample_rate == 44100 and info.audio_channels == 2
    assert info.audio_duration == pytest.approx(1.2, abs=0.05)
    assert info.codec == "h264"


@pytest.mark.parametrize(
    "name, options, codec, rate, channels",
    [
        ("mpeg4.mp4", {"video_codec": "mpeg4"}, "mpeg4", 44100, 2),
        ("vp9.webm", {"video_codec": "libvpx-vp9", "audio_codec": "libopus", "sample_rate": 48000}, "vp9", 48000, 2),
        ("surround.mkv", {"channels": 6}, "h264", 44100, 6),
        ("mono8k.mp4", {"channels": 1, "sample_rate": 8000}, "h264", 8000, 1),
        ("silent.mp4", {"channels": 0}, "h264", None, None),
    ],
)
def test_probe_formats(tmp_path, name, options, codec, rate, channels):
    info = probe(write(tmp_path / name, num_frames=10, **options))
    assert info.codec == codec and info.num_frames == 10 and (info.width, info.height) == (64, 48)
    assert (info.audio_sample_rate, info.audio_channels, info.has_audio) == (rate, channels, rate is not None)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_probe_reads_display_rotation(tmp_path, rotation):
    info = probe(write_video(tmp_path / "phone.mp4", corner_marked(), rotation=rotation))
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))


# ------------------------------------------------------------------------------------------------ sampling


def test_eval_sampling_takes_the_centred_run_of_each_equal_duration_segment():
    times = np.arange(30) / 25  # 1.2 s: segments of 0.3 s hold 8, 7, 8, 7 frames
    sample = sample_frame_indices(times, num_snippets=4, frames_per_snippet=3)
    np.testing.assert_array_equal(sample.indices, [[2, 3, 4], [10, 11, 12], [17, 18, 19], [25, 26, 27]])
    np.testing.assert_allclose(sample.timestamps, sample.indices / 25)
    assert sample.window == pytest.approx((0.0, 1.2))


def test_training_sampling_is_random_within_segments_and_seeded():
    times = np.arange(30) / 25
    draws = [sample_frame_indices(times, 4, 3, training=True, rng=np.random.default_rng(seed)).indices
             for seed in range(40)]
    again = sample_frame_indices(times, 4, 3, training=True, rng=np.random.default_rng(7)).indices
    np.testing.assert_array_equal(draws[7], again)
    starts = np.stack(draws)[:, :, 0]
    first, last = np.array([0, 8, 15, 23]), np.array([7, 14, 22, 29])
    assert (starts >= first).all() and (starts + 2 <= last).all()
    assert all(len(set(starts[:, k])) > 1 for k in range(4))  # positions vary between seeds
    assert (np.diff(np.stack(draws), axis=-1) == 1).all()  # consecutive frames


def test_sampling_cuts_variable_frame_rate_by_time():
    # 20 frames in the first 0.5 s, then 5 frames over the next 1.5 s
    times = np.concatenate([np.arange(20) * 0.025, 0.5 + np.arange(5) * 0.3])
    sample = sample_frame_indices(times, 4, 2, end_time=2.0)
    # segments [0, .5), [.5, 1), [1, 1.5), [1.5, 2): frames 0-19, 20-21, 22-23, 24
    np.testing.assert_array_equal(sample.indices, [[9, 10], [20, 21], [22, 23], [23, 24]])
    np.testing.assert_allclose(sample.timestamps, times[sample.indices])


def test_sampling_loop_pads_short_videos():
    np.testing.assert_array_equal(sample_frame_indices([0.0], 3, 4).indices, np.zeros((3, 4), int))
    sample = sample_frame_indices(np.arange(3) / 25, 2, 5)
    np.testing.assert_array_equal(sample.indices, [[0, 1, 2, 0, 1], [0, 1, 2, 0, 1]])


def test_sampling_restricted_to_clip_range():
    times = np.arange(100) / 10  # 10 s at 10 fps
    sample = sample_frame_indices(times, 2, 2, clip_range=(4.0, 6.0))
    np.testing.assert_array_equal(sample.indices, [[44, 45], [54, 55]])
    assert (sample.timestamps >= 4.0).all() and (sample.timestamps < 6.0).all()
    with pytest.raises(ValueError, match="clip_range"):
        sample_frame_indices(times, 2, 2, clip_range=(3.0, 3.0))


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_clip_decodes_the_sampled_frames(tmp_path, backend):
    path = write(tmp_path / "a.mp4", num_frames=30, size=(48, 64))
    clip = read_clip(path, 4, 3, short_side=24, backend=backend)
    assert clip.frames.shape == (12, 24, 32, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(frame_index(clip.frames), clip.sample.indices.reshape(-1))
    np.testing.assert_array_equal(clip.sample.indices, [[2, 3, 4], [10, 11, 12], [17, 18, 19], [25, 26, 27]])
    assert clip.backend == backend


@pytest.mark.parametrize("short_side", [24, 36, 48])
def test_decord_frames_have_the_asked_size_on_every_cpu(tmp_path, short_side):
    """decord's own scaler returns buffers of the wrong size on some CPUs (64x48 -> 32x24 gave 6
    "channels" or a failed size check): the decord path must resize by itself and agree with PyAV."""
    pytest.importorskip("decord")
    path = write(tmp_path / "a.mp4", num_frames=12)
    clips = {b: read_clip(path, 3, 2, short_side=short_side, backend=b) for b in BACKENDS}
    width = round(64 * short_side / 48)
    for clip in clips.values():
        assert clip.frames.shape == (6, short_side, width, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(frame_index(clips["decord"].frames), frame_index(clips["pyav"].frames))
    difference = np.abs(clips["decord"].frames.astype(int) - clips["pyav"].frames.astype(int))
    assert difference.mean() < 3


def test_backends_agree_on_a_long_gop_video(tmp_path):
    path = write(tmp_path / "gop.mp4", num_frames=32, video_options={"g": "250", "bf": "3"})
    clips = [read_clip(path, 5, 2, short_side=24, backend=b) for b in BACKENDS]
    np.testing.assert_array_equal(clips[0].sample.indices, clips[1].sample.indices)
    np.testing.assert_array_equal(frame_index(clips[0].frames), clips[0].sample.indices.reshape(-1))
    np.testing.assert_array_equal(frame_index(clips[1].frames), clips[1].sample.indices.reshape(-1))


def test_frame_decoder_continues_across_calls_and_seeks_only_when_it_must(tmp_path):
    """A timeline asks for later and later frames: one keyframe, so one seek for all forward calls; a frame
    behind the decoder is read again from the keyframe."""
    path = write(tmp_path / "gop.mp4", num_frames=32, video_options={"g": "250", "bf": "3"})
    with open_container(as_source(path)) as container:
        stream = video_stream(container, as_source(path))
        pts, keyframes = packet_timestamps(container, stream)
        assert len(keyframes) == 1
        seeks = []

        class CountingSeeks:  # the container, with its seeks recorded
            def seek(self, offset, **kwargs):
                seeks.append(offset)
                return container.seek(offset, **kwargs)

            def demux(self, *args):
                return container.demux(*args)

        decoder = FrameDecoder(CountingSeeks(), stream, as_source(path), keyframes, 16, 16)
        # frame by frame (B-frames: a frame's packet often goes through the decoder before the frame is asked for)
        for frame in range(2, 20):
            np.testing.assert_array_equal(frame_index(decoder.decode(pts[[frame]])), [frame])
        assert seeks == [pts[2]]
        for frames in ([21, 22], [25], [26, 27, 28], [13], [29, 30, 31]):
            np.testing.assert_array_equal(frame_index(decoder.decode(pts[frames])), frames)
        assert seeks == [pts[2], pts[13]]  # [13] was behind the decoder; [29, 30, 31] continued from it
        with pytest.raises(VideoReadError, match="cannot be decoded"):
            decoder.decode(np.array([pts[-1] + 1000]))
        decoder.close()


class _SkipsEveryUnwantedFrame(FrameDecoder):
    """A decoder without the horizon rule: frames not wanted by the current call are skipped when they can be."""

    _horizon = property(lambda self: 1 << 62, lambda self, value: None)


def test_frame_decoder_reads_a_frame_again_when_continuing_missed_it(tmp_path):
    path = write(tmp_path / "gop.mp4", num_frames=32, video_options={"g": "250", "bf": "3"})
    with open_container(as_source(path)) as container:
        stream = video_stream(container, as_source(path))
        pts, keyframes = packet_timestamps(container, stream)
        decoder = _SkipsEveryUnwantedFrame(container, stream, as_source(path), keyframes, 16, 16)
        for frame in range(2, 20):  # B-frames skipped during an earlier call are read again from the keyframe
            np.testing.assert_array_equal(frame_index(decoder.decode(pts[[frame]])), [frame])
        decoder.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_file_is_sampled_by_time(tmp_path, backend):
    times = np.concatenate([np.arange(20) * 0.025, 0.5 + np.arange(5) * 0.3])
    path = write_video(tmp_path / "vfr.mp4", grey_frames(25), frame_times=times)
    clip = read_clip(path, 4, 2, short_side=24, backend=backend)
    # The last frame lasts the median spacing (0.025 s): segments of 1.725 / 4 s hold frames 0-17, 18-21,
    # 22 and 23-24. Cutting by frame count instead would give [2, 3], [8, 9], [14, 15], [20, 21].
    np.testing.assert_array_equal(clip.sample.indices, [[8, 9], [19, 20], [21, 22], [23, 24]])
    np.testing.assert_allclose(clip.sample.timestamps, times[clip.sample.indices], atol=1e-3)
    np.testing.assert_array_equal(frame_index(clip.frames), clip.sample.indices.reshape(-1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_frame_video(tmp_path, backend):
    clip = read_clip(write(tmp_path / "one.mp4", num_frames=1, channels=0), 3, 4, short_side=24, backend=backend)
    assert clip.frames.shape[0] == 12 and (clip.sample.indices == 0).all()
    assert (frame_index(clip.frames) == 0).all()


@pytest.mark.parametrize("rotation, corner", [(0, (0, 0)), (90, (1, 0)), (180, (1, 1)), (270, (0, 1))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_rotated_videos_come_out_upright(tmp_path, rotation, corner, backend):
    path = write_video(tmp_path / "phone.mp4", corner_marked(), rotation=rotation)
    clip = read_clip(path, 2, 2, short_side=24, backend=backend)
    expected_shape = (24, 32) if rotation in (0, 180) else (32, 24)
    assert clip.frames.shape[1:3] == expected_shape
    assert bright_corner(clip.frames) == corner  # counter-clockwise display rotation applied


@pytest.mark.parametrize("name, options", [("mpeg4.avi", {"video_codec": "mpeg4"}),
                                           ("vp9.webm", {"video_codec": "libvpx-vp9", "audio_codec": "libopus",
                                                             "sample_rate": 48000})])
def test_other_codecs_decode(tmp_path, name, options):
    path = write(tmp_path / name, num_frames=20, **options)
    for backend in BACKENDS:
        clip = read_clip(path, 4, 2, short_side=24, backend=backend)
        np.testing.assert_array_equal(frame_index(clip.frames), clip.sample.indices.reshape(-1))


def test_every_input_kind_gives_the_same_frames(tmp_path):
    path = write(tmp_path / "a.mp4", num_frames=20)
    data = path.read_bytes()
    reference = read_clip(path, 2, 2, short_side=24)
    assert reference.backend == "pyav"  # the default ("auto")
    reference = reference.frames
    kinds = (lambda: str(path), lambda: data, lambda: io.BytesIO(data), lambda: {"path": None, "bytes": data},
             lambda: {"path": str(path), "bytes": None})
    for item in kinds:
        np.testing.assert_array_equal(read_clip(item(), 2, 2, short_side=24).frames, reference)
        assert probe(item()).num_frames == 20
    stream = io.BytesIO(data)
    stream.seek(100)  # a file object is read from its start, wherever it was left
    assert probe(stream).num_frames == 20 and probe(stream).num_frames == 20


# ------------------------------------------------------------------------------------------------ failures


def _audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        samples = tone(0.5)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 44100, 0, Fraction(1, 44100)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _unknown_codec(path, tmp_path):
    data = write(tmp_path / "src.mp4", num_frames=5).read_bytes()
    entry = data.index(b"avc1", data.index(b"stsd"))  # the sample entry, not the brand list
    path.write_bytes(data[:entry] + b"zzzz" + data[entry + 4:])
    return path


BROKEN = {
    "empty": lambda p, t: p.write_bytes(b"") or p,
    "truncated": lambda p, t: p.write_bytes(write(t / "whole.mp4", num_frames=20).read_bytes()[:2000]) or p,
    "random bytes": lambda p, t: p.write_bytes(np.random.default_rng(0).bytes(5000)) or p,
    "text named .mp4": lambda p, t: p.write_text("this is not a video\n" * 50) or p,
    "audio-only": lambda p, t: _audio_only(p),
    "unsupported codec": lambda p, t: _unknown_codec(p, t),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_files_raise_video_read_error(tmp_path, kind):
    path = BROKEN[kind](tmp_path / "broken.mp4", tmp_path)
    for call in (lambda: probe(path), *(lambda b=b: read_clip(path, 2, 2, backend=b) for b in ("auto", *BACKENDS))):
        with pytest.raises(VideoReadError) as raised:
            call()
        assert str(path) in str(raised.value) and raised.value.reason
        assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_stream_container_uses_the_frames_it_has(tmp_path, backend):
    data = write(tmp_path / "whole.mkv", num_frames=30).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    clip = read_clip(cut, 4, 2, short_side=24, backend=backend)
    assert 10 < clip.sample.indices.max() < 29  # sampled over the frames that are there
    np.testing.assert_array_equal(frame_index(clip.frames), clip.sample.indices.reshape(-1))


def test_missing_file_and_bad_item(tmp_path):
    with pytest.raises(VideoReadError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VideoReadError, match="cannot read a video from"):
        probe(12345)
