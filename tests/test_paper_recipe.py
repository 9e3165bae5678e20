"""Issue 14, parts 2 and 3: the authors' recipe (paper + released code) is the default, each difference a switch.

One test (or group) per item: dropout before the projection, crops, brightness, LayerNorm, gradient clipping, the lr
schedule, best/last reporting, the balanced split check, and pretrained backbones by default.
"""

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from presets import SMALL_CONFIG, SMALL_PROCESSOR, SMALL_TRAINING

from emotions_hf import AVCANetConfig
from emotions_hf.data.variants import (
    TABLE2_COUNTS,
    TABLE4_BALANCED_AVCANET,
    TABLE4_BALANCED_CHECKED_ROWS,
    held_out_count,
    variant_counts,
)
from emotions_hf.model_card import BACKBONE_NOTE, BALANCED_ROW_NOTE, released_model_card, render_model_card
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification, LGFBlock
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.training import AVCANetTrainer, AVCANetTrainingArguments
from emotions_hf.training.schedule import PaperSchedule
from emotions_hf.video_processing_avcanet import MULTI_SCALE_CROP_SCALES, AVCANetVideoProcessor
from emotions_hf.video_transforms import Augmentation, corner_crop, resize, to_float

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script is executed
    spec.loader.exec_module(module)
    return module


def small_config(**overrides) -> AVCANetConfig:
    return AVCANetConfig(**{**SMALL_CONFIG, **overrides})


def small_inputs(config: AVCANetConfig, batch: int = 2):
    torch.manual_seed(0)
    vision, audio = config.vision_config, config.audio_config
    pixels = torch.randn(batch, config.num_snippets, vision.num_frames, 3, vision.image_size, vision.image_size)
    features = torch.randn(batch, config.num_snippets, audio.num_frames, audio.num_mfcc)
    return pixels, features


def paper_args(tmp_path, **overrides) -> AVCANetTrainingArguments:
    settings = {"eval_strategy": "no", "save_strategy": "no", **overrides}  # no datasets in these tests
    return AVCANetTrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True, **settings)


# ---- 1. Dropout(0.5) on the pooled Swin features, before the 768 -> 512 projection ----


def test_video_feature_dropout_is_the_authors_and_sits_before_the_projection():
    assert AVCANetConfig().video_feature_dropout == 0.5
    model = AVCANetForVideoClassification(small_config(video_feature_dropout=0.5)).avcanet
    pixels, _ = small_inputs(model.config)
    seen = {}
    model.video_encoder.register_forward_hook(lambda m, i, out: seen.__setitem__("pooled", out.pooler_output))
    model.video_projection.register_forward_hook(lambda m, inputs, out: seen.__setitem__("projected", inputs[0]))
    model.train()
    model.encode_video(pixels)
    pooled, projected = seen["pooled"], seen["projected"]
    dropped = projected == 0
    assert 0.3 < dropped.float().mean().item() < 0.7  # about half of the pooled features are dropped
    torch.testing.assert_close(projected[~dropped], 2 * pooled[~dropped])  # the rest scaled by 1 / (1 - 0.5)
    model.eval()
    model.encode_video(pixels)
    torch.testing.assert_close(seen["projected"], seen["pooled"])  # no dropout at evaluation
    with pytest.raises(ValueError, match="video_feature_dropout"):
        AVCANetConfig(video_feature_dropout=1.0)


# ---- 2. Crops: the full shorter side at a corner or the centre ----


def test_training_crop_is_the_full_shorter_side_by_default():
    processor = AVCANetVideoProcessor(image_size=32)
    assert processor.crop_scales == (1.0,)
    assert processor.training_short_side() == 32  # nothing is decoded larger for a smaller crop
    rng = np.random.default_rng(0)
    draws = [Augmentation.draw(rng, processor.crop_scales, 0.3, 20.0, processor.brightness) for _ in range(50)]
    assert {d.scale for d in draws} == {1.0}
    frames = torch.randint(0, 256, (2, 3, 48, 80), dtype=torch.uint8)
    expected = {"tl": frames[..., :, :48], "br": frames[..., :, 32:], "c": frames[..., :, 16:64]}
    for position, square in expected.items():  # the 48 x 48 square of the 48-pixel side, resized
        torch.testing.assert_close(corner_crop(frames, 32, 1.0, position), resize(to_float(square), 32, 32))
    multi = AVCANetVideoProcessor(image_size=32, crop_scales=MULTI_SCALE_CROP_SCALES)
    assert min(multi.crop_scales) == 0.5 and multi.training_short_side() == 64


