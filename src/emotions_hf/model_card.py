"""Fill `model_card.md` from what a training run knows: config, recipe, data, results beside the paper's.

Two cards come from the one template:
- `render_model_card` / `write_model_card`: the card of a training run (the Trainer writes it as the
  output folder's `README.md` and pushes it with the model);
- `released_model_card`: the card of the released checkpoint, the paper's configuration trained on
  `Conna/eMotions` with the paper's recipe, kept as `model_card.md` at the top of the repository.
  Regenerate it after changing the template or this module (a test fails while it is stale):

      python -m emotions_hf.model_card > model_card.md

Hub metadata, and why (checked against the Hub's own code and docs, `huggingface/huggingface.js`
`packages/tasks` and `huggingface/hub-docs`):

- `pipeline_tag: other`, not `video-classification`. The Hub computes a `transformers` model's
  pipeline tag from `config.json` (here `AutoModelForVideoClassification` in `auto_map`) unless the
  card overrides it (hub-docs `model-cards.md`, "Specifying a task"), and for every tag in its list of
  `transformers` tasks (`library-to-tasks.ts`, which holds `video-classification`) its "Use this model"
  snippet is `pipeline("<pipeline_tag>", model=<repo>, trust_remote_code=True)`
  (`model-libraries-snippets.ts`). That call builds transformers' own `VideoClassificationPipeline`,
  which hands sampled frames alone to a video (or image) processor and fails on AV-CANet, whose
  processor and model take frames and sound.
  What runs is the custom `video-emotion` pipeline stored with the model: its config lists it under
  `custom_pipelines`, and `pipeline(model=<repo>, trust_remote_code=True)` picks that task itself
  (transformers reads `custom_pipelines` before it would ask the Hub for a tag). `video-emotion` is no
  Hub task, so the honest tag is `other` (in the Hub's `PIPELINE_DATA`, no `transformers` pipeline):
  the Hub's snippet is then only its loading code (`Auto*.from_pretrained(<repo>, trust_remote_code=True)`),
  which runs. The model is still found by its tags (`video-emotion`,
  `emotion-recognition`, `audio-visual`) and by its dataset. (Were the custom pipeline also saved under
  the task name `video-classification`, the tag could be `video-classification`; it is not.)
- No `widget:` examples and `inference: false`: Hub widgets run through Inference Providers
  (hub-docs `models-widgets.md`), which do not execute a repository's own code (`CustomCode` is one
  of the Hub's `InferenceDisplayability` reasons, `model-data.ts`); the card says so in its text.
- `library_name: transformers`: both runnable snippets are plain `transformers` calls.
- `datasets:` and `base_model:` hold Hub ids only (hub-docs: "specified by their Hub identifier"):
  `--dataset_hub_id` (or a `--dataset` that is itself a Hub id) for the data; for the starting weights,
  a Hub id given as is or a Hub cache snapshot folder (`.../models--org--name/snapshots/<rev>`). Local
  folders and `.pth` files are named in the card's text, never in the metadata, and a model-index
  (structured results) is written only when the dataset has a Hub id, since its `dataset.type` must be one.
- `base_model_relation: finetune` whenever `base_model` is set: the whole model is trained from those
  weights; stated rather than left to the Hub to infer (several backbones could read as a merge).
"""

from __future__ import annotations

import sys
from pathlib import Path
from string import Template

from huggingface_hub import EvalResult, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .metrics import PAPER_ABBREVIATIONS

TEMPLATE_PATH = Path(__file__).resolve().parent / "model_card.md"

PIPELINE_TAG = "other"  # see the module docstring: `video-classification` would advertise a failing pipeline
LIBRARY_NAME = "transformers"
CUSTOM_PIPELINE_TASK = "video-emotion"  # the task the saved config's `custom_pipelines` holds
CARD_TAGS = ("video-emotion", "audio-visual", "emotion-recognition", "avcanet", "emotions-hf")
LICENSE = "apache-2.0"

