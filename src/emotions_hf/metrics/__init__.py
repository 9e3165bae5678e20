"""Evaluation of emotion classifiers: the paper's metrics, their files, and Table 4's row layout.

The same metrics are a local `evaluate` module, `evaluate.load(EMOTION_METRICS_PATH)`. Training and the
examples call `compute_emotion_metrics` directly: it needs numpy only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .plotting import plot_confusion_matrix

EMOTION_METRICS_PATH = str(Path(__file__).resolve().parent / "emotion_metrics")

# Column headers of the paper's Table 4 for the eMotions classes.
PAPER_ABBREVIATIONS = {
    "Excitation": "EX",
    "Fear": "FR",
    "Neutral": "NU",
    "Relaxation": "RE",
    "Sadness": "SD",
    "Tension": "TN",
}


def confusion_matrix(predictions: np.ndarray, references: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts (num_labels, num_labels): row = true class, column = predicted class."""
    flat = references * num_labels + predictions
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def summarize_confusion(matrix: np.ndarray, label_names: list[str]) -> dict:
    """All metrics of the paper from one confusion matrix (what `compute` returns)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    correct = np.diag(matrix)
    total = int(support.sum())
    present = support > 0
    recall = np.divide(correct, support, out=np.zeros(len(support)), where=present)
    precision = np.divide(correct, predicted, out=np.zeros(len(support)), where=predicted > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(len(support)), where=denominator > 0)
    return {
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "wa_f1": float((f1 * support).sum() / total) if total else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "per_class_accuracy": {
            name: (float(recall[i]) if present[i] else None) for i, name in enumerate(label_names)
        },
        "support": {name: int(support[i]) for i, name in enumerate(label_names)},
        "confusion_matrix": matrix.tolist(),
        "num_samples": total,
    }


def compute_emotion_metrics(predictions, references, label_names=None, num_labels: int | None = None) -> dict:
    """Accuracy (WAR), WA-F1, UAR, per-class accuracy, support and confusion matrix.

    `label_names` (class names in id order) key the per-class results and fix the number of classes, so a
    class absent from a split still gets a row; without them `num_labels` (default: largest id + 1) does.
    Per-class accuracy is None for a class with no true sample, and UAR averages the classes present.
    """
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    references = np.asarray(references, dtype=np.int64).reshape(-1)
    if label_names is not None:
        num_labels = len(label_names)
    elif num_labels is None:
        num_labels = int(max(predictions.max(initial=-1), references.max(initial=-1))) + 1
    for name, ids in (("predictions", predictions), ("references", references)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(f"emotion metrics: {name} hold ids outside 0..{num_labels - 1}")
    names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    return summarize_confusion(confusion_matrix(predictions, references, num_labels), names)


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The scalars of `compute_emotion_metrics` for logging: accuracy, wa_f1, uar and `accuracy_<class>`."""
    scalars = {key: metrics[key] for key in ("accuracy", "wa_f1", "uar")}
    for name, value in metrics["per_class_accuracy"].items():
        if value is not None:
            scalars[f"accuracy_{name}"] = value
    return scalars


def write_evaluation(
    metrics: dict, output_dir: str | Path, name: str, title: str | None = None
) -> dict[str, Path]:
    """Write `<name>_metrics.json` and `<name>_confusion_matrix.png` into `output_dir`; return both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"{name}_metrics.json"
    json_path.write_text(json.dumps(metrics, indent=2) + "\n")
    png_path = plot_confusion_matrix(
        metrics["confusion_matrix"],
        list(metrics["support"]),
        output_dir / f"{name}_confusion_matrix.png",
        title=title,
    )
    return {"json": json_path, "png": png_path}


def format_paper_table(rows: dict[str, dict]) -> str:
    """Text table in the layout of the paper's Table 4: per-class accuracy, then ACC and WA-F1 (in %).

    `rows` maps a row name to a metrics dict with `per_class_accuracy`, `accuracy` and `wa_f1` (fractions);
    all rows share the first row's classes.
    """
    names = list(next(iter(rows.values()))["per_class_accuracy"])
    columns = ["Method"] + [PAPER_ABBREVIATIONS.get(name, name) for name in names] + ["ACC", "WA-F1"]
    lines = [columns]
    for row_name, metrics in rows.items():
        values = [metrics["per_class_accuracy"].get(name) for name in names] + [
            metrics["accuracy"],
            metrics["wa_f1"],
        ]
        lines.append([row_name] + ["-" if v is None or math.isnan(v) else f"{100 * v:.2f}" for v in values])
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        )
        for line in lines
    )


__all__ = [
    "EMOTION_METRICS_PATH",
    "compute_emotion_metrics",
    "confusion_matrix",
    "format_paper_table",
    "plot_confusion_matrix",
    "scalar_metrics",
    "summarize_confusion",
    "write_evaluation",
]
