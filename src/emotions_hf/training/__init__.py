"""Training AV-CANet with the `transformers.Trainer`: the paper's recipe, on-the-fly video loading, metrics.

`arguments` (the recipe), `data` (rows to seeded batches), `trainer` (`AVCANetTrainer`), `checkpoints`
(safe stops and restarts), `unreadable` (when missing or broken videos stop a run).
"""

from .arguments import AVCANetTrainingArguments
from .checkpoints import (
    checkpoint_is_complete,
    ensure_writable,
    last_complete_checkpoint,
    shutdown_distributed,
)
from .data import AVCANetDataCollator, VideoClipDataset, labels_from_dataset, sample_seed
from .trainer import AVCANetTrainer, apply_fusion_learning_rate_scales
from .unreadable import UnreadableTally, UnreadableVideosError

__all__ = [
    "AVCANetDataCollator",
    "AVCANetTrainer",
    "AVCANetTrainingArguments",
    "UnreadableTally",
    "UnreadableVideosError",
    "VideoClipDataset",
    "apply_fusion_learning_rate_scales",
    "checkpoint_is_complete",
    "ensure_writable",
    "labels_from_dataset",
    "last_complete_checkpoint",
    "sample_seed",
    "shutdown_distributed",
]
