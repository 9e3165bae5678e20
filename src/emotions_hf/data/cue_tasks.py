"""Learnability tasks: small, seeded sets of real mp4 files (h264 + AAC) whose class is one picture cue times
one sound cue, for checking that a model learns *both* modalities (`bench/learnability.py`).

A task is a pair (picture family, sound family). Every picture family has 3 values and every sound family 2,
so a task has 6 classes, the eMotions labels in their order, and class `c = 2 * picture + sound`: the
picture alone can reach 1/2 accuracy, the sound alone 1/3, and only a model that fuses both reaches 1
(the same shape as `synthetic.py`'s hue x tone band, which every family here generalises).

Picture families (values 0, 1, 2), each under random colours, offsets, phases, drift, brightness and noise:
- `colour`: the hue (red / green / blue thirds of the hue circle, jittered) of a drifting cloud texture.
- `pattern`: horizontal stripes, vertical stripes or a checkerboard in two random colours, random period,
  phase and drift (the user's task of issue 14).
- `motion`: a random cloud texture moving up, down or sideways (left or right at random, so a horizontal
  flip keeps the class).
- `texture`: a grating of random orientation whose spatial frequency is low, middle or high (a factor ~3
  apart, so the crop scales of training augmentation do not turn one into another).
- `count`: one, two or three equal-size light discs of random hues moving over a dark background of a random
  hue. (Until issue 14's second round the discs had random colours and radii over a random background: at 40
  videos per class even a plain 3-layer CNN overfitted it, 0.23 visual-only test accuracy against a ceiling
  of 0.5, so the task could not tell a defect of the model from a task no small model can learn.)
- `size`: one light disc, small, middle or large (radius 0.07, 0.13 or 0.22 of the side, +-8 %), moving over
  a dark background.

Sound families (values 0, 1), each with random loudness, phase, pitch within its range and light noise:
- `band`: a tone in a low (200-450 Hz) or high (2-3.5 kHz) band.
- `rhythm`: beeps at a slow (2-3 Hz) or fast (7-9 Hz) rate, random carrier and phase.
- `chord`: a consonant (root, fifth, octave) or dissonant (root, minor second, tritone) chord, random root.
- `noise`: white or brown (1/f^2) noise.
- `envelope`: a tone whose loudness rises or falls by 30-40 dB over the clip.
- `glide`: a tone whose pitch rises or falls (exponentially) by a factor 2.5-3 over the clip.

Sets are written in the `folder` layout (`<Class>/<video_id>.mp4`) that `emotions-hf prepare` reads, with
a `task.json` describing the task and the cue values of every video. The same seed writes the same files.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..labels import EMOTIONS
from ..paper import SAMPLE_RATE
from .video_writer import write_video

PICTURE_FAMILIES = ("colour", "pattern", "motion", "texture", "count", "size")
SOUND_FAMILIES = ("band", "rhythm", "chord", "noise", "envelope", "glide")
NUM_PICTURE_VALUES, NUM_SOUND_VALUES = 3, 2
LABELS = EMOTIONS.labels  # 6 = 3 x 2 classes, named as eMotions' so `prepare`'s default label set reads them


def class_of(picture: int, sound: int) -> int:
    return NUM_SOUND_VALUES * picture + sound


def cues_of(label_index: int) -> tuple[int, int]:
    return divmod(label_index, NUM_SOUND_VALUES)


def parse_task(name: str) -> tuple[str, str]:
    """'pattern-band' (or 'pattern x band') -> ('pattern', 'band'), checked against the families."""
    picture, _, sound = name.replace(" x ", "-").replace("*", "-").partition("-")
    if picture not in PICTURE_FAMILIES or sound not in SOUND_FAMILIES:
        raise ValueError(f"task {name!r}: expected '<picture>-<sound>' with picture in {PICTURE_FAMILIES} "
                         f"and sound in {SOUND_FAMILIES}")
    return picture, sound


# ------------------------------------------------------------------------------------------------- picture


def _random_rgb(rng) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.35, 1.0)),
                    np.float32) * 255.0


def _cloud(rng, size: int, cutoff: float = 4.0) -> np.ndarray:
    """A periodic smooth random texture in [0, 1] (low-passed noise), so np.roll moves it without seams."""
    noise = rng.normal(size=(size, size))
    freq = np.fft.fftfreq(size) * size
    radius = np.hypot(freq[:, None], freq[None, :])
    texture = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(radius / cutoff) ** 2)))
    texture -= texture.min()
    return (texture / max(texture.max(), 1e-6)).astype(np.float32)


def _drift(rng, num_frames: int, speed: float = 0.6) -> np.ndarray:
    """(N, 2) integer pixel offsets of a slow random drift (the nuisance motion of non-motion families)."""
    direction = rng.uniform(0, 2 * np.pi)
    step = speed * np.array([np.sin(direction), np.cos(direction)])
    return np.round(rng.uniform(0, 64, size=2) + step * np.arange(num_frames)[:, None]).astype(int)


def _two_colour(mask: np.ndarray, rng) -> np.ndarray:
    """(N, H, W) weights in [0, 1] -> RGB frames mixing two random, clearly different colours."""
    first = _random_rgb(rng)
    second = _random_rgb(rng)
    while np.abs(first - second).sum() < 180:  # keep the two colours apart
        second = _random_rgb(rng)
    return first + mask[..., None] * (second - first)


def _moving_discs(rng, num_frames: int, size: int, count: int, radius: float) -> np.ndarray:
    """(N, size, size, 3) float frames: `count` light discs of random hues, never overlapping at the start, each
    drifting and bouncing inside the frame, over a dark background of a random hue (a light/dark contrast that
    any colour augmentation keeps)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.35)),
                          np.float32) * 255.0
    frames = np.broadcast_to(background, (num_frames, size, size, 3)).copy()
    margin = radius + 1
    centres = []
    while len(centres) < count:
        candidate = rng.uniform(margin, size - margin, size=2)
        if all(np.hypot(*(candidate - c)) > 2.4 * radius for c in centres):
            centres.append(candidate)
    span = size - 2 * margin
    for centre in centres:
        colour = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.85, 1.0)),
                          np.float32) * 255.0
        path = (centre - margin + rng.uniform(-0.5, 0.5, size=2) * np.arange(num_frames)[:, None]) % (2 * span)
        path = margin + np.minimum(path, 2 * span - path)
        inside = np.hypot(yy[None] - path[:, :1, None], xx[None] - path[:, 1:, None]) <= radius
        frames[inside] = colour
    return frames