# ---- 3. Brightness: a factor drawn from U(0.5, 1.0) ----


def test_brightness_factor_is_drawn_from_the_authors_range():
    processor = AVCANetVideoProcessor()
    assert processor.brightness == (0.5, 1.0)
    rng = np.random.default_rng(1)
    factors = [d.amount for d in (Augmentation.draw(rng, (1.0,), 1.0, 20.0, processor.brightness)
                                  for _ in range(600)) if d.kind == "brightness"]
    assert min(factors) >= 0.5 and max(factors) <= 1.0
    assert min(factors) < 0.55 and max(factors) > 0.95  # spread over the whole range
    # a single number stays the symmetric jitter processors saved earlier hold (ours was ±0.2)
    assert AVCANetVideoProcessor(brightness=0.2).brightness == pytest.approx((0.8, 1.2))
    with pytest.raises(ValueError, match="brightness"):
        AVCANetVideoProcessor(brightness=(1.0, 0.5))


def test_saved_processor_keeps_its_brightness_range(tmp_path):
    AVCANetVideoProcessor(brightness=(0.6, 0.9)).save_pretrained(tmp_path)
    assert AVCANetVideoProcessor.from_pretrained(tmp_path).brightness == (0.6, 0.9)


# ---- 4. LayerNorm: the query only, keys/values raw ----


def test_lisf_attention_normalises_the_query_only_by_default():
    assert AVCANetConfig().lgf_norm_context is False
    torch.manual_seed(0)
    config = small_config(lgf_norm_context=False, lgf_dropout=0.0)
    block = LGFBlock(config, cross_modal=True).eval()
    assert block.context_norm is None
    hidden, context = torch.randn(2, 4, 32), torch.randn(2, 4, 32)
    # raw keys/values: scaling the context changes the message (a LayerNorm on it would cancel the scale)
    assert not torch.allclose(block(hidden, context), block(hidden, 3 * context), atol=1e-4)
    normed = LGFBlock(small_config(lgf_norm_context=True, lgf_dropout=0.0), cross_modal=True).eval()
    torch.testing.assert_close(normed(hidden, context), normed(hidden, 3 * context), atol=1e-4, rtol=1e-4)
    # self-attention: keys/values are the raw input, the query its LayerNorm
    seen = {}
    self_block = LGFBlock(config, cross_modal=False).eval()
    self_block.attention.register_forward_hook(lambda m, inputs, out: seen.update(q=inputs[0], kv=inputs[1]))
    self_block(hidden)
    torch.testing.assert_close(seen["kv"], hidden)
    torch.testing.assert_close(seen["q"], self_block.query_norm(hidden))


def test_configs_saved_before_the_switches_keep_their_model(tmp_path):
    """A config without `lgf_norm_context` / `video_feature_dropout` describes the older model (its weights hold
    `context_norm`), so it loads as that model; a new one saves and reloads the authors' values."""
    legacy = small_config(lgf_norm_context=True, video_feature_dropout=0.0).to_dict()
    for key in ("lgf_norm_context", "video_feature_dropout"):
        legacy.pop(key)
    loaded = AVCANetConfig.from_dict(legacy)
    assert (loaded.lgf_norm_context, loaded.video_feature_dropout) == (True, 0.0)
    small_config(lgf_norm_context=False, video_feature_dropout=0.5).save_pretrained(tmp_path)
    reloaded = AVCANetConfig.from_pretrained(tmp_path)
    assert (reloaded.lgf_norm_context, reloaded.video_feature_dropout) == (False, 0.5)


# ---- 5. No gradient clipping ----


def test_no_gradient_clipping_by_default(tmp_path):
    assert paper_args(tmp_path).max_grad_norm == 0.0  # the Trainer clips only when max_grad_norm > 0
    assert SMALL_TRAINING["max_grad_norm"] == 1.0  # the CPU demo keeps its own, explicitly


