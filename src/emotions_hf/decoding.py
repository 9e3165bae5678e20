"""Open any video a user has, probe it cheaply, sample frames by timestamp and decode only those.

Sources: a path (str / Path), raw bytes, a binary file-like object, or the undecoded form of a
`datasets` media feature (`{"path": ..., "bytes": ...}`). Every failure to read raises
`emotions_hf.errors.VideoReadError` naming the source and the reason.

Two backends decode frames: PyAV (the default) and `decord` (on request). The PyAV path seeks only
when a keyframe lies ahead, does not even decode the non-reference frames it skips, and converts only
the wanted frames; decord2 3.4 is slower here and mis-rotates rotated files (those always go through
PyAV). PyAV resizes while converting to RGB; decord decodes at the native size (its scaler is wrong on
some CPUs) and we resize a few frames at a time, so a 1080p clip is never held at full size as RGB.
Neither keeps a decoder open between calls (DataLoader-worker safe).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from .errors import VideoReadError
from .video_transforms import channels_first, resize, to_float

BACKENDS = ("auto", "decord", "pyav")


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class MediaSource:
    """One readable media item, re-openable any number of times (each decoder opens its own handle)."""

    name: str
    path: str | None = None
    data: bytes | None = None
    fileobj: object | None = None

    def open_binary(self):
        """A fresh binary stream (or the path) for a demuxer."""
        if self.path is not None:
            return self.path
        if self.data is not None:
            return io.BytesIO(self.data)
        self.fileobj.seek(0)  # containers address bytes from the start of the file
        return self.fileobj

    def size(self) -> int | None:
        if self.path is not None:
            return os.path.getsize(self.path)
        if self.data is not None:
            return len(self.data)
        return None


def as_source(item) -> MediaSource:
    """Normalise a path, bytes, file-like object or `{"path", "bytes"}` dict to a `MediaSource`."""
    if isinstance(item, MediaSource):
        return item
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        if item.get("bytes") is not None:
            return MediaSource(name=str(item.get("path") or "<bytes>"), data=bytes(item["bytes"]))
        item = item.get("path")
        if item is None:
            raise VideoReadError("<dict>", "a media dict needs 'path' or 'bytes'")
    if isinstance(item, (str, Path)):
        path = str(item)
        if not os.path.isfile(path):
            raise VideoReadError(path, "no such file")
        return MediaSource(name=path, path=path)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return MediaSource(name="<bytes>", data=bytes(item))
    if hasattr(item, "read") and hasattr(item, "seek"):
        return MediaSource(name=str(getattr(item, "name", "<file object>")), fileobj=item)
    raise VideoReadError(repr(item)[:80], f"cannot read a video from a {type(item).__name__}")


def open_container(source: MediaSource) -> av.container.InputContainer:
    """Open the demuxer, turning every failure into a `VideoReadError`."""
    if source.size() == 0:
        raise VideoReadError(source.name, "the file is empty")
    try:
        return av.open(source.open_binary(), mode="r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(source.name, f"not a readable media file ({error})") from None


def video_stream(container, source: MediaSource):
    if not container.streams.video:
        kind = "an audio-only file" if container.streams.audio else "a file"
        raise VideoReadError(source.name, f"{kind} without a video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoReadError(source.name, "unsupported video codec (this FFmpeg has no decoder for it)")
    return stream


# --------------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, read from the container metadata (and its first frame, for the rotation).

    `width` / `height` are the displayed size (after rotation); `rotation` is the counter-clockwise
    angle (0, 90, 180, 270) that turns decoded frames upright, as in PyAV's `VideoFrame.rotation`.
    """

    duration: float
    num_frames: int
    fps: float
    width: int
    height: int
    rotation: int
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_duration: float | None = None
    codec: str = ""


