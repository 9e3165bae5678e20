"""Train AV-CANet on a prepared eMotions-style dataset, or, with no dataset, on the embedded synthetic set.

    python examples/train.py                                   # the demo: synthetic set, small model, CPU
    python examples/train.py --dataset data/emotions --variant balanced --output_dir runs/balanced \\
        --video_backbone swin_tiny_patch4_window7_224_22k.pth --audio_backbone resnet34.pth
    accelerate launch --multi_gpu --num_processes 8 examples/train.py --dataset data/emotions ...
    torchrun --nproc_per_node 8 examples/train.py --dataset data/emotions ...

Every `TrainingArguments` option is accepted (`--push_to_hub --hub_model_id me/avcanet` pushes model,
processor, code and model card at each checkpoint); the defaults are the paper's recipe. A `.json` file
as the only argument holds the same options. `--resume_from_checkpoint true` continues after a crash
or a kill from the newest complete checkpoint. The embedded default's small model (`--config_name small`)
and recipe are in presets.py, next to this script.

The paper's AV-CANet (`--config_name paper`, the default with `--dataset`) starts from pretrained backbones when
it can: `--video_backbone` / `--audio_backbone` default to `auto`, which takes the authors' checkpoint files from
$EMOTIONS_HF_BACKBONES or ./pretrained, else `microsoft/swin-tiny-patch4-window7-224` / `microsoft/resnet-34` if
they are in the Hugging Face cache (never downloaded here); without them one warning says the run starts from
random weights, whose results are not the paper's. A file, folder or Hub id given is used as is; `none` skips.

At the end both the last epoch and the best epoch (by test accuracy, as the authors report) are printed, labelled,
with the learning-rate schedule that produced them, and saved in `<output_dir>/evaluation/training_summary.json`.

Several processes on a machine without a GPU (both launch commands above) train with DDP on the CPU over
gloo (`use_cpu` is set for them); `accelerate launch --num_processes N` without `--multi_gpu` would start a
single process there, and stops with an error instead.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from presets import SMALL_CONFIG, SMALL_PROCESSOR, SMALL_TRAINING  # examples/presets.py
from transformers import HfArgumentParser, set_seed

from emotions_hf.configuration_avcanet import CROSS_MODAL_SETTINGS_OFF, AVCANetConfig
from emotions_hf.data import processor_item
from emotions_hf.data.loading import PreparedFolderError, load_prepared
from emotions_hf.errors import is_environment_error
from emotions_hf.labels import EMOTIONS
from emotions_hf.metrics import format_paper_table
from emotions_hf.model_card import PAPER_RESULTS
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.training import (
    AVCANetTrainer,
    AVCANetTrainingArguments,
    UnreadableVideosError,
    labels_from_dataset,
    shutdown_distributed,
)
from emotions_hf.training.arguments import CPU_DDP_COMMANDS, DistributedLaunchError, launched_world_size
from emotions_hf.utils.cpu_memory import keep_freed_memory

DEMO_OUTPUT_DIR = "outputs/avcanet-synthetic"
AUTO, NONE = "auto", "none"
# Where `auto` looks for backbone checkpoints, in order: a folder named by this variable, then ./pretrained (the
# authors' layout: `--video_pretrained pretrained/swin_tiny_patch4_window7_224_22k.pth`), then the Hub cache.
BACKBONE_DIR_VARIABLE = "EMOTIONS_HF_BACKBONES"
LOCAL_BACKBONE_DIRS = ("pretrained",)
LOCAL_BACKBONE_FILES = {
    # the authors' start (official 2D Swin-T ImageNet-22k), the 1k one, torchvision's swin3d_t
    "video": ("swin_tiny_patch4_window7_224_22k.pth", "swin_tiny_patch4_window7_224.pth", "swin3d_t-7615ae03.pth"),
    # torchvision's ResNet-34 releases
    "audio": ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth", "resnet34.pth"),
}
HUB_BACKBONES = {"video": "microsoft/swin-tiny-patch4-window7-224", "audio": "microsoft/resnet-34"}


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "A folder written by `emotions-hf prepare` (or a Hub dataset id). Leave it out for the "
            "embedded default: a synthetic set generated under the output dir."
        },
    )
    variant: str = field(
        default="all", metadata={"help": "Dataset config: all, balanced or test (eMotions)."}
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str = field(
        default="test", metadata={"help": "Split to evaluate on (the paper has no validation)."}
    )
    compare_with: str | None = field(
        default="auto",
        metadata={
            "help": f"Paper result shown beside ours in the model card: one of {sorted(PAPER_RESULTS)}, "
            "'auto' (the variant, for the eMotions labels) or 'none'."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a seeded random subset of this many videos (quick trials)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on a seeded random subset of this many videos."}
    )
    synthetic_videos_per_class: int = field(
        default=20, metadata={"help": "Embedded default only: videos of each class in the synthetic set."}
    )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from one of our checkpoints (folder or Hub id): config, weights, processor."
        },
    )
    config_name: str = field(
        default="paper",
        metadata={"help": "'paper' (the paper's AV-CANet), 'small' (CPU demo) or a config.json path."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated config changes, e.g. 'modality=visual,use_glcf=False'."},
    )
    video_backbone: str | None = field(
        default=AUTO,
        metadata={
            "help": "Visual branch start: a 2D Swin-T checkpoint (inflated) or the official Video Swin-T "
            "K400 checkpoint (.pth/.safetensors file or Hugging Face folder); 'auto' (default): a known file in "
            f"${BACKBONE_DIR_VARIABLE} or ./pretrained, else {HUB_BACKBONES['video']} from the Hugging Face cache, "
            "for a Swin-T config without --model_name_or_path; 'none': random weights."
        },
    )
    audio_backbone: str | None = field(
        default=AUTO,
        metadata={
            "help": "Audio branch start: a ResNet-34 checkpoint (file or Hugging Face folder); 'auto' (default): "
            f"a torchvision resnet34 file in ${BACKBONE_DIR_VARIABLE} or ./pretrained, else "
            f"{HUB_BACKBONES['audio']} from the Hugging Face cache; 'none': random weights."
        },
    )
    mfcc_normalization: str = field(
        default="none",
        metadata={
            "help": "A new processor's MFCC scaling: 'none' (the paper's raw MFCC, whose first coefficient, the "
            "loudness, spans hundreds of units) or 'dataset' (standardise each coefficient with statistics of the "
            "training videos, fitted before training and saved with the processor). A processor loaded with "
            "--model_name_or_path keeps its own."
        },
    )


def parse_overrides(text: str | None) -> dict:
    """'a=1,b=(2, 3),c=visual' -> {'a': 1, 'b': (2, 3), 'c': 'visual'}: Python literals, else strings."""
    overrides = {}
    for item in _split_top_level(text or ""):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config_overrides: {item!r} is not key=value")
        try:
            overrides[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            overrides[key.strip()] = value.strip()
    return overrides


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, so tuple values survive."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part for part in (*parts, current) if part.strip()]


def parse_arguments(argv: list[str]):
    parser = HfArgumentParser((DataArguments, ModelArguments, AVCANetTrainingArguments))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    # A first look at the data arguments alone, to pick the defaults; without its own --help, so that
    # --help reaches the full parser and lists every argument.
    data_args, model_args, _ = HfArgumentParser(
        (DataArguments, ModelArguments), add_help=False
    ).parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if data_args.dataset is None:  # the embedded default trains the small config with its own recipe
        parser.set_defaults(output_dir=DEMO_OUTPUT_DIR, config_name="small", **SMALL_TRAINING)
    elif model_args.config_name == "small":  # the small config brings its recipe wherever it is chosen
        parser.set_defaults(**SMALL_TRAINING)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        parser.set_defaults(bf16=True)
    return parser.parse_args_into_dataclasses(argv)


def synthetic_dataset_folder(output_dir: str, videos_per_class: int, seed: int) -> Path:
    """Generate and prepare the synthetic set once, under `<output_dir>/_synthetic` (the leading underscore
    keeps it out of Hub pushes); later runs reuse it. Processes started together (torchrun, accelerate
    launch) build it once under a file lock, and a build cut short by a kill is redone (`build_once`)."""
    from emotions_hf.data.prepare import prepare
    from emotions_hf.data.synthetic import build_once, generate

    cache = Path(output_dir) / "_synthetic"

    def build(folder: Path) -> None:
        source = generate(folder / "source", videos_per_class=videos_per_class, layout="folder", seed=seed)
        prepare(folder / "source", folder / "dataset", seed=seed, progress=False)
        print(f"synthetic set: built {len(source.videos)} videos in {folder.resolve()}", flush=True)

    def waiting() -> None:
        print(f"synthetic set: waiting for another process building it in {cache.resolve()}", flush=True)

    build_once(cache, build, key={"videos_per_class": videos_per_class, "seed": seed}, on_wait=waiting)
    return cache / "dataset"


def check_distributed(training_args: AVCANetTrainingArguments) -> None:
    """Stop launched processes that did not join one DDP group (each would train on its own, racing the others
    over the output folder); rank 0 logs the group."""
    launched, world_size = launched_world_size(), training_args.world_size
    if launched > 1 and world_size != launched:
        raise DistributedLaunchError(
            f"{launched} processes were launched but this one sees a world size of {world_size} "
            f"(device {training_args.device}): they would train as independent runs. For DDP on the CPU pass "
            f"--use_cpu true, or use {CPU_DDP_COMMANDS}."
        )
    if world_size > 1 and training_args.process_index == 0:
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
        print(f"distributed: world size {world_size}, backend {backend}", flush=True)


def build_config(model_args: ModelArguments, labels: dict) -> AVCANetConfig:
    if model_args.config_name == "paper":
        settings = {}
    elif model_args.config_name == "small":
        settings = dict(SMALL_CONFIG)
    else:
        settings = AVCANetConfig.from_json_file(model_args.config_name).to_dict()
    overrides = parse_overrides(model_args.config_overrides)
    for key, value in overrides.items():  # sub-config dicts merge field by field
        nested = isinstance(value, dict) and isinstance(settings.get(key), dict)
        settings[key] = {**settings[key], **value} if nested else value
    if settings.get("modality", "audio-visual") != "audio-visual":  # one modality: no cross-modal step not asked for
        settings.update({key: off for key, off in CROSS_MODAL_SETTINGS_OFF.items() if key not in overrides})
    return AVCANetConfig(**{**settings, **labels})


def backbone_fits(kind: str, config: AVCANetConfig) -> bool:
    """Whether the config's encoder has the shapes of the public checkpoints `auto` looks for (Swin-T, ResNet-34)."""
    if kind == "video":
        vision = config.vision_config
        return (config.uses_video and vision.embed_dim == 96 and tuple(vision.depths) == (2, 2, 6, 2)
                and not vision.stem_channels)  # a convolutional stem has no pretrained weights
    audio = config.audio_config
    return config.uses_audio and tuple(audio.depths) == (3, 4, 6, 3) and tuple(audio.hidden_sizes) == (
        64, 128, 256, 512)