# The released checkpoint: the paper's AV-CANet trained on the official release, config `all`.
RELEASED_REPO_ID = "emotions-hf/avcanet-emotions"
RELEASED_DATASET = "Conna/eMotions"
RELEASED_DATASET_CONFIG = "all"
# The authors' visual start (SPEC §4, from their code): the official 2D Swin-T ImageNet-22k release file.
OFFICIAL_SWIN_2D_22K = "swin_tiny_patch4_window7_224_22k.pth"
# Recipe rows whose value is a property of the machine or an unsourced choice, left out of the released card.
_UNSOURCED_RECIPE_ROWS = ("devices", "precision")

# AV-CANet in the paper, in %: Table 4 (per-class accuracy, ACC, WA-F1) for eMotions' variants keyed by the
# dataset config name, Table 6 (ACC, WA-F1) for the public sets keyed by label-set name.
PAPER_RESULTS = {
    "balanced": {
        "name": "eMotions_balanced",
        "accuracy": 64.40,
        "wa_f1": 64.32,
        "per_class": {
            "Excitation": 67.03,
            "Fear": 68.25,
            "Neutral": 50.87,
            "Relaxation": 75.05,
            "Sadness": 65.16,
            "Tension": 63.53,
        },
        # See BALANCED_ROW_NOTE: these per-class values and this ACC do not agree.
        "note": "balanced",
    },
    "test": {
        "name": "eMotions_test",
        "accuracy": 67.00,
        "wa_f1": 66.28,
        "per_class": {
            "Excitation": 82.58,
            "Fear": 58.82,
            "Neutral": 62.10,
            "Relaxation": 45.57,
            "Sadness": 48.00,
            "Tension": 46.84,
        },
    },
    "all": {
        "name": "eMotions",
        "accuracy": 67.79,
        "wa_f1": 67.32,
        "per_class": {
            "Excitation": 80.24,
            "Fear": 59.16,
            "Neutral": 63.39,
            "Relaxation": 63.43,
            "Sadness": 54.07,
            "Tension": 40.14,
        },
    },
    "ekman6": {"name": "Ekman6", "accuracy": 55.63, "wa_f1": 55.44},
    "ve8": {"name": "VideoEmotion8", "accuracy": 49.53, "wa_f1": 48.24},
    "music_video": {"name": "Music_video", "accuracy": 84.81, "wa_f1": 84.63},
}

# Table 4's balanced AV-CANet row, checked against the test counts of eMotions_balanced's 80/20 split (800 / 191 /
# 600 / 443 / 418 / 441 = 2,893 videos): the VAANet, CTEN, 3D-ResNet50 + ResNet34 and ConvNeXt + CSP-DarkNet53
# rows of the same column are whole numbers of videos of exactly these sizes and average to their printed ACC;
# AV-CANet's per-class values are not whole numbers of videos (67.03 % of 800 = 536.24) and, weighted by these
# counts, give 64.18 %, not the printed 64.40 %. The split is right; that row is inconsistent in itself.
BALANCED_ROW_NOTE = (
    "The paper's eMotions_balanced row for AV-CANet is inconsistent in itself: weighted by the test counts of the "
    "balanced split (800 / 191 / 600 / 443 / 418 / 441), its per-class values give 64.18 % accuracy, not the "
    "64.40 % printed, and they are not whole numbers of videos; the VAANet, CTEN, 3D-ResNet50 and ConvNeXt rows "
    "of the same column fit these counts exactly."
)
REPORTING_NOTE = (
    "The paper reports, for each run, the epoch with the best test accuracy (the authors' code keeps that "
    "checkpoint). A run of this recipe reports that best epoch and the last epoch side by side, each row "
    "labelled, with the learning-rate schedule that produced them (the recipe's default is the schedule the "
    "authors' code defines; their released code, by a bug, trained at a constant 1.5e-6)."
)
BACKBONE_NOTE = (
    "Results of a run whose backbones start from random weights are not comparable with the paper's: the authors "
    "start the visual branch from the ImageNet-22k Swin-T checkpoint."
)


def _schedule(args) -> str:
    describe = getattr(args, "schedule_description", None)
    if describe is not None:
        return describe()
    return (f"{_name(args.lr_scheduler_type)} with {args.warmup_steps:g} warm-up "
            f"{'steps' if args.warmup_steps >= 1 else 'of the steps'}")