def _stream_duration(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _count_frames(container, stream) -> tuple[int, float]:
    """Frame count and duration (seconds) from the packets alone, for files without metadata."""
    pts, _ = packet_timestamps(container, stream)
    if not len(pts):
        return 0, 0.0
    return len(pts), (float(pts[-1] - pts[0]) + _frame_step(pts)) * float(stream.time_base)


def probe(item) -> VideoInfo:
    """Metadata of a video without decoding it: container fields plus one decoded frame.

    The first frame is decoded because it carries the display rotation, and because a stream whose
    codec cannot be decoded should fail here, during dataset validation, not inside training.
    Raises `VideoReadError` for anything unreadable.
    """
    source = as_source(item)
    with open_container(source) as container:
        return _video_info(container, source)


def _video_info(container, source: MediaSource) -> VideoInfo:
    """`VideoInfo` of an open container (decodes its first video frame)."""
    stream = video_stream(container, source)
    first = _first_frame(container, stream, source)
    rotation = int(first.rotation or 0) % 360
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    duration = _stream_duration(stream)
    num_frames = int(stream.frames or 0)
    if not num_frames or duration is None or not fps:
        container.seek(0)
        num_frames, duration = _count_frames(container, stream)
        fps = fps or (num_frames / duration if duration else 0.0)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        duration=float(duration),
        num_frames=num_frames,
        fps=fps,
        width=width,
        height=height,
        rotation=rotation,
        has_audio=audio is not None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        audio_duration=_audio_duration(container, audio),
        codec=stream.codec_context.name,
    )


def _audio_duration(container, stream) -> float | None:
    if stream is None:
        return None
    duration = _stream_duration(stream)
    if duration is None and container.duration:
        duration = container.duration / 1e6
    return duration


def _first_frame(container, stream, source: MediaSource):
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as error:
        raise VideoReadError(source.name, f"the video stream cannot be decoded ({error})") from None
    raise VideoReadError(source.name, "the video stream has no decodable frame (truncated file?)")


@dataclass(frozen=True)
class ContentTimes:
    """When a video's frames and sound start, in seconds from its first frame (audio: from its first
    packet), read from the packets alone: what a file holds, whatever its metadata claims.

    `frames` are the sorted start times of all video frames, `end` is when the last one ends (the span
    the frame sampler tiles), `audio` the sorted start times of the audio packets (None without audio).
    """

    frames: np.ndarray
    end: float
    audio: np.ndarray | None = None

    def covered(self, hold: float) -> np.ndarray:
        """(n, 2) `[start, end)` spans that hold content: each frame or audio packet counts until the next
        one starts (the last frame: until `end`), but at most `hold` seconds, so a frame followed by a long
        jump in time is content for `hold`, not for the whole jump. Spans may overlap."""
        spans = [_held(self.frames, hold, self.end)]
        if self.audio is not None and len(self.audio):
            spans.append(_held(self.audio, hold))
        return np.concatenate(spans)


def _held(times: np.ndarray, hold: float, end: float | None = None) -> np.ndarray:
    end = times[-1] + hold if end is None else max(end, times[-1])
    return np.stack([times, times + np.minimum(np.diff(times, append=end), hold)], axis=1)


def content_times(item) -> ContentTimes:
    """`ContentTimes` of a video: demuxes its packets (decodes nothing), so a 1 KB file whose timestamps
    jump by 10^6 s reads as the three frames it holds. Raises `VideoReadError` when there is no frame."""
    source = as_source(item)
    with open_container(source) as container:
        stream = video_stream(container, source)
        pts, _ = packet_timestamps(container, stream)
        if not len(pts):
            raise VideoReadError(source.name, "the video stream has no frames")
        if not stream.time_base:
            raise VideoReadError(source.name, "the video stream has no time base")
        base = float(stream.time_base)
        frames = (pts - pts[0]).astype(np.float64) * base
        end = float(pts[-1] - pts[0] + _frame_step(pts)) * base
        audio = None
        if container.streams.audio:
            audio_stream = container.streams.audio[0]
            if audio_stream.time_base is not None:
                audio_pts, _ = packet_timestamps(container, audio_stream)
                if len(audio_pts):
                    audio = (audio_pts - audio_pts[0]).astype(np.float64) * float(audio_stream.time_base)
    return ContentTimes(frames=frames, end=end, audio=audio)


