"""Training proxies: a small, seek-friendly copy of each video, and its MFCC computed once.

Decoding full-resolution originals is the bottleneck of video training: a 30 s 720p h264 clip costs
about a second of one core, most of it spent decoding frames that are never used. A proxy is the
same video at a small resolution with a keyframe every few frames and no B-frames, so the processor
decodes little more than the frames it samples. Frame timestamps are kept exactly (variable frame
rates too) and so is the display rotation, so sampling a proxy picks the same frames as sampling the
original. The audio packets are copied unchanged (re-encoded to AAC only when the muxer refuses the
codec).

The MFCC is deterministic, so `write_mfcc_cache` computes the full-length MFCC of the ORIGINAL audio
once; the processor centre-crops it exactly as it would the MFCC of the original.

Both files carry the settings they were made with, so the processor can tell a stale one from a good
one instead of silently training on features or frames made for other settings:
- the MFCC cache is a safetensors file, tensor "mfcc" (num_mfcc, frames) float32, metadata (strings)
  `format_version`, `sample_rate`, `num_mfcc`, `n_fft`, `hop_length`, `n_mels`, `top_db`;
- the proxy carries a container metadata tag `emotions_hf_proxy`, JSON `{"format_version",
  "short_side", "keyframe_interval", "crf", "preset", "source_short_side"}` (kept in mp4 as an `mdta`
  key by the muxer's `use_metadata_tags` flag; mkv and webm keep any tag, upper-cased).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from contextlib import contextmanager
from pathlib import Path

import av
import torch
from av.video.reformatter import VideoReformatter
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .audio_features import MFCC, MonoDownmix, read_audio
from .decoding import as_source, open_container, output_size, probe, video_stream
from .errors import VideoReadError, is_environment_error

MFCC_CACHE_VERSION = 1
PROXY_VERSION = 1
PROXY_TAG = "emotions_hf_proxy"


class StaleCacheError(Exception):
    """A proxy or MFCC cache made with other settings, or in an older format; the message says how."""


PROXY_SHORT_SIDE = 128  # the default proxy size: holds the paper's 112 px frames and small training crops


def write_proxy(
    source,
    out_path: str | Path,
    short_side: int = PROXY_SHORT_SIDE,
    keyframe_interval: int = 8,
    crf: int = 23,
    preset: str = "veryfast",
) -> Path:
    """Re-encode `source` to h264 at `short_side` pixels on its shorter side, a keyframe every
    `keyframe_interval` frames (4, 2 or 1 measured slower: keyframes cost more to decode than the
    frames a seek saves), tuned for fast decoding, audio kept. Streams frame by frame (constant
    memory); the file appears at `out_path` only when complete. Returns `out_path`.

    `short_side` trades speed for sharpness; the processor reads a proxy only when it holds at least
    the model's `image_size` (or the original's full size), else it decodes the original
    (`check_proxy`). 128 (default) keeps training crops down to 7/8 of the shorter side at or above
    112 px (smaller crops are upscaled); 224 keeps every default crop scale sharp at ~3x the decode
    cost; 112 is the fastest (evaluation frames need no scaling at all).
    """
    media = as_source(source)
    info = probe(media)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".part" + out_path.suffix)
    tag = {"format_version": PROXY_VERSION, "short_side": short_side, "keyframe_interval": keyframe_interval,
           "crf": crf, "preset": preset, "source_short_side": min(info.width, info.height)}
    options = (short_side, keyframe_interval, crf, preset, json.dumps(tag))
    try:
        try:
            _transcode(media, info, partial, *options, copy_audio=True)
        except av.FFmpegError as error:  # the muxer refused the copied audio: re-encode it to AAC
            if is_environment_error(error):
                raise
            _transcode(media, info, partial, *options, copy_audio=False)
        os.replace(partial, out_path)
    except av.FFmpegError as error:
        if is_environment_error(error):
            raise
        raise VideoReadError(media.name, f"cannot write its proxy {out_path} ({error})") from None
    finally:
        if partial.exists():
            partial.unlink()
    return out_path


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _transcode(media, info, out_path: Path, short_side, keyframe_interval, crf, preset, tag: str,
               copy_audio: bool) -> None:
    coded_width, coded_height = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    width, height = (_even(v) for v in output_size(coded_width, coded_height, min(short_side, coded_width,
                                                                                  coded_height)))
    # the mp4 / mov muxer drops keys outside its iTunes list without use_metadata_tags
    options = {"movflags": "use_metadata_tags"} if out_path.suffix.lower() in (".mp4", ".m4v", ".mov") else {}
    with open_container(media) as source, av.open(str(out_path), mode="w", options=options) as target:
        target.metadata[PROXY_TAG] = tag
        video_in = video_stream(source, media)
        audio_in = source.streams.audio[0] if source.streams.audio else None
        video_out = target.add_stream("libx264", rate=video_in.average_rate or 25)
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.codec_context.time_base = video_in.time_base
        # tune=fastdecode (CAVLC, no deblocking): decodes ~25% faster for ~7% more bytes, and the
        # processor's tensors stay as close to the original's as with x264's defaults.
        video_out.options = {"g": str(keyframe_interval), "keyint_min": str(keyframe_interval), "bf": "0",
                             "crf": str(crf), "preset": preset, "sc_threshold": "0", "tune": "fastdecode"}
        if info.rotation:
            video_out.set_display_rotation(info.rotation)
        audio_out, copy_audio = _audio_stream(target, audio_in, copy_audio)
        encoder = _AudioEncoder(audio_out) if audio_out is not None and not copy_audio else None
        streams = [video_in] + ([audio_in] if audio_out is not None else [])
        next_pts = 0
        scaler = VideoReformatter()
        for packet in source.demux(*streams):
            if packet.stream is audio_in:
                if copy_audio:
                    if packet.dts is not None and packet.size:
                        packet.stream = audio_out
                        target.mux(packet)
                else:
                    for frame in packet.decode():
                        target.mux(encoder.encode(frame))
                continue
            for frame in packet.decode():
                small = scaler.reformat(frame, width=width, height=height, format="yuv420p", interpolation="BILINEAR")
                small.pts = frame.pts if frame.pts is not None else next_pts
                small.time_base = video_in.time_base
                next_pts = small.pts + 1
                target.mux(video_out.encode(small))
        target.mux(video_out.encode(None))
        if encoder is not None:
            target.mux(encoder.encode(None))


def _audio_stream(target, audio_in, copy: bool):
    """The proxy's audio stream (and whether it is a copy): the original's when the container takes it."""
    if audio_in is None:
        return None, False
    if copy and audio_in.codec_context.name in target.supported_codecs:
        return target.add_stream_from_template(audio_in), True
    stream = target.add_stream("aac", rate=audio_in.codec_context.sample_rate)
    # AAC needs a named layout ("2 channels" of unknown order is refused): mono, stereo and 5.1 are kept;
    # any other layout becomes the mean of its channels, which is all the MFCC reads of it (FFmpeg's
    # stereo downmix of 7.1 would weight the channels).
    stream.layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(audio_in.codec_context.channels, "mono")
    return stream, False


class _AudioEncoder:
    """Re-encode decoded audio frames to the output stream's format (when copying is impossible); a mono
    output gets the plain mean of the input's channels."""

    def __init__(self, stream):
        self.stream = stream
        self.downmix = MonoDownmix() if stream.layout.nb_channels == 1 else None
        self.resampler = av.AudioResampler(format=stream.format.name, layout=stream.layout.name, rate=stream.rate)

    def encode(self, frame):
        packets = []
        if frame is not None and self.downmix is not None:
            frame = self._mono(frame)
        frames = self.resampler.resample(frame)
        for converted in frames if frame is not None else [*frames, None]:
            packets += self.stream.encode(converted)
        return packets

    def _mono(self, frame: av.AudioFrame) -> av.AudioFrame:
        mono = av.AudioFrame.from_ndarray(self.downmix(frame)[None], format="flt", layout="mono")
        mono.sample_rate, mono.pts, mono.time_base = frame.sample_rate, frame.pts, frame.time_base
        return mono