_RECIPE_FIELDS = (
    (
        "optimiser",
        lambda a: f"{_name(a.optim)} (betas {a.adam_beta1}, {a.adam_beta2}; weight decay {a.weight_decay})",
    ),
    ("learning rate", lambda a: f"{a.learning_rate:g}" + "".join(
        f"; {stream} fusion layers x{scale:g}" for stream, scale in (getattr(a, "fusion_learning_rate_scales", None)
                                                                     or {}).items() if scale != 1.0)),
    ("schedule", _schedule),
    ("gradient clipping", lambda a: f"max norm {a.max_grad_norm:g}" if a.max_grad_norm and a.max_grad_norm > 0
     else "none"),
    (
        "best epoch",
        lambda a: f"tracked by eval {a.metric_for_best_model} (reported beside the last epoch)"
        if a.metric_for_best_model else "not tracked",
    ),
    ("batch per device", lambda a: a.per_device_train_batch_size),
    ("gradient accumulation", lambda a: a.gradient_accumulation_steps),
    ("devices", lambda a: a.world_size),
    (
        "effective batch",
        lambda a: a.per_device_train_batch_size * a.gradient_accumulation_steps * a.world_size,
    ),
    ("epochs", lambda a: f"{a.num_train_epochs:g}" if a.max_steps <= 0 else f"{a.max_steps} steps"),
    ("precision", lambda a: "bf16" if a.bf16 else "fp16" if a.fp16 else "fp32"),
    ("seed", lambda a: a.seed),
)


def paper_metrics(key: str, label_names: list[str]) -> dict:
    """A published AV-CANet result as fractions, in the layout of `compute_emotion_metrics` (for printing)."""
    paper = PAPER_RESULTS[key]
    per_class = paper.get("per_class", {})
    return {
        "per_class_accuracy": {
            name: per_class[name] / 100 if name in per_class else None for name in label_names
        },
        "accuracy": paper["accuracy"] / 100,
        "wa_f1": paper["wa_f1"] / 100,
    }


# ---------------------------------------------------------------------------------------- Hub identifiers


def hub_repo_id(source) -> str | None:
    """The Hub repository `source` names, or None when it is a local file or folder, or no id at all.

    A Hub id is `namespace/name` (validated with `huggingface_hub`'s `validate_repo_id`) that is not a
    path on this machine; a folder of the Hub cache (`.../models--org--name/snapshots/<revision>`, or
    any path inside one) is the repository it caches. Everything else (`runs/balanced` when that folder
    exists, `resnet34.pth`, `/data/x`) is local.
    """
    if source is None:
        return None
    text = str(source)
    parts = Path(text).parts
    for index, part in enumerate(parts[:-1]):
        if part.startswith(("models--", "datasets--")) and parts[index + 1] == "snapshots":
            namespace_and_name = part.split("--")[1:]
            if len(namespace_and_name) == 2:
                return _valid_id("/".join(namespace_and_name))
    if text.count("/") != 1 or Path(text).expanduser().exists():
        return None
    return _valid_id(text)


def _valid_id(text: str) -> str | None:
    try:
        validate_repo_id(text)
    except HFValidationError:
        return None
    return text


def check_dataset_hub_id(value: str | None) -> str | None:
    """`--dataset_hub_id` as given, after checking it is a Hub dataset id (`namespace/name` or a legacy
    single name), not a local path; raises `ValueError` saying what to pass instead."""
    if value is None:
        return None
    try:
        validate_repo_id(value)
    except HFValidationError as error:
        raise ValueError(
            f"--dataset_hub_id {value!r} is not a Hub dataset id ({error}); give the id the dataset has on "
            "the Hub, e.g. Conna/eMotions"
        ) from error
    if Path(value).expanduser().exists():
        raise ValueError(
            f"--dataset_hub_id {value!r} is a local path; give the Hub id of the dataset it is a copy of "
            "(e.g. Conna/eMotions), or leave --dataset_hub_id out"
        )
    return value


