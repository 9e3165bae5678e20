"""`AVCANetTrainer`: the `Trainer` for AV-CANet on datasets of videos.

It logs the fused / visual / audio losses, weighs every video the same across gradient accumulation and
processes, writes the paper's metrics (JSON + confusion matrix PNG) at each evaluation, resumes from the last
*complete* checkpoint, and keeps a model card and the remote code in the Hub folder. It builds the authors'
intended lr schedule for `lr_scheduler_type="paper"`, and reports the last and the best epoch (`training_summary`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import Trainer, TrainerCallback
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import logging

from ..metrics import compute_emotion_metrics, scalar_metrics, write_evaluation
from ..model_card import write_model_card
from ..modeling_avcanet import AVCANetVideoClassifierOutput, zero_loss_touching
from ..pipeline_video_emotion import save_pipeline_code
from .arguments import AVCANetTrainingArguments
from .checkpoints import checkpoint_is_complete, ensure_writable, last_complete_checkpoint
from .data import SKIPPED_KEY, AVCANetDataCollator, VideoClipDataset, normalize_on_device
from .schedule import PAPER_SCHEDULE, get_paper_schedule
from .unreadable import UnreadableTally

logger = logging.get_logger(__name__)

LOSS_TERMS = ("fused_loss", "visual_loss", "audio_loss")
IGNORED_LABEL = -100  # the label of an unreadable video's placeholder row in evaluation


def scale_learning_rate(optimizer: torch.optim.Optimizer, parameters, scale: float) -> int:
    """Move `parameters` into groups of their own, each a copy of its former group's settings with `scale` times
    its learning rate (before any step: a schedule then scales every group alike). Returns how many moved."""
    chosen = {id(p) for p in parameters}
    count = 0
    for group in list(optimizer.param_groups):
        moved = [p for p in group["params"] if id(p) in chosen]
        if not moved:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in chosen]
        optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": moved,
                                   "lr": group["lr"] * scale})
        count += len(moved)
    optimizer.param_groups[:] = [group for group in optimizer.param_groups if group["params"]]
    return count


def apply_fusion_learning_rate_scales(optimizer: torch.optim.Optimizer, model, scales: dict[str, float]) -> None:
    """`fusion_learning_rate_scales` on a freshly built optimiser of `model`: each scaled stream of its fusion layers
    (`fusion_parameter_groups`) gets parameter groups of their own at its fraction of the learning rate."""
    groups = model.fusion_parameter_groups() if any(scale != 1.0 for scale in scales.values()) else {}
    for stream, scale in scales.items():
        trainable = [p for p in groups.get(stream, ()) if p.requires_grad]
        if scale != 1.0 and trainable and scale_learning_rate(optimizer, trainable, scale) != len(trainable):
            # e.g. a wrapper that flattens the parameters (FSDP) before the optimiser is built
            raise ValueError(f"fusion_learning_rate_scales: the optimiser does not hold the model's {stream} fusion "
                             "parameters as they are; train without the scales here")


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
        epoch = math.floor(round(state.epoch or 0.0, 6))
        self.trainer._train_tally = UnreadableTally(f"training epoch {epoch}")

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._train_tally.check(self.trainer._max_unreadable_fraction, final=True)


def _as_os_error(error: Exception, folder) -> Exception:
    """The `OSError` behind a safetensors write error ("... (os error 28)"), or the error itself."""
    found = re.search(r"os error (\d+)", str(error))
    if found is None:
        return error
    code = int(found.group(1))
    return OSError(code, f"cannot write the weights into {folder} ({os.strerror(code)})")


def _metrics_from_log(entry: dict, prefix: str, label_names: list[str]) -> dict:
    """The Table 4 metrics of one logged evaluation (`scalar_metrics` with `prefix_`), in the layout of
    `compute_emotion_metrics` (classes without a test video: None)."""
    return {
        "accuracy": entry[f"{prefix}_accuracy"],
        "wa_f1": entry.get(f"{prefix}_wa_f1"),
        "uar": entry.get(f"{prefix}_uar"),
        "per_class_accuracy": {name: entry.get(f"{prefix}_accuracy_{name}") for name in label_names},
    }


def per_sample_loss(outputs, labels, num_items_in_batch=None):
    """`AVCANetTrainer`'s `compute_loss_func`: the model's micro-batch mean loss, weighted by the
    micro-batch's share of the `num_items_in_batch` videos of the whole optimiser step, so every video
    weighs the same.

    `compute_loss_func` is the Trainer's documented hook for a loss normalised over the optimiser step: given
    one, it counts the labels of all accumulation steps and processes and no longer divides each micro-batch's
    mean loss by the accumulation steps, which weighs videos unequally as soon as micro-batches differ in size
    (a dropped bad video, a short last batch).
    """
    if num_items_in_batch is None:
        return outputs.loss
    return outputs.loss * (labels.shape[0] / num_items_in_batch)


def _with_placeholder_rows(logits, count: int):
    """`count` zero rows appended to the per-video outputs: the fused logits, or each per-video tensor of the tuple
    a caller keeps with `ignore_keys` (e.g. the visual and audio logit terms); per-batch scalars stay as they are."""
    if isinstance(logits, tuple):
        return tuple(_with_placeholder_rows(t, count) if t.dim() else t for t in logits)
    return torch.cat([logits, logits.new_zeros(count, *logits.shape[1:])])


class AVCANetTrainer(Trainer):
    """`Trainer` for `AVCANetForVideoClassification` on datasets of videos (see the module docstring).

    Args beyond `Trainer`'s: `processing_class` is the `AVCANetProcessor` (required unless a `data_collator`
    is given); `compute_loss_func` (default `per_sample_loss`) gets the model's outputs with their loss
    already computed from the labels; `model_card_kwargs` (dataset, dataset_config, compare_with,
    base_models, model_name) describe the run in the model card. Datasets may be plain `datasets.Dataset`s:
    they are wrapped in `VideoClipDataset` here.
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
        compute_loss_func=None,
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
        if processing_class is not None and model is not None and hasattr(processing_class, "check_model_config"):
            processing_class.check_model_config(model.config)  # before any video is read
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
            compute_loss_func=compute_loss_func or per_sample_loss,
            **kwargs,
        )
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
        video_processor = getattr(processing_class, "video_processor", None)
        # A processor with output_dtype="uint8" sends a quarter of the bytes through the DataLoader; the frames are
        # normalised here, on the device, by the very operations the host would have run.
        self._pixel_normalizer = (video_processor.device_normalizer().to(self.args.device)
                                  if getattr(video_processor, "output_dtype", "float32") == "uint8" else None)

    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        return inputs if self._pixel_normalizer is None else normalize_on_device(inputs, self._pixel_normalizer)

    @staticmethod
    def _as_eval_dataset(dataset):
        if dataset is None or isinstance(dataset, VideoClipDataset):
            return dataset
        if isinstance(dataset, dict):
            return {name: AVCANetTrainer._as_eval_dataset(part) for name, part in dataset.items()}
        return VideoClipDataset(dataset, training=False)

    # ---- loss ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss (it gets the labels), normalised by `compute_loss_func` over the whole optimiser
        step; a micro-batch with no readable video gets a zero loss instead."""
        labels = inputs["labels"]
        if labels.numel() == 0:
            # Every video of this micro-batch was unreadable: a zero loss that still touches every parameter,
            # so DDP's gradient all-reduce sees the same parameters on every process, and no logits.
            loss = zero_loss_touching(p for p in model.parameters() if p.requires_grad)
            num_labels = self.accelerator.unwrap_model(model).config.num_labels
            outputs = AVCANetVideoClassifierOutput(loss=loss, logits=loss.new_zeros(0, num_labels))
            return (loss, outputs) if return_outputs else loss
        outputs = model(**inputs)
        loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # num_items_in_batch counts every process's samples and DDP averages the gradients: undo the
            # average, as `Trainer.compute_loss` does.
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
            logits = _with_placeholder_rows(logits, len(skipped))
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
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )
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
        """`compute_metrics`: the paper's metrics, written as JSON + PNG into `<output_dir>/evaluation`."""
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

    # ---- optimiser and learning-rate schedule ----

    def create_optimizer(self, model=None):
        """`Trainer.create_optimizer` (its documented extension point), plus `fusion_learning_rate_scales`
        (`apply_fusion_learning_rate_scales`)."""
        if self.optimizer is not None:
            return self.optimizer
        optimizer = super().create_optimizer(model)
        apply_fusion_learning_rate_scales(optimizer, self.model,
                                          getattr(self.args, "fusion_learning_rate_scales", None) or {})
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """`Trainer.create_scheduler` (its documented extension point), plus `lr_scheduler_type="paper"`: the
        authors' intended schedule (`training/schedule.py`) over the run's epochs, as a `LambdaLR`."""
        if self.lr_scheduler is not None or getattr(self.args.lr_scheduler_type, "value",
                                                    self.args.lr_scheduler_type) != PAPER_SCHEDULE:
            return super().create_scheduler(num_training_steps, optimizer)
        steps_per_epoch = self._optimizer_steps_per_epoch(num_training_steps)
        num_epochs = num_training_steps / steps_per_epoch
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        stepwise = bool(kwargs.pop("stepwise", False))
        self.lr_scheduler = get_paper_schedule(
            optimizer if optimizer is not None else self.optimizer, steps_per_epoch, num_epochs, stepwise, **kwargs
        )
        return self.lr_scheduler

    def _optimizer_steps_per_epoch(self, num_training_steps: int) -> float:
        """Optimiser steps in one epoch: from `num_train_epochs` for an epoch-based run, else from the training
        set's size (the Trainer's own arithmetic: batches per process, then per accumulation)."""
        args = self.args
        if args.max_steps <= 0:
            return num_training_steps / args.num_train_epochs
        try:
            examples = len(self.train_dataset)
        except TypeError:  # an iterable dataset: its epochs are unknown, so the run is taken as one epoch
            return float(num_training_steps)
        batches = math.ceil(examples / (args.per_device_train_batch_size * max(args.world_size, 1)))
        return float(max(math.ceil(batches / args.gradient_accumulation_steps), 1))

    # ---- reporting: last and best epoch ----

    def training_summary(self) -> dict:
        """The run's last and best evaluation, labelled, with the lr schedule that produced them.

        `last`: the latest evaluation (after `examples/train.py`'s final evaluation, the saved weights, i.e. the
        last epoch). `best`: the per-epoch evaluation with the highest `metric_for_best_model` (first on ties),
        read from the Trainer's evaluation history (`state.log_history`, kept across resumes), with its epoch,
        step and checkpoint. The authors report this one (they keep `best_model_of_epoch_*` by test accuracy);
        chosen on the test split, it is an optimistic number, so both are reported.
        """
        metric = self.args.metric_for_best_model or "accuracy"
        key = metric if metric.startswith("eval_") else f"eval_{metric}"
        history = [entry for entry in self.state.log_history if key in entry]
        best = None
        if history:
            greater = self.args.greater_is_better is not False
            chosen = history[0]
            for entry in history[1:]:
                if (entry[key] > chosen[key]) if greater else (entry[key] < chosen[key]):
                    chosen = entry
            best = {"epoch": chosen.get("epoch"), "step": chosen.get("step"), "metric": metric,
                    "metrics": _metrics_from_log(chosen, "eval", self.label_names_in_order()),
                    "checkpoint": self.state.best_model_checkpoint}
        last = None
        if self.last_evaluation is not None:
            last = {"epoch": self.state.epoch, "step": self.last_evaluation["step"],
                    "split": self.last_evaluation["split"], "metrics": self.last_evaluation["metrics"]}
        describe = getattr(self.args, "schedule_description", None)
        schedule = describe() if describe is not None else str(self.args.lr_scheduler_type)
        return {"schedule": schedule, "epochs_evaluated": len(history), "last": last, "best": best}

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
        save_pipeline_code(self.accelerator.unwrap_model(self.model), output_dir or self.args.output_dir)
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
        save_pipeline_code(model, output_dir)
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
            summary = self.training_summary()
            if summary["best"] is not None and summary["epochs_evaluated"] > 1:
                options["best"] = summary["best"]
        config = self.accelerator.unwrap_model(self.model).config
        write_model_card(self.args.output_dir, config, training_args=self.args, **options)
