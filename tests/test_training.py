import concurrent.futures
import fnmatch
import json
import re
import types
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from presets import SMALL_CONFIG
from without_package import HUB_ROUTES, run_without_package

from emotions_hf.configuration_avcanet import CROSS_MODAL_SETTINGS_OFF, AVCANetConfig
from emotions_hf.data.synthetic import generate
from emotions_hf.errors import VideoReadError
from emotions_hf.labels import EMOTIONS
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.training import (
    AVCANetDataCollator,
    AVCANetTrainer,
    AVCANetTrainingArguments,
    last_complete_checkpoint,
    sample_seed,
)

VISUAL_NO_DROPOUT = {"modality": "visual", **CROSS_MODAL_SETTINGS_OFF, "lgf_dropout": 0.0, "drop_path_rate": 0.0}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """12 synthetic videos (two per class) as dataset rows, and one row whose file is not a video."""
    root = tmp_path_factory.mktemp("clips")
    source = generate(root / "source", videos_per_class=2, layout="csv", seed=0)
    rows = [
        {
            "video": str(source.root / v.relative_path),
            "label": EMOTIONS.label2id[v.label],
            "video_id": v.video_id,
        }
        for v in source.videos
    ]
    bad = root / "bad.mp4"
    bad.write_bytes(b"this is not a video at all")
    return rows, {"video": str(bad), "label": 0, "video_id": "bad-one"}


def small_model(**overrides):
    torch.manual_seed(0)
    return AVCANetForVideoClassification(AVCANetConfig(**{**SMALL_CONFIG, **overrides}))


def training_args(tmp_path, **overrides):
    settings = {
        "output_dir": str(tmp_path / "run"),
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "eval_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
    }
    settings.update(overrides)
    return AVCANetTrainingArguments(**settings)


def item(row, index, epoch=0, training=True):
    return {"row": row, "index": index, "epoch": epoch, "training": training}


def test_sample_seed_depends_on_seed_epoch_and_index():
    assert sample_seed(1, 0, 5) == sample_seed(1, 0, 5)
    assert len({sample_seed(1, 0, 5), sample_seed(2, 0, 5), sample_seed(1, 1, 5), sample_seed(1, 0, 6)}) == 4


def test_augmentation_is_seeded_per_sample_not_per_batch(clips):
    rows, _ = clips
    collator = AVCANetDataCollator(AVCANetProcessor.from_model_config(AVCANetConfig(**SMALL_CONFIG)), seed=1)
    alone = collator([item(rows[3], 3)])
    in_a_batch = collator([item(rows[0], 0), item(rows[3], 3)])
    torch.testing.assert_close(alone["pixel_values"][0], in_a_batch["pixel_values"][1], rtol=0, atol=0)
    next_epoch = collator([item(rows[3], 3, epoch=1)])
    assert not torch.equal(alone["pixel_values"], next_epoch["pixel_values"])
    assert in_a_batch["labels"].tolist() == [rows[0]["label"], rows[3]["label"]]
    assert in_a_batch["skipped_videos"] == []


def test_collator_drops_an_unreadable_video_or_stops(clips):
    rows, bad = clips
    processor = AVCANetProcessor.from_model_config(AVCANetConfig(**SMALL_CONFIG))
    batch = AVCANetDataCollator(processor)([item(rows[0], 0), item(bad, 1), item(rows[1], 1)])
    assert batch["pixel_values"].shape[0] == batch["labels"].shape[0] == 2
    assert len(batch["skipped_videos"]) == 1 and "bad-one" in batch["skipped_videos"][0]
    with pytest.raises(VideoReadError, match="bad.mp4"):
        AVCANetDataCollator(processor, skip_bad_videos=False)([item(rows[0], 0), item(bad, 1)])


def test_loss_weighs_every_sample_equally_across_uneven_accumulation_steps(tmp_path):
    """Micro-batches of 3 and 1 videos (e.g. one dropped) must give the gradient of the mean over all 4."""
    model = small_model(**VISUAL_NO_DROPOUT)
    c, vision = model.config, model.config.vision_config
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(
        4, c.num_snippets, vision.num_frames, 3, vision.image_size, vision.image_size, generator=generator
    )
    labels = torch.tensor([0, 3, 5, 1])
    reference = model(pixel_values=pixels, labels=labels).loss
    expected = torch.autograd.grad(reference, [p for p in model.parameters() if p.requires_grad])

    trainer = AVCANetTrainer(
        model=model,
        args=training_args(tmp_path, gradient_accumulation_steps=2),
        data_collator=lambda rows: rows,
    )
    model.zero_grad()
    for part in (slice(0, 3), slice(3, 4)):
        inputs = {"pixel_values": pixels[part], "labels": labels[part], "skipped_videos": []}
        trainer.training_step(model, inputs, num_items_in_batch=torch.tensor(4))
    for grad, want in zip((p.grad for p in model.parameters() if p.requires_grad), expected):
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-6)


