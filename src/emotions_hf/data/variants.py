"""The eMotions variants and their train/test splits, drawn deterministically from a seed.

Variants (paper §3.6), each drawn from the full set:
- `all`: every video.
- `balanced`: 4,000 Excitation, 3,000 Neutral and every video of the other classes (14,462).
- `test`: 5,000 videos, per class in proportion to the full set; the fractional shares are
  rounded by the largest-remainder method so the total is exactly 5,000.

Each variant is then split train/test, stratified by class: a class of n videos gives
`round(0.2 * n)` (half up) to test. That is the arithmetic Table 4 shows: Fear in the full set has
954 videos and its accuracy is out of 191 (71/191 = 37.17 %); the `test` variant's test split
holds 1,000 videos (ACC 67.00 % = 670/1000, Fear out of 34). The balanced column confirms it too: its
test split holds 800 / 191 / 600 / 443 / 418 / 441 videos (Excitation, Fear, Neutral, Relaxation,
Sadness, Tension; 2,893 in all), and the VAANet, CTEN, 3D-ResNet50 + ResNet34 and ConvNeXt +
CSP-DarkNet53 rows of that column are whole numbers of videos of exactly these sizes that average to
their printed ACC (`TABLE4_BALANCED_CHECKED_ROWS`). Only the AV-CANet balanced row does not fit: its
per-class values are not whole numbers of videos (67.03 % of 800 = 536.24) and, weighted by these
counts, give 64.18 %, not the 64.40 % it prints. That row is inconsistent in itself; the split rule
stands (the model card says the same).

How a draw is made, so that anyone can repeat it: rows are put in canonical order (sorted by
`video_id`); within each class, a generator `numpy.random.default_rng([seed, stream, class_id])`
picks the members (`choice` without replacement, then sorted), one stream per variant and per
variant's split. Each class has its own stream, so the draw of a class does not depend on the
others, nor on the order rows came in.

Membership (`memberships`): the (variant, split) pairs a video belongs to. Videos with the same
membership form a group, and a prepared folder stores each group in folders of its own, so that each
config's split lists exactly its videos (`card.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..labels import EMOTIONS

VARIANTS = ("all", "balanced", "test")
SPLITS = ("train", "test")
DEFAULT_SEED = 1  # the authors' training seed
DEFAULT_TEST_FRACTION = 0.2
# Table 2 of the paper: videos per class of the full set.
TABLE2_COUNTS = {"Excitation": 11_739, "Fear": 954, "Neutral": 8_795, "Relaxation": 2_214, "Sadness": 2_090,
                 "Tension": 2_204}
BALANCED_COUNTS = {"Excitation": 4_000, "Neutral": 3_000}  # every other class is taken whole
TEST_VARIANT_SIZE = 5_000
# Random streams, one per draw; fixed numbers so that adding a variant never changes another's draw.
_STREAMS = {"balanced": 1, "test": 2}
_SPLIT_STREAM = 10
# Table 4, column e_B (per-class accuracy in % for Excitation, Fear, Neutral, Relaxation, Sadness, Tension; ACC):
# the rows checked against the balanced test counts (see the module docstring). AV-CANet's row is kept apart.
TABLE4_BALANCED_CHECKED_ROWS = {
    "VAANet": ((72.38, 63.35, 47.83, 67.95, 44.50, 59.41), 60.01),
    "CTEN": ((65.00, 37.17, 45.83, 69.07, 52.15, 36.28), 53.58),
    "3D-ResNet50 + ResNet34": ((72.50, 69.63, 49.17, 72.69, 55.74, 55.78), 62.53),
    "ConvNeXt + CSP-DarkNet53": ((66.25, 75.92, 46.17, 69.30, 65.55, 65.08), 62.91),
}
TABLE4_BALANCED_AVCANET = ((67.03, 68.25, 50.87, 75.05, 65.16, 63.53), 64.40)


@dataclass(frozen=True)
class VariantSpec:
    """How the variants are drawn. The defaults are the paper's; small sources scale them down."""

    balanced_counts: Mapping[str, int] = None
    test_size: int = TEST_VARIANT_SIZE
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if self.balanced_counts is None:
            object.__setattr__(self, "balanced_counts", dict(BALANCED_COUNTS))
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction={self.test_fraction} must be between 0 and 1")
        if self.test_size < 1:
            raise ValueError(f"test_size={self.test_size} must be positive")


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def held_out_count(class_size: int, fraction: float = DEFAULT_TEST_FRACTION) -> int:
    """Videos of a class that go to the test split: round(fraction * n), halves up."""
    return round_half_up(Fraction(str(fraction)) * class_size)


