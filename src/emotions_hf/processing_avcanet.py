"""`AVCANetProcessor`: any video -> the `pixel_values`, `input_features` and `audio_mask` AV-CANet takes.

Saved as `preprocessor_config.json`; `AutoProcessor` / `AutoFeatureExtractor` find it once
`emotions_hf` is imported. It keeps no decoder or file handle between calls, so it pickles and is
safe to use inside DataLoader workers.
"""

from __future__ import annotations

import functools
import math
import os
from typing import ClassVar

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .audio_features import MFCC, MFCCSettings, clip_mfcc, fit_frames, resample
from .configuration_avcanet import MODALITIES, ModalityStreams
from .decoding import BACKENDS, VideoInfo, as_source, probe, read_clip, sample_frame_indices
from .errors import VideoReadError
from .paper import FRAMES_PER_SNIPPET, IMAGE_SIZE, MFCC_FRAMES, NUM_MFCC, NUM_SNIPPETS, SAMPLE_RATE
from .proxy import StaleCacheError, check_proxy, open_mfcc_cache
from .video_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmentation,
    channels_first,
    eval_transform,
    normalize,
)

# 3D-ResNets' multi-scale corner crop scales: 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2 of the shorter side.
DEFAULT_CROP_SCALES = tuple(round(2 ** (-i / 4), 4) for i in range(5))

logger = logging.get_logger(__name__)
_WARNED: set[str] = set()  # kinds of stale file already reported by this process


@functools.lru_cache(maxsize=4)
def _mfcc_module(settings: MFCCSettings) -> MFCC:
    return MFCC(settings)