# --------------------------------------------------------------------------------------------------
# Timestamps and sampling


def packet_timestamps(container, stream) -> tuple[np.ndarray, np.ndarray]:
    """Sorted presentation times of all frames and of the keyframes (stream time base), demuxing only.

    Read from the container's index instead when it lists every frame and frames are not reordered
    (no B-frames, as in training proxies), which saves reading the whole file."""
    indexed = _index_timestamps(container, stream)
    if indexed is not None:
        return indexed
    container.seek(0)
    times, keyframes = [], []
    try:
        for packet in container.demux(stream):
            time = packet.pts if packet.pts is not None else packet.dts
            if packet.size and time is not None:
                times.append(time)
                if packet.is_keyframe:
                    keyframes.append(time)
    except av.FFmpegError:
        pass  # a truncated tail: keep the frames that are there; decoding them will tell.
    return np.unique(np.array(times, dtype=np.int64)), np.unique(np.array(keyframes, dtype=np.int64))


def _index_timestamps(container, stream, check_packets: int = 16) -> tuple[np.ndarray, np.ndarray] | None:
    """Timestamps from the demuxer's index, or None unless it is complete and pts == dts (index entries
    carry decode times; the first packets show whether presentation order differs)."""
    entries = stream.index_entries
    if not stream.frames or len(entries) != stream.frames:
        return None
    try:
        for count, packet in enumerate(container.demux(stream)):
            if packet.size and packet.pts != packet.dts:
                return None
            if count >= check_packets:
                break
    except av.FFmpegError:
        return None
    times = np.array([entry.timestamp for entry in entries], dtype=np.int64)
    keyframes = np.array([entry.timestamp for entry in entries if entry.is_keyframe], dtype=np.int64)
    return np.unique(times), np.unique(keyframes)