def test_one_learning_rate_by_default_and_fusion_scales_as_a_switch(tmp_path):
    """The authors train every layer at one rate; `fusion_learning_rate_scales` (issue 14) gives each stream of
    fusion layers (video, audio, shared) its own fraction of it, in every weight-decay group, through the whole
    schedule."""
    model = AVCANetForVideoClassification(small_config())
    processor = AVCANetProcessor.from_model_config(model.config)
    lr = paper_args(tmp_path).learning_rate

    def trainer_with(**overrides):
        trainer = AVCANetTrainer(model=model, processing_class=processor,
                                 args=paper_args(tmp_path, lr_scheduler_type="cosine", **overrides))
        trainer.create_optimizer_and_scheduler(num_training_steps=20)
        return trainer

    assert paper_args(tmp_path).fusion_learning_rate_scales == {}
    assert {group["initial_lr"] for group in trainer_with().optimizer.param_groups} == {lr}
    streams = {stream: {name for name, p in model.named_parameters() if id(p) in {id(q) for q in parameters}}
               for stream, parameters in model.fusion_parameter_groups().items()}
    assert all(".video." in name for name in streams["video"]) and all(".audio." in name for name in streams["audio"])
    assert any(".self_attention.video." in name for name in streams["video"])
    assert any(name.startswith("avcanet.glcf.projection.audio") for name in streams["audio"])
    assert any(".cross_attention." in name for name in streams["shared"]) and "head.classifier.weight" in streams[
        "shared"]
    after_encoders = {name for name, _ in model.named_parameters() if name.startswith(("avcanet.lisf",
                                                                                         "avcanet.glcf", "head"))}
    assert set.union(*streams.values()) == after_encoders and sum(map(len, streams.values())) == len(after_encoders)

    trainer = trainer_with(fusion_learning_rate_scales='{"video": 0.3, "shared": 0.5}')  # JSON, as on the command line
    groups = trainer.optimizer.param_groups  # initial_lr: the schedule's base rate (lr is 0 in the warm-up)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter, once
    rate_of = {id(p): group["initial_lr"] for group in groups for p in group["params"]}
    for name, parameter in model.named_parameters():
        expected = 0.3 if name in streams["video"] else 0.5 if name in streams["shared"] else 1.0
        assert rate_of[id(parameter)] == pytest.approx(expected * lr), name
    assert {group["weight_decay"] for group in groups if group["initial_lr"] < lr} == {0.02, 0.0}
    for _ in range(10):  # the schedule scales every group alike
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    rates = trainer.lr_scheduler.get_last_lr()
    assert min(rates) == pytest.approx(0.3 * max(rates)) and max(rates) < lr
    assert paper_args(tmp_path, fusion_learning_rate_scales="{'audio': 2}").fusion_learning_rate_scales == {
        "audio": 2.0}  # argparse's str() of a dict default
    for wrong in ({"visual": 0.3}, {"video": 0.0}, "{video: 0.3}"):
        with pytest.raises(ValueError, match="fusion_learning_rate_scales"):
            paper_args(tmp_path, fusion_learning_rate_scales=wrong)
    with pytest.raises(TypeError, match="fusion_learning_rate_scales"):
        paper_args(tmp_path, fusion_learning_rate_scales="[0.3]")


# ---- 6. The learning-rate schedule the authors meant ----


def test_paper_schedule_values_at_key_points():
    schedule = PaperSchedule(num_epochs=30)
    assert (schedule.warmup_epochs, schedule.flat_epochs) == (1.5, 1.5)
    lr = 1.5e-4
    assert schedule.multiplier(0.0, lr) == pytest.approx(0.1)  # warm-up starts at 0.1 lr
    assert schedule.multiplier(0.75, lr) == pytest.approx(0.1 + 0.9 * 0.25)  # quadratic
    assert schedule.multiplier(1.5, lr) == pytest.approx(1.0)  # peak at 1.5 epochs
    assert schedule.multiplier(15.0, lr) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way down the cosine
    assert schedule.multiplier(28.49, lr) == pytest.approx(0.01, abs=1e-6)  # the cosine ends at 0.01 lr
    assert schedule.multiplier(28.5, lr) == schedule.multiplier(29.99, lr) == pytest.approx(0.01)  # then flat
    assert schedule.multiplier(0.0, 5e-6) == pytest.approx(1e-6 / 5e-6)  # warm-up start never below 1e-6