def largest_remainder(weights: Mapping[str, int], total: int) -> dict[str, int]:
    """Split `total` in proportion to `weights` into whole numbers that sum exactly to `total`.

    Every class gets the floor of its share; the units left go to the largest fractional parts
    (ties: the larger weight, then the name).
    """
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        raise ValueError("cannot share out among classes with no videos")
    shares = {name: Fraction(total * weight, weight_sum) for name, weight in weights.items()}
    counts = {name: int(share) for name, share in shares.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(shares, key=lambda name: (shares[name] - counts[name], weights[name], name), reverse=True)
    for name in by_remainder[:left]:
        counts[name] += 1
    return counts


def variant_counts(class_counts: Mapping[str, int], variant: str, spec: VariantSpec | None = None) -> dict[str, int]:
    """Videos per class in `variant`, given the full set's `class_counts`.

    Requests larger than a class (a small source) take the whole class; `split_class_counts` reports them.
    """
    spec = spec or VariantSpec()
    if variant == "all":
        return dict(class_counts)
    if variant == "balanced":
        return {name: min(n, spec.balanced_counts.get(name, n)) for name, n in class_counts.items()}
    if variant == "test":
        if spec.test_size >= sum(class_counts.values()):
            return dict(class_counts)
        return largest_remainder(class_counts, spec.test_size)
    raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")


def _pick(rng: np.random.Generator, members: np.ndarray, k: int) -> np.ndarray:
    if k >= len(members):
        return members
    return np.sort(members[rng.choice(len(members), size=k, replace=False)])


def draw_splits(video_ids: Sequence[str], labels: Sequence[str], label_names: Sequence[str] = EMOTIONS.labels,
                variants: Sequence[str] = VARIANTS, spec: VariantSpec | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Row indices (into `video_ids`) of every split of every variant: {variant: {"train": ..., "test": ...}}.

    Indices come back sorted by `video_id`. `labels` are class names of `label_names`.
    """
    spec = spec or VariantSpec()
    if len(video_ids) != len(labels):
        raise ValueError(f"{len(video_ids)} video ids but {len(labels)} labels")
    if len(set(video_ids)) != len(video_ids):
        raise ValueError("video ids must be unique to draw the splits")
    unknown = sorted(set(labels) - set(label_names))
    if unknown:
        raise ValueError(f"labels {unknown} are not in {list(label_names)}")
    order = np.argsort(np.asarray(video_ids, dtype=object), kind="stable")
    sorted_labels = np.asarray(labels, dtype=object)[order]
    # positions in id order; mapped back to row indices at the end
    members = {name: np.flatnonzero(sorted_labels == name) for name in label_names}
    class_counts = {name: len(rows) for name, rows in members.items()}
    result = {}
    for variant in variants:
        counts = variant_counts(class_counts, variant, spec)
        train, test = [], []
        for class_id, name in enumerate(label_names):
            chosen = members[name]
            if variant != "all":
                chosen = _pick(np.random.default_rng([spec.seed, _STREAMS[variant], class_id]), chosen, counts[name])
            split_rng = np.random.default_rng([spec.seed, _SPLIT_STREAM, VARIANTS.index(variant), class_id])
            held_out = _pick(split_rng, chosen, held_out_count(len(chosen), spec.test_fraction))
            test.append(held_out)
            train.append(np.setdiff1d(chosen, held_out))
        result[variant] = {"train": order[np.sort(np.concatenate(train))], "test": order[np.sort(np.concatenate(test))]}
    return result


def memberships(splits: Mapping[str, Mapping[str, np.ndarray]], count: int) -> list[tuple[tuple[str, str], ...]]:
    """For each of `count` rows, the (variant, split) pairs it belongs to, in the order of `splits` (a row is in
    at most one split of a variant). A row in no variant gets `()`."""
    member: list[list[tuple[str, str]]] = [[] for _ in range(count)]
    for variant, by_split in splits.items():
        for split in SPLITS:
            for row in np.asarray(by_split[split]).tolist():
                if not 0 <= row < count:
                    raise ValueError(f"row {row} of {variant}/{split} is not among the {count} rows")
                if member[row] and member[row][-1][0] == variant:
                    raise ValueError(f"row {row} is in both splits of {variant}")
                member[row].append((variant, split))
    return [tuple(pairs) for pairs in member]


def split_class_counts(splits: Mapping[str, Mapping[str, np.ndarray]], labels: Sequence[str],
                       label_names: Sequence[str] = EMOTIONS.labels) -> dict[str, dict[str, dict[str, int]]]:
    """Per-class counts {variant: {split: {class: n}}}, for the dataset card and the tests."""
    labels = np.asarray(labels, dtype=object)
    return {
        variant: {
            split: {name: int((labels[rows] == name).sum()) for name in label_names}
            for split, rows in by_split.items()
        }
        for variant, by_split in splits.items()
    }


__all__ = [
    "BALANCED_COUNTS",
    "DEFAULT_SEED",
    "SPLITS",
    "TABLE2_COUNTS",
    "TABLE4_BALANCED_AVCANET",
    "TABLE4_BALANCED_CHECKED_ROWS",
    "TEST_VARIANT_SIZE",
    "VARIANTS",
    "VariantSpec",
    "draw_splits",
    "held_out_count",
    "largest_remainder",
    "memberships",
    "split_class_counts",
    "variant_counts",
]
