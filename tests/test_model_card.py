"""The model card: Hub metadata read back with `huggingface_hub.ModelCard`, Hub ids only in `datasets:` and
`base_model:`, usage snippets that need nothing but `transformers`, and the released card kept current."""

import ast
import builtins
import re
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.pipelines import SUPPORTED_TASKS

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.model_card import (
    CARD_TAGS,
    CUSTOM_PIPELINE_TASK,
    PAPER_RESULTS,
    PIPELINE_TAG,
    RELEASED_DATASET,
    RELEASED_REPO_ID,
    check_dataset_hub_id,
    hub_repo_id,
    released_model_card,
    render_model_card,
    write_model_card,
)
from emotions_hf.training.arguments import AVCANetTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
# transformers' own pipeline tasks (importing emotions_hf adds "video-emotion" to the same registry)
BUILTIN_TASKS = {
    task for task, spec in SUPPORTED_TASKS.items()
    if getattr(spec["impl"], "__module__", str(spec["impl"])).startswith("transformers.")
}
METRICS = {
    "per_class_accuracy": {"Excitation": 0.5, "Fear": 0.25, "Neutral": 0.75, "Relaxation": 1.0, "Sadness": 0.0,
                           "Tension": 0.5},
    "accuracy": 0.61234,
    "wa_f1": 0.59876,
    "uar": 0.5,
    "num_samples": 40,
}


def _card(text: str, tmp_path: Path) -> ModelCard:
    """The card as the Hub tooling reads it back from a README.md."""
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    return ModelCard.load(path)


def _metadata_text(text: str) -> str:
    return text.split("---\n")[1]


def _check_common_metadata(data: ModelCardData):
    assert isinstance(data, ModelCardData)
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    # A tag whose transformers pipeline the Hub would advertise with `pipeline(tag, model=..., trust_remote_code)`
    # must be one that runs: no built-in transformers task does; the stored custom pipeline is picked by config.
    assert data.pipeline_tag == PIPELINE_TAG == "other"
    assert data.pipeline_tag not in BUILTIN_TASKS and CUSTOM_PIPELINE_TASK not in BUILTIN_TASKS
    assert data.to_dict().get("inference") is False and "widget" not in data.to_dict()
    assert set(CARD_TAGS) <= set(data.tags)


# ------------------------------------------------------------------------------------------ Hub ids


def test_hub_repo_id_keeps_hub_ids_and_drops_local_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "balanced").mkdir(parents=True)
    (tmp_path / "resnet34.pth").write_bytes(b"")
    assert hub_repo_id("microsoft/resnet-34") == "microsoft/resnet-34"
    assert hub_repo_id("runs/balanced") is None  # an existing local folder, though shaped like an id
    for local in ("resnet34.pth", "swin_tiny_patch4_window7_224_22k.pth", str(tmp_path / "resnet34.pth"),
                  "./runs/balanced", "~/weights/x.pth", "a/b/c", "not an/id", None):
        assert hub_repo_id(local) is None, local
    snapshot = tmp_path / "hub" / "models--microsoft--swin-tiny-patch4-window7-224" / "snapshots" / "0123abc"
    assert hub_repo_id(snapshot) == "microsoft/swin-tiny-patch4-window7-224"
    assert hub_repo_id(snapshot / "model.safetensors") == "microsoft/swin-tiny-patch4-window7-224"


def test_dataset_hub_id_is_checked_when_the_arguments_are_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_dataset_hub_id("Conna/eMotions") == "Conna/eMotions" and check_dataset_hub_id(None) is None
    args = AVCANetTrainingArguments(output_dir=str(tmp_path / "out"), dataset_hub_id="Conna/eMotions")
    assert args.dataset_hub_id == "Conna/eMotions"
    for bad in ("data/emotions/all", "Conna/eMotions.git", "me/not an id", "../emotions"):
        with pytest.raises(ValueError, match="--dataset_hub_id"):
            AVCANetTrainingArguments(output_dir=str(tmp_path / "out"), dataset_hub_id=bad)
    (tmp_path / "data" / "emotions").mkdir(parents=True)
    with pytest.raises(ValueError, match="local path"):
        AVCANetTrainingArguments(output_dir=str(tmp_path / "out"), dataset_hub_id="data/emotions")


# ------------------------------------------------------------------------------------------ run cards


