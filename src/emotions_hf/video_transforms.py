"""Frame transforms in plain torch (no torchvision): resize, crops, normalisation, and the authors'
training augmentations (a random corner/centre crop at one of the given scales, the authors' being the full
shorter side only, then with probability `p` one of horizontal flip, rotation by up to ±20°, or brightness
jitter by a factor drawn from a range, the authors' U(0.5, 1.0)).

Every random choice is drawn once per video from a `numpy.random.Generator`, so all frames of a clip
get the same transform and a seed reproduces it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")
AUGMENTATIONS = ("flip", "rotate", "brightness")


def channels_first(frames) -> torch.Tensor:
    """(N, H, W, 3) frames (numpy or torch) -> a (N, 3, H, W) view, dtype unchanged."""
    return torch.as_tensor(frames).permute(0, 3, 1, 2)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> contiguous float32 in [0, 1]; float frames are taken as already in [0, 1].

    Contiguous, because per-channel arithmetic on a permuted (channels-last) view is several times slower."""
    frames = frames.contiguous()
    if frames.dtype == torch.uint8:
        return frames.float().div_(255.0)
    return frames.float()


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of (N, 3, H, W) with antialiasing when shrinking."""
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def crop(frames: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return frames[..., top : top + height, left : left + width]


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    height, width = frames.shape[-2:]
    return crop(frames, (height - size) // 2, (width - size) // 2, size, size)


def eval_transform(frames: torch.Tensor, size: int) -> torch.Tensor:
    """The centred square, resized to `size` (= shorter side to `size`, then centre crop).

    Cropping first means frames decoded at the right size are only cut: they stay a uint8 view, and
    `normalize` converts them in its one pass; frames that need resizing come back as float in [0, 1]."""
    frames = center_crop(frames, min(frames.shape[-2:]))
    if frames.shape[-2:] == (size, size):
        return frames
    return resize(to_float(frames), size, size)


def corner_crop(frames: torch.Tensor, size: int, scale: float, position: str) -> torch.Tensor:
    """Square of side `scale` x the shorter side at a corner or the centre, resized to `size` (as float;
    uint8 frames are converted after cropping, so only the kept pixels are)."""
    return resize(to_float(crop(frames, *crop_box(*frames.shape[-2:], scale, position))), size, size)


def crop_box(height: int, width: int, scale: float, position: str) -> tuple[int, int, int, int]:
    """(top, left, side, side) of the square of side `scale` x the shorter side at a corner or the centre."""
    side = max(1, round(min(height, width) * scale))
    tops = {"c": (height - side) // 2, "tl": 0, "tr": 0, "bl": height - side, "br": height - side}
    lefts = {"c": (width - side) // 2, "tl": 0, "tr": width - side, "bl": 0, "br": width - side}
    return tops[position], lefts[position], side, side


def rotate(frames: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre (counter-clockwise), filling the uncovered corners with black.

    Every frame and channel moves alike, so the (N, C, H, W) frames are sampled as one (1, N*C, H, W) image
    with one grid: the grid and the sampling weights are computed once, not N times (same values)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    height, width = frames.shape[-2:]
    aspect = width / height
    # affine_grid works in normalised coordinates; correct for non-square frames.
    theta = torch.tensor([[[cos, -sin / aspect, 0.0], [sin * aspect, cos, 0.0]]], dtype=frames.dtype)
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    stacked = frames.reshape(1, -1, height, width)
    rotated = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return rotated.reshape(frames.shape)


def normalize(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """(frames - mean) / std per channel of (N, 3, H, W) frames in [0, 1], as contiguous float32.

    uint8 frames (read as x / 255) are converted and made contiguous in one copy, then normalised on the
    255 scale (three passes instead of five for contiguous, float, /255, -mean, /std); float frames
    are normalised in place."""
    if frames.dtype == torch.uint8:
        converted = torch.empty(frames.shape, dtype=torch.float32)
        converted.copy_(frames)
        frames, scale = converted, 255.0
    else:
        frames, scale = to_float(frames), 1.0
    mean = torch.tensor(mean, dtype=frames.dtype).view(-1, 1, 1) * scale
    std = torch.tensor(std, dtype=frames.dtype).view(-1, 1, 1) * scale
    return frames.sub_(mean).div_(std)


# --------------------------------------------------------------------------------------------------
# uint8 frames: the host keeps 8 bits per value to the end (a quarter of the bytes of float32) and the
# device normalises (`PixelNormalizer`).


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] (float) -> uint8, rounded; uint8 frames are returned as they are."""
    if frames.dtype == torch.uint8:
        return frames
    return frames.float().mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


