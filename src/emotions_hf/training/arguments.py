"""`AVCANetTrainingArguments`: `TrainingArguments` with the paper's recipe as defaults."""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.utils import logging

from .schedule import PAPER_SCHEDULE, PaperSchedule
from .unreadable import UNREADABLE_CHECK_AFTER

logger = logging.get_logger(__name__)

# Where launchers put the number of processes: torchrun and `accelerate launch --multi_gpu` (WORLD_SIZE), mpirun
# (the others); the names accelerate reads for CPU training.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
CPU_DDP_COMMANDS = (
    "`accelerate launch --multi_gpu --num_processes N examples/train.py ...` or "
    "`torchrun --nproc_per_node N examples/train.py ...`"
)


class DistributedLaunchError(RuntimeError):
    """The launched processes cannot form one DDP group as launched; the message says which command to use."""


def launched_world_size() -> int:
    """How many processes the launcher started (its environment variables); 1 for a plain `python` run."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def has_ddp_accelerator() -> bool:
    """Whether DDP can run on an accelerator here (CUDA, XPU, ...); without one, DDP has to run on the CPU.
    MPS counts as none: accelerate has no multi-process backend for it."""
    accelerator_api = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator_api is None:
        return torch.cuda.is_available()
    accelerator = accelerator_api.current_accelerator() if accelerator_api.is_available() else None
    return accelerator is not None and accelerator.type != "mps"


def cpu_ddp_needed() -> bool:
    """Whether the launched processes have to run DDP on the CPU: several of them and no GPU to run it on.

    Without `use_cpu` (the documented switch, which makes accelerate set up DDP over gloo), transformers and
    accelerate would look for a GPU backend, find none, and make each process a run of its own: N independent
    runs racing over one output folder.
    """
    return launched_world_size() > 1 and not has_ddp_accelerator()


def check_launch() -> None:
    """Stop `accelerate launch --num_processes N` (N > 1) without `--multi_gpu` on a machine without GPUs (or
    with `--cpu`): its simple launcher starts a single process, marked with ACCELERATE_USE_CPU and given the
    MASTER_ADDR meant for N, but no WORLD_SIZE (nor mpirun's variables); no setting here can undo that."""
    if (
        "ACCELERATE_USE_CPU" in os.environ
        and "MASTER_ADDR" in os.environ
        and launched_world_size() == 1
        and "LOCAL_RANK" not in os.environ
    ):
        raise DistributedLaunchError(
            "accelerate launch started a single process although several were asked for: without "
            "--multi_gpu (or with --cpu) on a machine without a GPU it runs just one. For N processes "
            f"training with DDP on the CPU use {CPU_DDP_COMMANDS}; for one process, "
            "`accelerate launch --num_processes 1` or plain `python` (with MASTER_ADDR unset)."
        )


FUSION_STREAMS = ("video", "audio", "shared")


def parse_fusion_scales(scales: dict | str | None) -> dict[str, float]:
    """`fusion_learning_rate_scales` from a dict, its JSON (the command line) or its Python text (argparse turns a
    dict default into `str(dict)`) -> {stream: scale > 0}."""
    if isinstance(scales, str):
        try:
            scales = json.loads(scales)
        except json.JSONDecodeError:
            try:
                scales = ast.literal_eval(scales)
            except (ValueError, SyntaxError):
                raise ValueError(f"fusion_learning_rate_scales={scales!r} is neither JSON nor a Python dict, e.g. "
                                 '\'{"video": 0.3, "shared": 0.3}\'') from None
    if not isinstance(scales, (dict, type(None))):
        raise TypeError(f"fusion_learning_rate_scales={scales!r} must be a dict of stream -> scale")
    scales = dict(scales or {})
    unknown = sorted(set(scales) - set(FUSION_STREAMS))
    if unknown or not all(isinstance(v, (int, float)) and v > 0 for v in scales.values()):
        raise ValueError(f"fusion_learning_rate_scales={scales!r}: keys among {FUSION_STREAMS}, each a fraction of "
                         "learning_rate > 0 (1 trains that stream at the full rate)")
    return {stream: float(scale) for stream, scale in scales.items()}


@dataclass
class AVCANetTrainingArguments(TrainingArguments):
    """`TrainingArguments` whose defaults are the authors' recipe plus what video training needs.

    AdamW (lr 1.5e-4, betas (0.9, 0.999), weight decay 0.02), batch 8 with an optimiser step every 4 batches
    (the "deferred update", effective batch 32), 30 epochs, seed 1, no gradient clipping (`max_grad_norm=0`: the
    authors' `train_epoch` calls `loss.backward()` then `optimizer.step()`, nothing between), and
    `lr_scheduler_type="paper"`: the schedule the authors' `get_lr_scheduler` defines (quadratic warm-up over 1.5
    epochs, cosine to 0.01·lr, flat for the last 1.5 epochs; `training/schedule.py`). Their loop passes it the
    number of epochs instead of the current epoch, which pins their lr at 0.01·lr = 1.5e-6 throughout; that run is
    `--lr_scheduler_type constant --learning_rate 1.5e-6`. Our earlier schedule is `--lr_scheduler_type cosine
    --warmup_steps 0.1` (linear warm-up over 10 % of the steps, cosine to 0); every transformers scheduler works.
    The paper has no validation split: evaluation runs on the test split each epoch, and the best epoch by test
    accuracy is tracked (`metric_for_best_model="accuracy"`, as the authors keep `best_model_of_epoch_*`; its
    checkpoint is never rotated away); the card and `examples/train.py` report it beside the last epoch.
    """

    learning_rate: float = field(
        default=1.5e-4, metadata={"help": "Peak AdamW learning rate (paper: 1.5e-4)."}
    )
    weight_decay: float = field(default=0.02, metadata={"help": "AdamW weight decay (paper: 0.02)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Videos per device per batch (paper: 8)."}
    )
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Videos per device per eval batch."})
    gradient_accumulation_steps: int = field(
        default=4, metadata={"help": "Batches per optimiser step (the paper's deferred update: 4)."}
    )
    num_train_epochs: float = field(default=30.0, metadata={"help": "Epochs (paper: 30)."})
    lr_scheduler_type: str = field(
        default=PAPER_SCHEDULE,
        metadata={
            "help": "'paper' (the authors' intended schedule: quadratic warm-up over 1.5 epochs, cosine to "
            "0.01·lr, flat for the last 1.5 epochs; shape overrides in --lr_scheduler_kwargs: warmup_epochs, "
            "flat_epochs, warmup_start_ratio, min_lr_ratio, stepwise) or any transformers scheduler (ours: "
            "cosine with --warmup_steps 0.1)."
        },
    )
    warmup_steps: float = field(
        default=0.1,
        metadata={
            "help": "Linear warm-up of the transformers schedulers: steps (>= 1) or a fraction of all steps (< 1); "
            "not used by 'paper', whose warm-up is in epochs."
        },
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Gradient clipping norm; 0 = none (the authors clip nothing)."}
    )
    fusion_learning_rate_scales: dict | str | None = field(
        default=None,
        metadata={
            "help": "Learning rates of the layers after the encoders, as fractions of --learning_rate, by stream "
            "(JSON): 'video' and 'audio' (each stream's own LGF layers: self-attention, gates, dilated blocks, "
            "level scores, GLCF projection) and 'shared' (cross-modal attention, level-weight attention, GLCF "
            "attention, the fusion head); a stream left out keeps 1. None (the paper's single rate) trains every "
            "layer alike. The small recipe's {\"video\": 0.3, \"shared\": 0.3} keeps the fusion from fitting "
            "each training video by its look before the video encoder learns a slow cue (issue 14)."
        },
    )
    metric_for_best_model: str | None = field(
        default="accuracy",
        metadata={
            "help": "Evaluation metric naming the best epoch (the authors keep the epoch with the best test "
            "accuracy); its checkpoint is kept. Reported beside the last epoch, never instead of it."
        },
    )
    seed: int = field(
        default=1, metadata={"help": "Seed of the run (paper: 1); also seeds the augmentations."}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate (default: every epoch)."})
    save_strategy: str = field(
        default="epoch", metadata={"help": "When to checkpoint (default: every epoch)."}
    )
    save_total_limit: int | None = field(default=3, metadata={"help": "Checkpoints kept on disk."})
    logging_steps: float = field(default=10, metadata={"help": "Optimiser steps between training logs."})
    dataloader_num_workers: int = field(
        default=4,
        metadata={"help": "Processes decoding videos; decoding is the bottleneck of video training."},
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "DDP's search for parameters without a gradient (an extra graph walk each step): off, since "
            "every AV-CANet configuration gives each parameter one in every step (zero for the audio branch "
            "of a batch without sound)."
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the collator needs the raw `video` column."}
    )
    hub_strategy: str = field(
        default="checkpoint",
        metadata={
            "help": "With --push_to_hub: push model, processor, code, card and the last checkpoint at each "
            "save."
        },
    )
    skip_bad_videos: bool = field(
        default=True,
        metadata={
            "help": "Drop an unreadable video from its batch (counted, logged) and go on; False: stop."
        },
    )
    max_unreadable_fraction: float = field(
        default=0.1,
        metadata={
            "help": "With skip_bad_videos: stop with an error once more than this share of the videos read "
            f"(after the first {UNREADABLE_CHECK_AFTER}, and over each whole epoch or evaluation) could not "
            "be read, or when the first batch has no readable video at all; 1 turns the check off."
        },
    )
    dataset_hub_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the training data (e.g. Conna/eMotions), written as the model card's "
            "`datasets:`; leave it out when the data is a local folder that is not a copy of a Hub dataset "
            "(the card then names the folder in its text, never a path in its metadata)."
        },
    )

    def __post_init__(self):
        self.fusion_learning_rate_scales = parse_fusion_scales(self.fusion_learning_rate_scales)
        if not 0.0 <= self.max_unreadable_fraction <= 1.0:
            raise ValueError(f"max_unreadable_fraction={self.max_unreadable_fraction} must be in [0, 1]")
        check_launch()
        # Before super().__post_init__(), which sets up the device and the process group.
        if cpu_ddp_needed() and not self.use_cpu:
            logger.info(f"no GPU: the {launched_world_size()} launched processes train with DDP on the CPU")
            self.use_cpu = True
        from ..model_card import check_dataset_hub_id  # checked now, not when the card is written at the end

        check_dataset_hub_id(self.dataset_hub_id)
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            # Nothing to pin for on a CPU-only machine (and the DataLoader would warn every epoch).
            self.dataloader_pin_memory = False
        paper_schedule = _name(self.lr_scheduler_type) == PAPER_SCHEDULE
        if paper_schedule:
            # transformers' own check only knows its SchedulerType names: it sees a stand-in, and the Trainer's
            # `create_scheduler` (AVCANetTrainer) builds the paper schedule.
            self.lr_scheduler_type = "constant"
        super().__post_init__()  # (also parses an --lr_scheduler_kwargs JSON string)
        if paper_schedule:
            self.lr_scheduler_type = PAPER_SCHEDULE
            self.paper_schedule()  # the shape overrides are checked now, not after the first epoch

    @property
    def uses_paper_schedule(self) -> bool:
        return _name(self.lr_scheduler_type) == PAPER_SCHEDULE

    def paper_schedule(self, num_epochs: float | None = None) -> PaperSchedule:
        """The shape of `lr_scheduler_type="paper"` over `num_epochs` (default `num_train_epochs`), with the
        `lr_scheduler_kwargs` overrides (all but `stepwise`)."""
        shape = {k: v for k, v in (self.lr_scheduler_kwargs or {}).items() if k != "stepwise"}
        try:
            return PaperSchedule(num_epochs=num_epochs or self.num_train_epochs, **shape)
        except TypeError as error:
            raise ValueError(f"lr_scheduler_kwargs for lr_scheduler_type='paper': {error}") from None

    def schedule_description(self) -> str:
        """One line saying which schedule this recipe trains with (for the card and the training summary)."""
        if self.uses_paper_schedule:
            stepwise = bool((self.lr_scheduler_kwargs or {}).get("stepwise"))
            return self.paper_schedule().describe() + (", held per epoch" if stepwise else ", per step")
        warmup = f"{self.warmup_steps:g} warm-up {'steps' if self.warmup_steps >= 1 else 'of the steps'}"
        return f"{_name(self.lr_scheduler_type)} with {warmup}"


def _name(option) -> str:
    """An enum option of TrainingArguments as the string a user passes."""
    return getattr(option, "value", option)