def _source_name(source) -> str:
    """How a local starting point or dataset is named in the card: its last path component only."""
    text = str(source).rstrip("/\\")
    return Path(text).name or text


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).expanduser().exists()


# ---------------------------------------------------------------------------------------- sections


def _name(option) -> str:
    """An enum option of TrainingArguments as the string a user passes."""
    return getattr(option, "value", option)


def _table_rows(pairs) -> str:
    return "\n".join(f"| {key} | {value} |" for key, value in pairs)


def _recipe_rows(training_args, skip=()) -> str:
    if training_args is None:
        return "| recipe | no training run recorded |"
    return _table_rows((name, value_of(training_args)) for name, value_of in _RECIPE_FIELDS if name not in skip)


def _input_settings(config) -> dict:
    vision, audio = config.vision_config, config.audio_config
    return {"num_snippets": config.num_snippets, "frames_per_snippet": vision.num_frames,
            "image_size": vision.image_size, "num_mfcc": audio.num_mfcc, "mfcc_chunk_frames": audio.num_frames}


_MULTITASK_ROWS = {"lgf": "on, halves of W_f on the LGF outputs (the paper's)",
                   "encoder": "on, own heads on the encoder features F_v, F_a",
                   "both": "on, halves of W_f on the LGF outputs and own heads on the encoder features F_v, F_a"}


def _multitask(config) -> str:
    return _MULTITASK_ROWS[config.multitask_features] if config.use_multitask_loss else "off"


def _model_rows(config) -> str:
    gamma = ", ".join(f"{p} {g:g}" for p, g in config.polarity_gamma.items())
    inputs = _input_settings(config)
    vision, audio = config.vision_config, config.audio_config
    pairs = [
        ("modality", config.modality),
        ("fusion", config.fusion),
        ("loss", f"{config.loss_type} (γ: {gamma})" if config.loss_type == "ep_ce" else config.loss_type),
        ("multi-task loss", _multitask(config)),
        ("gradient modulation (OGM)", f"alpha {alpha:g}" if (alpha := getattr(config, "gradient_modulation_alpha", 0.0))
         else "off (the paper's)"),
        ("audio modality dropout", f"{dropout:g} of the videos' sound dropped in training"
         if (dropout := getattr(config, "audio_modality_dropout", 0.0)) else "off (the paper's)"),
        ("video feature dropout", f"{getattr(config, 'video_feature_dropout', 0.0):g} (before the projection)"),
        (
            "LGF LayerNorm",
            "query and keys/values" if getattr(config, "lgf_norm_context", True) else "query only (the authors')",
        ),
        (
            "LGF: LISF / GLCF",
            f"{config.use_lisf} / {config.use_glcf} (windows {list(config.lgf_window_sizes)})",
        ),
        ("visual branch", f"Video Swin, embed {vision.embed_dim}, depths {list(vision.depths)}, "
         + (f"convolutional stem of {stem} channels, {vision.stem_kernel_size}x{vision.stem_kernel_size}"
            if (stem := getattr(vision, "stem_channels", 0))
            else "linear patch embedding (the paper's)")),
        ("audio branch", f"ResNet, widths {list(audio.hidden_sizes)}, depths {list(audio.depths)}"),
        (
            "input",
            (
                f"{inputs['num_snippets']} snippets x {inputs['frames_per_snippet']} frames at "
                f"{inputs['image_size']}px; MFCC {inputs['mfcc_chunk_frames']} x {inputs['num_mfcc']} per snippet"
            ),
        ),
    ]
    return _table_rows(pairs)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _results_header(label_names: list[str], with_uar: bool) -> list[str]:
    columns = [PAPER_ABBREVIATIONS.get(name, name) for name in label_names]
    header = "| | " + " | ".join(columns) + " | ACC | WA-F1 |" + (" UAR |" if with_uar else "")
    rule = "|---" * (len(columns) + 3 + with_uar) + "|"
    return [header, rule]


