"""From rows of a prepared dataset to model batches, each video augmented with its own seed.

Rows go through the processor inside the DataLoader workers, each sample seeded from (seed, epoch, index),
so a run, a resumed run and a multi-process run see the same clips. Unreadable videos are dropped from their
batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import processor_item
from ..errors import VideoReadError

SKIPPED_KEY = "skipped_videos"  # the batch entry naming the videos the collator dropped


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


def _skip_description(row: dict, error: VideoReadError) -> str:
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
                skipped.append(_skip_description(row, error))
                continue
            labels.append(int(row["label"]))
        batch = {}
        if features:
            batch = {key: torch.cat([feature[key] for feature in features]) for key in features[0]}
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        batch[SKIPPED_KEY] = skipped
        return batch


def normalize_on_device(batch: dict, normalizer) -> dict:
    """The batch with uint8 `pixel_values` (a video processor with `output_dtype="uint8"`: a quarter of the bytes
    through the DataLoader and to the device) normalised where it now is, by `normalizer` (the video processor's
    `device_normalizer()`, moved to the device); float `pixel_values` are left as they are. Call it after moving
    the batch to the device, before the forward pass."""
    pixels = batch.get("pixel_values")
    if isinstance(pixels, torch.Tensor) and pixels.dtype == torch.uint8:
        batch = {**batch, "pixel_values": normalizer(pixels)}
    return batch


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
