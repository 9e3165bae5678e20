"""Frame transforms in plain torch (no torchvision): resize, crops, normalisation, and the authors'
training augmentations (a random corner/centre crop at one of several scales, then with probability `p`
one of horizontal flip, rotation by up to ±20°, or brightness jitter).

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
    height, width = frames.shape[-2:]
    side = max(1, round(min(height, width) * scale))
    tops = {"c": (height - side) // 2, "tl": 0, "tr": 0, "bl": height - side, "br": height - side}
    lefts = {"c": (width - side) // 2, "tl": 0, "tr": width - side, "bl": 0, "br": width - side}
    return resize(to_float(crop(frames, tops[position], lefts[position], side, side)), size, size)


def rotate(frames: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre (counter-clockwise), filling the uncovered corners with black."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    height, width = frames.shape[-2:]
    aspect = width / height
    # affine_grid works in normalised coordinates; correct for non-square frames.
    theta = torch.tensor([[cos, -sin / aspect, 0.0], [sin * aspect, cos, 0.0]], dtype=frames.dtype)
    grid = F.affine_grid(theta.expand(frames.shape[0], 2, 3), list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


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
                  "brightness": float(rng.uniform(1.0 - brightness, 1.0 + brightness))}[kind]
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


__all__ = [
    "AUGMENTATIONS",
    "CROP_POSITIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augmentation",
    "center_crop",
    "channels_first",
    "corner_crop",
    "eval_transform",
    "normalize",
    "resize",
    "rotate",
    "to_float",
]