def render_picture(rng, family: str, value: int, num_frames: int, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 frames carrying picture cue `value` of `family`."""
    n = num_frames
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if family == "colour":
        hue = (value / 3 + rng.uniform(-0.06, 0.06)) % 1.0
        rgb = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), 1.0), np.float32) * 255.0
        cloud = _cloud(rng, size)
        offsets = _drift(rng, n)
        shade = np.stack([np.roll(cloud, tuple(o), axis=(0, 1)) for o in offsets])
        frames = rgb * (rng.uniform(0.4, 0.6) + rng.uniform(0.3, 0.45) * shade[..., None])
    elif family == "pattern":
        period = rng.uniform(10, 20)
        offsets = _drift(rng, n)
        y = yy[None] + offsets[:, :1, None]
        x = xx[None] + offsets[:, 1:, None]
        stripes_y = (np.floor(y / period) % 2).astype(np.float32)
        stripes_x = (np.floor(x / period) % 2).astype(np.float32)
        mask = [stripes_y, stripes_x, (stripes_y + stripes_x) % 2][value]
        frames = _two_colour(mask, rng)
    elif family == "motion":
        cloud = _cloud(rng, size, cutoff=5.0)
        speed = rng.uniform(2.0, 3.5)
        sideways = (1.0, -1.0)[rng.integers(2)]
        step = [(-speed, 0.0), (speed, 0.0), (0.0, sideways * speed)][value]  # up, down, left or right
        start = rng.uniform(0, size, size=2)
        offsets = np.round(start + np.outer(np.arange(n), step)).astype(int)
        shade = np.stack([np.roll(cloud, tuple(o), axis=(0, 1)) for o in offsets])
        frames = _two_colour(np.clip(2.0 * shade - 0.5, 0.0, 1.0), rng)  # contrast: the motion must show
    elif family == "texture":
        cycles = (1.5, 4.5, 13.0)[value] * rng.uniform(0.9, 1.1)  # per frame side
        angle = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.3, 0.3) * np.arange(n)  # a slow random drift
        along = (np.cos(angle) * xx + np.sin(angle) * yy) * (2 * np.pi * cycles / size)
        mask = 0.5 + 0.5 * np.sin(along[None] + phase[:, None, None])
        frames = _two_colour(mask, rng)
    elif family in ("count", "size"):
        discs, radius = (value + 1, 0.14) if family == "count" else (1, (0.07, 0.13, 0.22)[value])
        frames = _moving_discs(rng, n, size, discs, size * radius * rng.uniform(0.92, 1.08))
    else:
        raise ValueError(f"unknown picture family {family!r}; one of {PICTURE_FAMILIES}")
    frames = frames * rng.uniform(0.75, 1.1)  # brightness
    frames = frames + rng.normal(0.0, 6.0, size=(n, size, size, 1)).astype(np.float32)  # pixel noise
    return np.clip(frames, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------- sound


def _brown_noise(rng, length: int) -> np.ndarray:
    walk = np.cumsum(rng.normal(size=length))
    walk -= np.convolve(walk, np.ones(2048) / 2048, mode="same")  # remove the drift, keep the 1/f^2 slope
    return walk / (np.abs(walk).max() + 1e-9)


def render_sound(rng, family: str, value: int, duration: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio in [-1, 1] carrying sound cue `value` of `family`, with light white noise."""
    length = round(duration * sample_rate)
    t = np.arange(length) / sample_rate

    def tone(frequency):
        return np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))

    if family == "band":
        low, high = ((200.0, 450.0), (2000.0, 3500.0))[value]
        signal = tone(rng.uniform(low, high))
    elif family == "rhythm":
        rate = rng.uniform(2.0, 3.0) if value == 0 else rng.uniform(7.0, 9.0)
        gate = (np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) > 0).astype(np.float64)
        gate = np.convolve(gate, np.hanning(221) / np.hanning(221).sum(), mode="same")  # 5 ms ramps
        signal = gate * tone(rng.uniform(400.0, 1500.0))
    elif family == "chord":
        root = rng.uniform(220.0, 440.0)
        ratios = (1.0, 1.5, 2.0) if value == 0 else (1.0, 2 ** (1 / 12), 2 ** (6 / 12))
        signal = sum(tone(root * r) for r in ratios) / 3.0
    elif family == "noise":
        signal = rng.normal(size=length) / 3.0 if value == 0 else _brown_noise(rng, length)
    elif family == "envelope":
        depth_db = rng.uniform(30.0, 40.0)
        ramp = t / max(duration, 1e-6)
        gain_db = -depth_db * (1.0 - ramp if value == 0 else ramp)  # 0: rising, 1: falling
        signal = 10 ** (gain_db / 20) * tone(rng.uniform(300.0, 1500.0))
    elif family == "glide":
        low = rng.uniform(250.0, 500.0)
        high = low * rng.uniform(2.5, 3.0)
        start, end = (low, high) if value == 0 else (high, low)  # 0: rising, 1: falling
        # exponential sweep: the phase is the integral of start * (end / start) ** (t / duration)
        rate = np.log(end / start) / max(duration, 1e-6)
        signal = np.sin(2 * np.pi * start * np.expm1(rate * t) / rate + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown sound family {family!r}; one of {SOUND_FAMILIES}")
    signal = rng.uniform(0.15, 0.45) * signal / (np.abs(signal).max() + 1e-9)  # random loudness
    signal = signal + rng.uniform(0.002, 0.01) * rng.normal(size=length)  # light noise
    return np.clip(signal, -1, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------- the sets


@dataclass(frozen=True)
class CueVideo:
    video_id: str
    label: str
    picture: int
    sound: int
    duration: float
    relative_path: str


def generate_task(out_dir: str | Path, task: str, videos_per_class: int = 40, seed: int = 0,
                  duration: tuple[float, float] = (2.0, 4.0), size: int = 64, fps: float = 12.0) -> list[CueVideo]:
    """Write task `'<picture>-<sound>'` into `out_dir` (folder layout + `task.json`); return its videos.

    Deterministic in (task, videos_per_class, seed, duration, size, fps). A folder already holding the same
    task description is left as it is.
    """
    picture_family, sound_family = parse_task(task)
    root = Path(out_dir)
    description = {"task": f"{picture_family}-{sound_family}", "videos_per_class": videos_per_class, "seed": seed,
                   "duration": list(duration), "size": size, "fps": fps}
    manifest = root / "task.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if {k: saved.get(k) for k in description} == description:
            return [CueVideo(**v) for v in saved["videos"]]
    task_seed = [seed, PICTURE_FAMILIES.index(picture_family), SOUND_FAMILIES.index(sound_family)]
    plan_rng = np.random.default_rng(task_seed)
    labels = [c for _ in range(videos_per_class) for c in range(len(LABELS))]
    durations = plan_rng.uniform(duration[0], duration[1], size=len(labels))
    videos = []
    for index, (label_index, seconds) in enumerate(zip(labels, durations)):
        picture, sound = cues_of(label_index)
        video_id = f"{index + 1:06d}"
        label = LABELS[label_index]
        video = CueVideo(video_id, label, picture, sound, float(seconds), f"{label}/{video_id}.mp4")
        rng = np.random.default_rng([*task_seed, index + 1])
        num_frames = max(2, round(seconds * fps))
        frames = render_picture(rng, picture_family, picture, num_frames, size)
        sound_wave = render_sound(rng, sound_family, sound, num_frames / fps)
        write_video(root / video.relative_path, frames, fps=fps, audio=sound_wave, sample_rate=SAMPLE_RATE)
        videos.append(video)
    manifest.write_text(json.dumps({**description, "labels": list(LABELS),
                                    "videos": [asdict(v) for v in videos]}, indent=1))
    return videos


__all__ = ["LABELS", "PICTURE_FAMILIES", "SOUND_FAMILIES", "CueVideo", "class_of", "cues_of", "generate_task",
           "parse_task", "render_picture", "render_sound"]