class AVCANetProcessor(ModalityStreams, FeatureExtractionMixin):
    r"""Turns videos into AV-CANet inputs: the paper's snippets of frames and one MFCC chunk per snippet.

    Args:
        num_snippets (`int`, 16) / frames_per_snippet (`int`, 8): s segments of equal duration, T
            consecutive frames from each.
        image_size (`int`, 112): side of the square frames.
        image_mean / image_std: normalisation (ImageNet by default).
        sample_rate (`int`, 44100), num_mfcc (`int`, 32), n_fft (`int`, 2048), hop_length (`int`, 512),
        n_mels (`int`, 128), top_db (`float`, 80): the MFCC (librosa's defaults).
        mfcc_frames (`int`, 4096): q, the MFCC length after centre crop / tiling; each snippet gets
            q / s frames.
        backend (`str`, "auto"): frame decoder, "auto" (= PyAV, the faster here), "pyav" or "decord".
        num_threads (`int`, 1): decoder threads per video (DataLoader workers parallelise across videos).
        crop_scales, augmentation_probability (0.3), max_rotation (20°), brightness (±0.2): training
            augmentation (a random corner/centre crop at one scale, then with that probability one of
            flip, rotation or brightness).
        modality (`str`, "audio-visual"): "visual" or "audio" skip the other input entirely.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values", "input_features", "audio_mask"]

    def __init__(
        self,
        num_snippets: int = NUM_SNIPPETS,
        frames_per_snippet: int = FRAMES_PER_SNIPPET,
        image_size: int = IMAGE_SIZE,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        sample_rate: int = SAMPLE_RATE,
        num_mfcc: int = NUM_MFCC,
        n_fft: int = MFCCSettings.n_fft,
        hop_length: int = MFCCSettings.hop_length,
        n_mels: int = MFCCSettings.n_mels,
        top_db: float = MFCCSettings.top_db,
        mfcc_frames: int = MFCC_FRAMES,
        backend: str = "auto",
        num_threads: int = 1,
        crop_scales=DEFAULT_CROP_SCALES,
        augmentation_probability: float = 0.3,
        max_rotation: float = 20.0,
        brightness: float = 0.2,
        modality: str = "audio-visual",
        **kwargs,
    ):
        kwargs.pop("feature_extractor_type", None)
        super().__init__(**kwargs)
        self.num_snippets = int(num_snippets)
        self.frames_per_snippet = int(frames_per_snippet)
        self.image_size = int(image_size)
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.sample_rate = int(sample_rate)
        self.num_mfcc = int(num_mfcc)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.top_db = float(top_db)
        self.mfcc_frames = int(mfcc_frames)
        self.backend = backend
        self.num_threads = int(num_threads)
        self.crop_scales = tuple(float(s) for s in crop_scales)
        self.augmentation_probability = float(augmentation_probability)
        self.max_rotation = float(max_rotation)
        self.brightness = float(brightness)
        self.modality = modality
        self._validate()

    def _validate(self):
        if self.mfcc_frames % self.num_snippets:
            raise ValueError(f"mfcc_frames={self.mfcc_frames} must be a multiple of num_snippets={self.num_snippets}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is not one of {BACKENDS}")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality={self.modality!r} is not one of {MODALITIES}")
        if not self.crop_scales or not all(0 < s <= 1 for s in self.crop_scales):
            raise ValueError(f"crop_scales={self.crop_scales} must be in (0, 1]")

    @classmethod
    def from_model_config(cls, config, **kwargs) -> AVCANetProcessor:
        """A processor whose output shapes match an `AVCANetConfig`."""
        settings = {
            "num_snippets": config.num_snippets,
            "frames_per_snippet": config.frames_per_snippet,
            "image_size": config.image_size,
            "num_mfcc": config.num_mfcc,
            "mfcc_frames": config.num_snippets * config.mfcc_chunk_frames,
            "modality": config.modality,
        }
        settings.update(kwargs)
        return cls(**settings)

    def to_dict(self):
        output = super().to_dict()
        output["processor_class"] = type(self).__name__
        return output

    # ----------------------------------------------------------------------------------------------

    @property
    def mfcc_settings(self) -> MFCCSettings:
        return MFCCSettings(self.sample_rate, self.num_mfcc, self.n_fft, self.hop_length, self.n_mels, self.top_db)

    @property
    def mfcc_chunk_frames(self) -> int:
        return self.mfcc_frames // self.num_snippets

    def training_short_side(self) -> int:
        """Decode size in training: the smallest crop scale still covers `image_size` pixels."""
        return math.ceil(self.image_size / min(self.crop_scales))

    def probe(self, item) -> VideoInfo:
        """Cheap metadata (duration, num_frames, fps, width, height, rotation, has_audio, ...)."""
        video, proxy, _ = _split_item(item)
        return probe(video if video is not None else proxy)

    def __call__(self, videos, training: bool = False, seed: int | None = None, clip_range=None,
                 return_tensors="pt", **kwargs) -> BatchFeature:
        """Process one video or a list of them.

        Args:
            videos: a path, bytes, a binary file object, `{"path", "bytes"}`, `{"video", "proxy", "mfcc"}`,
                decoded frames (N, H, W, 3) or `{"frames", "audio", "sample_rate"}`; or a list of these.
            training: random frame positions and augmentation (reproducible with `seed`).
            clip_range: `(start_s, end_s)` for every video, or a list with one (or None) per video.
        Raises:
            VideoReadError: a video cannot be read; nothing is returned for the rest of the batch.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        items = list(videos) if isinstance(videos, (list, tuple)) else [videos]
        if not items:
            raise ValueError("no videos given")
        ranges = _per_item_ranges(clip_range, len(items))
        rngs = np.random.default_rng(seed).spawn(len(items)) if training else [None] * len(items)
        outputs = [self._process(item, training, rng, window) for item, rng, window in zip(items, rngs, ranges)]
        batch = {key: _batched([o[key] for o in outputs]) for key in outputs[0]}
        return BatchFeature(batch, tensor_type=return_tensors)

    # ----------------------------------------------------------------------------------------------

    def _process(self, item, training, rng, clip_range) -> dict:
        video, proxy, cache = _split_item(item)
        result, info = {}, None
        if self.uses_video:
            frame_source = video
            if proxy is not None:
                try:
                    check_proxy(proxy, self.image_size)
                    frame_source = proxy
                except StaleCacheError as stale:
                    _stale_fallback("training proxy", proxy, stale, video,
                                    "decoding frames from the original")
            result["pixel_values"], info = self._pixel_values(frame_source, training, rng, clip_range)
            if frame_source is not video:
                info = None  # the proxy's audio metadata is not the original's
        if self.uses_audio:
            features = None
            if cache is not None:
                try:
                    features = self._cached_mfcc(cache, clip_range)
                except StaleCacheError as stale:
                    _stale_fallback("MFCC cache", cache, stale, video, "recomputing it from the original")
                    cache = None
            if cache is None:
                features = self._mfcc(video if video is not None else proxy, clip_range, info)
            has_audio = features is not None
            if features is None:
                features = torch.zeros(self.num_mfcc, self.mfcc_frames)
            result["input_features"] = features.T.reshape(self.num_snippets, self.mfcc_chunk_frames, self.num_mfcc)
            result["audio_mask"] = torch.tensor(has_audio)
        return result

    def _pixel_values(self, video, training, rng, clip_range) -> tuple[torch.Tensor, VideoInfo | None]:
        """(s, T, 3, H, W) normalised frames, and the video's metadata when it was read from a file."""
        short_side = self.training_short_side() if training else self.image_size
        if isinstance(video, dict) and "frames" in video:
            video = video["frames"]
        info = None
        if isinstance(video, (np.ndarray, torch.Tensor)):
            frames = self._sample_decoded(video, training, rng, clip_range)
        else:
            clip = read_clip(video, self.num_snippets, self.frames_per_snippet, short_side=short_side,
                             training=training, rng=rng, clip_range=clip_range, backend=self.backend,
                             num_threads=self.num_threads)
            frames, info = clip.frames, clip.info
        frames = channels_first(frames)
        if training:
            augmentation = Augmentation.draw(rng, self.crop_scales, self.augmentation_probability, self.max_rotation,
                                             self.brightness)
            frames = augmentation(frames, self.image_size)
        else:
            frames = eval_transform(frames, self.image_size)
        frames = normalize(frames, self.image_mean, self.image_std)
        return frames.reshape(self.num_snippets, self.frames_per_snippet, *frames.shape[1:]), info

    def _sample_decoded(self, frames, training, rng, clip_range):
        """Pre-decoded (N, H, W, 3) frames: equal segments by frame count (no timestamps are known)."""
        frames = torch.as_tensor(frames)
        if frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"decoded frames must be (N, H, W, 3) with N > 0, got {tuple(frames.shape)}")
        sample = sample_frame_indices(np.arange(frames.shape[0], dtype=np.float64), self.num_snippets,
                                      self.frames_per_snippet, training=training, rng=rng, clip_range=clip_range)
        return frames[torch.from_numpy(sample.indices.reshape(-1))]

    def _mfcc(self, video, clip_range, info: VideoInfo | None = None) -> torch.Tensor | None:
        if isinstance(video, dict) and "frames" in video:
            return self._decoded_audio_mfcc(video, clip_range)
        if isinstance(video, (np.ndarray, torch.Tensor)):
            return None
        source = as_source(video)
        info = info if info is not None else probe(source)
        if not info.has_audio:
            return None
        return clip_mfcc(source, self.mfcc_frames, self.mfcc_settings, _mfcc_module(self.mfcc_settings),
                         clip_range=clip_range, duration=info.audio_duration)

    def _decoded_audio_mfcc(self, video: dict, clip_range) -> torch.Tensor | None:
        audio = video.get("audio")
        if audio is None:
            return None
        audio = np.asarray(audio, dtype=np.float32)
        audio = audio.mean(axis=0) if audio.ndim == 2 else audio
        rate = int(video.get("sample_rate", self.sample_rate))
        if rate != self.sample_rate:
            audio = resample(audio, rate, self.sample_rate)
        if clip_range is not None:
            audio = audio[round(clip_range[0] * self.sample_rate) : round(clip_range[1] * self.sample_rate)]
        if not len(audio):
            return None
        return fit_frames(_mfcc_module(self.mfcc_settings)(torch.from_numpy(audio)), self.mfcc_frames)

    def _cached_mfcc(self, path, clip_range) -> torch.Tensor | None:
        """Crop a full-length MFCC cache (written by `emotions_hf.proxy.write_mfcc_cache`), reading only the
        frames kept. Raises `StaleCacheError` when it was computed with other settings."""
        with open_mfcc_cache(path, self.mfcc_settings) as cached:
            first, stop = 0, cached.get_shape()[1]
            if clip_range is not None:
                frames_per_second = self.sample_rate / self.hop_length
                first = max(0, math.ceil(clip_range[0] * frames_per_second))
                stop = min(stop, math.floor(clip_range[1] * frames_per_second) + 1)
            if stop <= first:
                return None
            if stop - first > self.mfcc_frames:  # `fit_frames`' centre crop
                first += (stop - first - self.mfcc_frames) // 2
                stop = first + self.mfcc_frames
            return fit_frames(cached[:, first:stop], self.mfcc_frames)