def _paper_row(paper: dict, label_names: list[str], with_uar: bool) -> str:
    per_class = paper.get("per_class", {})
    theirs = [f"{per_class[name]:.2f}" if name in per_class else "-" for name in label_names]
    return (
        f"| AV-CANet, paper ({paper['name']}) | " + " | ".join(theirs)
        + f" | {paper['accuracy']:.2f} | {paper['wa_f1']:.2f} |" + (" - |" if with_uar else "")
    )


def _metrics_row(name: str, metrics: dict, label_names: list[str]) -> str:
    ours = [_percent(metrics["per_class_accuracy"].get(label)) for label in label_names]
    return (f"| {name} | " + " | ".join(ours) + f" | {_percent(metrics['accuracy'])} | "
            f"{_percent(metrics.get('wa_f1'))} | {_percent(metrics.get('uar'))} |")


def _paper_notes(paper: dict | None) -> list[str]:
    return ["", BALANCED_ROW_NOTE] if paper is not None and paper.get("note") == "balanced" else []


def _results_section(metrics: dict | None, label_names: list[str], paper: dict | None, split: str,
                     best: dict | None = None, schedule: str | None = None) -> str:
    if metrics is None:
        if paper is None:
            return "Not evaluated yet."
        return "\n".join([
            f"Not evaluated yet. The paper reports, for AV-CANet on {paper['name']} (in %):",
            "",
            *_results_header(label_names, with_uar=False),
            _paper_row(paper, label_names, with_uar=False),
            *_paper_notes(paper),
        ])
    rows = [_metrics_row(f"this model ({split})", metrics, label_names)]
    note = (
        "Per-class accuracy (recall), accuracy (ACC = WAR), support-weighted F1 (WA-F1) and unweighted "
        f"average recall (UAR), in %, on {metrics['num_samples']} videos. \"this model\" is the saved weights: "
        "the last epoch."
    )
    if best is not None:
        epoch = best.get("epoch")
        when = f"epoch {epoch:g}" if isinstance(epoch, (int, float)) else f"step {best.get('step')}"
        rows.append(_metrics_row(f"best epoch ({when}, {split})", best["metrics"], label_names))
        note += (
            f" \"best epoch\" is the per-epoch evaluation with the highest {best.get('metric', 'accuracy')}, the "
            "number the authors report (they keep the epoch with the best test accuracy); chosen on the split it is "
            "measured on, it is optimistic, and its weights are the kept checkpoint, not these."
        )
    if schedule:
        note += f" Learning-rate schedule: {schedule}."
    if paper is not None:
        rows.append(_paper_row(paper, label_names, with_uar=True))
    else:
        note += " The paper reports no number for this data, so there is no row to compare with."
    return "\n".join([note, "", *_results_header(label_names, with_uar=True), *rows, *_paper_notes(paper)])


def _training_data_section(dataset: str | None, dataset_config: str | None, dataset_id: str | None) -> str:
    config = f", config `{dataset_config}`" if dataset_config else ""
    if dataset_id is not None:
        return f"The Hub dataset [`{dataset_id}`](https://huggingface.co/datasets/{dataset_id}){config}."
    if dataset is None:
        return "No dataset was recorded for this run, so the metadata names none."
    if _looks_like_path(dataset):
        return (
            f"A local dataset folder, `{_source_name(dataset)}`{config}. It has no Hub id, so the metadata "
            "names no dataset; train with `--dataset_hub_id <namespace/name>` when the folder is a copy of "
            "a Hub dataset."
        )
    return f"{dataset}{config}. It is not on the Hub, so the metadata names no dataset."


def _starting_point_section(hub_ids: list[str], local: list[str]) -> str:
    if not hub_ids and not local:
        return f"No pretrained starting point was recorded for this run. It started from random weights. {BACKBONE_NOTE}"
    lines = [f"- [`{repo}`](https://huggingface.co/{repo}) (Hub)" for repo in hub_ids]
    lines += [f"- `{name}` (a local file or folder, not a Hub repository)" for name in local]
    note = (
        "Trained from these weights (the Hub ones are the card's `base_model`; local files are named here "
        "only):"
    )
    return "\n".join([note, "", *lines])


