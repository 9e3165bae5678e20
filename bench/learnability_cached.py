"""Many-seed ablations for the learnability suite: a task's processor clips cached once, the small recipe in a
plain training loop.

`learnability.py` trains through `AVCANetTrainer`, decoding and augmenting every clip in every epoch: minutes per
audio-visual run on 2 cores. Whether a switch makes a task reliable needs six seeds or more, because on the hard
tasks one run is one draw of a race between learning the cue and memorising the 192 training videos (README,
learnability suite). This tool caches, once per task, `--copies` augmented copies of each training video (the
suite's processor with `training=True`, one copy per epoch in turn) and the eval-mode test clips, then trains the
audio-visual small config with the small recipe (`examples/presets.py`: AdamW with weight decay on matrices only,
linear warm-up + cosine, gradient clipping, the fusion layers' own rates, batch 8) on one thread, 3-4 minutes a
run (two at a time on 2 cores). Per run it prints the test accuracy, the picture value the visual logit term reads on the test clips and on
the training clips (a large gap: memorisation), and a logistic-regression probe of the picture value on F_v's
snippet mean (did the Video Swin learn the cue at all?). The README's cached-clip tables came from it.

    python bench/learnability_cached.py motion-noise --seeds 1 2 3 4 5 6
    python bench/learnability_cached.py motion-noise --seeds 2 4 --config_overrides "use_lisf=False,use_glcf=False"

Results are appended as JSON lines to `<work_dir>/cached_results.jsonl`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from learnability import (
    LEARNABILITY_PROCESSOR,
    SUITE_EPOCHS,
    fused_cue_accuracies,
    parse_literal_overrides,
    prepared_task,
)
from presets import SMALL_CONFIG, SMALL_TRAINING

from emotions_hf.data.cue_tasks import NUM_SOUND_VALUES

BATCH_SIZE = 8
# The processor seeds of the cached training copies: copy k is augmented with seed AUGMENTATION_SEED + k.
AUGMENTATION_SEED = 100
PROBE_EVERY = 20  # epochs between two probes of F_v (and one before training)


def cache_clips(work_dir: Path, task: str, copies: int, videos_per_class: int = 40, data_seed: int = 0,
                config_overrides: dict | None = None, **generate_options) -> Path:
    """Write (once) the processor's clips of a task: `copies` augmented versions of the training split and the
    eval-mode test split, as {"train"|"test": {"pixel_values" (copies, N, ...) float16, "input_features",
    "audio_mask", "labels"}, "label_config": the dataset's id2label, label2id, label2polarity}, with the processor
    of the small config under `config_overrides` (e.g. more frames per snippet). Returns the file, named after the
    processor's settings: clips cached with another small config or processor are never reused."""
    from emotions_hf.configuration_avcanet import AVCANetConfig
    from emotions_hf.data import processor_item
    from emotions_hf.data.loading import load_prepared
    from emotions_hf.processing_avcanet import AVCANetProcessor
    from emotions_hf.training import labels_from_dataset

    dataset = prepared_task(work_dir, task, videos_per_class, data_seed, **generate_options)
    processor = AVCANetProcessor.from_model_config(AVCANetConfig(**{**SMALL_CONFIG, **(config_overrides or {})}),
                                                   **LEARNABILITY_PROCESSOR)
    settings = hashlib.sha256(processor.to_json_string().encode()).hexdigest()[:12]
    path = dataset.parent / f"clips-{copies}-{settings}.pt"
    if path.exists():
        return path
    data = load_prepared(dataset, "all")
    clips = {"label_config": labels_from_dataset(data["train"])}
    for split in ("train", "test"):
        items = [processor_item(row) for row in data[split]]
        batches = ([processor(items, training=True, seed=AUGMENTATION_SEED + k) for k in range(copies)]
                   if split == "train" else [processor(items)])
        clips[split] = {key: torch.stack([b[key] for b in batches]) for key in ("pixel_values", "input_features",
                                                                               "audio_mask")}
        clips[split]["pixel_values"] = clips[split]["pixel_values"].half()  # halves the file; the model gets float32
        clips[split]["labels"] = torch.tensor(data[split]["label"])
    partial = path.with_suffix(".partial")
    torch.save(clips, partial)
    os.replace(partial, path)
    return path


def _forward(model, split: dict, copy: int, index: torch.Tensor | slice, labels: bool = False):
    inputs = {"pixel_values": split["pixel_values"][copy, index].float(),
              "input_features": split["input_features"][copy, index], "audio_mask": split["audio_mask"][copy, index]}
    if labels:
        inputs["labels"] = split["labels"][index]
    return model(**inputs)


@torch.no_grad()
def _evaluate(model, split: dict, chunk: int = 64) -> dict[str, float]:
    """Class accuracy and each logit term's cue accuracy on copy 0 of a split (eval mode)."""
    model.eval()
    outputs = [_forward(model, split, 0, slice(i, i + chunk)) for i in range(0, len(split["labels"]), chunk)]
    model.train()
    logits, visual, audio = (torch.cat([getattr(o, name) for o in outputs]).numpy()
                             for name in ("logits", "visual_logits", "audio_logits"))
    labels = split["labels"].numpy()
    return {"accuracy": float(np.mean(logits.argmax(-1) == labels)), **fused_cue_accuracies(visual, audio, labels)}


@torch.no_grad()
def probe_picture(model, clips: dict, chunk: int = 64) -> float:
    """Test accuracy of a logistic regression of the picture value on F_v's snippet mean (the Video Swin and the
    video projection, before any cross-modal step), fitted on the training clips (copy 0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model.eval()
    splits = {name: clips[name] for name in ("train", "test")}
    features = {name: torch.cat([model.avcanet.encode_video(split["pixel_values"][0, i:i + chunk].float()).mean(1)
                                 for i in range(0, len(split["labels"]), chunk)]).numpy()
                for name, split in splits.items()}
    model.train()
    picture = {name: split["labels"].numpy() // NUM_SOUND_VALUES for name, split in splits.items()}
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    probe.fit(features["train"], picture["train"])
    return float(probe.score(features["test"], picture["test"]))


def train_cached(clips: dict, seed: int, epochs: int = int(SUITE_EPOCHS), config_overrides: dict | None = None,
                 probe: bool = True, trace_every: int = 10) -> dict:
    """Train the audio-visual small config on cached clips with the small recipe; return the test and training
    metrics, a trace of the test metrics every `trace_every` epochs and the F_v probe every PROBE_EVERY."""
    from transformers import get_scheduler, set_seed

    from emotions_hf.configuration_avcanet import AVCANetConfig
    from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
    from emotions_hf.training import AVCANetTrainingArguments, apply_fusion_learning_rate_scales

    settings = {**SMALL_CONFIG, **(config_overrides or {}), **clips["label_config"]}
    if settings.get("modality", "audio-visual") != "audio-visual":
        raise ValueError(f"learnability_cached trains the audio-visual model only (its report reads both logit "
                         f"terms); got modality={settings['modality']!r}: use bench/learnability.py --modes")
    weight_decay = AVCANetTrainingArguments.__dataclass_fields__["weight_decay"].default
    set_seed(seed)
    model = AVCANetForVideoClassification(AVCANetConfig(**settings)).train()
    train = clips["train"]
    copies, size = train["pixel_values"].shape[:2]
    steps = math.ceil(size / BATCH_SIZE) * epochs
    matrices = [p for p in model.parameters() if p.ndim > 1]  # no decay on biases and norm weights, as the Trainer
    others = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                                   {"params": others, "weight_decay": 0.0}], lr=SMALL_TRAINING["learning_rate"])
    apply_fusion_learning_rate_scales(optimizer, model, SMALL_TRAINING.get("fusion_learning_rate_scales", {}))
    scheduler = get_scheduler(SMALL_TRAINING["lr_scheduler_type"], optimizer,
                              num_warmup_steps=int(SMALL_TRAINING["warmup_steps"] * steps), num_training_steps=steps)
    order = torch.Generator().manual_seed(seed)
    probes = [probe_picture(model, clips)] if probe else []
    trace, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        for index in torch.randperm(size, generator=order).split(BATCH_SIZE):
            loss = _forward(model, train, (epoch - 1) % copies, index, labels=True).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), SMALL_TRAINING["max_grad_norm"])
            optimizer.step()
            scheduler.step()
        if epoch % trace_every == 0:
            trace.append({"epoch": epoch, **_evaluate(model, clips["test"])})
        if probe and epoch % PROBE_EVERY == 0:
            probes.append(probe_picture(model, clips))
    result = {"seed": seed, "epochs": epochs, "config_overrides": config_overrides or {},
              "train_seconds": time.perf_counter() - start, **_evaluate(model, clips["test"]),
              **{f"train_{k}": v for k, v in _evaluate(model, train).items()}, "trace": trace}
    if probe:
        result["probe_picture"] = probes
    return result


def summary_line(task: str, result: dict) -> str:
    probes = " / ".join(f"{p:.2f}" for p in result.get("probe_picture", []))
    return (f"{task} seed {result['seed']}: AV {result['accuracy']:.3f} | visual term's picture: test "
            f"{result['fused_picture_accuracy']:.2f}, train {result['train_fused_picture_accuracy']:.2f} | sound: test "
            f"{result['fused_sound_accuracy']:.2f}" + (f" | F_v probe {probes}" if probes else "")
            + f" | {result['train_seconds']:.0f} s")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="'<picture>-<sound>', e.g. motion-noise")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--epochs", type=int, default=int(SUITE_EPOCHS))
    parser.add_argument("--copies", type=int, default=8, help="augmented copies of each training video")
    parser.add_argument("--config_overrides", default=None, help="e.g. 'use_lisf=False,use_glcf=False'")
    parser.add_argument("--videos_per_class", type=int, default=40)
    parser.add_argument("--data_seed", type=int, default=0)
    parser.add_argument("--no_probe", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (run seeds in parallel processes)")
    parser.add_argument("--work_dir", default="outputs/learnability")
    options = parser.parse_args(argv)

    torch.set_num_threads(options.threads)
    work_dir = Path(options.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    overrides = parse_literal_overrides(options.config_overrides)
    clips = torch.load(cache_clips(work_dir, options.task, options.copies, options.videos_per_class,
                                   options.data_seed, overrides))
    results = []
    for seed in options.seeds:
        result = {"task": options.task, **train_cached(clips, seed, options.epochs, overrides,
                                                       probe=not options.no_probe)}
        print(summary_line(options.task, result), flush=True)
        with open(work_dir / "cached_results.jsonl", "a") as log:
            log.write(json.dumps(result) + "\n")
        results.append(result)
    accuracies = [r["accuracy"] for r in results]
    print(f"{options.task}: AV mean {np.mean(accuracies):.3f} over seeds {options.seeds}, "
          f"{sum(a >= 0.9 for a in accuracies)} of {len(accuracies)} at 0.90 or more")
    return results


if __name__ == "__main__":
    main()
