"""A small, seeded, eMotions-shaped source of real mp4 files for tests, the demo and the benchmarks.

Each class is a pair (visual pattern, audio pattern): the picture carries `ceil(C / 2)` hues, the
sound two tone bands, and class `c` is hue `c // 2` with band `c % 2`. The picture alone therefore
narrows a video down to two classes (at most ~1/2 accuracy), the sound alone to half of them (~1/3
for six classes), and only a model fusing both can be right nearly always. The cues survive what
the input pipeline does to a video: the hue fills every pixel (crop, flip, rotation, resize and
brightness jitter keep it), and a low (200-450 Hz) versus high (2-3.5 kHz) tone separates cleanly
in the first MFCC coefficients. Per-video brightness, pixel noise, tone frequency, loudness and a moving
grey square vary so that no two videos are identical.

Layouts (all accepted by `emotions-hf prepare`):
- `parquet`: `data/eMotions_chunk_000.parquet`, ... with columns `file_name`, `label` and the mp4
  bytes in `video_data`, like the official release on the Hub (`Conna/eMotions`).
- `folder`: class subfolders `<Class>/<video_id>.mp4`.
- `csv`: `videos/<video_id>.mp4` with `labels.csv` (`video_id,label`).
- `ucf101`: `<Class>/<video_id>.mp4` with the authors' `classInd.txt`, `trainlist01.txt`, `testlist01.txt`.

`build_once` builds a folder (e.g. a generated and prepared set) once when several processes start together.
"""

from __future__ import annotations

import colorsys
import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ..labels import EMOTIONS, LabelSet, get_label_set
from ..paper import SAMPLE_RATE  # the rate the processor reads: no resampling
from .video_writer import write_video

LAYOUTS = ("parquet", "folder", "csv", "ucf101")
LOW_BAND_HZ = (200.0, 450.0)
HIGH_BAND_HZ = (2_000.0, 3_500.0)
# Kinds of broken file, cycled through: cut mid-stream, not a video at all, empty.
BROKEN_KINDS = ("truncated", "garbage", "empty")


@dataclass(frozen=True)
class SyntheticVideo:
    video_id: str
    label: str
    relative_path: str  # inside the source root (for `parquet`: the `file_name` column)
    broken: str | None = None  # one of BROKEN_KINDS, or None for a valid video
    has_audio: bool = True
    duration: float = 0.0


@dataclass(frozen=True)
class SyntheticSource:
    """What `generate` wrote: the source root, its layout and every video with its ground truth."""

    root: Path
    layout: str
    label_set: LabelSet
    videos: tuple[SyntheticVideo, ...]

    @property
    def valid_videos(self) -> tuple[SyntheticVideo, ...]:
        return tuple(v for v in self.videos if v.broken is None)


def class_cues(label_index: int, num_labels: int) -> tuple[int, int]:
    """(visual pattern, audio pattern) that encode class `label_index`."""
    if not 0 <= label_index < num_labels:
        raise ValueError(f"label index {label_index} outside 0..{num_labels - 1}")
    return label_index // 2, label_index % 2


def _hue_rgb(pattern: int, num_patterns: int) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(pattern / num_patterns, 0.85, 1.0), dtype=np.float32)


def render_frames(rng: np.random.Generator, visual: int, num_visual: int, num_frames: int,
                  size: tuple[int, int]) -> np.ndarray:
    """Frames (N, H, W, 3) uint8: the pattern's hue at a random brightness, noise and a moving grey square."""
    height, width = size
    brightness = rng.uniform(0.55, 0.95)
    base = _hue_rgb(visual, num_visual) * brightness * 255.0
    frames = np.broadcast_to(base, (num_frames, height, width, 3)).copy()
    frames += rng.normal(0.0, 8.0, size=(num_frames, height, width, 1)).astype(np.float32)
    side = max(2, min(height, width) // 4)
    extent = np.array([height, width]) - side  # room for the square's corner
    start = rng.uniform(0, 1, size=2) * extent
    velocity = rng.uniform(-1.5, 1.5, size=2)
    travelled = np.abs((start + velocity * np.arange(num_frames)[:, None]) % (2 * extent))
    corners = np.minimum(travelled, 2 * extent - travelled).astype(int)  # bouncing off the edges
    rows, cols = np.arange(height)[None, :], np.arange(width)[None, :]
    in_rows = (rows >= corners[:, :1]) & (rows < corners[:, :1] + side)
    in_cols = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + side)
    square = in_rows[:, :, None] & in_cols[:, None, :]
    frames[square] = rng.uniform(60, 200)
    return np.clip(frames, 0, 255).astype(np.uint8)


