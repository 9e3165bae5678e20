"""Pipeline overhead and timeline memory of `pipeline("video-emotion")`.

Writes a 30 s and a 3-minute 720x1280 (portrait) h264 + stereo AAC video and a randomly initialised
AV-CANet (the paper's size by default) with its processor, then prints
  (a) seconds per 30 s video for `processor(video)` + one model forward (the floor),
  (b) seconds per 30 s video for `pipe(video)`, measured alternately with (a) in the same process,
      and the pipeline overhead (b)/(a) - 1, in wall-clock and in CPU time (less sensitive to
      other processes on a shared machine);
  (c) peak RSS of a fresh process running `pipe(video, timeline=True)` on the 30 s and on the
      3-minute video (memory must not grow with the length), with the time and number of windows;
  (d) the time of `pipe(video, timeline=True)` on the 3-minute video with shared snippets (each snippet
      decoded and encoded once) over the per-window path (`share_timeline_snippets = False`: every
      window decoded and run whole), at the default stride (half a window) and at a 1 s stride;
      the two alternate within each round, in this process, so both see the same background load.

    python bench/pipeline.py [--size paper|demo] [--repeats N] [--device cpu|cuda] [--threads N]
                             [--no-timeline-memory] [--no-timeline-ratio] [--timeline-repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.data.video_writer import write_video
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.pipeline_video_emotion import VideoEmotionPipeline
from emotions_hf.processing_avcanet import AVCANetProcessor

# The demo presets live next to examples/train.py.
sys.path.append(str(Path(__file__).resolve().parents[1] / "examples"))
from presets import SMALL_CONFIG

SIZES = {"paper": {}, "demo": SMALL_CONFIG}  # demo: the CPU model of `examples/train.py`


def textured_frames(num_frames: int, width: int, height: int, seed: int = 0):
    """A coarse random texture panning sideways: realistic inter-frame coding, generated lazily."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 1, (width + 2 * num_frames) // 8 + 1, 3), dtype=np.uint8)
    texture = texture.repeat(8, axis=0).repeat(8, axis=1)
    for i in range(num_frames):
        yield texture[:height, 2 * i : 2 * i + width]


def make_video(path: Path, seconds: float, width: int = 720, height: int = 1280, fps: float = 25.0) -> Path:
    if not path.exists():
        t = np.arange(int(seconds * 44100)) / 44100
        audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)])
        write_video(path, textured_frames(int(seconds * fps), width, height), fps=fps, audio=audio,
                    video_options={"preset": "veryfast"})
    return path


def save_model(folder: Path, size: str) -> Path:
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        config = AVCANetConfig(**SIZES[size])
        AVCANetForVideoClassification(config).eval().save_pretrained(folder)
        AVCANetProcessor.from_model_config(config).save_pretrained(folder)
    return folder


def processor_plus_forward(pipe: VideoEmotionPipeline, video: str) -> torch.Tensor:
    """The floor the pipeline is measured against: the processor, then one forward of the model."""
    inputs = pipe.processor(video, return_tensors="pt").to(pipe.device)
    with torch.no_grad():
        return pipe.model(**inputs).logits.softmax(-1)


