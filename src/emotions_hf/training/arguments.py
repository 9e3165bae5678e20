"""`AVCANetTrainingArguments`: `TrainingArguments` with the paper's recipe as defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .unreadable import UNREADABLE_CHECK_AFTER


@dataclass
class AVCANetTrainingArguments(TrainingArguments):
    """`TrainingArguments` whose defaults are the authors' recipe plus what video training needs.

    AdamW (lr 1.5e-4, betas (0.9, 0.999), weight decay 0.02), batch 8 with an optimiser step every 4 batches
    (the "deferred update", effective batch 32), 30 epochs, seed 1, linear warm-up over the first 10 % of the
    steps then cosine decay to 0 (a working version of the authors' schedule, whose bug pins the lr at its
    minimum). The paper has no validation split: evaluation runs on the test split each epoch.
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
        default="cosine", metadata={"help": "Scheduler after the warm-up (paper: cosine)."}
    )
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Linear warm-up: steps (>= 1) or a fraction of all steps (< 1)."}
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

    def __post_init__(self):
        if not 0.0 <= self.max_unreadable_fraction <= 1.0:
            raise ValueError(f"max_unreadable_fraction={self.max_unreadable_fraction} must be in [0, 1]")
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            # Nothing to pin for on a CPU-only machine (and the DataLoader would warn every epoch).
            self.dataloader_pin_memory = False
        super().__post_init__()