def _card_data(dataset_id, base_models, model_name, eval_results, tags) -> ModelCardData:
    return ModelCardData(
        library_name=LIBRARY_NAME,
        license=LICENSE,
        pipeline_tag=PIPELINE_TAG,
        tags=[*CARD_TAGS, *(tag for tag in (tags or []) if tag not in CARD_TAGS)],
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_models or None,
        base_model_relation="finetune" if base_models else None,
        model_name=model_name,
        eval_results=eval_results,
        inference=False,
    )


def _fill_template(card_data: ModelCardData, config, model_name: str, dataset_description: str,
                   model_reference: str, training_data: str, starting_point: str, recipe_rows: str,
                   results_section: str) -> str:
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    inputs = _input_settings(config)
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(
        card_data=card_data.to_yaml(),
        model_name=model_name,
        dataset_description=dataset_description,
        num_labels=len(label_names),
        label_list=", ".join(label_names),
        num_snippets=inputs["num_snippets"],
        frames_per_snippet=inputs["frames_per_snippet"],
        image_size=inputs["image_size"],
        num_mfcc=inputs["num_mfcc"],
        model_reference=model_reference,
        custom_task=CUSTOM_PIPELINE_TASK,
        training_data=training_data,
        starting_point=starting_point,
        recipe_rows=recipe_rows,
        model_rows=_model_rows(config),
        results_section=results_section,
    )


# ---------------------------------------------------------------------------------------- cards


def render_model_card(
    config,
    training_args=None,
    metrics: dict | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    split: str = "test",
    compare_with: str | None = None,
    model_name: str = "AV-CANet",
    model_reference: str | None = None,
    base_models: list[str] | None = None,
    tags: list[str] | None = None,
    dataset_hub_id: str | None = None,
    best: dict | None = None,
) -> str:
    """The model card (README.md) text: the template filled in, with Hub metadata (model-index) up front.

    `metrics` is a full `compute_emotion_metrics` result; `compare_with` is a key of `PAPER_RESULTS` (an
    eMotions variant or a public set) whose published AV-CANet numbers are shown beside ours. `dataset` is
    what the run read (a folder or a Hub id); `dataset_hub_id` (default: `training_args.dataset_hub_id`)
    is the Hub id of that data. `base_models` are the starting points as given (AV-CANet checkpoint,
    backbones): Hub ids go into `base_model`, local files and folders into the text. `model_reference`
    (default: `training_args.hub_model_id`, else its `output_dir`) is what the usage snippets load. `best` is
    `AVCANetTrainer.training_summary()["best"]`: the best epoch's row, labelled, beside `metrics` (the last epoch);
    the schedule that produced both is named from `training_args`.
    """
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    if compare_with is not None and compare_with not in PAPER_RESULTS:
        raise ValueError(
            f"model card: no paper result for {compare_with!r}; choose one of {sorted(PAPER_RESULTS)}"
        )
    paper = PAPER_RESULTS.get(compare_with)
    if dataset_hub_id is None:
        dataset_hub_id = getattr(training_args, "dataset_hub_id", None)
    dataset_id = check_dataset_hub_id(dataset_hub_id) or hub_repo_id(dataset)
    if model_reference is None:
        model_reference = (
            getattr(training_args, "hub_model_id", None) or getattr(training_args, "output_dir", None)
            or "path/to/this/model"
        )
    hub_ids, local = [], []
    for source in base_models or []:
        repo = hub_repo_id(source)
        target, value = (hub_ids, repo) if repo else (local, _source_name(source))
        if value not in target:
            target.append(value)
    shown_dataset = dataset_id or (_source_name(dataset) if dataset and _looks_like_path(dataset) else dataset)
    dataset_description = (
        " / ".join(part for part in (shown_dataset, dataset_config) if part) or "an unnamed dataset"
    )
    eval_results = None
    if metrics is not None and dataset_id is not None:
        eval_results = [
            EvalResult(
                task_type="video-classification",
                dataset_type=dataset_id,
                dataset_name=dataset_description,
                dataset_config=dataset_config,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=metric_name,
                metric_value=round(metrics[key], 4),
            )
            for key, metric_type, metric_name in (("accuracy", "accuracy", "ACC"), ("wa_f1", "f1", "WA-F1"))
        ]
    return _fill_template(
        _card_data(dataset_id, hub_ids, model_name, eval_results, tags),
        config,
        model_name=model_name,
        dataset_description=dataset_description,
        model_reference=str(model_reference),
        training_data=_training_data_section(dataset, dataset_config, dataset_id),
        starting_point=_starting_point_section(hub_ids, local),
        recipe_rows=_recipe_rows(training_args),
        results_section=_results_section(metrics, label_names, paper, split, best,
                                         _schedule(training_args) if training_args is not None else None),
    )