def resize_uint8(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of uint8 (N, 3, H, W), staying uint8: torch's
    fixed-point uint8 kernel on channels-last memory, ~6x faster than `resize` of the float frames and
    within one level of it, rounded. The result is channels-last memory; `.contiguous()` makes it NCHW."""
    if frames.shape[-2:] == (height, width):
        return frames
    frames = frames.contiguous(memory_format=torch.channels_last)
    return F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def eval_transform_uint8(frames: torch.Tensor, size: int) -> torch.Tensor:
    """`eval_transform` without leaving uint8: the centred square, resized to `size` (float frames are
    taken as in [0, 1] and rounded first)."""
    frames = center_crop(to_uint8(frames), min(frames.shape[-2:]))
    return resize_uint8(frames, size, size)


class PixelNormalizer(torch.nn.Module):
    """`normalize` where the frames are used (the accelerator): uint8 `pixel_values` (..., 3, H, W) from a
    video processor with `output_dtype="uint8"` -> float32 (x - 255 mean) / (255 std), the very operations
    `normalize` runs on the host, so the result is bit-identical; float `pixel_values` (already
    normalised) pass through unchanged."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        # the same float32 products `normalize` computes for uint8 frames
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1) * 255.0, persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.dtype != torch.uint8:
            return pixel_values
        mean, std = self.mean.to(pixel_values.device), self.std.to(pixel_values.device)
        return pixel_values.float().sub_(mean).div_(std)


def brightness_range(brightness) -> tuple[float, float]:
    """The (low, high) range of the brightness factor: a pair as given, or a number b as (1 - b, 1 + b).

    The authors draw U(0.5, 1.0) (`BrightnessJitter`: `random.uniform(self.brightness, 1.0)` with brightness 0.5);
    a single number is the symmetric jitter that processors saved earlier hold."""
    if isinstance(brightness, (int, float)):
        low, high = 1.0 - float(brightness), 1.0 + float(brightness)
    else:
        low, high = (float(value) for value in brightness)
    if not 0.0 <= low <= high:
        raise ValueError(f"brightness={brightness!r} must give a factor range 0 <= low <= high")
    return low, high


@dataclass(frozen=True)
class Augmentation:
    """One clip's random training transform."""

    scale: float
    position: str
    kind: str | None = None  # one of AUGMENTATIONS, or None
    amount: float = 0.0  # rotation degrees, or brightness factor

    @classmethod
    def draw(cls, rng: np.random.Generator, scales, probability: float, max_rotation: float,
             brightness: float) -> Augmentation:
        scale = float(scales[rng.integers(len(scales))])
        position = CROP_POSITIONS[rng.integers(len(CROP_POSITIONS))]
        if rng.random() >= probability:
            return cls(scale, position)
        kind = AUGMENTATIONS[rng.integers(len(AUGMENTATIONS))]
        amount = {"flip": 0.0,
                  "rotate": float(rng.uniform(-max_rotation, max_rotation)),
                  "brightness": float(rng.uniform(*brightness_range(brightness)))}[kind]
        return cls(scale, position, kind, amount)

    def __call__(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        frames = corner_crop(frames, size, self.scale, self.position)
        if self.kind == "flip":
            return frames.flip(-1)
        if self.kind == "rotate":
            return rotate(frames, self.amount)
        if self.kind == "brightness":
            return (frames * self.amount).clamp_(0.0, 1.0)
        return frames

    def uint8(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        """This transform on uint8 (N, 3, H, W) frames, staying uint8 (no normalisation): the same crop,
        resized with `resize_uint8`, then the same flip / rotation / brightness, rounded. Within about one
        level (1/255) of `__call__` of the same frames, rounded; far cheaper (no float frames unless the
        clip is rotated or brightened)."""
        frames = to_uint8(frames)
        height, width = frames.shape[-2:]
        frames = resize_uint8(crop(frames, *crop_box(height, width, self.scale, self.position)), size, size)
        frames = frames.contiguous()  # NCHW: float passes over a strided view are several times slower
        if self.kind == "flip":
            return frames.flip(-1)
        if self.kind == "rotate":  # grid_sample is linear: rotating the 0-255 values is rotating [0, 1] x 255
            return rotate(frames.float(), self.amount).round_().clamp_(0.0, 255.0).to(torch.uint8)
        if self.kind == "brightness":
            return frames.float().mul_(self.amount).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return frames


__all__ = [
    "AUGMENTATIONS",
    "CROP_POSITIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augmentation",
    "PixelNormalizer",
    "brightness_range",
    "center_crop",
    "channels_first",
    "corner_crop",
    "crop_box",
    "eval_transform",
    "eval_transform_uint8",
    "normalize",
    "resize",
    "resize_uint8",
    "rotate",
    "to_float",
    "to_uint8",
]