def test_a_micro_batch_with_only_bad_videos_still_touches_every_parameter(tmp_path):
    model = small_model()
    # max_unreadable_fraction=1: a first batch of only unreadable videos would otherwise stop the run
    args = training_args(tmp_path, max_unreadable_fraction=1.0)
    trainer = AVCANetTrainer(model=model, args=args, data_collator=lambda rows: rows)
    model.zero_grad()
    empty = {"labels": torch.zeros(0, dtype=torch.long), "skipped_videos": ["x"]}
    loss = trainer.training_step(model, empty, num_items_in_batch=torch.tensor(4))
    assert loss.item() == 0.0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and not g.any() for g in grads)


def test_training_goes_on_past_a_bad_video_and_logs_losses_and_metrics(clips, tmp_path, caplog):
    rows, bad = clips
    model = small_model()
    processor = AVCANetProcessor.from_model_config(model.config)
    args = training_args(tmp_path, eval_strategy="epoch")
    trainer = AVCANetTrainer(
        model=model, args=args, train_dataset=rows + [bad], eval_dataset=rows[:6], processing_class=processor
    )
    trainer.train()
    train_logs = [log for log in trainer.state.log_history if "loss" in log]
    assert train_logs[-1]["skipped_videos"] == 1
    assert all({"fused_loss", "visual_loss", "audio_loss"} <= log.keys() for log in train_logs)
    assert "bad-one" in caplog.text
    evaluation = Path(args.output_dir) / "evaluation"
    step = trainer.state.global_step
    saved = json.loads((evaluation / f"eval-step-{step}_metrics.json").read_text())
    assert saved["num_samples"] == 6 and len(saved["confusion_matrix"]) == 6
    assert (evaluation / f"eval-step-{step}_confusion_matrix.png").stat().st_size > 0
    assert trainer.state.log_history[-2]["eval_accuracy"] == pytest.approx(saved["accuracy"])

    strict = AVCANetTrainer(
        model=small_model(),
        args=training_args(tmp_path, skip_bad_videos=False),
        train_dataset=[bad] + rows,
        processing_class=processor,
    )
    with pytest.raises(VideoReadError, match="bad.mp4"):
        strict.train()


def test_predict_keeps_the_branch_logits_with_a_row_for_each_unreadable_video(clips, tmp_path):
    """`predict(..., ignore_keys=LOSS_TERMS)` keeps the visual and audio logit terms beside the fused logits (what
    bench/learnability.py reads); an unreadable video still gets one placeholder row in each, left out of the
    metrics."""
    from emotions_hf.training.trainer import LOSS_TERMS

    rows, bad = clips
    model = small_model()
    trainer = AVCANetTrainer(model=model, args=training_args(tmp_path, max_unreadable_fraction=0.5),
                             processing_class=AVCANetProcessor.from_model_config(model.config))
    prediction = trainer.predict(rows[:6] + [bad], ignore_keys=list(LOSS_TERMS))
    fused, visual, audio = prediction.predictions
    assert fused.shape == visual.shape == audio.shape == (7, 6)
    assert not fused[6].any() and not visual[6].any() and not audio[6].any()
    labels = prediction.label_ids
    assert labels[6] == -100
    assert prediction.metrics["test_accuracy"] == pytest.approx(np.mean(fused[:6].argmax(-1) == labels[:6]))
    np.testing.assert_allclose(fused[:6], (visual + audio)[:6] + model.head.classifier.bias.detach().numpy(), atol=1e-5)