def test_local_data_and_pth_backbones_stay_out_of_the_metadata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "prepared" / "emotions"
    folder.mkdir(parents=True)
    video = tmp_path / "weights" / "swin_tiny_patch4_window7_224_22k.pth"
    video.parent.mkdir()
    video.write_bytes(b"")
    snapshot = tmp_path / "cache" / "models--microsoft--resnet-34" / "snapshots" / "abc123"
    text = render_model_card(
        AVCANetConfig(), metrics=METRICS, dataset=str(folder), dataset_config="balanced",
        base_models=[str(video), str(snapshot)], model_reference="me/avcanet",
    )
    card = _card(text, tmp_path)
    _check_common_metadata(card.data)
    assert card.data.datasets is None  # a folder is no Hub dataset, and no path is written instead
    assert card.data.base_model == ["microsoft/resnet-34"] and card.data.base_model_relation == "finetune"
    assert card.data.eval_results is None  # a model-index needs a Hub dataset id as its dataset.type
    metadata = _metadata_text(text)
    assert str(tmp_path) not in metadata and ".pth" not in metadata and "prepared" not in metadata
    assert str(tmp_path) not in text  # the text names the folder and the file, never their paths
    assert "A local dataset folder, `emotions`, config `balanced`" in card.text
    assert "`swin_tiny_patch4_window7_224_22k.pth` (a local file or folder, not a Hub repository)" in card.text
    assert "| this model (test) | 50.00 | 25.00 | 75.00 | 100.00 | 0.00 | 50.00 | 61.23 | 59.88 | 50.00 |" in text


def test_hub_dataset_and_hub_checkpoint_are_the_metadata(tmp_path):
    args = AVCANetTrainingArguments(output_dir=str(tmp_path / "run"), dataset_hub_id="Conna/eMotions",
                                    hub_model_id="me/avcanet-emotions")
    path = write_model_card(
        tmp_path / "run", AVCANetConfig(), training_args=args, metrics=METRICS, dataset=str(tmp_path / "data"),
        dataset_config="all", compare_with="all",
        base_models=["someone/avcanet-emotions", "someone/avcanet-emotions", "microsoft/resnet-34"],
    )
    card = ModelCard.load(path)
    _check_common_metadata(card.data)
    assert card.data.datasets == ["Conna/eMotions"]
    assert card.data.base_model == ["someone/avcanet-emotions", "microsoft/resnet-34"]
    assert card.data.base_model_relation == "finetune"
    results = {result.metric_name: result for result in card.data.eval_results}
    assert set(results) == {"ACC", "WA-F1"}
    acc = results["ACC"]
    assert isinstance(acc, EvalResult) and acc.dataset_type == "Conna/eMotions" and acc.dataset_config == "all"
    assert acc.task_type == "video-classification" and acc.dataset_split == "test" and acc.metric_value == 0.6123
    assert results["WA-F1"].metric_type == "f1" and results["WA-F1"].metric_value == 0.5988
    assert 'pipeline(model="me/avcanet-emotions", trust_remote_code=True)' in card.text  # the hub_model_id
    assert "| AV-CANet, paper (eMotions) | 80.24 |" in card.text
    # the card round-trips through huggingface_hub unchanged (what an upload sees)
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()


def test_a_run_without_hub_ids_loads_from_its_output_dir(tmp_path):
    args = AVCANetTrainingArguments(output_dir=str(tmp_path / "run"))
    text = render_model_card(AVCANetConfig(), training_args=args, dataset="synthetic eMotions-shaped set",
                             dataset_config="all")
    card = _card(text, tmp_path)
    _check_common_metadata(card.data)
    assert card.data.datasets is None and card.data.base_model is None
    assert "base_model_relation" not in card.data.to_dict() and "base_model" not in _metadata_text(text)
    assert f'pipeline(model="{tmp_path / "run"}", trust_remote_code=True)' in text
    assert "synthetic eMotions-shaped set, config `all`. It is not on the Hub" in text
    assert "No pretrained starting point was recorded for this run." in text


# ------------------------------------------------------------------------------------------ snippets


