"""Training AV-CANet with the `transformers.Trainer`: the paper's recipe, on-the-fly video loading, metrics.

- `AVCANetTrainingArguments`: `TrainingArguments` with the paper's defaults (SPEC §5) and a bad-video switch.
- `VideoClipDataset` + `AVCANetDataCollator`: rows of a prepared dataset go through the processor inside the
  DataLoader workers, each sample augmented with its own seed derived from (seed, epoch, index), so a run,
  a resumed run and a multi-process run see the same clips. Unreadable videos are dropped from their batch.
- `AVCANetTrainer`: logs the fused / visual / audio losses, scales the loss per sample across gradient
  accumulation and processes, writes the paper's metrics (JSON + confusion matrix PNG) at each evaluation,
  resumes from the last *complete* checkpoint, and keeps a model card and the remote code in the Hub folder.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.dynamic_module_utils import custom_object_save
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .data import processor_item
from .errors import VideoReadError
from .metrics import compute_emotion_metrics, scalar_metrics, write_evaluation
from .model_card import write_model_card
from .modeling_avcanet import AVCANetVideoClassifierOutput

logger = logging.get_logger(__name__)

LOSS_TERMS = ("fused_loss", "visual_loss", "audio_loss")
SKIPPED_KEY = "skipped_videos"
IGNORED_LABEL = -100  # the label of an unreadable video's placeholder row in evaluation
UNREADABLE_CHECK_AFTER = 100  # videos read before the running share of unreadable ones is judged
MISSING_FILE_REASON = "no such file"  # what `decoding.as_source` says of a path that does not exist

# An AV-CANet small enough to learn the synthetic set on a laptop CPU in about a minute (the embedded
# default of examples/train.py): 4 snippets of 2 frames at 32 px, a one-block-per-stage Video Swin and ResNet.
SMALL_CONFIG = {
    "num_snippets": 4,
    "frames_per_snippet": 2,
    "image_size": 32,
    "embed_dim": 24,
    "depths": (1, 1),
    "num_heads": (1, 2),
    "window_size": (1, 4, 4),
    "mfcc_chunk_frames": 16,
    "num_mfcc": 16,
    "audio_depths": (1, 1),
    "audio_hidden_sizes": (16, 32),
    "hidden_size": 32,
    "lgf_num_heads": 2,
    "lgf_window_sizes": (1, 2),
}
# The recipe that goes with it (overrides of AVCANetTrainingArguments' paper defaults).
SMALL_TRAINING = {
    "num_train_epochs": 8.0,
    "learning_rate": 3e-3,
    "gradient_accumulation_steps": 1,
    "dataloader_num_workers": 2,
    "logging_steps": 5,
}


@dataclass
class AVCANetTrainingArguments(TrainingArguments):
    """`TrainingArguments` whose defaults are the authors' recipe (SPEC §5) plus what video training needs.

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
            f"(after the first {UNREADABLE_CHECK_AFTER}, and over each whole epoch or evaluation) could not be read, or when "
            "the first batch has no readable video at all; 1 turns the check off."
        },
    )

    def __post_init__(self):
        if not 0.0 <= self.max_unreadable_fraction <= 1.0:
            raise ValueError(f"max_unreadable_fraction={self.max_unreadable_fraction} must be in [0, 1]")
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            # Nothing to pin for on a CPU-only machine (and the DataLoader would warn every epoch).
            self.dataloader_pin_memory = False
        super().__post_init__()


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit augmentation seed that depends only on the run seed, the epoch and the sample."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class VideoClipDataset(Dataset):
    """Rows of a (Hugging Face) dataset tagged with their index, the epoch, and whether they are for training.

    The tags let `AVCANetDataCollator` seed each sample's augmentation. `epoch` is set by the trainer at the
    start of every epoch, before the DataLoader workers are started (and copy the dataset).
    """

    def __init__(self, rows, training: bool):
        self.rows = rows
        self.training = training
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {"row": self.rows[index], "index": int(index), "epoch": self.epoch, "training": self.training}


