"""Media files the decoding, audio, processor and proxy tests write for themselves (nothing is committed).

Video frame i is uniformly grey at level `grey(i)`, so a decoded frame tells which frame it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotions_hf.data.video_writer import write_video

SIZE = (48, 64)  # (height, width) of the small test videos


def grey(i) -> np.ndarray:
    """Grey level of frame i: distinct for i < 32, far apart enough to survive lossy coding."""
    return (8 * np.asarray(i) + 4) % 256


def frame_index(frames: np.ndarray) -> np.ndarray:
    """Recover frame indices (i < 32) from decoded uint8 frames (..., H, W, 3) written by `grey`."""
    return np.rint((frames.reshape(*frames.shape[:-3], -1).mean(axis=-1) - 4) / 8).astype(int)


def grey_frames(num_frames: int, size=SIZE):
    return (np.full((*size, 3), grey(i % 32), np.uint8) for i in range(num_frames))


def tone(seconds: float, sample_rate: int = 44100, channels: int = 2, frequency: float = 440.0,
         gains=None) -> np.ndarray:
    """(channels, samples) sine; channel c scaled by gains[c] (default 0.3 each)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    gains = gains if gains is not None else [0.3] * channels
    wave = np.sin(2 * np.pi * frequency * t)
    return np.stack([g * wave for g in gains]).astype(np.float32)


def write(path: Path, num_frames: int = 30, fps: float = 25.0, audio_seconds: float | None = None,
          sample_rate: int = 44100, channels: int = 2, size=SIZE, **kwargs) -> Path:
    """A grey-ramp video with a sine tone (no audio when `channels` is 0)."""
    audio = None
    if channels:
        seconds = audio_seconds if audio_seconds is not None else num_frames / fps
        audio = tone(seconds, sample_rate, channels)
    return write_video(path, grey_frames(num_frames, size), fps=fps, audio=audio, sample_rate=sample_rate, **kwargs)


def corner_marked(num_frames: int = 4, size=SIZE):
    """Black frames with a white block in the top-left corner (to see rotations)."""
    frame = np.zeros((*size, 3), np.uint8)
    frame[: size[0] // 4, : size[1] // 4] = 255
    return [frame] * num_frames


def bright_corner(frames: np.ndarray) -> tuple[int, int]:
    """(row, column) in {0, 1} of the bright quadrant of upright (H, W, 3) frames."""
    height, width = frames.shape[-3:-1]
    luma = frames[..., 0].astype(float)
    quadrants = [[luma[..., :height // 2, :width // 2].mean(), luma[..., :height // 2, width // 2:].mean()],
                 [luma[..., height // 2:, :width // 2].mean(), luma[..., height // 2:, width // 2:].mean()]]
    row, column = np.unravel_index(np.argmax(quadrants), (2, 2))
    return int(row), int(column)
