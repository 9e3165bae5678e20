"""Speed of the Video Swin backbone and of the whole AV-CANet at the paper's size, per video, on the CPU.

    python bench/model_speed.py [--repeats 3] [--threads 2] [--clock wall|cpu] [--backbone-only] [--int8]
        [--reference auto | none | torchvision | torchvision=RUNNER.py | official=RUNNER.py ...] [--compile-blocks]
        [--allocator keep|glibc]

Prints forward and forward+backward seconds per video (s=16 snippets of T=8 frames at 112², MFCC 256×32 per snippet)
for the visual backbone alone and for `AVCANetForVideoClassification`, the FLOPs of each (torch's FlopCounterMode),
and the achieved FLOP/s as a fraction of a 2048² `torch.mm` measured in the same run (before and after), so that
figures taken on a busy or a different machine can be compared. Times are medians over the rounds (best in
brackets); every ratio is of medians. By default the process keeps its freed memory
(`emotions_hf.utils.cpu_memory.keep_freed_memory`, as the `emotions-hf` command and the examples do); `--allocator
glibc` measures glibc's defaults instead.

References. The backbone races other implementations of Video Swin-T on the same clips and loss, all timed in turns
within each round so that a shared machine slows them alike, and all holding the same weights (each reference's
keys are mapped through `emotions_hf.convert_checkpoints`), so they compute the same function; before timing, the
largest output difference is printed at 224² (no window clipped in space, where all must agree) and at the
benchmark size (at 112² the last stage's clipped windows index the bias by true 3D offsets in our backbone, on
purpose, and by the first rows of the full index in the references). `--reference` (repeatable) picks them:
`torchvision` is an installed torchvision's `swin3d_t`; `NAME=RUNNER.py` is any Python file with a `build()` that
returns a module mapping (N, 3, T, H, W) clips to pooled (N, 768) features, e.g. a runner in a temporary folder that
builds torchvision's `swin3d_t` from its source files or the official `SwinTransformer3D` of the
Video-Swin-Transformer repository (stand-ins for its mmcv / mmaction registry imports belong in that runner, not in
this project). `auto` (the default) races torchvision where it imports. torchvision cannot sit beside the CPU
build of torch that `scripts/setup_env.sh` installs.

`--int8` also times the whole model's forward against `emotions_hf.quantization.quantize_int8` of it (dynamic int8
Linears), in turns, and prints the speed-up, the largest logit difference and the top-1 agreement.
`--compile-blocks` adds a contender whose blocks run through `torch.compile` (inductor), to measure that lever.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.convert_checkpoints import convert_video_backbone
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
    parser.add_argument("--reference", action="append", default=None,
                        help="auto (default: torchvision's swin3d_t where torchvision imports), none, torchvision, or "
                             "NAME=RUNNER.py (a file whose build() returns the reference module); repeatable")
    parser.add_argument("--int8", action="store_true", help="also time the whole model's forward in dynamic int8")
    parser.add_argument("--compile-blocks", action="store_true",
                        help="add a contender with torch.compile (inductor) on every block")
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


def measure(contenders: dict, run, loss_of, repeats: int, clock, matmul_rate, passes=("forward", "forward+backward")
            ) -> dict:
    """Forward (eval, no grad) and forward+backward (train) of one video, `run(module)`, for each named module, timed in
    turns; prints a line per module and pass and returns {(name, pass): (median seconds, FLOPs)}."""

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

    result = {}
    for kind, make_step, train in (("forward", forward, False), ("forward+backward", forward_backward, True)):
        if kind not in passes:
            continue
        for module in contenders.values():
            module.train(train)
        steps = {name: make_step(module) for name, module in contenders.items()}
        times = timed(steps, repeats, clock)
        for name, step in steps.items():
            flops = count_flops(step)
            median = statistics.median(times[name])
            result[name, kind] = (median, flops)
            rate = flops / median
            print(f"{name:<24} {kind:<17} {median:7.3f} s/video (best {min(times[name]):6.3f})  "
                  f"{flops / 1e9:7.1f} GFLOP  {rate / 1e9:6.1f} GFLOP/s = {rate / matmul_rate:4.2f} x mm")
    return result


def load_runner(path: str):
    """The `build` function of a reference runner file (any path; it is never imported as part of this project)."""
    path = Path(path).expanduser().resolve()
    spec = importlib.util.spec_from_file_location(f"_reference_runner_{path.stem}", path)
    if spec is None:
        raise SystemExit(f"--reference: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build", None)):
        raise SystemExit(f"--reference: {path} defines no build() returning the reference module")
    return module.build


def torchvision_swin3d_t():
    from torchvision.models.video import swin3d_t

    reference = swin3d_t()
    reference.head = torch.nn.Identity()  # pooled features, like VideoSwinModel's pooler_output
    return reference


def references(specs: list[str] | None) -> dict:
    """{name: module} for the `--reference` values."""
    specs = specs or ["auto"]
    found = {}
    for spec in specs:
        if spec == "none":
            continue
        if spec == "auto":
            try:
                found["torchvision swin3d_t"] = torchvision_swin3d_t()
            except ImportError:
                print("torchvision not importable: no torchvision reference (see --reference in this script's "
                      "docstring)")
        elif spec == "torchvision":
            found["torchvision swin3d_t"] = torchvision_swin3d_t()
        elif "=" in spec:
            name, path = spec.split("=", 1)
            found[name] = load_runner(path)()
        else:
            raise SystemExit(f"--reference {spec!r}: expected auto, none, torchvision or NAME=RUNNER.py")
    return found


def share_weights(backbone: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Give `reference` the backbone's weights. Its own parameters are first set to distinct random values, its state
    dict goes through `convert_video_backbone` (which knows the official and torchvision key names), and each of its
    tensors is then found in the converted dict by value, so the mapping is read from the converter, not restated."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    state = reference.state_dict()
    converted, report = convert_video_backbone(dict(state), backbone.config)
    if report.missing_keys or report.unexpected_keys:
        raise SystemExit(f"reference weights do not map onto the backbone: {report.summary()}")
    by_value = {(tuple(t.flatten()[:16].tolist()), t.numel()): key for key, t in state.items() if t.is_floating_point()}
    ours = backbone.state_dict()
    with torch.no_grad():
        for key, tensor in converted.items():
            target = by_value.get((tuple(tensor.flatten()[:16].tolist()), tensor.numel()))
            if target is None:
                raise SystemExit(f"reference weights: no reference tensor maps to {key}")
            state[target].copy_(ours[key].reshape(state[target].shape))


def largest_difference(contenders: dict, clips: torch.Tensor) -> dict[str, float]:
    """Largest absolute difference of each contender's pooled output from the first one's, in eval mode."""
    outputs = {}
    with torch.no_grad():
        for name, module in contenders.items():
            outputs[name] = pooled(module.eval()(clips))
    first = next(iter(outputs.values()))
    return {name: (out - first).abs().max().item() for name, out in list(outputs.items())[1:]}


def compiled_blocks(backbone: torch.nn.Module) -> torch.nn.Module:
    """A copy of the backbone whose blocks run through torch.compile (inductor); same weights."""
    compiled = copy.deepcopy(backbone)
    for stage in compiled.layers:
        for block in stage.blocks:
            block.compile(dynamic=False)
    return compiled


def pooled(output) -> torch.Tensor:
    """The pooled features, from our backbone's `ModelOutput` or a reference's plain tensor."""
    return getattr(output, "pooler_output", output)


def int8_comparison(model, inputs: dict, repeats: int, clock, matmul_rate, samples: int = 8) -> None:
    """Forward of the whole model in float32 and through `quantize_int8`, in turns; speed-up and output change."""
    from emotions_hf.quantization import quantize_int8

    quantized = quantize_int8(model)
    model.eval()
    result = measure({"AV-CANet float32": model, "AV-CANet int8": quantized}, lambda module: module(**inputs), None,
                     repeats, clock, matmul_rate, passes=("forward",))
    print(f"int8 dynamic quantization: forward {result['AV-CANet float32', 'forward'][0] / result['AV-CANet int8', 'forward'][0]:.2f}x faster")
    generator = torch.Generator().manual_seed(7)
    largest, agree = 0.0, 0
    with torch.no_grad():
        for _ in range(samples):
            sample = dict(inputs, pixel_values=torch.randn(inputs["pixel_values"].shape, generator=generator),
                          input_features=torch.randn(inputs["input_features"].shape, generator=generator))
            sample.pop("labels", None)
            reference, approximate = model(**sample).logits, quantized(**sample).logits
            largest = max(largest, (reference - approximate).abs().max().item())
            agree += int((reference.argmax(-1) == approximate.argmax(-1)).all())
    print(f"int8 logits vs float32 over {samples} random videos: max |diff| {largest:.4f}, top-1 agreement "
          f"{agree}/{samples} (random weights: the logits' spread is small, so this is a strict test)")


def main(argv=None):
    args = parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    allocator = "freed memory kept" if args.allocator == "keep" and keep_freed_memory() else "glibc defaults"
    torch.manual_seed(0)
    config = AVCANetConfig(num_snippets=args.snippets, frames_per_snippet=args.frames, image_size=args.image_size)
    s, t, size = config.num_snippets, config.vision_config.num_frames, config.vision_config.image_size
    matmul_before = matmul_flops_per_second(clock)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock, {allocator}, video = {s} snippets x "
          f"{t} frames x {size}²")
    print(f"torch.mm 2048²: {matmul_before / 1e9:.1f} GFLOP/s")

    backbone = VideoSwinModel(config.vision_config)
    contenders = {"backbone": backbone}
    if args.compile_blocks:
        contenders["backbone compiled blocks"] = compiled_blocks(backbone)
    found = references(args.reference)
    for reference in found.values():
        share_weights(backbone, reference)
    contenders.update(found)
    clips = torch.randn(s, 3, t, size, size)
    if len(contenders) > 1:
        for label, check in (("224² (no clipped window)", torch.randn(1, 3, t, 224, 224)), (f"{size}²", clips[:2])):
            print(f"largest output difference from the backbone at {label}: " + ", ".join(
                f"{name} {diff:.2e}" for name, diff in largest_difference(contenders, check).items()))
    result = measure(contenders, lambda module: pooled(module(clips)), lambda out: out.square().mean(), args.repeats,
                     clock, matmul_before)
    for name in list(contenders)[1:]:
        print(f"backbone speed-up over {name} (medians): " + ", ".join(
            f"{kind} {result[name, kind][0] / result['backbone', kind][0]:.2f}x" for kind in ("forward", "forward+backward")))
    if not args.backbone_only or args.int8:
        from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

        model = AVCANetForVideoClassification(config)
        inputs = {
            "pixel_values": torch.randn(1, s, t, 3, size, size),
            "input_features": torch.randn(1, s, config.audio_config.num_frames, config.audio_config.num_mfcc),
            "audio_mask": torch.ones(1, dtype=torch.bool),
            "labels": torch.tensor([1]),
        }
        if not args.backbone_only:
            measure({"AV-CANet": model}, lambda module: module(**inputs), lambda out: out.loss, args.repeats, clock,
                    matmul_before)
        if args.int8:
            int8_comparison(model, inputs, args.repeats, clock, matmul_before)
    matmul_after = matmul_flops_per_second(clock)
    print(f"torch.mm 2048² after the runs: {matmul_after / 1e9:.1f} GFLOP/s (a drop means other processes shared the "
          "CPU)")
    for kind in ("forward", "forward+backward"):
        seconds, flops = result["backbone", kind]
        print(f"backbone {kind}: {flops / seconds / matmul_before:.2f} of torch.mm's rate before the runs, "
              f"{flops / seconds / matmul_after:.2f} of its rate after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
