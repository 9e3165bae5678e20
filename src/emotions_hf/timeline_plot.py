"""Draw the emotion timeline of one or more videos: probability of each emotion over time.

Emotions are coloured by polarity (greens positive, greys neutral, reds negative) so the mood of a
video reads at a glance even when six lines cross. Uses matplotlib's object API, so no GUI backend
or global pyplot state is involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

# Colour map per polarity; the emotions of one polarity take distinct shades of it.
POLARITY_COLORMAPS = {"positive": "Greens", "neutral": "Greys", "negative": "Reds"}
_LINE_STYLES = ("-", "--", "-.", ":")


def emotion_colors(label2polarity: Mapping[str, str]) -> dict[str, tuple]:
    """One RGBA colour per emotion: shades of its polarity's colour map, darkest first."""
    colors = {}
    for polarity, cmap_name in POLARITY_COLORMAPS.items():
        labels = [label for label, p in label2polarity.items() if p == polarity]
        shades = np.linspace(0.85, 0.45, len(labels)) if len(labels) > 1 else [0.7]
        cmap = colormaps[cmap_name]
        colors.update({label: cmap(float(shade)) for label, shade in zip(labels, shades)})
    return colors


def _window_series(timeline: Sequence[Mapping], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Times (seconds) and the matching (points, labels) probability matrix of one timeline."""
    starts = np.array([window["start"] for window in timeline], dtype=float)
    ends = np.array([window["end"] for window in timeline], dtype=float)
    scores = np.array([[window["scores"][label] for label in labels] for window in timeline], dtype=float)
    # Hold the first and last windows' values out to the video's edges, so the curve spans the
    # whole duration the windows cover (a single window becomes a flat segment).
    times = np.concatenate([starts[:1], (starts + ends) / 2, ends[-1:]])
    return times, np.concatenate([scores[:1], scores, scores[-1:]])


def plot_timeline(
    videos: Sequence[tuple[str, Sequence[Mapping]]],
    label2polarity: Mapping[str, str],
    out_path: str | Path,
    dpi: int = 120,
) -> Path:
    """Save one panel per video (title, timeline) to `out_path` and return the path.

    Each timeline is the pipeline's `timeline` output: windows with `start`, `end` (seconds) and
    `scores` (probability per emotion). A marker sits at each window's centre.
    """
    if not videos:
        raise ValueError("plot_timeline: no video timeline to draw")
    labels = list(label2polarity)
    colors = emotion_colors(label2polarity)
    figure = Figure(figsize=(9, 2.6 * len(videos) + 0.6), layout="constrained")
    axes = figure.subplots(len(videos), 1, squeeze=False)[:, 0]
    for ax, (title, timeline) in zip(axes, videos):
        times, scores = _window_series(timeline, labels)
        for index, label in enumerate(labels):
            style = _LINE_STYLES[index % len(_LINE_STYLES)]
            ax.plot(times, scores[:, index], color=colors[label], linewidth=2, linestyle=style, marker="o",
                    markersize=3, markevery=slice(1, -1), label=f"{label} ({label2polarity[label]})")
        ax.set_xlim(min(w["start"] for w in timeline), max(w["end"] for w in timeline))
        ax.set_ylim(-0.03, 1.03)  # lines at exactly 0 or 1 stay visible inside the frame
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    handles, legend_labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, legend_labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=9)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    return out_path


__all__ = ["emotion_colors", "plot_timeline"]
