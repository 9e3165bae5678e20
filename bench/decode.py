"""Decoding throughput: naive baseline vs `AVCANetProcessor` vs the processor on a training proxy.

Generates a 30 s 720x1280 (portrait) h264 video with stereo AAC, then prints clips per second per
core (everything pinned to one thread) for
  (a) a naive baseline: PyAV decodes every frame to RGB, librosa computes the MFCC of the whole track;
  (b) the processor on the original;
  (c) the processor on the proxy with the cached MFCC;
the ratios (c)/(a) and (b)/(a), and the peak memory of the processor on a 3-minute video.

Then the data path before / after (issue 15): training- and evaluation-mode clips/s/core on the proxy with
the cached MFCC for the package at `--before` (default 7003931, extracted with `git archive` into a temp
dir) against this checkout, as float32 (the default output) and as uint8 (`output_dtype="uint8"`, normalised
on the device; the host cost is what is measured), at the paper's full-side crop and at the multi-scale crop,
each against the 30 clips/s/core target. Each variant runs in its own interpreter, the rounds interleaved
(every variant once per round, the median kept), so a shared machine's load hits them alike.

    python bench/decode.py [--workdir DIR] [--repeats N] [--long-height 1080] [--before REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av
import numpy as np
import torch

from emotions_hf.data.video_writer import write_video
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.proxy import write_mfcc_cache, write_proxy

torch.set_num_threads(1)


def scene_frames(num_frames: int, width: int, height: int, seed: int = 0, noise: bool = True):
    """A smooth landscape panning by, an object moving across it, and sensor noise (made lazily): about
    the bitrate of a phone video with x264's defaults (a few Mbit/s at 720p), unlike flat or pure-noise
    frames, which are far cheaper or far dearer to decode than real footage."""
    rng = np.random.default_rng(seed)
    pan = 2  # pixels per frame
    coarse = torch.from_numpy(rng.random((1, 3, height // 8 + 2, (width + pan * num_frames) // 8 + 2)))
    landscape = torch.nn.functional.interpolate(coarse.float(), scale_factor=8, mode="bilinear")[0]
    landscape = (landscape.permute(1, 2, 0) * 200 + 20).to(torch.int16).numpy()
    grain = rng.normal(0, 5, (8, height, width, 3)).astype(np.int16) if noise else np.zeros((8, 1, 1, 3), np.int16)
    side = min(width, height) // 4
    for i in range(num_frames):
        frame = landscape[:height, pan * i : pan * i + width] + grain[i % 8]
        x = int((width - side) * (0.5 + 0.5 * np.sin(i / 40)))
        y = int((height - side) * (0.5 + 0.5 * np.cos(i / 55)))
        frame[y : y + side, x : x + side] = (230, 60, 40)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def stereo_audio(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(1)
    left = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    right = 0.2 * np.sin(2 * np.pi * 660 * t) + 0.02 * rng.standard_normal(t.shape)
    return np.stack([left, right]).astype(np.float32)


def make_video(path: Path, seconds: float, width: int, height: int, fps: float = 25.0, quick: bool = False) -> Path:
    """The benchmark video (crf 20, ~2 Mbit/s at 720p); `quick`: no grain, x264 ultrafast (the long one
    only measures memory)."""
    if not path.exists():
        options = {"preset": "ultrafast"} if quick else {"preset": "veryfast", "crf": "20"}
        write_video(path, scene_frames(int(seconds * fps), width, height, noise=not quick), fps=fps,
                    audio=stereo_audio(seconds), video_options=options)
    return path


def naive_clip(path: Path, processor: AVCANetProcessor):
    """What a first attempt does: decode every frame to RGB (keeping the sampled ones), then the MFCC of
    the whole track with librosa."""
    import librosa

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        keep = set(np.linspace(0, stream.frames - 1, processor.num_snippets * processor.frames_per_snippet).astype(int))
        frames = []
        for i, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24")
            if i in keep:
                frames.append(rgb)
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1).mean(axis=0)
    mfcc = librosa.feature.mfcc(y=audio, sr=processor.sample_rate, n_mfcc=processor.num_mfcc)
    return np.stack(frames), mfcc


def clips_per_second(run, repeats: int) -> float:
    run()  # warm-up (imports, caches)
    start = time.process_time()
    for _ in range(repeats):
        run()
    return repeats / (time.process_time() - start)


_PEAK_RSS = (
    "import re; print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)\n"
)  # VmHWM, unlike ru_maxrss, is not inherited from the (large) parent across exec


def peak_memory_mb(path: Path, backend: str) -> float:
    """Peak RSS of a fresh interpreter that processes `path` once in eval and once in training mode."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from emotions_hf.processing_avcanet import AVCANetProcessor\n"
        "p = AVCANetProcessor(backend=sys.argv[2]); p(sys.argv[1]); p(sys.argv[1], training=True, seed=0)\n"
    ) + _PEAK_RSS
    out = subprocess.run([sys.executable, "-c", code, str(path), backend], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def baseline_memory_mb() -> float:
    """Peak RSS of a fresh interpreter that only imports the package (and torch)."""
    code = "import torch\nfrom emotions_hf.processing_avcanet import AVCANetProcessor\n" + _PEAK_RSS
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


BEFORE = "7003931"  # the data path before issue 15, part 3
TARGET = 30.0  # clips/s/core, training mode, proxy + cached MFCC (issue 15)
MULTI_SCALE = tuple(round(2 ** (-i / 4), 4) for i in range(5))


def worker(spec: dict) -> None:
    """A measuring interpreter: builds one processor (the package on sys.path: this checkout or the
    `before` one), then for every line on stdin (`train` / `eval` and a call count) processes that many
    clips with seeds 0, 1, ... and prints clips per second of CPU time (one thread)."""
    from emotions_hf.feature_extraction_avcanet import AVCANetFeatureExtractor
    from emotions_hf.video_processing_avcanet import AVCANetVideoProcessor

    settings = {"crop_scales": tuple(spec["crop_scales"])}
    if spec.get("output_dtype"):
        settings["output_dtype"] = spec["output_dtype"]
    processor = AVCANetProcessor(video_processor=AVCANetVideoProcessor(**settings),
                                 feature_extractor=AVCANetFeatureExtractor())
    item = spec["item"]
    processor(item, training=True, seed=0)  # warm-up
    processor(item)
    for line in sys.stdin:
        mode, calls = line.split()
        start = time.process_time()
        for seed in range(int(calls)):
            out = processor(item, training=True, seed=seed) if mode == "train" else processor(item)
        assert out["pixel_values"].dtype == (torch.uint8 if spec.get("output_dtype") == "uint8" else torch.float32)
        print(int(calls) / (time.process_time() - start), flush=True)


def _package_at(revision: str, into: Path) -> Path:
    """`src/` of the package at a git revision, extracted into `into`."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "src/emotions_hf"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def before_after(args, item: dict, item_112: dict) -> None:
    """Training / evaluation clips/s/core before vs after, interleaved, against the target."""
    here = str(Path(__file__).resolve().parent.parent / "src")
    with tempfile.TemporaryDirectory() as temp:
        old = str(_package_at(args.before, Path(temp)))
        variants = {}  # name -> (package dir, spec, modes)
        for label, scales in (("full-side crop", (1.0,)), ("multi-scale crop", MULTI_SCALE)):
            variants[f"before ({args.before}), {label}"] = (old, {"crop_scales": scales, "item": item})
            variants[f"after, float32, {label}"] = (here, {"crop_scales": scales, "item": item})
            variants[f"after, uint8, {label}"] = (here, {"crop_scales": scales, "item": item, "output_dtype": "uint8"})
        variants["after, uint8, full-side crop, 112-px proxy"] = (
            here, {"crop_scales": (1.0,), "item": item_112, "output_dtype": "uint8"})
        workers = {}
        for name, (package, spec) in variants.items():
            env = {**os.environ, "PYTHONPATH": package, "OMP_NUM_THREADS": "1"}
            workers[name] = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        rates = {(name, mode): [] for name in variants for mode in ("train", "eval")}
        try:
            for _ in range(args.rounds):
                for name, process in workers.items():
                    for mode in ("train", "eval"):
                        process.stdin.write(f"{mode} {args.calls}\n")
                        process.stdin.flush()
                        line = process.stdout.readline()
                        if not line:
                            raise RuntimeError(f"the {name} worker stopped")
                        rates[name, mode].append(float(line))
        finally:
            for process in workers.values():
                process.stdin.close()
                process.wait()
    median = {key: float(np.median(values)) for key, values in rates.items()}
    print(f"data path, proxy + cached MFCC, one thread, median of {args.rounds} interleaved rounds of {args.calls} "
          f"clips (target {TARGET:.0f} clips/s/core in training):")
    for name in variants:
        label = name.split(", ")[-1] if name.startswith("before") else name.split(", ", 2)[-1]
        base = f"before ({args.before}), {label}" if (f"before ({args.before}), {label}", "train") in median else None
        cells = []
        for mode in ("train", "eval"):
            rate = median[name, mode]
            versus = f" x{rate / median[base, mode]:.2f} vs before" if base and base != name else ""
            cells.append(f"{mode} {rate:6.1f}{versus} ({rate / TARGET:.2f} of target)")
        print(f"  {name:48s} " + "   ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "emotions_hf_bench")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-height", type=int, default=1080, help="height of the 3-minute video (16:9)")
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' data path")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the before / after comparison")
    parser.add_argument("--calls", type=int, default=20, help="clips per variant and round")
    parser.add_argument("--only-before-after", action="store_true", help="skip (a)-(c'') and the memory figures")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    args.workdir.mkdir(parents=True, exist_ok=True)

    processor = AVCANetProcessor()
    original = make_video(args.workdir / "original_30s_720x1280.mp4", 30, 720, 1280)
    proxy, cache = args.workdir / "original_30s.proxy.mp4", args.workdir / "original_30s.mfcc.safetensors"
    start = time.perf_counter()
    write_proxy(original, proxy)
    write_mfcc_cache(original, cache, processor)
    proxy_seconds = time.perf_counter() - start
    item = {"video": str(original), "proxy": str(proxy), "mfcc": str(cache)}
    smallest = write_proxy(original, args.workdir / "original_30s.proxy112.mp4", short_side=processor.image_size)
    item_112 = {**item, "proxy": str(smallest)}

    if args.only_before_after:
        return before_after(args, item, item_112)
    rates = {
        "(a) naive PyAV + librosa": clips_per_second(lambda: naive_clip(original, processor), args.repeats),
        "(b) processor, original (auto)": clips_per_second(lambda: processor(str(original)), args.repeats),
        "(b') processor, original (decord)": clips_per_second(
            lambda: AVCANetProcessor(backend="decord")(str(original)), args.repeats),
        "(c) processor, proxy + cached MFCC": clips_per_second(lambda: processor(item), args.repeats * 5),
        "(c') same, training mode": clips_per_second(lambda: processor(item, training=True, seed=0), args.repeats * 5),
        "(c'') proxy at 112 px + cached MFCC": clips_per_second(lambda: processor(item_112), args.repeats * 5),
    }
    naive = rates["(a) naive PyAV + librosa"]
    megabits = original.stat().st_size * 8 / 30 / 1e6
    print(f"30 s 720x1280 h264 ({megabits:.1f} Mbit/s) + stereo AAC, one thread (CPU time); proxy "
          f"({proxy.stat().st_size * 8 / 30 / 1e6:.1f} Mbit/s) + MFCC cache written in {proxy_seconds:.1f} s")
    for name, rate in rates.items():
        print(f"  {name:38s} {rate:7.2f} clips/s/core   x{rate / naive:5.1f} vs (a)")
    print(f"  ratio (c)/(a) = {rates['(c) processor, proxy + cached MFCC'] / naive:.1f}   "
          f"(b)/(a) = {rates['(b) processor, original (auto)'] / naive:.1f}")

    before_after(args, item, item_112)

    width = args.long_height * 16 // 9
    long_video = make_video(args.workdir / f"long_180s_{width}x{args.long_height}.mp4", 180, width, args.long_height,
                            quick=True)
    base = baseline_memory_mb()
    for backend in ("auto", "decord"):
        peak = peak_memory_mb(long_video, backend)
        print(f"3-minute {width}x{args.long_height} video, backend={backend}: peak RSS {peak:.0f} MB "
              f"({peak - base:.0f} MB above the {base:.0f} MB of an idle interpreter with the package imported)")


if __name__ == "__main__":
    main()