def check_proxy(path, short_side: int) -> None:
    """Raise `StaleCacheError` unless the proxy at `path` is in the current format and holds `short_side`
    pixels (the processor's `image_size`): written at least that large, or at the original's full size.

    The tag of a local file is read once per (path, size, modification time) and process: a DataLoader
    worker sees each proxy again every epoch, and opening the container costs ~5% of reading the clip;
    a rewritten proxy has another modification time, so it is read again."""
    text = _proxy_tag_text(path)
    try:
        tag = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        tag = None
    if not isinstance(tag, dict):
        raise StaleCacheError(f"it records no {PROXY_TAG} settings (written before proxy format "
                              f"{PROXY_VERSION})")
    if tag.get("format_version") != PROXY_VERSION:
        raise StaleCacheError(f"proxy format {tag.get('format_version')}, expected {PROXY_VERSION}")
    written, full = tag.get("short_side"), tag.get("source_short_side")
    if not isinstance(written, int) or not isinstance(full, int):
        raise StaleCacheError(f"its {PROXY_TAG} tag lacks short_side / source_short_side")
    if written < min(short_side, full):
        raise StaleCacheError(f"short_side={written} is below the processor's image_size={short_side}")


def _proxy_tag_text(path) -> str | None:
    source = as_source(path)
    if source.path is None:
        return _read_proxy_tag(source)
    try:
        stat = os.stat(source.path)
    except OSError:
        return _read_proxy_tag(source)  # gone since `as_source` looked: the error names the file
    return _cached_proxy_tag(source.path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16384)