def _stale_fallback(kind: str, path, stale: StaleCacheError, video, action: str) -> None:
    """Use the original video instead of a stale proxy / cache, warning once per kind and process (a
    stale dataset has thousands); without the original, a clear error rather than stale inputs."""
    if video is None:
        raise VideoReadError(path, f"stale {kind}: {stale}; the item has no original video to use instead")
    if kind not in _WARNED:
        _WARNED.add(kind)
        logger.warning(f"{path}: stale {kind} ({stale}); {action}, which is slower. Rewrite them "
                       f"(`emotions-hf prepare --proxy`) with this processor's settings; further stale "
                       f"{kind}s are not reported.")


def _existing_file(value) -> str | None:
    """The local path of a proxy / cache given as a path or as an undecoded `{"path", "bytes"}` media dict."""
    path = value.get("path") if isinstance(value, dict) else value
    return path if path and os.path.isfile(path) else None


def _split_item(item):
    """(video, proxy, mfcc cache) of an item; proxy and cache only when their files exist."""
    if isinstance(item, dict) and "video" in item:
        proxy, cache = _existing_file(item.get("proxy")), _existing_file(item.get("mfcc"))
        video = item["video"]
        if video is None and proxy is None:
            raise VideoReadError("<dict>", "the item has neither a video nor a proxy")
        return video, proxy, cache
    return item, None, None


def _batched(tensors: list) -> torch.Tensor:
    """Stack along a new batch axis; one item is only viewed as a batch (a clip's pixels are ~20 MB)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _per_item_ranges(clip_range, count: int) -> list:
    if clip_range is None:
        return [None] * count
    if len(clip_range) == 2 and all(isinstance(v, (int, float)) for v in clip_range):
        return [tuple(clip_range)] * count
    ranges = list(clip_range)
    if len(ranges) != count:
        raise ValueError(f"clip_range has {len(ranges)} entries for {count} videos")
    return ranges


__all__ = ["AVCANetProcessor"]
