"""Write small videos with sound through PyAV.

Used by the synthetic dataset, the tests and the benchmarks to make real media files (no media
is committed to the repository), and by the training proxy to re-encode videos.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_AUDIO_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# x264's lookahead (macroblock tree) gave a different stream from call to call on tiny frames, even on one
# thread; without it, the same input always encodes to the same bytes.
_DETERMINISTIC_OPTIONS = {"libx264": {"x264-params": "mbtree=0:rc-lookahead=0"}}
_PIXEL_FORMATS = {"libx264": "yuv420p", "mpeg4": "yuv420p", "libvpx-vp9": "yuv420p", "libvpx": "yuv420p"}


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    frame_times: Iterable[float] | None = None,
    video_options: dict[str, str] | None = None,
    rotation: int | None = None,
) -> Path:
    """Encode `frames` (each H×W×3 uint8 RGB, consumed lazily) and optional `audio` into `path`.

    Args:
        audio: float array in [-1, 1] of shape (channels, samples) or (samples,) for mono; 1, 2 or
            6 channels. `None` writes a file without an audio stream.
        frame_times: presentation time in seconds of each frame, for variable-frame-rate files;
            by default frame i is shown at i / fps.
        video_options: encoder options, e.g. {"g": "4"} for frequent keyframes.
        rotation: display rotation in degrees counter-clockwise (90, 180, 270), stored as the stream's
            display matrix (what phones write for portrait videos; mp4/mov/mkv keep it). Readers see it
            as PyAV's `VideoFrame.rotation` and `emotions_hf.decoding.probe(...).rotation`.

    The same arguments give the same file, bit for bit, whatever the machine's load: the encoder runs
    on one thread with x264's lookahead off (with them, two calls could give streams up to 42 grey
    levels apart once decoded). That costs nothing on the small files this writes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = Fraction(1, 90_000)
    times = iter(frame_times) if frame_times is not None else None
    with av.open(str(path), mode="w") as container:
        stream = None
        audio_stream = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None]
            if audio.shape[0] not in _AUDIO_LAYOUTS:
                raise ValueError(f"{path}: cannot write {audio.shape[0]}-channel audio (1, 2 or 6 supported)")
        for index, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if stream is None:
                rate = Fraction(fps).limit_denominator(1000)
                stream = container.add_stream(video_codec, rate=rate)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = _PIXEL_FORMATS.get(video_codec, "yuv420p")
                stream.codec_context.thread_count = 1
                stream.options = {**_DETERMINISTIC_OPTIONS.get(video_codec, {}), **(video_options or {})}
                stream.codec_context.time_base = time_base if times is not None else 1 / rate
                if rotation:
                    stream.set_display_rotation(rotation)
                if audio is not None:
                    audio_stream = container.add_stream(audio_codec, rate=sample_rate)
                    audio_stream.layout = _AUDIO_LAYOUTS[audio.shape[0]]
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                video_frame.pts = round(next(times) / time_base)
                video_frame.time_base = time_base
            else:  # explicit timestamps: x264's rate control reads them
                video_frame.pts = index
                video_frame.time_base = 1 / rate
            for packet in stream.encode(video_frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, sample_rate)
    return path


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    planar = np.ascontiguousarray(audio, dtype=np.float32)
    block = 4096
    for start in range(0, planar.shape[1], block):
        chunk = np.ascontiguousarray(planar[:, start : start + block])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
