"""Speed of the Video Swin backbone and of the whole AV-CANet at the paper's size, per video, on the CPU.

    python bench/model_speed.py [--repeats 3] [--threads 2] [--clock wall|cpu] [--backbone-only] [--reference auto]
        [--allocator keep|glibc]

Prints forward and forward+backward seconds per video (s=16 snippets of T=8 frames at 112², MFCC 256×32 per snippet)
for the visual backbone alone and for `AVCANetForVideoClassification`, the FLOPs of each (torch's FlopCounterMode),
and the achieved FLOP/s as a fraction of a 2048² `torch.mm` measured in the same run, so that figures taken on a busy
or a different machine can be compared. By default the process keeps its freed memory
(`emotions_hf.utils.cpu_memory.keep_freed_memory`, as the `emotions-hf` command and the examples do); `--allocator glibc` measures
glibc's defaults instead.

Where torchvision is importable, the backbone is also raced against torchvision's `swin3d_t` (random weights, head
removed, same clips and loss), the two timed in alternation so that a shared machine slows both alike, and the ratio
printed. torchvision cannot sit beside the CPU build of torch that `scripts/setup_env.sh` installs; a second venv with
`pip install torch==2.14.1 torchvision==0.29.1` and `pip install -e .` runs this script with the reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.modeling_video_swin import VideoSwinModel
from emotions_hf.utils.cpu_memory import keep_freed_memory


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--snippets", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--backbone-only", action="store_true", help="skip the whole-model measurements")
    parser.add_argument("--allocator", choices=("keep", "glibc"), default="keep",
                        help="keep: keep_freed_memory() first; glibc: glibc's defaults (freed memory goes back to the "
                             "kernel and is page-faulted in again)")
    parser.add_argument("--reference", choices=("auto", "torchvision", "none"), default="auto",
                        help="race the backbone against torchvision's swin3d_t (auto: when torchvision imports)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed seconds; cpu: this process's CPU seconds, which other processes on a shared "
                             "machine barely disturb with --threads 1 (with more threads it also counts their waiting)")
    return parser.parse_args(argv)


def timed(steps: dict, repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """Seconds (of `clock`) of each named step over `repeats` rounds after one warm-up each, the steps taking turns
    within a round so that a slow spell of the machine hits all of them."""
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append(clock() - start)
    return times


def matmul_flops_per_second(clock):
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / min(timed({"mm": lambda: a @ b}, 5, clock)["mm"])


def count_flops(step):
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def measure(contenders: dict, run, loss_of, repeats: int, clock, matmul_rate) -> dict:
    """Forward (eval, no grad) and forward+backward (train) of one video, `run(module)`, for each named module, timed in
    turns; prints a line per module and pass and returns {(name, pass): best seconds}."""

    def forward(module):
        def step():
            with torch.no_grad():
                run(module)
        return step

    def forward_backward(module):
        def step():
            module.zero_grad(set_to_none=True)
            loss_of(run(module)).backward()
        return step

    best = {}
    for kind, make_step, train in (("forward", forward, False), ("forward+backward", forward_backward, True)):
        for module in contenders.values():
            module.train(train)
        steps = {name: make_step(module) for name, module in contenders.items()}
        times = timed(steps, repeats, clock)
        for name, step in steps.items():
            flops = count_flops(step)
            best[name, kind] = min(times[name])
            rate = flops / best[name, kind]
            print(f"{name:<20} {kind:<17} {statistics.median(times[name]):7.3f} s/video (best {best[name, kind]:6.3f})  "
                  f"{flops / 1e9:7.1f} GFLOP  {rate / 1e9:6.1f} GFLOP/s = {rate / matmul_rate:4.2f} x mm")
    return best


def torchvision_reference(required: bool):
    """torchvision's `swin3d_t` with the classification head removed (pooled features, like `VideoSwinModel`'s `pooler_output`), or
    None when torchvision is missing and was not asked for explicitly."""
    try:
        from torchvision.models.video import swin3d_t
    except ImportError:
        if required:
            raise
        print("torchvision not importable: no reference run (see this script's docstring)")
        return None
    reference = swin3d_t()
    reference.head = torch.nn.Identity()
    return reference


def pooled(output) -> torch.Tensor:
    """The pooled features, from our backbone's `ModelOutput` or torchvision's plain tensor."""
    return getattr(output, "pooler_output", output)


def main(argv=None):
    args = parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    allocator = "freed memory kept" if args.allocator == "keep" and keep_freed_memory() else "glibc defaults"
    torch.manual_seed(0)
    config = AVCANetConfig(num_snippets=args.snippets, frames_per_snippet=args.frames, image_size=args.image_size)
    s, t, size = config.num_snippets, config.vision_config.num_frames, config.vision_config.image_size
    matmul_rate = matmul_flops_per_second(clock)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock, {allocator}, video = {s} snippets x "
          f"{t} frames x {size}²")
    print(f"torch.mm 2048²: {matmul_rate / 1e9:.1f} GFLOP/s")

    contenders = {"backbone": VideoSwinModel(config.vision_config)}
    if args.reference != "none":
        reference = torchvision_reference(required=args.reference == "torchvision")
        if reference is not None:
            contenders["torchvision swin3d_t"] = reference
    clips = torch.randn(s, 3, t, size, size)
    best = measure(contenders, lambda module: pooled(module(clips)), lambda out: out.square().mean(), args.repeats,
                   clock, matmul_rate)
    if len(contenders) > 1:
        print("backbone speed-up over torchvision swin3d_t (best times): " + ", ".join(
            f"{kind} {best['torchvision swin3d_t', kind] / best['backbone', kind]:.2f}x"
            for kind in ("forward", "forward+backward")))
    if not args.backbone_only:
        from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

        model = AVCANetForVideoClassification(config)
        inputs = {
            "pixel_values": torch.randn(1, s, t, 3, size, size),
            "input_features": torch.randn(1, s, config.audio_config.num_frames, config.audio_config.num_mfcc),
            "audio_mask": torch.ones(1, dtype=torch.bool),
            "labels": torch.tensor([1]),
        }
        measure({"AV-CANet": model}, lambda module: module(**inputs), lambda out: out.loss, args.repeats, clock,
                matmul_rate)
    print(f"torch.mm 2048² after the runs: {matmul_flops_per_second(clock) / 1e9:.1f} GFLOP/s "
          "(a drop means other processes shared the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
