"""Training throughput of AV-CANet: one optimiser step per batch, model-only and fed by a real DataLoader.

    python bench/train_throughput.py [--device auto|cuda|cpu] [--config auto|paper|small] [--batch_size N]
        [--steps N] [--warmup_steps N] [--dtype bf16|fp16|fp32] [--compile off,blocks,model] [--num_workers 0 4 8]
        [--peak_tflops X] [--workdir DIR] [--json]

On CUDA it trains the paper's configuration (`AVCANetConfig()`: 16 snippets x 8 frames x 112², Video Swin-T,
ResNet-34) in bf16 autocast with fused AdamW and SDPA restricted to its flash and memory-efficient kernels; on the CPU
a small configuration (`examples/presets.py`'s SMALL_CONFIG) so that CI proves the script works.

(a) model only: the same synthetic batch, already on the device, `--steps` timed optimiser steps after
    `--warmup_steps`, once per `--compile` mode (`off`: eager; `blocks`: every Video Swin block, ResNet stage, LISF
    level and GLCF compiled on its own; `model`: the whole model). Prints videos/s, model FLOP/s (one forward+backward
    counted by `FlopCounterMode`), MFU against the device's dense bf16 peak (CUDA: `--peak_tflops` or the table
    below, by `torch.cuda.get_device_name()`; CPU: a `torch.mm` measured in this run, like `bench/model_speed.py`),
    and peak memory (CUDA: `max_memory_allocated`; CPU: the process' peak RSS). Which SDPA kernels ran is read off
    the aten ops of one eager step.
(b) loader-fed: the fastest mode of (a) trained on batches from a `DataLoader` over small generated videos
    (`emotions_hf.data.synthetic`, written once into `--workdir`, with training proxies and cached MFCC as
    `emotions-hf prepare --proxy` writes them) through `VideoClipDataset`, `AVCANetProcessor` and
    `AVCANetDataCollator`, once per `--num_workers`. Prints videos/s end to end and the share of the loop's wall time
    the step spends blocked in `next(iterator)`; on CUDA also the share of GPU time between the end of one step's
    work and the start of the next (CUDA events), i.e. the GPU waiting for the host.

Every lever that fails here (torch.compile without a working compiler, a kernel the GPU lacks) is reported and
skipped, never fatal, unless nothing at all could be measured.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.training.arguments import AVCANetTrainingArguments
from emotions_hf.utils.cpu_memory import keep_freed_memory

# examples/presets.py's SMALL_CONFIG (one home for the CPU demo's sizes); examples/ is no package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from presets import SMALL_CONFIG

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets, matched against
# torch.cuda.get_device_name() in this order (the first pattern that matches wins, so "L40S" before "L4").
DENSE_BF16_PEAK_TFLOPS = (
    (r"GB200", 2500.0),
    (r"B200", 2250.0),
    (r"H200 NVL", 835.0),
    (r"H200", 989.0),  # H200 SXM and GH200
    (r"H100 NVL", 835.0),
    (r"H100.*PCIe", 756.0),
    (r"H100|H800", 989.0),  # H100 SXM (HBM3)
    (r"H20\b", 148.0),
    (r"A100|A800", 312.0),
    (r"L40S", 362.0),
    (r"L40", 181.0),
    (r"L4\b", 121.0),
    (r"A10G", 70.0),
    (r"A10\b", 125.0),
    (r"RTX 6000 Ada", 364.0),
    (r"RTX A6000", 155.0),
    (r"4090", 165.0),
    (r"3090", 71.0),
)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
COMPILE_MODES = ("off", "blocks", "model")
# What `blocks` compiles: the repeated units, each a graph of its own (few shapes, no data-dependent branches).
COMPILED_BLOCKS = ("VideoSwinBlock3D", "ResNetStage", "LISFLevel", "GLCF")
# aten ops that tell which SDPA kernel ran (forward ops; the math path is the only one that calls _safe_softmax).
SDPA_KERNELS = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_safe_softmax": "math",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--config", choices=("auto", "paper", "small"), default="auto",
                        help="auto: the paper's on CUDA, examples/presets.py's SMALL_CONFIG on the CPU")
    parser.add_argument("--config_overrides", type=json.loads, default={},
                        help='JSON of AVCANetConfig keyword arguments on top, e.g. \'{"num_snippets": 2}\'')
    parser.add_argument("--batch_size", type=int, default=None, help="videos per step (default: 8 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per measurement")
    parser.add_argument("--warmup_steps", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--loader_steps", type=int, default=None,
                        help="timed steps of each loader-fed run (default: --steps)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None,
                        help="autocast dtype (default: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--compile", type=lambda text: text.split(","), default=["off"],
                        help=f"comma-separated modes of {COMPILE_MODES}, each measured in (a); (b) uses the fastest")
    parser.add_argument("--num_workers", type=int, nargs="+", default=None,
                        help="DataLoader workers, one loader-fed run each (default: 0 and min(8, cores - 1))")
    parser.add_argument("--no_loader", action="store_true", help="skip (b)")
    parser.add_argument("--num_videos", type=int, default=24, help="generated videos (a multiple of 6 classes)")
    parser.add_argument("--video_seconds", type=float, default=None, help="length of each (default: 6 CUDA, 2 CPU)")
    parser.add_argument("--video_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="frame size of the generated originals (default: 320 180 CUDA, 64 36 CPU)")
    parser.add_argument("--inputs", choices=("proxy", "original"), default="proxy",
                        help="proxy: rows with a training proxy and cached MFCC (emotions-hf prepare --proxy)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "emotions_hf_bench_train")
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="dense bf16 peak of the GPU in TFLOP/s (default: looked up by device name)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    bad = [mode for mode in args.compile if mode not in COMPILE_MODES]
    if bad:
        parser.error(f"--compile: {bad} not in {COMPILE_MODES}")
    if min(args.steps, args.warmup_steps + 1, args.num_videos) < 1:
        parser.error("--steps and --num_videos must be positive, --warmup_steps non-negative")
    return args


# ---------------------------------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    device: torch.device
    dtype: torch.dtype
    config: AVCANetConfig
    batch_size: int
    config_name: str

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def resolve_setup(args) -> Setup:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False (a CPU build of torch, or no GPU)")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          args.device if args.device != "auto" else "cpu")
    cuda = device.type == "cuda"
    name = args.config if args.config != "auto" else ("paper" if cuda else "small")
    settings = dict(SMALL_CONFIG) if name == "small" else {}
    config = AVCANetConfig(**{**settings, **args.config_overrides})
    dtype = DTYPES[args.dtype or ("bf16" if cuda else "fp32")]
    if dtype == torch.bfloat16 and cuda and not torch.cuda.is_bf16_supported():
        print("this GPU has no bf16: using fp16 autocast", file=sys.stderr)
        dtype = torch.float16
    if dtype == torch.float16 and not cuda:
        raise SystemExit("--dtype fp16 is a CUDA setting (CPU autocast takes bf16)")
    return Setup(device, dtype, config, args.batch_size or (8 if cuda else 2), name)


def build_model(setup: Setup, seed: int):
    torch.manual_seed(seed)
    model = AVCANetForVideoClassification(setup.config).to(setup.device).train()
    recipe = AVCANetTrainingArguments.__dataclass_fields__
    options = {"lr": recipe["learning_rate"].default, "weight_decay": recipe["weight_decay"].default,
               "betas": (recipe["adam_beta1"].default, recipe["adam_beta2"].default)}
    if setup.cuda:
        options["fused"] = True  # one kernel for the whole update instead of a few per parameter group
    optimizer = torch.optim.AdamW(model.parameters(), **options)
    scaler = torch.amp.GradScaler("cuda") if setup.dtype == torch.float16 else None
    return model, optimizer, scaler


def synthetic_batch(setup: Setup, generator: torch.Generator) -> dict:
    c, vision, audio = setup.config, setup.config.vision_config, setup.config.audio_config
    b = setup.batch_size
    batch = {
        "pixel_values": torch.randn(b, c.num_snippets, vision.num_frames, 3, vision.image_size, vision.image_size,
                                    generator=generator),
        "input_features": torch.randn(b, c.num_snippets, audio.num_frames, audio.num_mfcc, generator=generator),
        "audio_mask": torch.ones(b, dtype=torch.bool),
        "labels": torch.randint(0, c.num_labels, (b,), generator=generator),
    }
    return {key: value.to(setup.device) for key, value in batch.items()}


# ------------------------------------------------------------------------------------------------ SDPA kernels


def sdpa_context(setup: Setup, allow_math: bool):
    """SDPA limited to its fused kernels (flash, then memory-efficient: Swin's additive bias rules flash out), plus
    the math path only when a call has no fused kernel (`allow_math`, after a first try without it failed)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if allow_math:
        backends.append(SDPBackend.MATH)
    return sdpa_kernel(backends)


class KernelRecorder(TorchDispatchMode):
    """Counts the forward SDPA kernels (see `SDPA_KERNELS`) that reach aten during one step."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kernel = SDPA_KERNELS.get(func.__name__.split(".")[0])
        if kernel is not None:
            self.counts[kernel] = self.counts.get(kernel, 0) + 1
        return func(*args, **(kwargs or {}))


def _cpu_flash_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode, also counting the CPU's fused attention (absent from torch's table: its FLOPs would be
    missing from every CPU figure, as they are in `bench/model_speed.py`)."""
    mapping = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", _cpu_flash_flops),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_flash_backward_flops)):
        op = getattr(torch.ops.aten, name, None)
        if op is not None:
            mapping[op] = formula
    return FlopCounterMode(display=False, custom_mapping=mapping)


# ------------------------------------------------------------------------------------------------ the step


class Trainer:
    """One optimiser step per batch: autocast forward, backward, (fused) AdamW."""

    def __init__(self, setup: Setup, model, optimizer, scaler, allow_math: bool):
        self.setup, self.model, self.optimizer, self.scaler = setup, model, optimizer, scaler
        self.allow_math = allow_math

    def step(self, batch: dict) -> torch.Tensor:
        with self.setup.autocast(), sdpa_context(self.setup, self.allow_math):
            loss = self.model(**batch).loss
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def probe_step(setup: Setup, seed: int, batch: dict) -> dict:
    """One eager step on a fresh model: its FLOPs, the SDPA kernels that ran, and whether the math path had to be
    allowed. The model is thrown away (the step changed its weights)."""
    model, optimizer, scaler = build_model(setup, seed)
    trainer = Trainer(setup, model, optimizer, scaler, allow_math=False)
    fallback = None
    for allow_math in (False, True):
        trainer.allow_math = allow_math
        counter, kernels = flop_counter(), KernelRecorder()
        try:
            with counter, kernels:
                trainer.step(batch)
            break
        except RuntimeError as error:
            message = str(error).lower()  # CUDA: "No available kernel"; CPU: "No viable backend ... was found"
            if allow_math or not ("no available kernel" in message or "no viable backend" in message):
                raise
            fallback = str(error).splitlines()[0]
            optimizer.zero_grad(set_to_none=True)
    del model, optimizer, scaler, trainer
    return {"flops_per_step": counter.get_total_flops(), "sdpa_kernels": kernels.counts,
            "math_allowed": allow_math, "fused_only_error": fallback}


def compile_model(model, mode: str) -> int:
    """Compile in place (`nn.Module.compile`); returns how many modules were wrapped."""
    config = torch._dynamo.config
    for limit in ("recompile_limit", "cache_size_limit"):  # one graph per block shape: Swin-T alone has 8
        if hasattr(config, limit):
            setattr(config, limit, max(getattr(config, limit), 64))
    if mode == "model":
        model.compile()
        return 1
    blocks = [module for module in model.modules() if type(module).__name__ in COMPILED_BLOCKS]
    for module in blocks:
        module.compile()
    return len(blocks)


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class ModelOnly:
    mode: str
    ok: bool
    error: str | None = None
    compiled_modules: int = 0
    first_steps_s: float = 0.0  # the warm-up steps, compilation included
    videos_per_s: float = 0.0
    step_s: float = 0.0
    tflops_per_s: float = 0.0
    mfu: float = 0.0
    mfu_vs_mm: float = 0.0
    peak_memory_mb: float = 0.0
    graphs_compiled_while_timed: int = 0  # > 0: recompilation inside the timed steps (the figure is not steady)


def peak_memory_mb(setup: Setup) -> float:
    if setup.cuda:
        return torch.cuda.max_memory_allocated(setup.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_model_only(setup: Setup, args, mode: str, batch: dict, flops: float, peak: float, mm_rate: float,
                       allow_math: bool):
    """(a) for one compile mode; returns the result and the warmed-up trainer (None when it failed)."""
    model, optimizer, scaler = build_model(setup, args.seed)
    result = ModelOnly(mode, ok=False)
    trainer = Trainer(setup, model, optimizer, scaler, allow_math)
    try:
        if mode != "off":
            result.compiled_modules = compile_model(model, mode)
        start = time.perf_counter()
        for _ in range(max(1, args.warmup_steps)):
            trainer.step(batch)
        setup.sync()
        result.first_steps_s = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - any compiler / kernel failure: report it, measure the other modes
        result.error = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"
        if mode != "off":
            torch._dynamo.reset()
        del model, optimizer, scaler, trainer
        return result, None
    if setup.cuda:
        torch.cuda.reset_peak_memory_stats(setup.device)
    graphs_before = compiled_graphs()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.step(batch)
    setup.sync()
    elapsed = time.perf_counter() - start
    result.graphs_compiled_while_timed = compiled_graphs() - graphs_before
    result.ok = True
    result.step_s = elapsed / args.steps
    result.videos_per_s = setup.batch_size / result.step_s
    result.tflops_per_s = flops / result.step_s / 1e12
    result.mfu = result.tflops_per_s * 1e12 / peak
    result.mfu_vs_mm = result.tflops_per_s * 1e12 / mm_rate
    result.peak_memory_mb = peak_memory_mb(setup)
    return result, trainer


# ------------------------------------------------------------------------------------------------ peaks


def matmul_flops_per_second(setup: Setup) -> float:
    """Best of a few square matmuls in the compute dtype: what this device reaches on the easiest workload."""
    n = 8192 if setup.cuda else 2048
    dtype = setup.dtype if setup.cuda or setup.dtype == torch.bfloat16 else torch.float32
    a, b = (torch.randn(n, n, device=setup.device).to(dtype) for _ in range(2))
    best = math.inf
    for _ in range(6):
        setup.sync()
        start = time.perf_counter()
        a @ b
        setup.sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def table_peak_tflops(device_name: str) -> tuple[float, str] | None:
    """(dense bf16 TFLOP/s, the pattern that matched) for a `torch.cuda.get_device_name()`, or None."""
    for pattern, tflops in DENSE_BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops, pattern
    return None


def resolve_peak(setup: Setup, args, mm_rate: float) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for MFU."""
    if args.peak_tflops is not None:
        return args.peak_tflops * 1e12, "--peak_tflops"
    if setup.cuda:
        name = torch.cuda.get_device_name(setup.device)
        known = table_peak_tflops(name)
        if known is not None:
            return known[0] * 1e12, f"dense bf16 peak of {known[1]!r} (data sheet)"
        print(f"{name!r} is not in the peak table: MFU is against the measured torch.mm rate "
              "(pass --peak_tflops for the data-sheet figure)", file=sys.stderr)
    return mm_rate, "measured torch.mm in this run"


# ------------------------------------------------------------------------------------------------ the loader


def generated_rows(setup: Setup, args) -> list[dict]:
    """Rows like a prepared dataset's (video, proxy, mfcc as `{"path", "bytes"}`, label, video_id) over small videos
    generated once into `--workdir`."""
    from emotions_hf.data.synthetic import build_once, generate
    from emotions_hf.labels import EMOTIONS
    from emotions_hf.processing_avcanet import AVCANetProcessor
    from emotions_hf.proxy import write_mfcc_cache, write_proxy

    seconds = args.video_seconds or (6.0 if setup.cuda else 2.0)
    size = tuple(args.video_size or ((320, 180) if setup.cuda else (64, 36)))
    per_class = max(1, math.ceil(args.num_videos / len(EMOTIONS.labels)))
    short_side = max(128, setup.config.vision_config.image_size)
    processor = AVCANetProcessor.from_model_config(setup.config)
    key = {"per_class": per_class, "seconds": seconds, "size": size, "short_side": short_side,
           "mfcc": repr(processor.mfcc_settings), "version": 1}
    folder = args.workdir / "videos"

    def build(root: Path) -> None:
        source = generate(root / "source", videos_per_class=per_class, layout="folder", seed=args.seed,
                          duration=seconds, size=size, fps=25.0)
        for video in source.valid_videos:
            original = source.root / video.relative_path
            write_proxy(original, root / "proxy" / f"{video.video_id}.mp4", short_side=short_side)
            write_mfcc_cache(original, root / "mfcc" / f"{video.video_id}.safetensors", processor)
        (root / "rows.json").write_text(json.dumps([
            {"video_id": v.video_id, "label": EMOTIONS.label2id[v.label], "relative_path": v.relative_path}
            for v in source.valid_videos]))

    start = time.perf_counter()
    if build_once(folder, build, key=key):
        print(f"generated {per_class * len(EMOTIONS.labels)} videos in {time.perf_counter() - start:.1f} s "
              f"into {folder}", file=sys.stderr)
    rows = []
    for entry in json.loads((folder / "rows.json").read_text()):
        row = {"video": {"path": str(folder / "source" / entry["relative_path"]), "bytes": None},
               "label": entry["label"], "video_id": entry["video_id"]}
        if args.inputs == "proxy":
            row["proxy"] = {"path": str(folder / "proxy" / f"{entry['video_id']}.mp4"), "bytes": None}
            row["mfcc"] = {"path": str(folder / "mfcc" / f"{entry['video_id']}.safetensors"), "bytes": None}
        rows.append(row)
    return rows


@dataclass
class LoaderFed:
    num_workers: int
    videos_per_s: float = 0.0
    wait_share: float = 0.0  # time blocked in next(iterator) / loop wall time
    gpu_idle_share: float | None = None  # CUDA: GPU gaps between steps / GPU span of the timed steps
    first_batches_s: float = 0.0  # the warm-up steps: worker start-up and the first batches
    skipped_videos: int = 0
    ratio_to_model_only: float = 0.0
    step_wait_s: list[float] = field(default_factory=list)


def measure_loader_fed(setup: Setup, args, trainer: Trainer, rows: list[dict], num_workers: int,
                       model_rate: float) -> LoaderFed:
    """(b) for one worker count, with the trainer (model and optimiser) already warmed up in (a)."""
    from torch.utils.data import DataLoader, RandomSampler

    from emotions_hf.processing_avcanet import AVCANetProcessor
    from emotions_hf.training.data import SKIPPED_KEY, AVCANetDataCollator, VideoClipDataset

    steps = args.loader_steps or args.steps
    warmup = max(1, args.warmup_steps)
    dataset = VideoClipDataset(rows, training=True)
    processor = AVCANetProcessor.from_model_config(setup.config)
    generator = torch.Generator().manual_seed(args.seed)
    sampler = RandomSampler(dataset, num_samples=(warmup + steps) * setup.batch_size, generator=generator)
    loader = DataLoader(dataset, batch_size=setup.batch_size, sampler=sampler, num_workers=num_workers,
                        collate_fn=AVCANetDataCollator(processor, seed=args.seed), pin_memory=setup.cuda,
                        drop_last=True)
    result = LoaderFed(num_workers)
    iterator = iter(loader)

    def next_batch(iterator=iterator):
        batch = next(iterator)
        result.skipped_videos += len(batch.pop(SKIPPED_KEY))
        return {key: value.to(setup.device, non_blocking=True) for key, value in batch.items()}

    start = time.perf_counter()
    for _ in range(warmup):
        trainer.step(next_batch())
    setup.sync()
    result.first_batches_s = time.perf_counter() - start

    videos, waited = 0, 0.0
    events = []
    start = time.perf_counter()
    for _ in range(steps):
        before = time.perf_counter()
        batch = next_batch()
        wait = time.perf_counter() - before
        waited += wait
        result.step_wait_s.append(round(wait, 6))
        videos += len(batch["labels"])
        if setup.cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            trainer.step(batch)
            end.record()
            events.append((begin, end))
        else:
            trainer.step(batch)
    setup.sync()
    elapsed = time.perf_counter() - start
    del iterator, loader
    result.videos_per_s = videos / elapsed
    result.wait_share = waited / elapsed
    if events:
        span = events[0][0].elapsed_time(events[-1][1])
        gaps = sum(previous[1].elapsed_time(current[0]) for previous, current in itertools.pairwise(events))
        result.gpu_idle_share = gaps / span if span > 0 else 0.0
    result.ratio_to_model_only = result.videos_per_s / model_rate
    return result


# ------------------------------------------------------------------------------------------------ main


def describe_device(setup: Setup) -> str:
    if setup.cuda:
        return torch.cuda.get_device_name(setup.device)
    return f"CPU, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
    args = parse_args(argv)
    setup = resolve_setup(args)
    if setup.cuda:
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in fp32
    else:
        keep_freed_memory()
        if args.threads:
            torch.set_num_threads(args.threads)
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print

    vision, audio = setup.config.vision_config, setup.config.audio_config
    shape = (f"{setup.config.num_snippets} snippets x {vision.num_frames} frames x {vision.image_size}², "
             f"MFCC {audio.num_frames}x{audio.num_mfcc}")
    parameters = sum(p.numel() for p in AVCANetForVideoClassification(setup.config).parameters())
    dtype_name = {v: k for k, v in DTYPES.items()}[setup.dtype]
    precision = "fp32, no autocast" if setup.dtype == torch.float32 else f"{dtype_name} autocast"
    unit, scale = ("TFLOP", 1e12) if setup.cuda else ("GFLOP", 1e9)
    say(f"torch {torch.__version__}, {describe_device(setup)}, {setup.config_name} config ({shape}, "
        f"{parameters / 1e6:.1f} M parameters), batch {setup.batch_size}, {precision}, "
        f"AdamW{' fused' if setup.cuda else ''}")

    mm_rate = matmul_flops_per_second(setup)
    peak, peak_source = resolve_peak(setup, args, mm_rate)
    batch = synthetic_batch(setup, torch.Generator().manual_seed(args.seed))
    probe = probe_step(setup, args.seed, batch)
    flops = probe["flops_per_step"]
    kernels = ", ".join(f"{name} x{count}" for name, count in sorted(probe["sdpa_kernels"].items())) or "none"
    mm_dtype = dtype_name if setup.cuda or setup.dtype == torch.bfloat16 else "fp32"
    say(f"torch.mm ({mm_dtype}): {mm_rate / scale:.2f} {unit}/s; peak for MFU: {peak / scale:.2f} {unit}/s "
        f"({peak_source})")
    say(f"one step: {flops / scale:.3f} {unit} ({flops / setup.batch_size / 1e9:.2f} GFLOP per video, "
        "forward+backward, FlopCounterMode)")
    say(f"SDPA kernels in one eager forward: {kernels}"
        + (f" (fused-only failed: {probe['fused_only_error']}; math allowed)" if probe["math_allowed"] else ""))
    if "math" in probe["sdpa_kernels"]:
        say("  note: some attention ran on the math path (no fused kernel for its dtype / mask / head size)")

    results, best = [], None
    for mode in dict.fromkeys(args.compile):
        result, trainer = measure_model_only(setup, args, mode, batch, flops, peak, mm_rate, probe["math_allowed"])
        results.append(result)
        if not result.ok:
            say(f"compile={mode}: failed, skipped ({result.error})")
            continue
        if best is None or result.videos_per_s > best[0].videos_per_s:
            best = (result, trainer)
        else:
            del trainer
        if setup.cuda:
            torch.cuda.empty_cache()
    if best is None:
        say("no compile mode ran: nothing measured")
        return 1

    memory_kind = "peak GPU memory allocated" if setup.cuda else "peak RSS of the process"
    say("")
    say(f"(a) model only, synthetic batch on the device, {args.steps} steps after {max(1, args.warmup_steps)} warm-up")
    versus_mm = peak != mm_rate  # on the CPU (or an unknown GPU) MFU already is "x mm"
    say(f"{'compile':<8} {'videos/s':>9} {'step s':>8} {unit + '/s':>8} {'MFU':>6}{' x mm' if versus_mm else ''} "
        f"{'memory MB':>10} {'warm-up s':>10}")
    baseline = next((r for r in results if r.ok and r.mode == "off"), None)
    for r in results:
        if r.ok:
            mm_column = f" {r.mfu_vs_mm:4.2f}" if versus_mm else ""
            say(f"{r.mode:<8} {r.videos_per_s:9.2f} {r.step_s:8.4f} {r.tflops_per_s * 1e12 / scale:8.2f} {r.mfu:6.1%}"
                f"{mm_column} {r.peak_memory_mb:10.0f} {r.first_steps_s:10.1f}")
            if r.graphs_compiled_while_timed:
                say(f"  compile={r.mode}: {r.graphs_compiled_while_timed} graphs compiled during the timed steps: "
                    "raise --warmup_steps")
    say(f"  memory: {memory_kind}; MFU against {peak / scale:.2f} {unit}/s"
        + ("; x mm: against torch.mm" if versus_mm else ""))
    for r in results:
        if r.ok and baseline is not None and r is not baseline:
            say(f"  compile={r.mode} vs eager: {r.videos_per_s / baseline.videos_per_s:.2f}x videos/s")

    loader_results = []
    if not args.no_loader:
        rows = generated_rows(setup, args)
        workers = args.num_workers or sorted({0, min(8, max(1, (os.cpu_count() or 2) - 1))})
        for num_workers in workers:
            loader_results.append(measure_loader_fed(setup, args, best[1], rows, num_workers, best[0].videos_per_s))
        say("")
        say(f"(b) loader-fed ({args.inputs} inputs through processor + collator), compile={best[0].mode}, "
            f"{args.loader_steps or args.steps} steps after {max(1, args.warmup_steps)} warm-up")
        gpu_column = f" {'GPU idle':>9}" if setup.cuda else ""
        say(f"{'workers':>7} {'videos/s':>9} {'wait':>6}{gpu_column} {'vs model-only':>14} {'start-up s':>11}")
        for r in loader_results:
            gpu = f" {r.gpu_idle_share:9.1%}" if r.gpu_idle_share is not None else ""
            say(f"{r.num_workers:7d} {r.videos_per_s:9.2f} {r.wait_share:6.1%}{gpu} {r.ratio_to_model_only:13.2f}x "
                f"{r.first_batches_s:11.1f}")
        say("  wait: share of the loop's wall time blocked in next(iterator)"
            + ("; GPU idle: share of the GPU's time between steps (CUDA events)" if setup.cuda else ""))
        if any(r.skipped_videos for r in loader_results):
            say(f"  skipped unreadable videos: {[r.skipped_videos for r in loader_results]}")
    say(f"peak memory after all runs ({memory_kind}): {peak_memory_mb(setup):.0f} MB")

    if args.json:
        report = {
            "torch": torch.__version__, "device": describe_device(setup), "config": setup.config_name,
            "shape": shape, "parameters": parameters, "batch_size": setup.batch_size, "dtype": dtype_name,
            "fused_adamw": setup.cuda, "mm_tflops_per_s": mm_rate / 1e12, "peak_tflops": peak / 1e12,
            "peak_source": peak_source, "flops_per_step": flops, "sdpa_kernels": probe["sdpa_kernels"],
            "sdpa_math_allowed": probe["math_allowed"], "memory_kind": memory_kind,
            "model_only": [asdict(r) for r in results], "best_compile": best[0].mode,
            "loader_fed": [asdict(r) for r in loader_results],
        }
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