def timeline_memory(model: Path, video: Path, device: str, threads: int) -> dict:
    """Peak RSS of a fresh interpreter before and after one `timeline=True` call on `video`."""
    code = (
        "import json, resource, sys, time, torch\n"
        f"torch.set_num_threads({threads})\n"
        "from transformers import pipeline\n"
        "import emotions_hf.pipeline_video_emotion\n"
        "pipe = pipeline('video-emotion', model=sys.argv[1], device=sys.argv[3], batch_size=4)\n"
        "rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "before = rss(); start = time.perf_counter()\n"
        "result = pipe(sys.argv[2], timeline=True)\n"
        "print(json.dumps({'before_mb': before, 'peak_mb': rss(), 'seconds': time.perf_counter() - start,\n"
        "                  'windows': len(result['timeline'])}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code, str(model), str(video), device], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timeline_ratios(pipe: VideoEmotionPipeline, video: str, repeats: int) -> None:
    """(d): old/new wall-clock ratios of a timeline, per stride, rounds alternating old and new."""
    for label, stride in (("default stride (2.5 s)", None), ("1 s stride", 1.0)):
        times = {False: [], True: []}
        windows = 0
        for _ in range(repeats):
            for shared in (False, True):
                pipe.share_timeline_snippets = shared
                wall, cpu = time.perf_counter(), time.process_time()
                windows = len(pipe(video, timeline=True, timeline_stride=stride, batch_size=4)["timeline"])
                times[shared].append((time.perf_counter() - wall, time.process_time() - cpu))
        del pipe.share_timeline_snippets
        old, new = np.min(times[False], axis=0), np.min(times[True], axis=0)
        print(f"  (d) timeline, {label}, {windows} windows: per-window {old[0]:7.1f} s, shared snippets "
              f"{new[0]:7.1f} s (min of {repeats}): new/old = {new[0] / old[0]:.3f} wall, {new[1] / old[1]:.3f} CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "emotions_hf_bench")
    parser.add_argument("--size", choices=tuple(SIZES), default="paper", help="model size")
    parser.add_argument("--timeline-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure (c); a 3-minute timeline is 72 forwards, long for the paper size on CPU")
    parser.add_argument("--timeline-ratio", action=argparse.BooleanOptionalAction, default=True,
                        help="measure (d); the per-window baseline is long for the paper size on CPU")
    parser.add_argument("--timeline-repeats", type=int, default=1, help="alternating rounds of (d)")
    parser.add_argument("--timeline-seconds", type=float, default=180.0, help="length of the video of (d)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)

    short = str(make_video(args.workdir / "pipeline_30s_720x1280.mp4", 30))
    model = save_model(args.workdir / f"avcanet-{args.size}", args.size)
    pipe = pipeline("video-emotion", model=str(model), device=args.device)

    expected = processor_plus_forward(pipe, short)  # warm-up of both paths, which must agree
    top = pipe(short, top_k=1)["predictions"][0]
    assert abs(top["score"] - expected.max().item()) < 1e-4, "the pipeline must agree with processor + model"
    # Alternate the two so that both see the same background load; the minimum is the least disturbed run.
    timings = {"floor": [], "pipe": []}
    for _ in range(args.repeats):
        for name, run in (("floor", lambda: processor_plus_forward(pipe, short)), ("pipe", lambda: pipe(short))):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"AV-CANet ({args.size} size), device {pipe.device}, {args.threads} threads; "
          f"30 s 720x1280 h264 + AAC; {args.repeats} alternating runs each")
    best = {name: np.min(runs, axis=0) for name, runs in timings.items()}
    for label, name in (("(a) processor + one forward", "floor"), ("(b) pipe(video)            ", "pipe")):
        median = statistics.median(wall for wall, _ in timings[name])
        print(f"  {label}  wall {best[name][0]:6.2f} s min, {median:6.2f} s median;  CPU {best[name][1]:6.2f} s min")
    overhead = 100 * (best["pipe"] / best["floor"] - 1)
    print(f"  pipeline overhead (b)/(a) - 1:  wall {overhead[0]:+.1f} %,  CPU time {overhead[1]:+.1f} %")

    if args.timeline_ratio:
        seconds = args.timeline_seconds
        video = make_video(args.workdir / f"pipeline_{seconds:g}s_720x1280.mp4", seconds)
        print(f"  (d) {seconds:g} s 720x1280 h264 + AAC, window 5 s, batch_size 4")
        timeline_ratios(pipe, str(video), args.timeline_repeats)
    if args.timeline_memory:
        long = make_video(args.workdir / "pipeline_180s_720x1280.mp4", 180)
        for video in (Path(short), long):
            memory = timeline_memory(model, video, args.device, args.threads)
            print(f"  (c) timeline=True, {video.name}: {memory['windows']} windows in {memory['seconds']:.1f} s, "
                  f"peak RSS {memory['peak_mb']:.0f} MB (+{memory['peak_mb'] - memory['before_mb']:.0f} MB over "
                  "the loaded pipeline)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