class UnreadableVideosError(RuntimeError):
    """Too many videos of a run cannot be read: training or evaluating on the rest would mislead."""


@dataclass
class UnreadableTally:
    """Videos read and skipped in one phase (a training epoch, an evaluation), with the first skipped ones
    named, so that a run on a dataset whose files are gone stops at once and says why."""

    phase: str
    read: int = 0
    skipped: int = 0
    examples: list = field(default_factory=list)

    def add(self, read: int, skipped: list[str]) -> None:
        self.read += read
        self.skipped += len(skipped)
        self.examples += skipped[: max(0, 5 - len(self.examples))]

    @property
    def total(self) -> int:
        return self.read + self.skipped

    def check(self, max_fraction: float, final: bool = False) -> None:
        """Raise `UnreadableVideosError` when nothing was readable in the first batch, or the share of
        unreadable videos is above `max_fraction` (judged after `UNREADABLE_CHECK_AFTER` videos, or at the
        end of the phase). `max_fraction` 1 never raises."""
        if not self.skipped or max_fraction >= 1.0:
            return
        nothing_read = self.read == 0
        share = self.skipped / self.total
        if not (nothing_read or ((final or self.total >= UNREADABLE_CHECK_AFTER) and share > max_fraction)):
            return
        what = (f"none of the first {self.total} videos could be read" if nothing_read else
                f"{self.skipped} of {self.total} videos could not be read ({share:.0%}, more than "
                f"max_unreadable_fraction={max_fraction})")
        raise UnreadableVideosError(f"{self.phase}: {what}. First: " + "; ".join(self.examples) + ". "
                                    + _likely_cause(self.examples))


def _likely_cause(examples: list[str]) -> str:
    if any(MISSING_FILE_REASON in example for example in examples):
        return ("The files are missing: was the dataset folder moved, copied or deleted after it was loaded? "
                "`datasets` caches the rows of a local folder with the paths of the first place it was loaded "
                "from; load it with `emotions_hf.data.load_prepared(folder, config)`, or pass "
                "download_mode='force_redownload' to load_dataset.")
    return ("Check the files named above (emotions-hf prepare validates every video and lists the bad ones in "
            "preparation_report.json), or raise max_unreadable_fraction.")


def _describe(row: dict, error: VideoReadError) -> str:
    video_id = row.get("video_id")
    return f"{video_id} ({error})" if video_id is not None else str(error)


@dataclass
class AVCANetDataCollator:
    """Turn `VideoClipDataset` items into a model batch by calling the processor, one video at a time.

    One call per video gives every sample its own augmentation seed and confines a read failure to the
    video that caused it: with `skip_bad_videos` the sample is dropped from the batch and named under
    `skipped_videos` (the trainer counts and logs it), otherwise the `VideoReadError` propagates.
    """

    processor: object
    seed: int = 1
    skip_bad_videos: bool = True

    def __call__(self, examples: list[dict]) -> dict:
        features, labels, skipped = [], [], []
        for example in examples:
            row = example["row"]
            training = example["training"]
            seed = sample_seed(self.seed, example["epoch"], example["index"]) if training else None
            try:
                features.append(
                    self.processor(processor_item(row), training=training, seed=seed, return_tensors="pt")
                )
            except VideoReadError as error:
                if not self.skip_bad_videos:
                    raise
                skipped.append(_describe(row, error))
                continue
            labels.append(int(row["label"]))
        batch = {}
        if features:
            batch = {key: torch.cat([feature[key] for feature in features]) for key in features[0]}
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        batch[SKIPPED_KEY] = skipped
        return batch