def render_audio(rng: np.random.Generator, audio: int, duration: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float audio: a tone in the pattern's band with a slow random loudness swell.

    No broadband noise: it triples the AAC encoding time and the cue does not need it.
    """
    low, high = HIGH_BAND_HZ if audio else LOW_BAND_HZ
    frequency = rng.uniform(low, high)
    t = np.arange(round(duration * sample_rate), dtype=np.float64) / sample_rate
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 2 * np.pi))
    tone = rng.uniform(0.15, 0.3) * swell * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    return tone.astype(np.float32)


def _broken_bytes(kind: str, valid: bytes) -> bytes:
    if kind == "truncated":
        return valid[: max(64, len(valid) // 5)]
    if kind == "garbage":
        return b"this is not a video\n" * 8
    return b""


def _relative_path(layout: str, video_id: str, label: str) -> str:
    if layout in ("folder", "ucf101"):
        return f"{label}/{video_id}.mp4"
    if layout == "csv":
        return f"videos/{video_id}.mp4"
    return f"{video_id}.mp4"


def _plan(label_set: LabelSet, videos_per_class: int, broken: int, silent: int, duration,
          rng: np.random.Generator, layout: str) -> list[SyntheticVideo]:
    """Which video gets which label, duration, audio or breakage; ids run over classes interleaved."""
    labels = [label for _ in range(videos_per_class) for label in label_set.labels]
    total = len(labels)
    if broken + silent > total:
        raise ValueError(f"broken={broken} + silent={silent} exceeds the {total} videos")
    special = rng.permutation(total)
    broken_at = {int(i): BROKEN_KINDS[k % len(BROKEN_KINDS)] for k, i in enumerate(special[:broken])}
    silent_at = {int(i) for i in special[broken:broken + silent]}
    low, high = (duration, duration) if np.isscalar(duration) else duration
    durations = rng.uniform(low, high, size=total)
    plan = []
    for index, label in enumerate(labels):
        video_id = f"{index + 1:08d}"
        plan.append(SyntheticVideo(
            video_id=video_id,
            label=label,
            relative_path=_relative_path(layout, video_id, label),
            broken=broken_at.get(index),
            has_audio=index not in silent_at,
            duration=float(durations[index]),
        ))
    return plan


def _write_one(video: SyntheticVideo, path: Path, label_set: LabelSet, seed: int, size, fps: float) -> None:
    rng = np.random.default_rng([seed, int(video.video_id)])
    visual, audio = class_cues(label_set.label2id[video.label], len(label_set.labels))
    num_visual = math.ceil(len(label_set.labels) / 2)
    num_frames = max(1, round(video.duration * fps))
    frames = render_frames(rng, visual, num_visual, num_frames, size)
    sound = render_audio(rng, audio, num_frames / fps) if video.has_audio else None
    write_video(path, frames, fps=fps, audio=sound, sample_rate=SAMPLE_RATE)
    if video.broken:
        path.write_bytes(_broken_bytes(video.broken, path.read_bytes()))


def generate(
    out_dir: str | Path,
    videos_per_class: int = 10,
    layout: str = "parquet",
    seed: int = 0,
    duration: float | tuple[float, float] = 2.0,
    size: tuple[int, int] = (32, 32),
    fps: float = 10.0,
    broken: int = 0,
    silent: int = 0,
    label_set: str | LabelSet = EMOTIONS,
    videos_per_shard: int = 64,
    row_group_size: int = 16,
) -> SyntheticSource:
    """Write a synthetic source to `out_dir` and describe it.

    Args:
        videos_per_class: videos of each class (the set is balanced).
        layout: one of `LAYOUTS`.
        seed: fixes every random choice; the same seed writes the same videos.
        duration: seconds per video, or a (min, max) range drawn per video.
        size: (height, width) of the frames; even numbers, at least 8.
        broken: how many of the videos are replaced by unreadable files (cut short, garbage, empty),
            to exercise the validation report of `prepare`.
        silent: how many valid videos have no audio track.
        label_set: a `LabelSet` or its name (`emotions`, `ve8`, `ekman6`, `music_video`).
        videos_per_shard / row_group_size: parquet layout only.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
    if any(int(s) % 2 or int(s) < 8 for s in size):
        raise ValueError(f"size={size} must be even numbers of at least 8 pixels (h264 with 4:2:0 chroma)")
    if isinstance(label_set, str):
        label_set = get_label_set(label_set)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    plan = _plan(label_set, videos_per_class, broken, silent, duration, np.random.default_rng(seed), layout)
    if layout == "parquet":
        _write_parquet(root, plan, label_set, seed, size, fps, videos_per_shard, row_group_size)
    else:
        for video in plan:
            _write_one(video, root / video.relative_path, label_set, seed, size, fps)
        _write_label_files(root, layout, plan, label_set, seed)
    return SyntheticSource(root=root, layout=layout, label_set=label_set, videos=tuple(plan))


def _write_parquet(root: Path, plan, label_set, seed, size, fps, videos_per_shard, row_group_size) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("file_name", pa.string()), ("label", pa.string()), ("video_data", pa.binary())])
    (root / "data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for shard, start in enumerate(range(0, len(plan), videos_per_shard)):
            rows = plan[start:start + videos_per_shard]
            data = []
            for video in rows:
                path = Path(scratch) / video.relative_path
                _write_one(video, path, label_set, seed, size, fps)
                data.append(path.read_bytes())
                path.unlink()
            table = pa.table({
                "file_name": [v.relative_path for v in rows],
                "label": [v.label for v in rows],
                "video_data": data,
            }, schema=schema)
            pq.write_table(table, root / "data" / f"eMotions_chunk_{shard:03d}.parquet", row_group_size=row_group_size)


def _write_label_files(root: Path, layout: str, plan, label_set: LabelSet, seed: int) -> None:
    if layout == "csv":
        with open(root / "labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["video_id", "label"])
            writer.writerows((v.video_id, v.label) for v in plan)
    elif layout == "ucf101":
        (root / "classInd.txt").write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(label_set.labels)))
        is_test = np.random.default_rng([seed, 101]).random(len(plan)) < 0.2
        train = [v for v, test in zip(plan, is_test) if not test]
        test = [v for v, test in zip(plan, is_test) if test]
        (root / "trainlist01.txt").write_text(
            "".join(f"{v.label}/{v.video_id}.mp4 {label_set.label2id[v.label] + 1}\n" for v in train))
        (root / "testlist01.txt").write_text("".join(f"{v.label}/{v.video_id}.mp4\n" for v in test))


