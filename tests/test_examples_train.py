"""End to end: examples/train.py on the synthetic set (learning, DDP on two CPU processes, kill, resume)."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from presets import SMALL_TRAINING
from safetensors.torch import load_file

from emotions_hf.data.synthetic import BUILD_MARKER, class_cues
from emotions_hf.training.arguments import has_ddp_accelerator

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train.py"
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true"]

pytestmark = pytest.mark.slow


def load_train_script():
    spec = importlib.util.spec_from_file_location("train_example", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script is executed
    spec.loader.exec_module(module)
    return module


def small_run_arguments(dataset: Path, output_dir: Path, **overrides) -> list[str]:
    """Arguments for a small-config run on a prepared folder (the embedded default's recipe, or overrides)."""
    settings = {**SMALL_TRAINING, "save_strategy": "no", "eval_strategy": "no", **overrides}
    arguments = ["--dataset", str(dataset), "--config_name", "small", "--output_dir", str(output_dir), *QUIET]
    for key, value in settings.items():
        arguments += [f"--{key}", str(value)]
    return arguments


def run_script(
    arguments: list[str], cwd: Path, launcher: list[str] | None = None, threads: int | None = None
):
    """Run examples/train.py in a new process; by default with this process's thread count, so that its
    numbers can be compared with an in-process run."""
    threads = threads or torch.get_num_threads()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [*(launcher or [sys.executable]), str(TRAIN_SCRIPT), *arguments]
    result = subprocess.run(
        command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def final_test_metrics(output_dir: Path) -> dict:
    """The metrics JSON of the last test evaluation the run wrote."""
    files = sorted(
        (output_dir / "evaluation").glob("test-step-*_metrics.json"),
        key=lambda p: int(p.name.split("-")[2].split("_")[0]),
    )
    return json.loads(files[-1].read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The README's main command: no dataset argument, so synthetic data, the small config, the CPU."""
    output_dir = tmp_path_factory.mktemp("demo") / "avcanet"
    metrics = load_train_script().main(["--output_dir", str(output_dir), *QUIET])
    return output_dir, metrics


def test_embedded_default_learns_and_saves_a_pipeline_ready_model(demo):
    output_dir, metrics = demo
    assert metrics["test_accuracy"] >= 0.9, metrics
    from transformers import pipeline

    classifier = pipeline("video-emotion", model=str(output_dir))
    video = next((output_dir / "_synthetic" / "source" / "Fear").glob("*.mp4"))
    assert classifier(str(video))["predictions"][0]["label"] == "Fear"
    card = (output_dir / "README.md").read_text()
    assert (
        "| this model (test) |" in card and "AV-CANet, paper" not in card
    )  # no published number for synthetic data
    assert final_test_metrics(output_dir)["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert (output_dir / "evaluation").glob("test-step-*_confusion_matrix.png")


@pytest.mark.parametrize("modality, ceiling", [("visual", 1 / 2), ("audio", 1 / 3)])
def test_one_modality_alone_reads_its_cue_and_stays_near_its_ceiling(demo, tmp_path, modality, ceiling):
    """The synthetic label is half in the picture, half in the sound: one branch alone learns its own cue (the hue,
    or the tone band) but cannot exceed its ceiling (1/2, or 1/3), where the audio-visual model reaches >= 90 %."""
    output_dir, _ = demo
    arguments = small_run_arguments(
        output_dir / "_synthetic" / "dataset", tmp_path / modality, num_train_epochs=4
    )
    arguments += ["--config_overrides", f"modality={modality}"]
    metrics = load_train_script().main(arguments)
    confusion = np.asarray(final_test_metrics(tmp_path / modality)["confusion_matrix"])
    cues = np.array([class_cues(label, len(confusion)) for label in range(len(confusion))])
    own_cue = cues[:, 0 if modality == "visual" else 1]
    # Its cue right on (nearly) every test video: it learned. The class within the cue is a guess, which on 24 test
    # videos scatters by +-0.1 around the ceiling (an audio-only model that reads every band has scored 0.08-0.42);
    # two standard deviations above the ceiling would mean the other modality's cue leaks into this one.
    assert confusion[own_cue[:, None] == own_cue[None, :]].sum() >= 0.9 * confusion.sum(), confusion
    assert metrics["test_accuracy"] <= ceiling + 0.2, metrics


def _prepared_copy_with_unreadable_videos(source: Path, target: Path, count: int) -> Path:
    """A copy of a prepared dataset folder in which `count` videos are overwritten with garbage."""
    shutil.copytree(source, target)
    for video in sorted((target / "videos").rglob("*.mp4"))[::8][:count]:
        video.write_bytes(b"not a video any more")
    return target


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(demo, tmp_path, caplog):
    """Same global batch (2 x 4 vs 1 x 8, 2 accumulation steps), with unreadable videos making the
    per-process micro-batches uneven: the per-sample loss normalisation makes the updates identical.
    (Visual-only and without dropout: the audio branch's batch norm sees per-process batches by design.)"""
    output_dir, _ = demo
    dataset = _prepared_copy_with_unreadable_videos(
        output_dir / "_synthetic" / "dataset", tmp_path / "data", 15
    )
    common = {
        "max_steps": 2,
        "warmup_steps": 0,
        "gradient_accumulation_steps": 2,
        "dataloader_num_workers": 0,
        "max_unreadable_fraction": 0.5,  # 15 of 120 unreadable on purpose: above the 10 % default
    }
    overrides = ["--config_overrides", "modality=visual,lgf_dropout=0.0,drop_path_rate=0.0"]
    load_train_script().main(
        small_run_arguments(dataset, tmp_path / "single", per_device_train_batch_size=8, **common) + overrides
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    ddp = run_script(
        small_run_arguments(dataset, tmp_path / "ddp", per_device_train_batch_size=4, **common) + overrides,
        cwd=tmp_path,
        launcher=[*launcher, "--master_port", str(free_port())],
        threads=1,
    )
    assert "skipped an unreadable video" in caplog.text and "skipped an unreadable video" in ddp.stderr
    one, two = (load_file(tmp_path / name / "model.safetensors") for name in ("single", "ddp"))
    assert one.keys() == two.keys()
    for name in one:
        assert (one[name] - two[name]).abs().max().item() < 2e-5, name
    assert final_test_metrics(tmp_path / "single") == final_test_metrics(tmp_path / "ddp")


def tiny_synthetic_run_arguments(output_dir: Path) -> list[str]:
    """The embedded default (synthetic set built under output_dir) cut to the least that trains: 18 videos,
    one step, no evaluation or checkpoint during training. Without --use_cpu: the launch decides."""
    settings = {"synthetic_videos_per_class": 3, "max_steps": 1, "eval_strategy": "no", "save_strategy": "no",
                "dataloader_num_workers": 0, "report_to": "none", "disable_tqdm": "true"}
    return ["--output_dir", str(output_dir), *(f"--{key}={value}" for key, value in settings.items())]


ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision",
              "no", "--dynamo_backend", "no"]
needs_cpu_only = pytest.mark.skipif(has_ddp_accelerator(), reason="what a machine without a GPU does")


@needs_cpu_only
def test_accelerate_launch_of_two_processes_on_the_cpu_is_one_ddp_group_that_builds_the_data_once(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` without a GPU and without --use_cpu once gave two
    independent runs racing to write the same synthetic set; now one DDP group over gloo, one build."""
    output_dir = tmp_path / "run"
    launcher = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    result = run_script(tiny_synthetic_run_arguments(output_dir), cwd=tmp_path, launcher=launcher, threads=1)
    assert "distributed: world size 2, backend gloo" in result.stdout, result.stdout[-3000:]
    assert (result.stdout + result.stderr).count("synthetic set: built") == 1, result.stdout[-3000:]
    assert (output_dir / "_synthetic" / BUILD_MARKER).is_file()
    assert (output_dir / "model.safetensors").is_file()


@needs_cpu_only
def test_accelerate_launch_that_would_start_one_of_two_processes_stops_with_the_command_to_use(tmp_path):
    """Without --multi_gpu on a machine without a GPU, accelerate starts one process where two were asked for."""
    output_dir = tmp_path / "run"
    command = [*ACCELERATE, "--num_processes", "2", "--main_process_port", str(free_port()), str(TRAIN_SCRIPT),
               *tiny_synthetic_run_arguments(output_dir)]
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "train.py: error: accelerate launch started a single process" in result.stderr, result.stderr[-3000:]
    assert "accelerate launch --multi_gpu --num_processes N" in result.stderr
    assert not (output_dir / "_synthetic").exists()  # stopped before any work


def test_resume_after_sigkill_finishes_like_an_uninterrupted_run(demo, tmp_path):
    output_dir, _ = demo
    dataset = output_dir / "_synthetic" / "dataset"
    # 32 videos in batches of 8: 4 optimiser steps per epoch, a checkpoint after each epoch.
    settings = {
        "num_train_epochs": 3,
        "save_strategy": "epoch",
        "dataloader_num_workers": 1,
        "max_train_samples": 32,
        "max_eval_samples": 12,
    }
    run_script(small_run_arguments(dataset, tmp_path / "straight", **settings), cwd=tmp_path)

    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *small_run_arguments(dataset, interrupted, **settings)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_state = interrupted / "checkpoint-4" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not first_state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_state.exists() and not (interrupted / "model.safetensors").exists(), "killed too late"

    run_script(
        small_run_arguments(dataset, interrupted, **settings) + ["--resume_from_checkpoint", "true"],
        cwd=tmp_path,
    )
    assert final_test_metrics(interrupted) == final_test_metrics(tmp_path / "straight")
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(interrupted / "model.safetensors")
    for name in straight:
        assert (straight[name] - resumed[name]).abs().max().item() < 1e-5, name


def test_evaluate_script_prints_the_table_and_writes_the_files(demo, tmp_path):
    output_dir, metrics = demo
    script = TRAIN_SCRIPT.parent / "evaluate_model.py"
    command = [
        sys.executable,
        str(script),
        "--model",
        str(output_dir),
        "--dataset",
        str(output_dir / "_synthetic" / "dataset"),
        "--output_dir",
        str(tmp_path),
        "--num_workers",
        "0",
        "--compare_with",
        "balanced",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    result = subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    header, ours, paper = result.stdout.strip().splitlines()[-4:-1]
    assert header.split() == ["Method", "EX", "FR", "NU", "RE", "SD", "TN", "ACC", "WA-F1"]
    assert ours.split()[-2] == f"{100 * metrics['test_accuracy']:.2f}"
    assert paper.split()[-2:] == ["64.40", "64.32"]
    saved = json.loads((tmp_path / "evaluation" / "all-test_metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert (tmp_path / "evaluation" / "all-test_confusion_matrix.png").stat().st_size > 0


def test_help_lists_every_argument():
    """`train.py --help` once listed only the 8 data arguments (a first parse of those alone answered it)."""
    result = subprocess.run([sys.executable, str(TRAIN_SCRIPT), "--help"], check=True, capture_output=True,
                            text=True, timeout=120)
    for option in ("--dataset", "--config_name", "--video_backbone", "--learning_rate", "--max_unreadable_fraction",
                   "--skip_bad_videos", "--push_to_hub"):
        assert option in result.stdout, option