def _frame_step(times: np.ndarray) -> float:
    """Typical frame duration (median spacing); the last frame lasts this long."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


@dataclass(frozen=True)
class FrameSample:
    """Frames chosen for one clip: `indices` and `timestamps` (seconds) are (num_snippets, T) arrays."""

    indices: np.ndarray
    timestamps: np.ndarray
    window: tuple[float, float]


def sample_frame_indices(
    timestamps,
    num_snippets: int,
    frames_per_snippet: int,
    end_time: float | None = None,
    training: bool = False,
    rng: np.random.Generator | None = None,
    clip_range: tuple[float, float] | None = None,
) -> FrameSample:
    """Pick T consecutive frames in each of `num_snippets` segments of equal *duration* (the paper's snippets).

    `timestamps` are the sorted start times (seconds) of all frames, so variable-frame-rate videos
    are cut by time, not by frame count. The segments tile `[first frame, end_time)`, or
    `clip_range` (seconds from the first frame). Evaluation takes the centred run of T frames of a
    segment, training a random one (`rng`). A segment shorter than T frames contributes the run
    centred on it; a video shorter than T frames is loop-padded (a single frame works).
    """
    times = np.asarray(timestamps, dtype=np.float64)
    count = len(times)
    if count == 0:
        raise ValueError("cannot sample frames from a video without frames")
    step = _frame_step(times)
    start = times[0]
    end = end_time if end_time is not None else times[-1] + step
    if clip_range is not None:
        lo, hi = float(clip_range[0]), float(clip_range[1])
        if not hi > lo:
            raise ValueError(f"clip_range {clip_range} must have end > start")
        start, end = times[0] + max(lo, 0.0), min(times[0] + hi, end)
        end = max(end, start + 1e-6)
    bounds = start + (end - start) * np.arange(num_snippets + 1) / num_snippets
    first = np.searchsorted(times, bounds[:-1], side="left")
    length = np.searchsorted(times, bounds[1:], side="left") - first
    # A segment shorter than one frame interval holds no frame start: use the frame on screen.
    on_screen = np.clip(np.searchsorted(times, bounds[:-1], side="right") - 1, 0, count - 1)
    empty = length <= 0
    first = np.where(empty, on_screen, first)
    length = np.where(empty, 1, length)
    slack = length - frames_per_snippet
    if training:
        rng = rng if rng is not None else np.random.default_rng()
        offset = np.where(slack > 0, np.floor(rng.random(num_snippets) * (slack + 1)), slack // 2).astype(np.int64)
    else:
        offset = slack // 2
    starts = first + offset
    steps = np.arange(frames_per_snippet)
    if count >= frames_per_snippet:
        indices = np.clip(starts, 0, count - frames_per_snippet)[:, None] + steps
    else:  # loop-pad: cycle through the whole (very short) video
        indices = (np.clip(starts, 0, count - 1)[:, None] + steps) % count
    return FrameSample(indices=indices, timestamps=times[indices], window=(float(start), float(end)))


# --------------------------------------------------------------------------------------------------
# Decoding


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the shorter side is `short_side` (unchanged when None)."""
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class DecodedClip:
    """Frames (num_snippets*T, H, W, 3) uint8, upright, with the sample that chose them (from PyAV: a view
    of channels-first memory)."""

    frames: np.ndarray
    sample: FrameSample
    info: VideoInfo
    backend: str


def read_clip(
    item,
    num_snippets: int,
    frames_per_snippet: int,
    short_side: int | None = None,
    training: bool = False,
    rng: np.random.Generator | None = None,
    clip_range: tuple[float, float] | None = None,
    backend: str = "auto",
    num_threads: int = 1,
    info: VideoInfo | None = None,
) -> DecodedClip:
    """Sample and decode one clip's frames, resized so the shorter side is `short_side`.

    `backend="auto"` is PyAV, measured faster here than decord (decord2 3.4 decodes and converts every
    frame up to the last one wanted, PyAV skips non-reference frames and converts only wanted ones),
    and right on rotated files and every frame width. `backend="decord"` uses decord, except for
    rotated videos (decord mis-rotates them), which go through PyAV. `info` (from `probe`) saves a
    second probe.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    source = as_source(item)
    plan = {"num_snippets": num_snippets, "frames_per_snippet": frames_per_snippet, "training": training,
            "clip_range": clip_range}
    if backend == "decord":
        decord = _import_decord()
        info = info if info is not None else probe(source)
        if info.rotation == 0:
            return _read_clip_decord(decord, source, info, short_side, rng, num_threads, plan)
    return _read_clip_pyav(source, info, short_side, rng, num_threads, plan)


def _coded_size(info: VideoInfo, short_side: int | None) -> tuple[int, int]:
    """Decoder output size, in the coded (pre-rotation) orientation; never upscaled (the transforms
    resize to the model's size anyway, from fewer pixels)."""
    width, height = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    return output_size(width, height, min(short_side, width, height) if short_side else None)


def _upright(frames: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frames, k=rotation // 90, axes=(1, 2))) if rotation else frames


def _import_decord():
    """decord, imported on first use only: importing it edits the process's PATH and environment and
    loads its own FFmpeg, which a PyAV-only process (the default backend) does not need."""
    try:
        import decord
    except ImportError:
        raise ImportError("backend='decord' needs the decord package (pip install decord2)") from None
    return decord


def _read_clip_decord(decord, source, info, short_side, rng, num_threads, plan) -> DecodedClip:
    """decord decodes at the native size; we resize. decord's own scaler (`width=`, `height=`) returns
    buffers of the wrong size on some CPUs (seen on AVX-512 Xeons and on EPYCs: 6 or 4 "channels", or
    a failed size check), so it is never asked to scale."""
    width, height = _coded_size(info, short_side)
    try:
        reader = decord.VideoReader(source.open_binary(), num_threads=num_threads)
        times = reader.get_frame_timestamp(range(len(reader)))
        sample = sample_frame_indices(times[:, 0], end_time=float(times[-1, 1]), rng=rng, **plan)
        wanted, inverse = np.unique(sample.indices, return_inverse=True)
        frames = np.empty((len(wanted), height, width, 3), np.uint8)
        for start in range(0, len(wanted), _DECORD_CHUNK):
            chunk = reader.get_batch(wanted[start : start + _DECORD_CHUNK].tolist()).asnumpy()
            frames[start : start + len(chunk)] = _resized(chunk, width, height, source)
    except VideoReadError:
        raise
    except (decord.DECORDError, RuntimeError, IndexError, ValueError) as error:
        raise VideoReadError(source.name, f"decord cannot decode it ({str(error).splitlines()[0]})") from None
    frames = _upright(frames[inverse.reshape(-1)], info.rotation)
    return DecodedClip(frames=frames, sample=sample, info=info, backend="decord")


_DECORD_CHUNK = 16  # native-size frames held at once: bounds memory on 1080p+ videos


def _resized(frames: np.ndarray, width: int, height: int, source: MediaSource) -> np.ndarray:
    """(N, height, width, 3) uint8 from native-size (N, H, W, 3) RGB frames: bilinear, antialiased when
    shrinking (the same kernel family as the PyAV path's swscale)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoReadError(source.name, f"decord returned frames of shape {frames.shape}, not (N, H, W, 3)")
    if frames.shape[1:3] == (height, width):
        return frames
    resized = resize(to_float(channels_first(frames)), height, width)
    return resized.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _read_clip_pyav(source, info, short_side, rng, num_threads, plan) -> DecodedClip:
    with open_container(source) as container:
        stream = video_stream(container, source)
        stream.codec_context.thread_count = num_threads
        if info is None:
            info = _video_info(container, source)
            container.seek(0)
        width, height = _coded_size(info, short_side)
        pts, keyframes = packet_timestamps(container, stream)
        if len(pts) == 0:
            raise VideoReadError(source.name, "the video stream has no frames")
        base = float(stream.time_base)
        end_time = float(pts[-1] + _frame_step(pts)) * base
        sample = sample_frame_indices(pts * base, end_time=end_time, rng=rng, **plan)
        wanted, inverse = np.unique(sample.indices, return_inverse=True)
        decoder = FrameDecoder(container, stream, source, keyframes, width, height)
        try:
            frames = decoder.decode(pts[wanted])
        finally:
            decoder.close()
    order = inverse.reshape(-1)
    if not np.array_equal(order, np.arange(order.size)):  # repeated or out-of-order frames (short videos)
        frames = frames[order]
    return DecodedClip(frames=_upright(frames, info.rotation), sample=sample, info=info, backend="pyav")


class FrameDecoder:
    """Decodes frames of one open video stream by pts, at (`width`, `height`), call after call.

    It seeks only when a keyframe lies ahead of the frame it stands on (or when asked for a frame behind it): a
    call for later frames continues where the previous one stopped. So a clip is read in one pass, and a
    timeline, which asks for each window's new snippets in turn, reads the file about once instead of from a
    keyframe per window.

    Frames that are not wanted are not converted to RGB, and non-reference ones are not even decoded
    (`skip_frame="NONREF"` while their packets go through the decoder). Wanted frames are scaled while converted
    (swscale's bilinear kernel widens with the downscale factor, so it antialiases) to planar RGB, copied straight
    into one preallocated channels-first array; the result is its (N, H, W, 3) view, so `channels_first` of it is
    contiguous and converts to float in one fast pass. (swscale's planar RGB is also faster than its packed rgb24,
    and no less accurate.)
    """

    def __init__(self, container, stream, source, keyframes: np.ndarray, width: int, height: int):
        self.container, self.stream, self.source = container, stream, source
        self.keyframes, self.width, self.height = keyframes, width, height
        self._scaler = VideoReformatter()  # one scaler for all frames: a fresh one per frame costs far more
        self._wanted: dict[int, int] = {}  # pts -> output row of the current call (read by the demuxing loop)
        self._horizon = -1  # the current call's last pts: frames after it may be wanted by a later call
        self._frames = None  # the decoding generator, alive between calls
        self._position = None  # pts of the last frame that came out of the decoder

    def close(self) -> None:
        """End the decoding generator now (its `finally` restores the decoder's frame skipping)."""
        if self._frames is not None:
            self._frames.close()
        self._frames, self._position = None, None

    def _decoded_frames(self):
        """The stream's frames from the last seek on. A packet is decoded in full when its frame is wanted now or
        may be wanted by a later call (after the horizon); the others, before the horizon, only when other frames
        refer to them (`skip_frame="NONREF"`)."""
        context = self.stream.codec_context
        try:
            for packet in self.container.demux(self.stream):
                key = packet.pts if packet.pts is not None else packet.dts
                wanted = packet.size == 0 or key is None or key in self._wanted or key > self._horizon
                context.skip_frame = "DEFAULT" if wanted else "NONREF"
                yield from packet.decode()
        except av.FFmpegError as error:
            raise VideoReadError(self.source.name, f"decoding failed ({error})") from None
        finally:
            context.skip_frame = "DEFAULT"

    def _restart(self, target: int) -> None:
        """Seek to the keyframe at or before `target` and decode from there."""
        self.close()
        self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        self._frames, self._position = self._decoded_frames(), None

    def _read_until(self, target: int, out: np.ndarray, done: np.ndarray) -> None:
        """Decode on to the first frame at or after `target`, converting every wanted frame met on the way."""
        threads = self.stream.codec_context.thread_count
        for frame in self._frames:
            self._position = frame.pts
            hit = self._wanted.get(self._position)
            if hit is not None and not done[hit]:
                planar = self._scaler.reformat(frame, width=self.width, height=self.height, format="gbrp",
                                               interpolation="BILINEAR", threads=threads)
                _copy_planes(planar, out[hit])
                done[hit] = True
            if self._position >= target:
                return

    def decode(self, targets: np.ndarray) -> np.ndarray:
        """(len(targets), height, width, 3) uint8: the frames whose pts are `targets` (sorted, unique)."""
        self._wanted.clear()
        self._wanted.update((int(t), row) for row, t in enumerate(targets))
        self._horizon = int(targets[-1]) if len(targets) else -1
        out = np.empty((len(targets), 3, self.height, self.width), dtype=np.uint8)
        done = np.zeros(len(targets), dtype=bool)
        for row, target in enumerate(int(t) for t in targets):
            if done[row]:
                continue
            at = np.searchsorted(self.keyframes, target, side="right") - 1
            keyframe = self.keyframes[max(at, 0)] if len(self.keyframes) else 0
            restarted = self._position is None or keyframe > self._position or target <= self._position
            if restarted:
                self._restart(target)
            self._read_until(target, out, done)
            if not done[row] and not restarted:
                # a safeguard for streams whose frames break the horizon rule: read the frame again from a keyframe
                self._restart(target)
                self._read_until(target, out, done)
            if not done[row]:
                self.close()  # the stream ended or was corrupt: a later call starts afresh
                raise VideoReadError(self.source.name, f"frame at {float(target * self.stream.time_base):.3f}s cannot "
                                                       "be decoded (truncated or corrupt file)")
        return out.transpose(0, 2, 3, 1)


def _copy_planes(frame, dest: np.ndarray) -> None:
    """Copy a `gbrp` frame into `dest` (3, H, W) as R, G, B (rows of a plane are padded to `line_size`)."""
    height, width = dest.shape[1:]
    for channel, plane in zip((1, 2, 0), frame.planes):  # gbrp stores G, B, R
        dest[channel] = np.frombuffer(plane, np.uint8, count=height * plane.line_size).reshape(height, -1)[:, :width]


__all__ = [
    "BACKENDS",
    "ContentTimes",
    "DecodedClip",
    "FrameDecoder",
    "FrameSample",
    "MediaSource",
    "VideoInfo",
    "as_source",
    "content_times",
    "output_size",
    "probe",
    "read_clip",
    "sample_frame_indices",
]
