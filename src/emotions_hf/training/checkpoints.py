"""What makes a run safe to stop and restart: a writable output folder, complete checkpoints, a clean exit."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..errors import check_writable

logger = logging.get_logger(__name__)


def ensure_writable(folder: str | Path) -> None:
    """Create `folder` and write a file in it, so that an unwritable or full output folder stops a run
    before it starts rather than at its first checkpoint or evaluation (an `OSError` that says so)."""
    try:
        check_writable(folder)
    except OSError as error:
        raise type(error)(error.errno, f"output_dir {folder} is not writable ({error.strerror}): free space, "
                          "fix its permissions or choose another --output_dir") from None


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


def shutdown_distributed() -> None:
    """End a `torchrun` / `accelerate launch` process cleanly: free the DDP wrapper (held in the Trainer's
    reference cycles) and the process group while the interpreter is whole. Left to the interpreter's
    exit, gloo's threads aborted about one run in five after all the work was done (exit -6)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.destroy_process_group()
