"""Multi-process training on a machine without a GPU: real DDP over gloo or a clear error, and DDP without
unused-parameter detection (the default) for every AV-CANet configuration."""

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emotions_hf.training import AVCANetTrainingArguments
from emotions_hf.training.arguments import (
    WORLD_SIZE_VARIABLES,
    DistributedLaunchError,
    check_launch,
    cpu_ddp_needed,
    has_ddp_accelerator,
    launched_world_size,
)

LAUNCH_VARIABLES = (*WORLD_SIZE_VARIABLES, "LOCAL_RANK", "RANK", "ACCELERATE_USE_CPU", "MASTER_ADDR", "MASTER_PORT")
no_gpu = pytest.mark.skipif(has_ddp_accelerator(), reason="what a machine without a GPU does")


@pytest.fixture
def launch_env(monkeypatch):
    """A clean launch environment; returns a setter for the variables a launcher would add."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_variables(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


def test_plain_run_is_one_process_and_skips_the_unused_parameter_search(launch_env, tmp_path):
    check_launch()
    assert launched_world_size() == 1 and not cpu_ddp_needed()
    args = AVCANetTrainingArguments(output_dir=str(tmp_path))
    assert args.world_size == 1 and not args.use_cpu
    assert args.ddp_find_unused_parameters is False


@no_gpu
@pytest.mark.parametrize("variable", ["WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_launched_processes_without_a_gpu_need_cpu_ddp(launch_env, variable):
    """torchrun / accelerate --multi_gpu / mpirun set these; without use_cpu transformers would make each
    process a run of its own (world size 1) on a machine without a GPU. (The arguments themselves would
    start the process group here: examples/train.py's launch test covers them.)"""
    launch_env(**{variable: "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    assert launched_world_size() == 2 and cpu_ddp_needed()
    check_launch()


@no_gpu
def test_accelerate_starting_one_of_several_processes_is_an_error(launch_env, tmp_path):
    """`accelerate launch --num_processes 2` without --multi_gpu: one process, ACCELERATE_USE_CPU and a
    MASTER_ADDR, no WORLD_SIZE."""
    launch_env(ACCELERATE_USE_CPU="False", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    with pytest.raises(DistributedLaunchError, match="accelerate launch --multi_gpu --num_processes N") as error:
        AVCANetTrainingArguments(output_dir=str(tmp_path))
    assert "torchrun --nproc_per_node N" in str(error.value)


def test_accelerate_with_one_process_is_fine(launch_env, tmp_path):
    launch_env(ACCELERATE_USE_CPU="True")  # `accelerate launch --cpu`: no MASTER_ADDR for a single process
    assert AVCANetTrainingArguments(output_dir=str(tmp_path)).world_size == 1


DDP_ABLATIONS = textwrap.dedent(
    """
    import datetime, itertools, os, sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    sys.path.insert(0, sys.argv[1])
    from test_modeling_avcanet import make_inputs, model_for, tiny_config
    from emotions_hf.configuration_avcanet import FUSIONS, LINEAR_FUSIONS
    from emotions_hf.training import AVCANetTrainingArguments

    def configurations():
        for fusion, lisf, glcf in itertools.product(FUSIONS, (True, False), (True, False)):
            for multitask in ((True, False) if fusion in LINEAR_FUSIONS else (False,)):
                yield dict(modality="audio-visual", fusion=fusion, use_lisf=lisf, use_glcf=glcf,
                           use_multitask_loss=multitask)
        for modality, lisf in itertools.product(("visual", "audio"), (True, False)):
            yield dict(modality=modality, use_lisf=lisf)

    def run(rank):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
        find_unused = AVCANetTrainingArguments(output_dir="unused").ddp_find_unused_parameters
        for settings in configurations():
            config = tiny_config(**settings)
            model = DistributedDataParallel(model_for(config).train(), find_unused_parameters=find_unused)
            # rank 0 without sound while rank 1 has it, then no sound anywhere, then a mixed batch; a parameter
            # left out of a backward fails the next step's forward
            for step, mask in enumerate([[rank == 1] * 2, [False, False], [True, False]]):
                try:
                    model(**make_inputs(config, batch=2, seed=step, audio_mask=mask)).loss.backward()
                except Exception as error:
                    print(f"FAILED {settings} step {step}: {error}", flush=True)
                    os._exit(1)
        print(f"rank {rank}: every configuration trained", flush=True)
        dist.destroy_process_group()
        os._exit(0)  # the test has passed; skip the interpreter teardown, which can hang after gloo

    if __name__ == "__main__":
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
        torch.multiprocessing.spawn(run, nprocs=2)
    """
)


def test_every_configuration_trains_under_ddp_without_unused_parameter_detection(tmp_path):
    """The default ddp_find_unused_parameters=False holds for every ablation of Tables 7-8 (modality, LISF,
    GLCF, fusion, multi-task loss), with batches in which no video has sound."""
    script = tmp_path / "ddp_ablations.py"
    script.write_text(DDP_ABLATIONS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, str(script), str(Path(__file__).parent), str(port)],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "rank 0: every configuration trained" in result.stdout
