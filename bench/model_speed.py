"""Speed of the Video Swin backbone and of the whole AV-CANet at the paper's size, per video, on the CPU.

    python bench/model_speed.py [--repeats 3] [--threads 2] [--clock wall|cpu] [--backbone-only]

Prints forward and forward+backward seconds per video (s=16 snippets of T=8 frames at 112², MFCC 256×32 per snippet)
for the visual backbone alone and for `AVCANetForVideoClassification`, the FLOPs of each (torch's FlopCounterMode),
and the achieved FLOP/s as a fraction of a 2048² `torch.mm` measured in the same run, so that figures taken on a busy
or a different machine can be compared. For scale (the issue): `torch.mm` ≈ 160 GFLOP/s with 2 threads; the reference
Video Swin-T implementations take 1.3 s (torchvision) to 2.1 s (official) forward and 4.6 s to 5.1 s forward+backward.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.modeling_video_swin import VideoSwin3DModel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--snippets", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--backbone-only", action="store_true", help="skip the whole-model measurements")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed seconds; cpu: this process's CPU seconds, which other processes on a shared "
                             "machine barely disturb with --threads 1 (with more threads it also counts their waiting)")
    return parser.parse_args(argv)


def timed(step, repeats, clock=time.perf_counter):
    """Median and best seconds (of `clock`) of `step()` over `repeats` runs after one warm-up."""
    step()
    times = []
    for _ in range(repeats):
        start = clock()
        step()
        times.append(clock() - start)
    return statistics.median(times), min(times)


def matmul_flops_per_second(clock):
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    _, best = timed(lambda: a @ b, 5, clock)
    return 2 * 2048**3 / best


def count_flops(step):
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def measure(name, module, inputs, loss_of, repeats, clock, matmul_rate):
    """Forward (eval, no grad) and forward+backward (train) of one video; prints one line each."""

    def forward():
        with torch.no_grad():
            module(**inputs)

    def forward_backward():
        module.zero_grad(set_to_none=True)
        loss_of(module(**inputs)).backward()

    rows = []
    module.eval()
    rows.append(("forward", *timed(forward, repeats, clock), count_flops(forward)))
    module.train()
    rows.append(("forward+backward", *timed(forward_backward, repeats, clock), count_flops(forward_backward)))
    for kind, median, best, flops in rows:
        rate = flops / best
        print(f"{name:<10} {kind:<17} {median:7.3f} s/video (best {best:6.3f})  {flops / 1e9:7.1f} GFLOP  "
              f"{rate / 1e9:6.1f} GFLOP/s = {rate / matmul_rate:4.2f} x mm")


def main(argv=None):
    args = parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = AVCANetConfig(num_snippets=args.snippets, frames_per_snippet=args.frames, image_size=args.image_size)
    s, t, size = config.num_snippets, config.frames_per_snippet, config.image_size
    matmul_rate = matmul_flops_per_second(clock)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock, video = {s} snippets x {t} frames x "
          f"{size}²")
    print(f"torch.mm 2048²: {matmul_rate / 1e9:.1f} GFLOP/s")

    backbone = VideoSwin3DModel(config)
    clips = torch.randn(s, 3, t, size, size)
    measure("backbone", backbone, {"pixel_values": clips}, lambda out: out.square().mean(), args.repeats, clock,
            matmul_rate)
    if not args.backbone_only:
        from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

        model = AVCANetForVideoClassification(config)
        inputs = {
            "pixel_values": torch.randn(1, s, t, 3, size, size),
            "input_features": torch.randn(1, s, config.mfcc_chunk_frames, config.num_mfcc),
            "audio_mask": torch.ones(1, dtype=torch.bool),
            "labels": torch.tensor([1]),
        }
        measure("AV-CANet", model, inputs, lambda out: out.loss, args.repeats, clock, matmul_rate)
    print(f"torch.mm 2048² after the runs: {matmul_flops_per_second(clock) / 1e9:.1f} GFLOP/s "
          "(a drop means other processes shared the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