def _write_checkpoint(folder: Path, state: str | None, weights: bool = True):
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    _write_checkpoint(tmp_path / "checkpoint-2", '{"global_step": 2}')
    _write_checkpoint(tmp_path / "checkpoint-10", '{"global_step": 10}')
    _write_checkpoint(tmp_path / "checkpoint-12", '{"global_st')  # killed while writing the state
    _write_checkpoint(tmp_path / "checkpoint-14", None)  # killed before the state
    _write_checkpoint(tmp_path / "checkpoint-16", '{"global_step": 16}', weights=False)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert last_complete_checkpoint(tmp_path / "checkpoint-2") is None

    trainer = AVCANetTrainer(
        model=small_model(), args=training_args(tmp_path), data_collator=lambda rows: rows, train_dataset=[]
    )
    with pytest.raises(ValueError, match="checkpoint-12: not a complete checkpoint"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-12"))


class FakeHub:
    """Stands in for the Hub: records each upload_folder call with the files the folder held at the time."""

    def __init__(self, monkeypatch):
        self.repos, self.uploads = [], []
        monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", self.upload_folder)

    def create_repo(self, repo_id, **kwargs):
        self.repos.append(repo_id)
        return types.SimpleNamespace(repo_id=repo_id)

    def upload_folder(
        self, *, repo_id, folder_path, path_in_repo=None, ignore_patterns=None, run_as_future=False, **kwargs
    ):
        folder = Path(folder_path)
        files = {}
        for path in folder.rglob("*"):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and not any(
                fnmatch.fnmatch(name.split("/")[0], p) for p in ignore_patterns or []
            ):
                files[name] = path.read_bytes()
        self.uploads.append({"repo_id": repo_id, "path_in_repo": path_in_repo, "files": files})
        future = concurrent.futures.Future()
        future.set_result(None)
        return future if run_as_future else types.SimpleNamespace(commit_url="fake")


def test_push_to_hub_sends_weights_processor_code_and_card_while_training(clips, tmp_path, monkeypatch):
    hub = FakeHub(monkeypatch)
    rows, _ = clips
    model = small_model()
    args = training_args(
        tmp_path,
        push_to_hub=True,
        hub_model_id="someone/avcanet-test",
        save_strategy="epoch",
        eval_strategy="epoch",
    )
    trainer = AVCANetTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        eval_dataset=rows[:6],
        processing_class=AVCANetProcessor.from_model_config(model.config),
        model_card_kwargs={"dataset": "synthetic", "dataset_config": "all"},
    )
    trainer.train()
    assert hub.repos == ["someone/avcanet-test"]
    during_training = [u for u in hub.uploads if u["path_in_repo"] is None]
    checkpoints = [u for u in hub.uploads if u["path_in_repo"] == "last-checkpoint"]
    assert during_training and checkpoints, (
        "hub_strategy='checkpoint' pushes the model and the last checkpoint"
    )
    pushed = during_training[0]["files"]
    config = json.loads(pushed["config.json"])
    assert config["auto_map"] == {
        "AutoConfig": "configuration_avcanet.AVCANetConfig",
        "AutoModel": "modeling_avcanet.AVCANetModel",
        "AutoModelForVideoClassification": "modeling_avcanet.AVCANetForVideoClassification",
    }
    assert config["custom_pipelines"]["video-emotion"]["impl"] == "pipeline_video_emotion.VideoEmotionPipeline"
    for name in (
        "model.safetensors",
        "processor_config.json",
        "modeling_avcanet.py",
        "configuration_avcanet.py",
        "processing_avcanet.py",
        "pipeline_video_emotion.py",
        "README.md",
    ):
        assert name in pushed, name
    assert not any(name.endswith((".bin", ".pt", ".pth")) and name != "training_args.bin" for name in pushed)
    card = pushed["README.md"].decode()
    assert "academic research only" in card and "| this model (eval) |" in card
    assert {"optimizer.pt", "trainer_state.json", "model.safetensors"} <= checkpoints[0]["files"].keys()

    trainer.push_to_hub(commit_message="End of training")
    final = hub.uploads[-1]["files"]
    assert not any(name.startswith("checkpoint-") for name in final)
    assert "| this model (eval) |" in final["README.md"].decode()
    # The repo as the Hub now holds it serves every route to someone without this package.
    repo = tmp_path / "hub-repo"
    for name, content in final.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content)
    stdout = run_without_package(tmp_path, HUB_ROUTES, repo, rows[0]["video"])
    assert "HUB-ROUTES-OK" in stdout
    # and the card's snippets for such a user run as written (the repo id and the video being ours)
    card = final["README.md"].decode()
    snippets = [block for block in re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)
                if "emotions_hf" not in block]
    assert len(snippets) == 2
    for snippet in snippets:
        code = snippet.replace("someone/avcanet-test", str(repo)).replace("my_video.mp4", rows[0]["video"])
        assert run_without_package(tmp_path, code).strip()
