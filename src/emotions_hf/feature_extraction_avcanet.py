"""`AVCANetFeatureExtractor`: sound -> `input_features`, one MFCC chunk per snippet, and `audio_mask`.

It reads the audio of a video (or takes a waveform), computes the MFCC (librosa's definition, in torch), centre-crops
or tiles it to q frames and cuts it into s chunks; a full-length MFCC cache written by `prepare --proxy` is read
instead when given. Saved as `preprocessor_config.json`. Pure settings, so it pickles into DataLoader workers.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin

from .audio_features import MFCC, MFCCSettings, clip_mfcc, fit_frames, resample
from .decoding import as_source, probe
from .paper import MFCC_FRAMES, NUM_MFCC, NUM_SNIPPETS, SAMPLE_RATE
from .proxy import open_mfcc_cache

MFCC_NORMALIZATIONS = ("none", "dataset")


@functools.lru_cache(maxsize=4)
def _mfcc_module(settings: MFCCSettings) -> MFCC:
    return MFCC(settings)


class AVCANetFeatureExtractor(FeatureExtractionMixin):
    r"""Sound as AV-CANet takes it: `input_features` (B, s, q / s, num_mfcc) and `audio_mask` (B,), False where a
    video has no sound (its features are then zeros).

    Args:
        num_snippets (`int`, 16): s, the chunks the MFCC is cut into (one per snippet of frames).
        sample_rate (`int`, 44100), num_mfcc (`int`, 32), n_fft (`int`, 2048), hop_length (`int`, 512),
        n_mels (`int`, 128), top_db (`float`, 80): the MFCC (librosa's defaults).
        mfcc_frames (`int`, 4096): q, the MFCC length after centre crop / tiling; each snippet gets q / s frames.
        mfcc_normalization (`str`, "none"): "none" gives the raw MFCC, as the paper (values span about -400...+60,
            almost all of it in the first coefficient, the loudness); "dataset" standardises each coefficient with
            `mfcc_mean` / `mfcc_std`, statistics of the training videos that `fit_mfcc_statistics` computes
            (`AVCANetProcessor.fit_mfcc_statistics` from processor inputs) and `save_pretrained` keeps.
            `examples/train.py` fits them before training unless `--mfcc_normalization none`.
        mfcc_mean / mfcc_std (`list[float]` of length `num_mfcc`, None): those statistics.
    """

    model_input_names: ClassVar[list[str]] = ["input_features", "audio_mask"]

    def __init__(
        self,
        num_snippets: int = NUM_SNIPPETS,
        sample_rate: int = SAMPLE_RATE,
        num_mfcc: int = NUM_MFCC,
        n_fft: int = MFCCSettings.n_fft,
        hop_length: int = MFCCSettings.hop_length,
        n_mels: int = MFCCSettings.n_mels,
        top_db: float = MFCCSettings.top_db,
        mfcc_frames: int = MFCC_FRAMES,
        mfcc_normalization: str = "none",
        mfcc_mean=None,
        mfcc_std=None,
        **kwargs,
    ):
        kwargs.pop("feature_extractor_type", None)
        super().__init__(**kwargs)
        self.num_snippets = int(num_snippets)
        self.sample_rate = int(sample_rate)
        self.num_mfcc = int(num_mfcc)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.top_db = float(top_db)
        self.mfcc_frames = int(mfcc_frames)
        if self.mfcc_frames % self.num_snippets:
            raise ValueError(f"mfcc_frames={self.mfcc_frames} must be a multiple of num_snippets={self.num_snippets}")
        self.mfcc_normalization = mfcc_normalization
        self.mfcc_mean = None if mfcc_mean is None else [float(v) for v in mfcc_mean]
        self.mfcc_std = None if mfcc_std is None else [float(v) for v in mfcc_std]
        if self.mfcc_normalization not in MFCC_NORMALIZATIONS:
            raise ValueError(f"mfcc_normalization={self.mfcc_normalization!r} is not one of {MFCC_NORMALIZATIONS}")
        for name in ("mfcc_mean", "mfcc_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.num_mfcc:
                raise ValueError(f"{name} has {len(value)} values for num_mfcc={self.num_mfcc}")
        if self.mfcc_std is not None and min(self.mfcc_std) <= 0:
            raise ValueError("mfcc_std must be positive")

    @property
    def needs_mfcc_statistics(self) -> bool:
        """True when `mfcc_normalization="dataset"` but the statistics have not been fitted."""
        return self.mfcc_normalization == "dataset" and (self.mfcc_mean is None or self.mfcc_std is None)

    def fit_mfcc_statistics(self, features) -> AVCANetFeatureExtractor:
        """Set `mfcc_mean` / `mfcc_std` (per coefficient, over every frame) from raw (num_mfcc, frames) MFCCs (None
        entries, videos without sound, are passed over). Returns the feature extractor."""
        total = torch.zeros(self.num_mfcc, dtype=torch.float64)
        squares = torch.zeros(self.num_mfcc, dtype=torch.float64)
        count = 0
        for item in features:
            if item is None:
                continue
            item = torch.as_tensor(item).double()
            total += item.sum(-1)
            squares += item.square().sum(-1)
            count += item.shape[-1]
        if not count:
            raise ValueError("fit_mfcc_statistics: none of the videos has readable sound")
        mean = total / count
        std = (squares / count - mean.square()).clamp(min=1e-6).sqrt()
        self.mfcc_mean, self.mfcc_std = mean.tolist(), std.tolist()
        return self

    def normalized(self, features: torch.Tensor) -> torch.Tensor:
        """Raw (num_mfcc, frames) MFCC -> what the model sees (`mfcc_normalization`)."""
        if self.mfcc_normalization == "none":
            return features
        if self.needs_mfcc_statistics:
            raise ValueError("mfcc_normalization='dataset' needs mfcc_mean and mfcc_std: call "
                             "processor.fit_mfcc_statistics(training videos) first (examples/train.py does)")
        mean = torch.tensor(self.mfcc_mean, dtype=features.dtype)[:, None]
        std = torch.tensor(self.mfcc_std, dtype=features.dtype)[:, None]
        return (features - mean) / std

    @property
    def mfcc_settings(self) -> MFCCSettings:
        return MFCCSettings(self.sample_rate, self.num_mfcc, self.n_fft, self.hop_length, self.n_mels, self.top_db)

    @property
    def mfcc_chunk_frames(self) -> int:
        return self.mfcc_frames // self.num_snippets

    def __call__(self, audio, sampling_rate: int | None = None, clip_range=None, return_tensors="pt"
                 ) -> BatchFeature:
        """One input or a list: a waveform (1-D, or channels × samples, mixed to mono) at `sampling_rate` (default
        `sample_rate`), a video or audio file (path, bytes, binary file object, `{"path", "bytes"}`), or None for
        no sound. `clip_range` `(start_s, end_s)` applies to every input."""
        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        outputs = []
        for item in items:
            if item is None:
                features = None
            elif isinstance(item, (np.ndarray, torch.Tensor)):
                features = self.waveform_features(item, sampling_rate or self.sample_rate, clip_range)
            else:
                features = self.media_features(item, clip_range)
            outputs.append(self.chunked(features))
        return BatchFeature({key: torch.stack([o[key] for o in outputs]) for key in self.model_input_names},
                            tensor_type=return_tensors)

    def chunked(self, features: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """(num_mfcc, q) raw MFCC, or None for no sound -> this item's `input_features` and `audio_mask`."""
        has_audio = features is not None
        if features is None:
            features = torch.zeros(self.num_mfcc, self.mfcc_frames)
        else:
            features = self.normalized(features)
        return {"input_features": features.T.reshape(self.num_snippets, self.mfcc_chunk_frames, self.num_mfcc),
                "audio_mask": torch.tensor(has_audio)}

    def media_features(self, media, clip_range=None, duration: float | None = None) -> torch.Tensor | None:
        """(num_mfcc, q) MFCC of a file's sound track, None when it has none. `duration` (the sound's, from an
        earlier probe) saves opening the file once more."""
        source = as_source(media)
        if duration is None:
            info = probe(source)
            if not info.has_audio:
                return None
            duration = info.audio_duration
        return clip_mfcc(source, self.mfcc_frames, self.mfcc_settings, _mfcc_module(self.mfcc_settings),
                         clip_range=clip_range, duration=duration)

    def waveform_features(self, waveform, rate: int, clip_range=None) -> torch.Tensor | None:
        """(num_mfcc, q) MFCC of a waveform, None when the (clipped) waveform is empty."""
        waveform = np.asarray(waveform, dtype=np.float32)
        waveform = waveform.mean(axis=0) if waveform.ndim == 2 else waveform
        if rate != self.sample_rate:
            waveform = resample(waveform, rate, self.sample_rate)
        if clip_range is not None:
            waveform = waveform[round(clip_range[0] * self.sample_rate) : round(clip_range[1] * self.sample_rate)]
        if not len(waveform):
            return None
        return fit_frames(_mfcc_module(self.mfcc_settings)(torch.from_numpy(waveform)), self.mfcc_frames)

    def cached_features(self, path, clip_range=None) -> torch.Tensor | None:
        """Crop a full-length MFCC cache (written by `emotions_hf.proxy.write_mfcc_cache`), reading only the frames
        kept. Raises `StaleCacheError` when it was computed with other settings."""
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


__all__ = ["AVCANetFeatureExtractor"]