def test_trainer_builds_the_paper_schedule_per_optimiser_step(tmp_path):
    args = paper_args(tmp_path)
    assert args.lr_scheduler_type == "paper"
    model = AVCANetForVideoClassification(small_config())
    trainer = AVCANetTrainer(model=model, args=args, processing_class=AVCANetProcessor.from_model_config(model.config))
    trainer.create_optimizer_and_scheduler(num_training_steps=300)  # 30 epochs of 10 optimiser steps
    lrs = []
    for _ in range(300):
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[0] == pytest.approx(1.5e-5)
    assert lrs[15] == pytest.approx(1.5e-4) and max(lrs) == pytest.approx(1.5e-4)  # warm-up ends at 1.5 epochs
    assert lrs[150] == pytest.approx(1.5e-6 + 0.5 * (1.5e-4 - 1.5e-6))
    assert all(lr == pytest.approx(1.5e-6) for lr in lrs[285:])  # floor 0.01 lr, flat for the last 1.5 epochs
    assert all(a >= b for a, b in itertools.pairwise(lrs[15:285]))  # cosine: only down
    stepwise = AVCANetTrainer(model=model, args=paper_args(tmp_path, lr_scheduler_kwargs={"stepwise": True}),
                              processing_class=AVCANetProcessor.from_model_config(model.config))
    stepwise.create_optimizer_and_scheduler(num_training_steps=300)
    assert stepwise.lr_scheduler.get_last_lr()[0] == pytest.approx(1.5e-4 * (0.1 + 0.9 / 2.25))  # epoch 1 of 1.5
    ours = paper_args(tmp_path, lr_scheduler_type="cosine")
    assert ours.schedule_description() == "cosine with 0.1 warm-up of the steps"
    assert args.schedule_description().startswith("paper: quadratic warm-up over 1.5 epochs")
    with pytest.raises(ValueError, match="lr_scheduler_kwargs"):
        paper_args(tmp_path, lr_scheduler_kwargs={"warmup": 2})


# ---- 7. Reporting: last and best epoch, labelled, with the schedule ----


def _logged_eval(epoch: float, accuracy: float) -> dict:
    return {"epoch": epoch, "step": int(10 * epoch), "eval_accuracy": accuracy, "eval_wa_f1": accuracy - 0.01,
            "eval_uar": accuracy - 0.02, **{f"eval_accuracy_{name}": accuracy
                                             for name in AVCANetConfig().id2label.values()}}


def test_training_summary_and_card_report_last_and_best_epoch(tmp_path):
    model = AVCANetForVideoClassification(small_config())
    args = paper_args(tmp_path)
    trainer = AVCANetTrainer(model=model, args=args, processing_class=AVCANetProcessor.from_model_config(model.config))
    trainer.state.log_history = [{"loss": 1.0, "step": 5}, _logged_eval(1, 0.40), _logged_eval(2, 0.70),
                                 _logged_eval(3, 0.70), _logged_eval(4, 0.55)]
    names = list(model.config.id2label.values())
    last_metrics = {"accuracy": 0.55, "wa_f1": 0.54, "uar": 0.53, "num_samples": 100,
                    "per_class_accuracy": dict.fromkeys(names, 0.55)}
    trainer.last_evaluation = {"split": "test", "step": 40, "metrics": last_metrics}
    summary = trainer.training_summary()
    assert summary["best"]["epoch"] == 2 and summary["best"]["metrics"]["accuracy"] == 0.70  # first of the ties
    assert summary["last"]["metrics"] is last_metrics
    assert summary["schedule"].startswith("paper:") and summary["epochs_evaluated"] == 4
    card = render_model_card(model.config, training_args=args, metrics=last_metrics, best=summary["best"])
    assert "| this model (test) | " in card and "| best epoch (epoch 2, test) | " in card
    assert "the last epoch" in card and "Learning-rate schedule: paper: quadratic warm-up" in card
    assert "| gradient clipping | none |" in card
    evaluate = load_example("evaluate_model")
    (tmp_path / "run" / "evaluation").mkdir(parents=True)
    (tmp_path / "run" / "evaluation" / "training_summary.json").write_text(json.dumps(summary, default=str))
    rows = evaluate.training_rows(evaluate.training_summary(str(tmp_path / "run" / "checkpoint-20")))
    assert list(rows) == ["training run: last epoch (test)", "training run: best epoch (epoch 2, by accuracy)"]


# ---- 8. Table 4's balanced column fits the split; the AV-CANet row does not ----