def cached_hub_folder(repo_id: str, cache_dir: str | None = None) -> str | None:
    """The snapshot folder of `repo_id` in the Hugging Face cache when its config and weights are there; never
    downloads."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    weights = ("model.safetensors", "pytorch_model.bin")
    return str(folder) if any((folder / name).is_file() for name in weights) else None


def find_backbone(kind: str, search_dirs=None, cache_dir: str | None = None) -> str | None:
    """`auto`'s choice for a branch: a known checkpoint file in `search_dirs` (default: $EMOTIONS_HF_BACKBONES,
    ./pretrained), else the Hub model in the local cache, else None."""
    if search_dirs is None:
        search_dirs = [os.environ[BACKBONE_DIR_VARIABLE]] if os.environ.get(BACKBONE_DIR_VARIABLE) else []
        search_dirs += list(LOCAL_BACKBONE_DIRS)
    for folder in search_dirs:
        for name in LOCAL_BACKBONE_FILES[kind]:
            if (Path(folder) / name).is_file():
                return str(Path(folder) / name)
    return cached_hub_folder(HUB_BACKBONES[kind], cache_dir)


def resolve_backbones(model_args: ModelArguments, config: AVCANetConfig, search_dirs=None,
                      cache_dir: str | None = None) -> dict[str, str | None]:
    """{"video": source or None, "audio": ...}: what each branch starts from. A given source is used as is;
    `auto` looks for the public checkpoint (`find_backbone`) when the model is new and its encoder fits one;
    `none` and an unfitting `auto` give None. One warning line names the branches left at random weights."""
    sources, random_branches = {}, []
    for kind, given in (("video", model_args.video_backbone), ("audio", model_args.audio_backbone)):
        used = config.uses_video if kind == "video" else config.uses_audio
        if given in (None, NONE) or not used:
            sources[kind] = None
        elif given != AUTO:
            sources[kind] = given
        elif model_args.model_name_or_path:
            sources[kind] = None  # the checkpoint has its own weights
        else:
            sources[kind] = find_backbone(kind, search_dirs, cache_dir) if backbone_fits(kind, config) else None
        if used and sources[kind] is None and not model_args.model_name_or_path:
            random_branches.append(kind)
    if random_branches:
        print(f"train.py: warning: the {' and '.join(random_branches)} backbone(s) start from random weights (no "
              f"checkpoint given, none found in ${BACKBONE_DIR_VARIABLE}, ./pretrained or the Hugging Face cache, "
              "or the config is not Swin-T/ResNet-34): results of this run are not comparable with the paper's.",
              flush=True)
    return sources


def build_model_and_processor(model_args: ModelArguments, labels: dict):
    if model_args.model_name_or_path:
        overrides = parse_overrides(model_args.config_overrides)
        # A new label set gets a new head (ignore_mismatched_sizes); everything else keeps its weights.
        model = AVCANetForVideoClassification.from_pretrained(
            model_args.model_name_or_path, ignore_mismatched_sizes=True, **labels, **overrides
        )
        processor = AVCANetProcessor.from_pretrained(model_args.model_name_or_path)
    else:
        model = AVCANetForVideoClassification(build_config(model_args, labels))
        # the small demo keeps the processor settings it was tuned with (presets.py); others get the paper's
        settings = SMALL_PROCESSOR if model_args.config_name == "small" else {}
        processor = AVCANetProcessor.from_model_config(
            model.config, **{**settings, "mfcc_normalization": model_args.mfcc_normalization})
    backbones = resolve_backbones(model_args, model.config)
    if any(backbones.values()):
        from emotions_hf.convert_checkpoints import load_pretrained_backbones

        reports = load_pretrained_backbones(model, video=backbones["video"], audio=backbones["audio"])
        for name, report in reports.items():
            print(f"{name} backbone ({backbones[name]}): {report.summary()}")
    return model, processor, backbones


def report_last_and_best(trainer: AVCANetTrainer, output_dir: str, eval_split: str) -> dict:
    """Print the last and the best epoch, labelled, with the schedule; save them as training_summary.json."""
    summary = trainer.training_summary()
    last, best = summary["last"], summary["best"]
    rows = {f"AV-CANet (ours), last epoch ({eval_split})": last["metrics"]}
    if best is not None:
        rows[f"AV-CANet (ours), best epoch {best['epoch']:g} by {best['metric']} ({eval_split})"] = best["metrics"]
    print(f"Test metrics on {eval_split} ({last['metrics']['num_samples']} videos); lr schedule: "
          f"{summary['schedule']}")
    print(format_paper_table(rows))
    if best is not None:
        print("The best epoch is chosen on the split it is measured on, as the authors do: an optimistic number."
              + (f" Its weights: {best['checkpoint']}" if best.get("checkpoint") else ""))
    path = Path(output_dir) / "evaluation" / "training_summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def subset(split, size: int | None, seed: int):
    return split if size is None or size >= len(split) else split.shuffle(seed=seed).select(range(size))


def paper_comparison(data_args: DataArguments, labels: dict, synthetic: bool) -> str | None:
    if synthetic or data_args.compare_with in (None, "none"):
        return None
    if data_args.compare_with != "auto":
        return data_args.compare_with
    is_emotions = tuple(labels["id2label"].values()) == EMOTIONS.labels
    return data_args.variant if is_emotions and data_args.variant in PAPER_RESULTS else None


def main(argv: list[str] | None = None) -> dict:
    data_args, model_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    check_distributed(training_args)
    synthetic = data_args.dataset is None
    with training_args.main_process_first(desc="preparing the dataset"):
        folder = (
            synthetic_dataset_folder(
                training_args.output_dir, data_args.synthetic_videos_per_class, training_args.seed
            )
            if synthetic
            else data_args.dataset
        )
        dataset = load_prepared(folder, data_args.variant, decode_video=False)  # the processor reads by path
    train_split, eval_split = dataset[data_args.train_split], dataset[data_args.eval_split]
    labels = labels_from_dataset(train_split)
    train_split = subset(train_split, data_args.max_train_samples, training_args.seed)
    eval_split = subset(eval_split, data_args.max_eval_samples, training_args.seed)
    set_seed(
        training_args.seed
    )  # before the model exists: its initial weights are part of a reproducible run
    model, processor, backbones = build_model_and_processor(model_args, labels)
    if processor.needs_mfcc_statistics:
        processor.fit_mfcc_statistics(processor_item(row) for row in train_split)

    trainer = AVCANetTrainer(
        model=model,
        args=training_args,
        train_dataset=train_split,
        eval_dataset=eval_split,
        processing_class=processor,
        model_card_kwargs={
            "dataset": "synthetic eMotions-shaped set" if synthetic else data_args.dataset,
            "dataset_config": data_args.variant,
            "compare_with": paper_comparison(data_args, labels, synthetic),
            "base_models": [
                b for b in (model_args.model_name_or_path, backbones["video"], backbones["audio"]) if b
            ]
            or None,
        },
    )
    resume = training_args.resume_from_checkpoint
    trainer.train(resume_from_checkpoint=True if resume in ("true", "True", "last") else resume)
    metrics = trainer.evaluate(eval_split, metric_key_prefix="test")
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    else:
        trainer.save_model()
        trainer.create_model_card()
    if trainer.is_world_process_zero():
        print(f"\nModel, processor and model card saved to {Path(training_args.output_dir).resolve()}")
        report_last_and_best(trainer, training_args.output_dir, data_args.eval_split)
        print(f"Metrics JSON and confusion matrix: {Path(training_args.output_dir).resolve() / 'evaluation'}")
        print(f'Try it: pipeline("video-emotion", model="{training_args.output_dir}")')
    return metrics


def console_main() -> int:
    """`main` for the command line: a broken environment or an unreadable dataset gets a message, not a
    traceback, and a non-zero exit status."""
    keep_freed_memory()
    try:
        main()
        return 0
    except (UnreadableVideosError, PreparedFolderError, DistributedLaunchError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if not is_environment_error(error):
            raise
        print(f"train.py: error: {error}\nThe machine, not the data: fix it and run the same command again "
              "with --resume_from_checkpoint true; the complete checkpoints already written are kept.",
              file=sys.stderr)
        return 1
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(console_main())