def write_model_card(output_dir: str | Path, config, **kwargs) -> Path:
    """Write `README.md` (the model card) into `output_dir`; keyword arguments as `render_model_card`."""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(config, **kwargs), encoding="utf-8")
    return path


def released_model_card(repo_id: str = RELEASED_REPO_ID) -> str:
    """The card of the released checkpoint: the paper's AV-CANet (default `AVCANetConfig`, the eMotions
    labels) trained on `Conna/eMotions`, config `all`, with the paper's recipe (the defaults of
    `AVCANetTrainingArguments`), its visual branch started as the authors start it. The results are the
    paper's Table 4 numbers, shown as the paper's: no metric of these weights is claimed, so the metadata
    holds no model-index. Kept in the repository as `model_card.md` (see the module docstring)."""
    from .configuration_avcanet import AVCANetConfig
    from .training.arguments import AVCANetTrainingArguments

    validate_repo_id(repo_id)
    config = AVCANetConfig()
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    recipe = AVCANetTrainingArguments(output_dir="avcanet-released", report_to="none")
    rows = [_paper_row(PAPER_RESULTS[key], label_names, with_uar=False) for key in ("balanced", "test", "all")]
    results = "\n".join([
        "The paper's AV-CANet on the test splits of the three eMotions variants (Wu et al., WWW '25, Table 4; "
        "per-class accuracy, ACC and WA-F1, in %). They are the numbers this configuration and recipe are "
        "meant to reproduce, quoted from the paper; they are not a measurement of these weights. "
        "`python examples/evaluate_model.py --model " + repo_id + " --dataset <prepared eMotions folder> "
        "--variant all` prints this checkpoint's row next to the paper's.",
        "",
        *_results_header(label_names, with_uar=False),
        *rows,
        "",
        BALANCED_ROW_NOTE,
        "",
        REPORTING_NOTE,
    ])
    starting_point = (
        "The visual branch starts, as in the authors' code, from the official 2D Swin-T ImageNet-22k "
        f"checkpoint of the Swin Transformer release (`{OFFICIAL_SWIN_2D_22K}`), inflated to 3D by "
        "`emotions_hf.load_pretrained_backbones`. That file is not a Hub model repository, so the card has "
        "no `base_model`. The paper does not say how the audio ResNet-34 is initialised. " + BACKBONE_NOTE
    )
    card_data = _card_data(RELEASED_DATASET, [], "AV-CANet (eMotions)", None, None)
    return _fill_template(
        card_data,
        config,
        model_name="AV-CANet (eMotions)",
        dataset_description=f"{RELEASED_DATASET} / {RELEASED_DATASET_CONFIG}",
        model_reference=repo_id,
        training_data=_training_data_section(RELEASED_DATASET, RELEASED_DATASET_CONFIG, RELEASED_DATASET),
        starting_point=starting_point,
        recipe_rows=_recipe_rows(recipe, skip=_UNSOURCED_RECIPE_ROWS),
        results_section=results,
    )


__all__ = [
    "CARD_TAGS",
    "LIBRARY_NAME",
    "PAPER_RESULTS",
    "PIPELINE_TAG",
    "RELEASED_REPO_ID",
    "check_dataset_hub_id",
    "hub_repo_id",
    "paper_metrics",
    "released_model_card",
    "render_model_card",
    "write_model_card",
]


if __name__ == "__main__":
    sys.stdout.write(released_model_card())