class _EpochSeedCallback(TrainerCallback):
    """Tell the training dataset the epoch (for the augmentation seeds) before the epoch's workers start."""

    def __init__(self, dataset: VideoClipDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is fractional (e.g. 1.5 when resuming mid-epoch); round off float noise first.
        self.dataset.set_epoch(math.floor(round(state.epoch or 0.0, 6)))


class _UnreadableCheckCallback(TrainerCallback):
    """Judge the share of unreadable training videos over each whole epoch, then start counting afresh."""

    def __init__(self, trainer: AVCANetTrainer):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer._train_tally = UnreadableTally(f"training epoch {math.floor(round(state.epoch or 0.0, 6))}")

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._train_tally.check(self.trainer._max_unreadable_fraction, final=True)


def ensure_writable(folder: str | Path) -> None:
    """Create `folder` and write a file in it, so that an unwritable or full output folder stops a run
    before it starts rather than at its first checkpoint or evaluation (an `OSError` that says so)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise type(error)(error.errno, f"output_dir {folder} is not writable ({error.strerror}): free space, fix "
                          "its permissions or choose another --output_dir") from None


def _as_os_error(error: Exception, folder) -> Exception:
    """The `OSError` behind a safetensors write error ("... (os error 28)"), or the error itself."""
    found = re.search(r"os error (\d+)", str(error))
    if found is None:
        return error
    code = int(found.group(1))
    return OSError(code, f"cannot write the weights into {folder} ({os.strerror(code)})")


def shutdown_distributed() -> None:
    """End a `torchrun` / `accelerate launch` process cleanly: free the DDP wrapper (held in the Trainer's
    reference cycles) and the process group while the interpreter is whole. Left to the interpreter's
    exit, gloo's threads aborted about one run in five after all the work was done (exit -6)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.destroy_process_group()


def checkpoint_is_complete(folder: str | Path) -> bool:
    """True when a checkpoint was written to the end: the Trainer writes `trainer_state.json` last."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any(folder.glob("*.safetensors"))


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` folder that was fully written; a hard kill can leave a newer, partial one."""
    candidates = []
    for folder in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = folder.name.rpartition("-")[2]
        if folder.is_dir() and step.isdigit():
            candidates.append((int(step), folder))
    for _, folder in sorted(candidates, reverse=True):
        if checkpoint_is_complete(folder):
            return folder
        logger.warning(f"{folder}: incomplete checkpoint (interrupted while saving), skipped for resuming")
    return None


def labels_from_dataset(dataset) -> dict:
    """`id2label`, `label2id` and `label2polarity` for an `AVCANetConfig`, read off a prepared dataset
    split (its `label` and `polarity` ClassLabel columns): any label set with its own polarity map trains."""
    label_feature = dataset.features["label"]
    polarity_feature = dataset.features["polarity"]
    names = list(label_feature.names)
    label2polarity = {}
    columns = dataset.select_columns(["label", "polarity"])
    for label, polarity in zip(columns["label"], columns["polarity"]):
        label2polarity.setdefault(names[label], polarity_feature.names[polarity])
    missing = [name for name in names if name not in label2polarity]
    if missing:
        raise ValueError(f"the training split has no video of {missing}: their polarity is unknown")
    return {
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
        "label2polarity": label2polarity,
    }


class AVCANetTrainer(Trainer):
    """`Trainer` for `AVCANetForVideoClassification` on datasets of videos (see the module docstring).

    Args beyond `Trainer`'s: `processing_class` is the `AVCANetProcessor` (required unless a `data_collator`
    is given); `model_card_kwargs` (dataset, dataset_config, compare_with, base_models, model_name) describe
    the run in the model card. Datasets may be plain `datasets.Dataset`s: they are wrapped in
    `VideoClipDataset` here.
    """

    def __init__(
        self,
        model=None,
        args=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        data_collator=None,
        compute_metrics=None,
        model_card_kwargs: dict | None = None,
        **kwargs,
    ):
        args = args if args is not None else AVCANetTrainingArguments(output_dir="avcanet-output")
        if args.remove_unused_columns:
            raise ValueError(
                "AVCANetTrainer needs remove_unused_columns=False: the collator reads the `video` "
                "column, which the model's forward does not take"
            )
        if args.dataloader_persistent_workers:
            raise ValueError(
                "AVCANetTrainer needs dataloader_persistent_workers=False: persistent workers keep "
                "the epoch of their first copy of the dataset, and the augmentation seeds need the "
                "current one"
            )
        if args.should_save:  # before the Trainer creates it, with a message that says what to do
            ensure_writable(args.output_dir)
        if data_collator is None:
            if processing_class is None:
                raise ValueError(
                    "AVCANetTrainer needs the processor (processing_class=AVCANetProcessor) or a "
                    "data_collator to turn videos into tensors"
                )
            skip = getattr(args, "skip_bad_videos", True)
            seed = args.data_seed if args.data_seed is not None else args.seed
            data_collator = AVCANetDataCollator(processing_class, seed=seed, skip_bad_videos=skip)
        if train_dataset is not None and not isinstance(train_dataset, VideoClipDataset):
            train_dataset = VideoClipDataset(train_dataset, training=True)
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=self._as_eval_dataset(eval_dataset),
            processing_class=processing_class,
            data_collator=data_collator,
            compute_metrics=compute_metrics or self._emotion_metrics,
            **kwargs,
        )
        # The model's forward takes no loss kwargs (no `num_items_in_batch`), so the Trainer would fall back
        # to dividing each micro-batch's *mean* loss by the accumulation steps, and DDP would average
        # per-process means: wrong weights as soon as micro-batches differ in size (a dropped bad video, a
        # short last batch). Declaring loss kwargs makes the Trainer count the labels of the whole optimiser
        # step across all processes (`num_items_in_batch`); `compute_loss` below does the per-sample
        # normalisation itself and never passes that count to forward.
        self.model_accepts_loss_kwargs = True
        if isinstance(self.train_dataset, VideoClipDataset):
            self.add_callback(_EpochSeedCallback(self.train_dataset))
        self.model_card_kwargs = dict(model_card_kwargs or {})
        self.last_evaluation: dict | None = None
        self._metric_key_prefix = "eval"
        # Per loss term: (sum of term x batch size, number of samples) since the last training log.
        self._loss_sums = torch.zeros(2, len(LOSS_TERMS))
        self._skipped_count = 0
        self._train_tally = UnreadableTally("training")
        self._eval_tally = UnreadableTally("evaluation")
        self.add_callback(_UnreadableCheckCallback(self))

    @staticmethod
    def _as_eval_dataset(dataset):
        if dataset is None or isinstance(dataset, VideoClipDataset):
            return dataset
        if isinstance(dataset, dict):
            return {name: AVCANetTrainer._as_eval_dataset(part) for name, part in dataset.items()}
        return VideoClipDataset(dataset, training=False)

    # ---- loss ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss, renormalised from a micro-batch mean to this micro-batch's share of the whole
        optimiser step (all accumulation steps, all processes), so every video weighs the same."""
        labels = inputs["labels"]
        if labels.numel() == 0:
            # Every video of this micro-batch was unreadable: a zero loss that still touches every parameter,
            # so DDP's gradient all-reduce sees the same parameters on every process, and no logits.
            loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
            num_labels = self.accelerator.unwrap_model(model).config.num_labels
            outputs = AVCANetVideoClassifierOutput(loss=loss, logits=loss.new_zeros(0, num_labels))
            return (loss, outputs) if return_outputs else loss
        outputs = model(**inputs)
        loss = outputs.loss
        if num_items_in_batch is not None:
            loss = loss * (labels.shape[0] / num_items_in_batch)
            if self.args.average_tokens_across_devices:
                # num_items_in_batch counts every process's samples and DDP averages the gradients: undo
                # the average.
                loss = loss * self.accelerator.num_processes
        if model.training:
            self._record_loss_terms(outputs, labels.shape[0])
        return (loss, outputs) if return_outputs else loss

    def _record_loss_terms(self, outputs, batch_size: int) -> None:
        # Accumulated on the loss's device without `.item()`, so a GPU step never waits for a host sync.
        for column, name in enumerate(LOSS_TERMS):
            value = getattr(outputs, name, None)
            if value is not None:
                self._loss_sums = self._loss_sums.to(value.device)
                self._loss_sums[0, column] += value.detach().float() * batch_size
                self._loss_sums[1, column] += batch_size

    def training_step(self, model, inputs, num_items_in_batch=None):
        inputs, skipped = self._take_skipped(inputs)
        self._train_tally.add(len(inputs["labels"]), skipped)
        self._train_tally.check(self._max_unreadable_fraction)
        return super().training_step(model, inputs, num_items_in_batch)

    @property
    def _max_unreadable_fraction(self) -> float:
        return getattr(self.args, "max_unreadable_fraction", 1.0)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """`Trainer.prediction_step`, with one placeholder row (label -100, left out of the metrics) per
        skipped video: every process must hand the same number of rows to the gather of the predictions."""
        inputs, skipped = self._take_skipped(inputs)
        self._eval_tally.add(len(inputs["labels"]), skipped)
        self._eval_tally.check(self._max_unreadable_fraction)
        loss, logits, labels = super().prediction_step(
            model, inputs, prediction_loss_only, ignore_keys=ignore_keys
        )
        if skipped and logits is not None:
            logits = torch.cat([logits, logits.new_zeros(len(skipped), logits.shape[-1])])
            labels = torch.cat([labels, labels.new_full((len(skipped),), IGNORED_LABEL)])
        return loss, logits, labels

    def _take_skipped(self, inputs: dict) -> tuple[dict, list[str]]:
        """Remove, count and log the collator's list of skipped videos; return the inputs and that list."""
        inputs = dict(inputs)
        skipped = inputs.pop(SKIPPED_KEY, [])
        for description in skipped:
            logger.warning(f"skipped an unreadable video: {description}")
        self._skipped_count += len(skipped)
        return inputs, skipped

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean fused / visual / audio losses and the skipped-video count to each training log."""
        if "loss" in logs:  # a training log; every process gets here (the Trainer gathers the loss first)
            totals = torch.cat(
                [self._loss_sums.flatten().to(self.args.device),
                 torch.tensor([self._skipped_count], dtype=torch.float32, device=self.args.device)]
            )
            totals = self.accelerator.reduce(totals, reduction="sum").cpu()
            sums, counts = totals[:-1].view(2, len(LOSS_TERMS))
            for name, total, count in zip(LOSS_TERMS, sums.tolist(), counts.tolist()):
                if count:
                    logs[name] = round(total / count, 4)
            logs[SKIPPED_KEY] = int(totals[-1].item())
            self._loss_sums.zero_()
        super().log(logs, start_time)

    # ---- evaluation ----

    def _inference_ignore_keys(self, ignore_keys):
        """Keep only the fused logits from the outputs: the metrics need nothing else."""
        if ignore_keys is not None:
            return ignore_keys
        return ["visual_logits", "audio_logits", *LOSS_TERMS]

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """`Trainer.evaluation_loop`, refusing to report metrics when too many videos could not be read."""
        self._eval_tally = UnreadableTally(f"{metric_key_prefix} ({description})")
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        self._eval_tally.check(self._max_unreadable_fraction, final=True)
        return output

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        self._metric_key_prefix = metric_key_prefix
        return super().evaluate(
            self._as_eval_dataset(eval_dataset), self._inference_ignore_keys(ignore_keys), metric_key_prefix
        )

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix: str = "test"):
        self._metric_key_prefix = metric_key_prefix
        return super().predict(
            self._as_eval_dataset(test_dataset), self._inference_ignore_keys(ignore_keys), metric_key_prefix
        )

    def label_names_in_order(self) -> list[str]:
        config = self.accelerator.unwrap_model(self.model).config
        return [config.id2label[i] for i in range(config.num_labels)]

    def _emotion_metrics(self, eval_prediction) -> dict[str, float]:
        """`compute_metrics`: the paper's metrics, all written as JSON + PNG into `<output_dir>/evaluation`."""
        self._eval_tally.check(self._max_unreadable_fraction, final=True)  # before any metric is written
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        read = eval_prediction.label_ids != IGNORED_LABEL  # placeholders of unreadable videos
        metrics = compute_emotion_metrics(
            np.argmax(logits[read], axis=-1), eval_prediction.label_ids[read], self.label_names_in_order()
        )
        # Evaluations during training are named by step; a stand-alone one (nothing trained) by its prefix.
        step = self.state.global_step
        name = f"{self._metric_key_prefix}-step-{step}" if step else self._metric_key_prefix
        self.last_evaluation = {
            "split": self._metric_key_prefix,
            "step": self.state.global_step,
            "metrics": metrics,
        }
        if self.is_world_process_zero():
            write_evaluation(
                metrics,
                Path(self.args.output_dir) / "evaluation",
                name,
                title=f"{self._metric_key_prefix}, step {step}",
            )
            if self.args.push_to_hub:
                self.create_model_card()
        return scalar_metrics(metrics)

    # ---- training, saving, Hub ----

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """`Trainer.train`; `resume_from_checkpoint=True` takes the newest completely written checkpoint."""
        if resume_from_checkpoint is True:
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            if checkpoint is None:
                raise ValueError(f"no complete checkpoint to resume from in {self.args.output_dir}")
            resume_from_checkpoint = str(checkpoint)
        elif resume_from_checkpoint and not checkpoint_is_complete(resume_from_checkpoint):
            raise ValueError(
                f"{resume_from_checkpoint}: not a complete checkpoint (no readable trainer_state.json "
                "and weights); pass resume_from_checkpoint=True to take the newest complete one"
            )
        if self.args.push_to_hub and self.is_world_process_zero():
            self._stage_hub_folder()
        result = super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )
        if self._skipped_count:
            logger.warning(
                f"{self._skipped_count} unreadable video(s) were skipped on this process; see the "
                "warnings above for which"
            )
        return result

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """`Trainer._save`, with safetensors' I/O failures (a full disk) raised as the `OSError` they are."""
        try:
            super()._save(output_dir, state_dict)
        except SafetensorError as error:
            raise _as_os_error(error, output_dir or self.args.output_dir) from error

    def _stage_hub_folder(self) -> None:
        """Put the code, config (with auto_map), processor and model card in `output_dir` before training:
        the Trainer's checkpoint pushes upload that folder but only refresh its weights and config."""
        output_dir = Path(self.args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        custom_object_save(model, output_dir, config=model.config)
        model.config.save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        self.create_model_card()

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset: str | None = None,
        dataset_args: str | None = None,
        finetuned_from: str | None = None,
        tags: str | list[str] | None = None,
        **_unused,
    ) -> None:
        """Write the emotions-hf model card (README.md) into `output_dir`, with the latest evaluation.

        Replaces the Trainer's generic card; keeps its signature (so `push_to_hub(**kwargs)` works) and
        falls back to `model_card_kwargs` for what is not given.
        """
        if not self.is_world_process_zero():
            return
        options = dict(self.model_card_kwargs)
        for key, value in (
            ("model_name", model_name),
            ("dataset", dataset),
            ("dataset_config", dataset_args),
        ):
            if value is not None:
                options[key] = value
        if finetuned_from is not None:
            options["base_models"] = [finetuned_from]
        if tags is not None:
            options["tags"] = [tags] if isinstance(tags, str) else list(tags)
        if self.args.hub_model_id:
            options.setdefault("model_reference", self.args.hub_model_id)
        evaluation = self.last_evaluation
        if evaluation is not None:
            options["metrics"] = evaluation["metrics"]
            options["split"] = evaluation["split"]
        config = self.accelerator.unwrap_model(self.model).config
        write_model_card(self.args.output_dir, config, training_args=self.args, **options)


__all__ = [
    "SMALL_CONFIG",
    "SMALL_TRAINING",
    "AVCANetDataCollator",
    "AVCANetTrainer",
    "AVCANetTrainingArguments",
    "UnreadableTally",
    "UnreadableVideosError",
    "VideoClipDataset",
    "checkpoint_is_complete",
    "ensure_writable",
    "labels_from_dataset",
    "last_complete_checkpoint",
    "sample_seed",
    "shutdown_distributed",
]