def _cached_proxy_tag(path: str, size: int, mtime_ns: int) -> str | None:  # size and mtime: the cache key
    return _read_proxy_tag(as_source(path))


def _read_proxy_tag(source) -> str | None:
    with open_container(source) as container:  # matroska upper-cases tag names
        return next((value for key, value in container.metadata.items() if key.lower() == PROXY_TAG), None)


def write_mfcc_cache(source, out_path: str | Path, processor) -> Path:
    """Save the full-length MFCC (num_mfcc, frames) float32 of `source`'s original audio, with the
    settings that made it, as a safetensors file (see the module docstring); `out_path` appears only
    when complete. A video without audio, or whose audio track has no samples, gets (num_mfcc, 0),
    which the processor reads as "no audio".
    """
    settings = processor.mfcc_settings
    info = probe(source)
    samples = read_audio(source, settings.sample_rate, end=info.audio_duration) if info.has_audio else None
    if samples is None or not len(samples):
        features = torch.zeros(settings.num_mfcc, 0)
    else:
        features = MFCC(settings)(torch.from_numpy(samples)).contiguous()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".part")
    try:
        # written by Python, not safetensors' own writer: a full disk is then an OSError (ENOSPC)
        partial.write_bytes(save({"mfcc": features}, metadata=_cache_metadata(settings)))
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    return out_path


def _cache_metadata(settings) -> dict[str, str]:
    values = {key: str(value) for key, value in dataclasses.asdict(settings).items()}
    return {"format_version": str(MFCC_CACHE_VERSION), **values}


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


@contextmanager
def open_mfcc_cache(path, settings):
    """The MFCC cache at `path` as a lazy safetensors slice (num_mfcc, frames): index it to read frames.

    Raises `StaleCacheError` when it was computed with other `settings`, in another format version, or
    is a legacy `.npy` (which records no settings); `VideoReadError` when it cannot be read.
    """
    with open(path, "rb") as handle:
        if handle.read(6) == b"\x93NUMPY":
            raise StaleCacheError("a legacy .npy MFCC cache, which records no settings")
    try:
        with safe_open(str(path), framework="pt") as cache:
            metadata = cache.metadata() or {}
            if metadata.get("format_version") != str(MFCC_CACHE_VERSION):
                raise StaleCacheError(f"MFCC cache format {metadata.get('format_version')}, "
                                      f"expected {MFCC_CACHE_VERSION}")
            wanted = dataclasses.asdict(settings)
            different = [f"{key}={metadata.get(key)} (processor: {value})" for key, value in wanted.items()
                         if _number(metadata.get(key)) != value]
            if different:
                raise StaleCacheError("computed with " + ", ".join(different))
            if "mfcc" not in set(cache.keys()):  # safe_open has no `in`
                raise VideoReadError(path, "the MFCC cache has no 'mfcc' tensor")
            mfcc = cache.get_slice("mfcc")
            shape, dtype = mfcc.get_shape(), mfcc.get_dtype()
            if len(shape) != 2 or shape[0] != settings.num_mfcc or dtype != "F32":
                raise VideoReadError(path, f"the MFCC cache holds {dtype} {tuple(shape)}, expected F32 "
                                           f"({settings.num_mfcc}, frames)")
            yield mfcc
    except SafetensorError as error:
        raise VideoReadError(path, f"cannot read the MFCC cache ({error})") from None


__all__ = ["StaleCacheError", "check_proxy", "open_mfcc_cache", "write_mfcc_cache", "write_proxy"]
