"""Confusion-matrix picture written after each evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_confusion_matrix(matrix, label_names: list[str], path: str | Path, title: str | None = None) -> Path:
    """Save a row-normalised confusion matrix (cell: % of the true class, and the count) as a PNG.

    Rows are normalised because eMotions is imbalanced (Excitation is 12x Fear): raw counts would
    hide how the small classes are confused. Uses a bare `Figure` (no pyplot global state), so it is
    safe in any process or thread.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    size = 1.6 + 0.75 * len(label_names)
    figure = Figure(figsize=(size + 1.2, size), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    ticks = np.arange(len(label_names))
    axes.set_xticks(ticks, label_names, rotation=45, ha="right")
    axes.set_yticks(ticks, label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, column), share in np.ndenumerate(shares):
        colour = "white" if share > 0.6 else "black"
        axes.text(
            column,
            row,
            f"{100 * share:.0f}%\n{counts[row, column]}",
            ha="center",
            va="center",
            fontsize=7,
            color=colour,
        )
    if title:
        axes.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
