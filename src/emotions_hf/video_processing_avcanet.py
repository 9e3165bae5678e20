"""`AVCANetVideoProcessor`: a video -> `pixel_values`, the paper's snippets of frames.

It samples the frames (s segments of equal duration, T consecutive frames from each), decodes only those, and
resizes, crops, augments (training) and normalises them. Saved as `video_preprocessor_config.json`. Pure settings:
it keeps no decoder or file handle between calls, so it pickles into DataLoader workers.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import VideoProcessorMixin

from .decoding import BACKENDS, VideoInfo, read_clip, sample_frame_indices
from .paper import FRAMES_PER_SNIPPET, IMAGE_SIZE, NUM_SNIPPETS
from .video_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmentation,
    PixelNormalizer,
    brightness_range,
    channels_first,
    eval_transform,
    eval_transform_uint8,
    normalize,
)

OUTPUT_DTYPES = ("float32", "uint8")

# The authors' crop (`transforms/spatial.py`, `RandomCenterCornerCrop`): a square of the full shorter side
# (`min_length = min(image_width, image_height)`) at the centre or a corner, resized to the frame size.
DEFAULT_CROP_SCALES = (1.0,)
# 3D-ResNets' multi-scale corner crop scales: 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2 of the shorter side (our earlier default,
# kept by the CPU demo recipe).
MULTI_SCALE_CROP_SCALES = tuple(round(2 ** (-i / 4), 4) for i in range(5))
# The authors' brightness jitter (`BrightnessJitter(brightness=0.5)`: `random.uniform(self.brightness, 1.0)`).
DEFAULT_BRIGHTNESS = (0.5, 1.0)


class AVCANetVideosKwargs(VideosKwargs, total=False):
    """The settings `from_pretrained(..., **kwargs)` may override."""

    num_snippets: int
    frames_per_snippet: int
    image_size: int
    backend: str
    num_threads: int
    crop_scales: tuple
    augmentation_probability: float
    max_rotation: float
    brightness: float | tuple
    output_dtype: str


class AVCANetVideoProcessor(VideoProcessorMixin):
    r"""Frames of a video as AV-CANet takes them: `pixel_values` (B, s, T, 3, H, W).

    Args:
        num_snippets (`int`, 16) / frames_per_snippet (`int`, 8): s segments of equal duration, T consecutive frames
            from each.
        image_size (`int`, 112): side of the square frames.
        image_mean / image_std: normalisation (ImageNet by default).
        backend (`str`, "auto"): frame decoder, "auto" (= PyAV, the faster here), "pyav" or "decord".
        num_threads (`int`, 1): decoder threads per video (DataLoader workers parallelise across videos).
        crop_scales ((1.0,)), augmentation_probability (0.3), max_rotation (20°), brightness ((0.5, 1.0)): training
            augmentation, the authors' by default: a random corner/centre square of `crop_scales` (drawn) times the
            shorter side, resized; then with that probability one of flip, rotation or brightness, whose factor is
            drawn from U(low, high). `crop_scales=MULTI_SCALE_CROP_SCALES` is 3D-ResNets' multi-scale crop; a single
            number as `brightness` is a ± range around 1 (how processors saved before (0.5, 1.0) store it).
        output_dtype (`str`, "float32"): "uint8" returns un-normalised uint8 frames (crop, resize and augmentation
            done in uint8 on the host); the Trainer / model input path then calls `device_normalizer()` on the device.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    valid_kwargs = AVCANetVideosKwargs

    def __init__(
        self,
        num_snippets: int = NUM_SNIPPETS,
        frames_per_snippet: int = FRAMES_PER_SNIPPET,
        image_size: int = IMAGE_SIZE,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        backend: str = "auto",
        num_threads: int = 1,
        crop_scales=DEFAULT_CROP_SCALES,
        augmentation_probability: float = 0.3,
        max_rotation: float = 20.0,
        brightness=DEFAULT_BRIGHTNESS,
        output_dtype: str = "float32",
        **kwargs,
    ):
        kwargs.pop("video_processor_type", None)
        super().__init__(**kwargs)
        self.num_snippets = int(num_snippets)
        self.frames_per_snippet = int(frames_per_snippet)
        self.image_size = int(image_size)
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.backend = backend
        self.num_threads = int(num_threads)
        self.crop_scales = tuple(float(s) for s in crop_scales)
        self.augmentation_probability = float(augmentation_probability)
        self.max_rotation = float(max_rotation)
        self.brightness = brightness_range(brightness)
        self.output_dtype = str(output_dtype)
        if self.output_dtype not in OUTPUT_DTYPES:
            raise ValueError(f"output_dtype={self.output_dtype!r} is not one of {OUTPUT_DTYPES}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is not one of {BACKENDS}")
        if not self.crop_scales or not all(0 < s <= 1 for s in self.crop_scales):
            raise ValueError(f"crop_scales={self.crop_scales} must be in (0, 1]")

    def training_short_side(self) -> int:
        """Decode size in training: the smallest crop scale still covers `image_size` pixels."""
        return math.ceil(self.image_size / min(self.crop_scales))

    def __call__(self, videos, training: bool = False, seed: int | None = None, clip_range=None,
                 return_tensors="pt") -> BatchFeature:
        """One video or a list: paths, bytes, binary file objects, `{"path", "bytes"}`, or decoded (N, H, W, 3)
        frames. `training` draws frame positions and augmentation (reproducible with `seed`); `clip_range` is
        `(start_s, end_s)`, applied to every video."""
        items = list(videos) if isinstance(videos, (list, tuple)) else [videos]
        rngs = np.random.default_rng(seed).spawn(len(items)) if training else [None] * len(items)
        pixels = [self.pixel_values(item, training, rng, clip_range)[0] for item, rng in zip(items, rngs)]
        return BatchFeature({"pixel_values": torch.stack(pixels)}, tensor_type=return_tensors)

    def pixel_values(self, video, training: bool, rng: np.random.Generator | None, clip_range
                     ) -> tuple[torch.Tensor, VideoInfo | None]:
        """(s, T, 3, H, W) normalised frames, and the video's metadata when it was read from a file.

        With `output_dtype="uint8"` the frames are cropped, resized and augmented as uint8 and not normalised
        (`device_normalizer()` does that where they are used): a quarter of the bytes, and ~25% less host CPU.
        Bit-identical after normalisation in evaluation from files (frames decoded at the model's size);
        within about one level (1/255) of the float path in training (the resize and the pixel-level
        augmentations round to uint8)."""
        short_side = self.training_short_side() if training else self.image_size
        info = None
        if isinstance(video, (np.ndarray, torch.Tensor)):
            frames = self._sample_decoded(video, training, rng, clip_range)
        else:
            clip = read_clip(video, self.num_snippets, self.frames_per_snippet, short_side=short_side,
                             training=training, rng=rng, clip_range=clip_range, backend=self.backend,
                             num_threads=self.num_threads)
            frames, info = clip.frames, clip.info
        frames = channels_first(frames)
        if self.output_dtype == "uint8":
            if training:
                augmentation = Augmentation.draw(rng, self.crop_scales, self.augmentation_probability,
                                                 self.max_rotation, self.brightness)
                frames = augmentation.uint8(frames, self.image_size)
            else:
                frames = eval_transform_uint8(frames, self.image_size)
            frames = frames.contiguous()
            return frames.reshape(self.num_snippets, self.frames_per_snippet, *frames.shape[1:]), info
        if training:
            augmentation = Augmentation.draw(rng, self.crop_scales, self.augmentation_probability, self.max_rotation,
                                             self.brightness)
            frames = augmentation(frames, self.image_size)
        else:
            frames = eval_transform(frames, self.image_size)
        frames = normalize(frames, self.image_mean, self.image_std)
        return frames.reshape(self.num_snippets, self.frames_per_snippet, *frames.shape[1:]), info

    def device_normalizer(self) -> PixelNormalizer:
        """The module that normalises this processor's uint8 `pixel_values` on the device (float ones pass)."""
        return PixelNormalizer(self.image_mean, self.image_std)

    def _sample_decoded(self, frames, training, rng, clip_range):
        """Pre-decoded (N, H, W, 3) frames: equal segments by frame count (no timestamps are known)."""
        frames = torch.as_tensor(frames)
        if frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"decoded frames must be (N, H, W, 3) with N > 0, got {tuple(frames.shape)}")
        sample = sample_frame_indices(np.arange(frames.shape[0], dtype=np.float64), self.num_snippets,
                                      self.frames_per_snippet, training=training, rng=rng, clip_range=clip_range)
        return frames[torch.from_numpy(sample.indices.reshape(-1))]


__all__ = ["AVCANetVideoProcessor"]
