"""Evaluate an AV-CANet checkpoint on a split of a prepared dataset, printed like the paper's Table 4.

    python examples/evaluate_model.py --model outputs/avcanet-synthetic \\
        --dataset outputs/avcanet-synthetic/_synthetic/dataset
    python examples/evaluate_model.py --model me/avcanet-emotions --dataset data/emotions --variant balanced

Prints per-class accuracy, ACC and WA-F1 (next to the paper's AV-CANet row for eMotions' variants and the
public sets) and writes `<variant>-<split>_metrics.json` and `<variant>-<split>_confusion_matrix.png`. For a model
trained by examples/train.py it also prints the run's last-epoch and best-epoch rows (from
`evaluation/training_summary.json`, beside the model or in the run folder above a `checkpoint-N`), each labelled,
with the learning-rate schedule that produced them: the paper reports the best epoch, chosen on the test split.
Runs on GPU when there is one; `torchrun`/`accelerate launch` split the videos over processes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from emotions_hf.data.loading import load_prepared
from emotions_hf.labels import EMOTIONS
from emotions_hf.metrics import format_paper_table
from emotions_hf.model_card import BALANCED_ROW_NOTE, PAPER_RESULTS, paper_metrics
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.training import AVCANetTrainer, AVCANetTrainingArguments, shutdown_distributed
from emotions_hf.utils.cpu_memory import keep_freed_memory


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Checkpoint to evaluate: a folder written by training or a Hub id."})
    dataset: str = field(
        metadata={"help": "A folder written by `emotions-hf prepare` (or a Hub dataset id)."}
    )
    variant: str = field(
        default="all", metadata={"help": "Dataset config: all, balanced or test (eMotions)."}
    )
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    output_dir: str | None = field(
        default=None,
        metadata={"help": "Where the JSON and PNG go (default: <model folder>/evaluation, or ./evaluation)."},
    )
    batch_size: int = field(default=8, metadata={"help": "Videos per device per batch."})
    num_workers: int = field(default=4, metadata={"help": "DataLoader processes decoding videos."})
    compare_with: str | None = field(
        default="auto",
        metadata={
            "help": f"Paper row to print below ours: one of {sorted(PAPER_RESULTS)}, 'auto' (the variant, "
            "for the eMotions labels) or 'none'."
        },
    )


def paper_row(arguments: EvaluateArguments, label_names: list[str]) -> str | None:
    if arguments.compare_with in (None, "none"):
        return None
    if arguments.compare_with != "auto":
        return arguments.compare_with
    is_emotions = tuple(label_names) == EMOTIONS.labels
    return arguments.variant if is_emotions and arguments.variant in PAPER_RESULTS else None


def training_summary(model: str) -> dict | None:
    """The `training_summary.json` examples/train.py wrote for this model (its folder, or the run folder
    holding this `checkpoint-N`), or None."""
    folder = Path(model)
    for candidate in (folder, folder.parent):
        path = candidate / "evaluation" / "training_summary.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


def training_rows(summary: dict) -> dict:
    """The recorded last- and best-epoch rows of a training summary, labelled."""
    rows = {}
    if summary.get("last"):
        rows[f"training run: last epoch ({summary['last']['split']})"] = summary["last"]["metrics"]
    best = summary.get("best")
    if best:
        epoch = best.get("epoch")
        when = f"epoch {epoch:g}" if isinstance(epoch, (int, float)) else f"step {best.get('step')}"
        rows[f"training run: best epoch ({when}, by {best.get('metric', 'accuracy')})"] = best["metrics"]
    return rows


def main(argv: list[str] | None = None) -> dict:
    (arguments,) = HfArgumentParser(EvaluateArguments).parse_args_into_dataclasses(
        sys.argv[1:] if argv is None else argv
    )
    output_dir = arguments.output_dir or (arguments.model if Path(arguments.model).is_dir() else ".")
    model = AVCANetForVideoClassification.from_pretrained(arguments.model)
    processor = AVCANetProcessor.from_pretrained(arguments.model)
    split = load_prepared(arguments.dataset, arguments.variant, decode_video=False)[arguments.split]  # read by path
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if list(split.features["label"].names) != label_names:
        raise ValueError(
            f"{arguments.dataset}: labels {split.features['label'].names} differ from the model's "
            f"{label_names}"
        )
    args = AVCANetTrainingArguments(
        output_dir=output_dir,
        per_device_eval_batch_size=arguments.batch_size,
        dataloader_num_workers=arguments.num_workers,
        report_to=[],
        eval_strategy="no",
        save_strategy="no",
        disable_tqdm=False,
    )
    trainer = AVCANetTrainer(model=model, args=args, processing_class=processor)
    name = f"{arguments.variant}-{arguments.split}"
    trainer.evaluate(split, metric_key_prefix=name)
    metrics = trainer.last_evaluation["metrics"]
    if trainer.is_world_process_zero():
        summary = training_summary(arguments.model)
        if summary is not None and training_rows(summary):
            # first, so that the table of these weights beside the paper stays the last thing printed
            print(f"\nThe training run, as recorded (lr schedule: {summary['schedule']}):")
            print(format_paper_table(training_rows(summary)))
            print("The best epoch is chosen on the split it is measured on, as the authors do: an optimistic number"
                  + (f"; its weights: {summary['best']['checkpoint']}" if (summary.get("best") or {}).get(
                      "checkpoint") else "") + ".")
        rows = {f"{Path(arguments.model).name} ({name})": metrics}
        compare = paper_row(arguments, label_names)
        if compare is not None:
            rows[f"AV-CANet, paper ({PAPER_RESULTS[compare]['name']})"] = paper_metrics(compare, label_names)
        if compare == "balanced":
            print(BALANCED_ROW_NOTE)
        final_save = (Path(arguments.model) / "evaluation" / "training_summary.json").is_file()
        which = " (the final save: the last epoch of the run above)" if final_save else ""
        print(f"\nThese weights{which}: {metrics['num_samples']} videos; UAR {100 * metrics['uar']:.2f}")
        print(format_paper_table(rows))
        print(f"JSON and confusion matrix: {Path(output_dir).resolve() / 'evaluation' / name}_*")
    return metrics


if __name__ == "__main__":
    keep_freed_memory()
    try:
        main()
    finally:
        shutdown_distributed()