def _python_blocks(text: str) -> list[str]:
    usage = text.split("## How to use", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", usage, flags=re.DOTALL)


def _check_runs_with_transformers_only(code: str, repo: str) -> set[str]:
    """Parse a snippet and check it names only what exists: imports from transformers (and torch, which
    transformers' models need), every imported name present there, every loader given the repo and
    trust_remote_code=True. Returns the names of the calls it makes."""
    tree = ast.parse(code)
    bound = set(dir(builtins))
    modules = {"transformers": transformers, "torch": torch}
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in modules, f"imports {node.module}, which a user without the package lacks"
            for alias in node.names:
                assert hasattr(modules[node.module], alias.name), f"{node.module} has no {alias.name}"
                imported[alias.asname or alias.name] = getattr(modules[node.module], alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name in modules, f"imports {alias.name}, which a user without the package lacks"
                imported[alias.asname or alias.name] = modules[alias.name]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    bound |= set(imported)
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in bound, f"{node.id} is used but never defined or imported"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported:
            assert hasattr(imported[node.value.id], node.attr), f"{node.value.id}.{node.attr} does not exist"
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            calls.add(name)
            if name in ("pipeline", "from_pretrained"):
                keywords = {k.arg: k.value for k in node.keywords}
                assert isinstance(keywords.get("trust_remote_code"), ast.Constant)
                assert keywords["trust_remote_code"].value is True
                model = keywords.get("model") if name == "pipeline" else node.args[0]
                assert isinstance(model, ast.Constant) and model.value == repo
                if name == "pipeline":  # no task: the config's custom_pipelines names it
                    assert not node.args
    return calls


@pytest.mark.parametrize("kind", ["released", "run"])
def test_usage_snippets_need_only_transformers(kind, tmp_path):
    repo = RELEASED_REPO_ID if kind == "released" else "me/avcanet-emotions"
    text = (released_model_card() if kind == "released"
            else render_model_card(AVCANetConfig(), model_reference=repo))
    remote_pipeline, remote_auto, package = _python_blocks(text)
    assert "pipeline" in _check_runs_with_transformers_only(remote_pipeline, repo)
    auto_calls = _check_runs_with_transformers_only(remote_auto, repo)
    assert {"from_pretrained", "processor", "model"} <= auto_calls
    assert "AutoModelForVideoClassification" in remote_auto and "AutoProcessor" in remote_auto
    # the package route is the second way, and says so by importing the package
    tree = ast.parse(package)
    assert any(isinstance(n, ast.Import) and n.names[0].name == "emotions_hf" for n in ast.walk(tree))
    assert f'pipeline("{CUSTOM_PIPELINE_TASK}", model="{repo}")' in package


# ------------------------------------------------------------------------------------------ released card


def test_released_card_file_is_what_the_generator_writes():
    """`model_card.md` is regenerated with `python -m emotions_hf.model_card > model_card.md`."""
    assert (ROOT / "model_card.md").read_text(encoding="utf-8") == released_model_card()


def test_released_card_metadata_and_paper_numbers(tmp_path):
    card = _card(released_model_card(), tmp_path)
    _check_common_metadata(card.data)
    assert card.data.datasets == [RELEASED_DATASET] == ["Conna/eMotions"]
    # the official 2D Swin .pth is no Hub repository: named in the text, not in base_model
    assert card.data.base_model is None and "swin_tiny_patch4_window7_224_22k.pth" in card.text
    # no metric of these weights is claimed: the paper's numbers are in the text, marked as the paper's
    assert card.data.eval_results is None
    assert "they are not a measurement of these weights" in card.text
    for key in ("balanced", "test", "all"):
        paper = PAPER_RESULTS[key]
        per_class = " | ".join(f"{value:.2f}" for value in paper["per_class"].values())
        row = f"| AV-CANet, paper ({paper['name']}) | {per_class} | {paper['accuracy']:.2f} | {paper['wa_f1']:.2f} |"
        assert row in card.text
    assert "| AV-CANet, paper (eMotions) | 80.24 | 59.16 | 63.39 | 63.43 | 54.07 | 40.14 | 67.79 | 67.32 |" in card.text
    assert "| effective batch | 32 |" in card.text and "| learning rate | 0.00015 |" in card.text
    assert "| devices |" not in card.text and "| precision |" not in card.text


def test_card_says_whether_the_model_was_trained_with_gradient_modulation():
    assert "| gradient modulation (OGM) | off (the paper's) |" in render_model_card(AVCANetConfig())
    assert "| gradient modulation (OGM) | alpha 0.3 |" in render_model_card(AVCANetConfig(gradient_modulation_alpha=0.3))


def test_card_says_whether_the_model_was_trained_with_audio_modality_dropout():
    assert "| audio modality dropout | off (the paper's) |" in render_model_card(AVCANetConfig())
    assert "| audio modality dropout | 0.3 of the videos' sound dropped in training |" in render_model_card(
        AVCANetConfig(audio_modality_dropout=0.3))


def test_card_says_how_the_video_swin_embeds_patches():
    assert ("| visual branch | Video Swin, embed 96, depths [2, 2, 6, 2], linear patch embedding (the paper's) |"
            in render_model_card(AVCANetConfig()))
    stem = AVCANetConfig(vision_config={"stem_channels": 16, "stem_kernel_size": 5})
    assert "depths [2, 2, 6, 2], convolutional stem of 16 channels, 5x5 |" in render_model_card(stem)


def test_card_says_what_the_multitask_loss_classifies():
    assert "| multi-task loss | on, halves of W_f on the LGF outputs (the paper's) |" in render_model_card(AVCANetConfig())
    encoder = render_model_card(AVCANetConfig(multitask_features="encoder"))
    assert "| multi-task loss | on, own heads on the encoder features F_v, F_a |" in encoder
    both = render_model_card(AVCANetConfig(multitask_features="both"))
    assert "| multi-task loss | on, halves of W_f on the LGF outputs and own heads on the encoder features F_v, F_a |" \
        in both
    assert "| multi-task loss | off |" in render_model_card(AVCANetConfig(use_multitask_loss=False))