BUILD_LOCK = ".build.lock"
BUILD_MARKER = ".build-complete.json"


def build_once(folder: str | Path, build: Callable[[Path], object], key: dict | None = None,
               on_wait: Callable[[], object] | None = None) -> bool:
    """Run `build(folder)` unless `folder` already holds a complete build for `key`; True when this call built.

    For processes that start together (`torchrun`, `accelerate launch`, two runs into one output folder)
    before any process group exists: a file lock inside `folder` lets exactly one of them build while the
    others wait (`on_wait` is called once if this one has to), then reuse the result. The completion marker
    (with `key`) is written atomically after `build` returns, so the remains of a build cut short by a kill,
    or a build for another `key`, are deleted and built afresh. `folder` therefore belongs to this function:
    everything in it but the lock is removed before a build.
    """
    folder = Path(folder)
    marker = folder / BUILD_MARKER
    record = json.dumps(key or {}, sort_keys=True)
    if _read_marker(marker) == record:  # written last and atomically: a complete build, no need to lock
        return False
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / BUILD_LOCK)  # an OS lock: released when its holder dies, even by SIGKILL
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        if _read_marker(marker) == record:  # another process built it while this one waited
            return False
        for entry in folder.iterdir():
            if entry.name == BUILD_LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        build(folder)
        partial = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
        partial.write_text(record)
        os.replace(partial, marker)
        return True
    finally:
        lock.release()


def _read_marker(marker: Path) -> str | None:
    try:
        return marker.read_text()
    except OSError:
        return None


__all__ = ["BUILD_LOCK", "BUILD_MARKER", "LAYOUTS", "SyntheticSource", "SyntheticVideo", "build_once", "class_cues",
           "generate", "render_audio", "render_frames"]