def test_balanced_split_fits_table4_and_the_avcanet_row_is_inconsistent():
    counts = [held_out_count(n) for n in variant_counts(TABLE2_COUNTS, "balanced").values()]
    assert counts == [800, 191, 600, 443, 418, 441]
    for name, (per_class, accuracy) in TABLE4_BALANCED_CHECKED_ROWS.items():
        correct = [round(p * n / 100) for p, n in zip(per_class, counts)]
        assert [round(100 * c / n, 2) for c, n in zip(correct, counts)] == list(per_class), name
        assert round(100 * sum(correct) / sum(counts), 2) == accuracy, name
    per_class, printed = TABLE4_BALANCED_AVCANET
    implied = sum(p * n for p, n in zip(per_class, counts)) / sum(counts)
    assert round(implied, 2) == 64.18 != printed
    assert not math.isclose(per_class[0] * 800 / 100, round(per_class[0] * 8), abs_tol=0.01)  # 536.24 videos
    assert BALANCED_ROW_NOTE in released_model_card()


# ---- 9. Pretrained backbones by default, when they are here ----


def _fake_hub_cache(root: Path, repo_id: str) -> Path:
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    return snapshot


def test_backbones_default_to_local_checkpoints_else_one_warning(tmp_path, capsys):
    train = load_example("train")
    paper = AVCANetConfig()
    auto = train.ModelArguments()
    assert (auto.video_backbone, auto.audio_backbone) == ("auto", "auto")
    folder = tmp_path / "pretrained"
    folder.mkdir()
    (folder / "swin_tiny_patch4_window7_224_22k.pth").write_bytes(b"")
    cache = tmp_path / "hub"
    resnet = _fake_hub_cache(cache, "microsoft/resnet-34")
    found = train.resolve_backbones(auto, paper, search_dirs=[folder], cache_dir=str(cache))
    assert found == {"video": str(folder / "swin_tiny_patch4_window7_224_22k.pth"), "audio": str(resnet)}
    assert "random weights" not in capsys.readouterr().out
    nothing = train.resolve_backbones(auto, paper, search_dirs=[], cache_dir=str(tmp_path / "empty"))
    assert nothing == {"video": None, "audio": None}
    warning = capsys.readouterr().out.strip().splitlines()
    assert len(warning) == 1 and "random weights" in warning[0] and "not comparable with the paper" in warning[0]
    given = train.ModelArguments(video_backbone="my_swin.pth", audio_backbone="none")
    assert train.resolve_backbones(given, paper, search_dirs=[folder], cache_dir=str(cache)) == {
        "video": "my_swin.pth", "audio": None}
    small = train.resolve_backbones(auto, small_config(), search_dirs=[folder], cache_dir=str(cache))
    assert small == {"video": None, "audio": None}  # the demo's encoders fit no public checkpoint
    stem = AVCANetConfig(vision_config={"stem_channels": 16})  # Swin-T with a stem: no checkpoint holds its weights
    assert train.resolve_backbones(auto, stem, search_dirs=[folder], cache_dir=str(cache))["video"] is None
    assert BACKBONE_NOTE in released_model_card()


def test_small_demo_keeps_its_own_switches_explicitly():
    train = load_example("train")
    model, processor, _ = train.build_model_and_processor(
        train.ModelArguments(config_name="small", video_backbone="none", audio_backbone="none"),
        {"id2label": AVCANetConfig().id2label, "label2id": AVCANetConfig().label2id})
    assert model.config.vision_config.stem_channels == 48 and AVCANetConfig().vision_config.stem_channels == 0
    assert model.config.readout_init == "fan_in" and AVCANetConfig().readout_init == "trunc_normal"
    assert processor.video_processor.crop_scales == SMALL_PROCESSOR["crop_scales"] == MULTI_SCALE_CROP_SCALES
    assert processor.video_processor.brightness == pytest.approx((0.8, 1.2))
    assert SMALL_TRAINING["lr_scheduler_type"] == "cosine"
    args = train.parse_arguments(["--config_name", "small", "--output_dir", "unused"])[2]
    assert args.fusion_learning_rate_scales == {"video": 0.3, "shared": 0.3} == SMALL_TRAINING[
        "fusion_learning_rate_scales"]
    # with a dataset, argparse hands the recipe's dict default over as str(dict)
    with_data = train.parse_arguments(["--dataset", "data", "--config_name", "small", "--output_dir", "unused"])[2]
    assert with_data.fusion_learning_rate_scales == args.fusion_learning_rate_scales
    card = render_model_card(model.config, args)
    assert "video fusion layers x0.3" in card and "shared fusion layers x0.3" in card
    assert (SMALL_CONFIG["video_feature_dropout"], SMALL_CONFIG["lgf_norm_context"]) == (0.0, True)
