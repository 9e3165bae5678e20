"""bench/train_throughput.py on the CPU: the smallest run end to end (the GPU run's code path, minus CUDA), the
peak table and the FLOP count of the CPU's fused attention that MFU rests on."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "train_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def run_bench(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_smallest_cpu_run_reports_every_figure(tmp_path):
    result = run_bench("--device", "cpu", "--steps", "2", "--warmup_steps", "1", "--batch_size", "2",
                       "--num_workers", "0", "1", "--num_videos", "6", "--workdir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["config"] == "small" and report["dtype"] == "fp32" and not report["fused_adamw"]
    assert report["flops_per_step"] > 0 and report["mm_tflops_per_s"] > 0
    assert report["peak_source"] == "measured torch.mm in this run"
    assert sum(report["sdpa_kernels"].values()) > 0  # the recorder saw attention kernels run

    (model_only,) = report["model_only"]
    assert model_only["ok"] and model_only["mode"] == "off" and model_only["error"] is None
    assert model_only["videos_per_s"] > 0
    assert model_only["videos_per_s"] == pytest.approx(report["batch_size"] / model_only["step_s"])
    assert model_only["tflops_per_s"] * 1e12 == pytest.approx(report["flops_per_step"] / model_only["step_s"])
    assert 0 < model_only["mfu"] < 1
    assert model_only["peak_memory_mb"] > 50  # an interpreter with torch: tens of MB at the very least

    loader = {run["num_workers"]: run for run in report["loader_fed"]}
    assert sorted(loader) == [0, 1]
    for run in loader.values():
        assert run["videos_per_s"] > 0 and run["skipped_videos"] == 0
        assert 0 <= run["wait_share"] <= 1
        assert run["gpu_idle_share"] is None  # a CUDA-only figure
        assert len(run["step_wait_s"]) == 2
        assert run["ratio_to_model_only"] == pytest.approx(run["videos_per_s"] / model_only["videos_per_s"])
    # Without workers the main process decodes every batch inside next(): the wait cannot be zero.
    assert loader[0]["wait_share"] > 0 and min(loader[0]["step_wait_s"]) > 0

    # The human-readable table went to stderr and its figures parse.
    row = re.search(r"^off\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%", result.stderr, re.MULTILINE)
    assert row is not None, result.stderr
    assert float(row.group(1)) == pytest.approx(model_only["videos_per_s"], rel=0.01, abs=0.01)
    worker_rows = re.findall(r"^\s+([01])\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)x", result.stderr, re.MULTILINE)
    assert [int(w) for w, *_ in worker_rows] == [0, 1]
    assert all(0 <= float(share) <= 100 for _, _, share, _ in worker_rows)


def test_bad_compile_mode_is_a_usage_error():
    result = run_bench("--compile", "off,fast", "--no_loader", timeout=60)
    assert result.returncode == 2
    assert "--compile" in result.stderr and "fast" in result.stderr


def test_peak_table_picks_the_exact_part(bench):
    assert bench.table_peak_tflops("NVIDIA H100 80GB HBM3")[0] == 989
    assert bench.table_peak_tflops("NVIDIA H100 PCIe")[0] == 756
    assert bench.table_peak_tflops("NVIDIA H200")[0] == 989
    assert bench.table_peak_tflops("NVIDIA A100-SXM4-80GB")[0] == 312
    assert bench.table_peak_tflops("NVIDIA L40S")[0] == 362
    assert bench.table_peak_tflops("NVIDIA L4")[0] == 121
    assert bench.table_peak_tflops("Some Future Accelerator") is None


def test_cpu_fused_attention_flops_are_counted(bench):
    batch, heads, length, dim = 2, 3, 16, 8
    query, key, value = (torch.randn(batch, heads, length, dim, requires_grad=True) for _ in range(3))
    counter = bench.flop_counter()
    with counter, bench.KernelRecorder() as kernels:
        F.scaled_dot_product_attention(query, key, value).sum().backward()
    if "flash (cpu)" not in kernels.counts:
        pytest.skip("this torch runs CPU SDPA on another kernel")
    forward = 2 * 2 * batch * heads * length * length * dim  # QK^T and PV
    # torch's formula for a fused backward: five matmuls of that size (the scores recomputed, then dV, dP, dQ, dK).
    assert counter.get_total_flops() == forward + 5 * forward // 2
