"""Fill `model_card.md` from what a training run knows: config, recipe, data, results beside the paper's."""

from __future__ import annotations

from pathlib import Path
from string import Template

from huggingface_hub import EvalResult, ModelCardData

from .metrics import PAPER_ABBREVIATIONS

TEMPLATE_PATH = Path(__file__).resolve().parent / "model_card.md"

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

_RECIPE_FIELDS = (
    (
        "optimiser",
        lambda a: f"{_name(a.optim)} (betas {a.adam_beta1}, {a.adam_beta2}; weight decay {a.weight_decay})",
    ),
    ("learning rate", lambda a: f"{a.learning_rate:g}"),
    (
        "schedule",
        lambda a: (
            f"{_name(a.lr_scheduler_type)} with {a.warmup_steps:g} warm-up "
            f"{'steps' if a.warmup_steps >= 1 else 'of the steps'}"
        ),
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


def _name(option) -> str:
    """An enum option of TrainingArguments as the string a user passes."""
    return getattr(option, "value", option)


def _table_rows(pairs) -> str:
    return "\n".join(f"| {key} | {value} |" for key, value in pairs)


def _model_rows(config) -> str:
    gamma = ", ".join(f"{p} {g:g}" for p, g in config.polarity_gamma.items())
    pairs = [
        ("modality", config.modality),
        ("fusion", config.fusion),
        ("loss", f"{config.loss_type} (γ: {gamma})" if config.loss_type == "ep_ce" else config.loss_type),
        ("multi-task loss", config.use_multitask_loss),
        (
            "LGF: LISF / GLCF",
            f"{config.use_lisf} / {config.use_glcf} (windows {list(config.lgf_window_sizes)})",
        ),
        ("visual branch", f"Video Swin, embed {config.embed_dim}, depths {list(config.depths)}"),
        (
            "audio branch",
            f"ResNet, widths {list(config.audio_hidden_sizes)}, depths {list(config.audio_depths)}",
        ),
        (
            "input",
            (
                f"{config.num_snippets} snippets x {config.frames_per_snippet} frames at "
                f"{config.image_size}px; MFCC {config.mfcc_chunk_frames} x {config.num_mfcc} per snippet"
            ),
        ),
    ]
    return _table_rows(pairs)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _results_section(metrics: dict | None, label_names: list[str], paper: dict | None, split: str) -> str:
    if metrics is None:
        return "Not evaluated yet."
    columns = [PAPER_ABBREVIATIONS.get(name, name) for name in label_names]
    header = "| | " + " | ".join(columns) + " | ACC | WA-F1 | UAR |"
    rule = "|---" * (len(columns) + 4) + "|"
    ours = [_percent(metrics["per_class_accuracy"].get(name)) for name in label_names]
    rows = [
        f"| this model ({split}) | " + " | ".join(ours) + f" | {_percent(metrics['accuracy'])} | "
        f"{_percent(metrics['wa_f1'])} | {_percent(metrics['uar'])} |"
    ]
    if paper is not None:
        per_class = paper.get("per_class", {})
        theirs = [f"{per_class[name]:.2f}" if name in per_class else "-" for name in label_names]
        rows.append(
            f"| AV-CANet, paper ({paper['name']}) | "
            + " | ".join(theirs)
            + f" | {paper['accuracy']:.2f} | {paper['wa_f1']:.2f} | - |"
        )
    note = (
        "Per-class accuracy (recall), accuracy (ACC = WAR), support-weighted F1 (WA-F1) and unweighted "
        f"average recall (UAR), in %, on {metrics['num_samples']} videos."
    )
    if paper is None:
        note += " The paper reports no number for this data, so there is no row to compare with."
    return "\n".join([note, "", header, rule, *rows])


def render_model_card(
    config,
    training_args=None,
    metrics: dict | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    split: str = "test",
    compare_with: str | None = None,
    model_name: str = "AV-CANet",
    model_reference: str = "path/to/this/model",
    base_models: list[str] | None = None,
    tags: list[str] | None = None,
) -> str:
    """The model card (README.md) text: the template filled in, with Hub metadata (model-index) up front.

    `metrics` is a full `compute_emotion_metrics` result; `compare_with` is a key of `PAPER_RESULTS` (an
    eMotions variant or a public set) whose published AV-CANet numbers are shown beside ours.
    """
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    if compare_with is not None and compare_with not in PAPER_RESULTS:
        raise ValueError(
            f"model card: no paper result for {compare_with!r}; choose one of {sorted(PAPER_RESULTS)}"
        )
    paper = PAPER_RESULTS.get(compare_with)
    dataset_description = (
        " / ".join(part for part in (dataset, dataset_config) if part) or "an unnamed dataset"
    )
    eval_results = None
    if metrics is not None:
        eval_results = [
            EvalResult(
                task_type="video-classification",
                dataset_type=dataset or "unknown",
                dataset_name=dataset_description,
                dataset_config=dataset_config,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=metric_name,
                metric_value=round(metrics[key], 4),
            )
            for key, metric_type, metric_name in (("accuracy", "accuracy", "ACC"), ("wa_f1", "f1", "WA-F1"))
        ]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag="video-classification",
        tags=[
            "video-emotion",
            "audio-visual",
            "emotion-recognition",
            "avcanet",
            "emotions-hf",
            *(tags or []),
        ],
        datasets=[dataset] if dataset else None,
        base_model=base_models or None,
        model_name=model_name,
        eval_results=eval_results,
    )
    recipe = (
        "No training run recorded."
        if training_args is None
        else _table_rows((name, value_of(training_args)) for name, value_of in _RECIPE_FIELDS)
    )
    template = Template(TEMPLATE_PATH.read_text())
    return template.substitute(
        card_data=card_data.to_yaml(),
        model_name=model_name,
        dataset_description=dataset_description,
        num_labels=len(label_names),
        label_list=", ".join(label_names),
        num_snippets=config.num_snippets,
        frames_per_snippet=config.frames_per_snippet,
        image_size=config.image_size,
        num_mfcc=config.num_mfcc,
        model_reference=model_reference,
        recipe_rows=recipe,
        model_rows=_model_rows(config),
        results_section=_results_section(metrics, label_names, paper, split),
    )


def write_model_card(output_dir: str | Path, config, **kwargs) -> Path:
    """Write `README.md` (the model card) into `output_dir`; keyword arguments as `render_model_card`."""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(config, **kwargs))
    return path


__all__ = ["PAPER_RESULTS", "paper_metrics", "render_model_card", "write_model_card"]
