import itertools
import json
import math
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from emotions_hf.configuration_avcanet import FUSIONS, LINEAR_FUSIONS, AVCANetConfig
from emotions_hf.modeling_avcanet import (
    AVCANetForVideoClassification,
    AVCANetModel,
    LISFLevel,
    modulation_coefficients,
    window_mask,
    zero_loss_touching,
)

TINY = {
    "num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "embed_dim": 12, "depths": (1, 1),
    "num_heads": (1, 2), "window_size": (1, 4, 4), "mfcc_chunk_frames": 16, "num_mfcc": 8, "audio_depths": (1, 1),
    "audio_hidden_sizes": (8, 16), "hidden_size": 16, "lgf_num_heads": 2,
}
NO_DROPOUT = {"lgf_dropout": 0.0, "drop_path_rate": 0.0}


def tiny_config(**overrides):
    settings = dict(TINY, **overrides)
    if settings.get("modality", "audio-visual") != "audio-visual":
        settings.setdefault("use_glcf", False)
        settings.setdefault("use_multitask_loss", False)
    return AVCANetConfig(**settings)


def make_inputs(config, batch=2, seed=0, audio_mask=None):
    generator = torch.Generator().manual_seed(seed)
    c, vision, audio = config, config.vision_config, config.audio_config
    inputs = {
        "pixel_values": torch.randn(batch, c.num_snippets, vision.num_frames, 3, vision.image_size, vision.image_size,
                                    generator=generator),
        "input_features": torch.randn(batch, c.num_snippets, audio.num_frames, audio.num_mfcc, generator=generator),
        "labels": torch.arange(batch) % c.num_labels,
    }
    if audio_mask is not None:
        inputs["audio_mask"] = torch.tensor(audio_mask)
    return inputs


def model_for(config, seed=0):
    torch.manual_seed(seed)
    return AVCANetForVideoClassification(config)


def _combinations():
    for fusion, lisf, glcf, loss in itertools.product(FUSIONS, (True, False), (True, False), ("ep_ce", "ce")):
        for multitask in ((True, False) if fusion in LINEAR_FUSIONS else (False,)):
            yield {"modality": "audio-visual", "fusion": fusion, "use_lisf": lisf, "use_glcf": glcf,
                   "loss_type": loss, "use_multitask_loss": multitask}
    for modality, lisf, loss in itertools.product(("visual", "audio"), (True, False), ("ep_ce", "ce")):
        yield {"modality": modality, "use_lisf": lisf, "loss_type": loss}


def _combination_id(settings):
    return "-".join(f"{k}={v}" for k, v in settings.items())


@pytest.mark.parametrize("settings", list(_combinations()), ids=_combination_id)
def test_shapes_and_gradients_for_every_combination(settings):
    config = tiny_config(**settings)
    model = model_for(config).train()
    out = model(**make_inputs(config, batch=2))
    batch, classes = 2, config.num_labels
    assert out.logits.shape == (batch, classes)
    linear_head = config.modality != "audio-visual" or config.fusion in LINEAR_FUSIONS
    expect_visual = linear_head and config.uses_video
    expect_audio = linear_head and config.uses_audio
    assert (out.visual_logits is not None) == expect_visual
    assert (out.audio_logits is not None) == expect_audio
    for logits in (out.visual_logits, out.audio_logits):
        if logits is not None:
            assert logits.shape == (batch, classes)
    multitask = config.use_multitask_loss
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert (out.visual_loss is not None) == multitask and (out.audio_loss is not None) == multitask
    assert hasattr(model.avcanet, "video_encoder") == config.uses_video
    assert hasattr(model.avcanet, "audio_encoder") == config.uses_audio

    out.loss.backward()
    without_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without_grad, f"no gradient reaches {without_grad}"


def test_model_output_shapes_and_tuple_form():
    config = tiny_config()
    model = AVCANetModel(config).eval()
    inputs = make_inputs(config, batch=3)
    out = model(inputs["pixel_values"], inputs["input_features"])
    assert out.video_embeds.shape == out.audio_embeds.shape == (3, config.hidden_size)
    assert out.video_snippet_embeds.shape == (3, config.num_snippets, config.hidden_size)
    as_tuple = model(inputs["pixel_values"], inputs["input_features"], return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.video_embeds)


@pytest.mark.parametrize("fusion", LINEAR_FUSIONS)
def test_linear_fusion_splits_exactly(fusion):
    config = tiny_config(fusion=fusion)
    model = model_for(config).eval()
    with torch.no_grad():
        out = model(**make_inputs(config, batch=3))
        encoded = model.avcanet(**{k: v for k, v in make_inputs(config, batch=3).items() if k != "labels"})
    bias = model.head.classifier.bias
    assert torch.equal(out.logits, out.visual_logits + out.audio_logits + bias)
    if fusion == "mid_concat":  # Eq. 14 is one Linear over [E_v; E_a]
        reference = F.linear(torch.cat([encoded.video_embeds, encoded.audio_embeds], -1),
                             model.head.classifier.weight, bias)
    else:
        reference = model.head.classifier(encoded.video_embeds + encoded.audio_embeds)
    torch.testing.assert_close(out.logits, reference)


def test_video_without_sound_is_well_defined():
    config = tiny_config(**NO_DROPOUT)
    model = model_for(config).eval()
    inputs = make_inputs(config, batch=3, audio_mask=[True, False, True])
    with torch.no_grad():
        out = model(**inputs)
        other_audio = dict(inputs, input_features=torch.randn_like(inputs["input_features"]) * 5)
        out_other = model(**other_audio)
    silent = 1
    assert torch.equal(out.audio_logits[silent], torch.zeros(config.num_labels))
    assert torch.equal(out.logits[silent], out.visual_logits[silent] + model.head.classifier.bias)
    # The silent video's prediction ignores whatever sits in its audio slot; the others do use their audio.
    assert torch.equal(out_other.logits[silent], out.logits[silent])
    assert not torch.allclose(out_other.logits[0], out.logits[0])
    torch.testing.assert_close(out.audio_loss, model.criterion.criterion(out.audio_logits[[0, 2]], inputs["labels"][[0, 2]]))


def test_all_silent_batch_and_default_mask():
    config = tiny_config(**NO_DROPOUT)
    model = model_for(config).train()
    silent = model(**make_inputs(config, batch=2, audio_mask=[False, False]))
    assert silent.audio_loss is None
    assert torch.equal(silent.audio_logits, torch.zeros_like(silent.audio_logits))
    torch.testing.assert_close(silent.loss, silent.fused_loss + silent.visual_loss)
    running_means = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    silent.loss.backward()  # the audio encoder sees no chunk: its parameters get zero gradients, its statistics stay
    audio_branch = [*model.avcanet.audio_encoder.parameters(), *model.avcanet.audio_projection.parameters()]
    assert all(p.grad is not None and not p.grad.any() for p in audio_branch)
    after = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(torch.equal(a, b) for a, b in zip(running_means, after))

    model.eval()
    with torch.no_grad():
        default = model(**make_inputs(config, batch=2))
        explicit = model(**make_inputs(config, batch=2, audio_mask=[True, True]))
    torch.testing.assert_close(default.logits, explicit.logits, rtol=0, atol=0)


@pytest.mark.parametrize("cross_modal", [False, True])
def test_lisf_attention_outside_the_window_gets_zero_weight(cross_modal):
    config = tiny_config(**NO_DROPOUT, num_snippets=9, lgf_window_sizes=(2, 4))
    level = LISFLevel(config, level=0).eval()
    block = level.cross_attention if cross_modal else level.self_attention["video"]
    window = level.window
    mask = window_mask(9, window, torch.device("cpu"))
    assert mask.sum(1).tolist() == [3, 4, 5, 5, 5, 5, 5, 4, 3]
    torch.manual_seed(0)
    hidden, context = torch.randn(2, 9, config.hidden_size), torch.randn(2, 9, config.hidden_size)
    perturbed_at = 7
    changed = (context if cross_modal else hidden).clone()
    changed[:, perturbed_at] = torch.randn(2, config.hidden_size) * 3
    with torch.no_grad():
        if cross_modal:
            before, after = block(hidden, context, mask), block(hidden, changed, mask)
        else:
            before, after = block(hidden, attn_mask=mask), block(changed, attn_mask=mask)
    outside = [t for t in range(9) if abs(t - perturbed_at) > window]
    inside = [t for t in range(9) if 0 < abs(t - perturbed_at) <= window]
    assert torch.equal(before[:, outside], after[:, outside])
    assert not torch.allclose(before[:, inside], after[:, inside])


def test_save_and_load_give_identical_outputs(tmp_path):
    config = tiny_config(polarity_gamma={"positive": 0.2, "neutral": 0.4, "negative": 0.9})
    model = model_for(config).eval()
    inputs = make_inputs(config, batch=2, audio_mask=[True, False])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = AVCANetForVideoClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.polarity_gamma == config.polarity_gamma
    with torch.no_grad():
        expected, actual = model(**inputs), loaded(**inputs)
    for key in ("logits", "visual_logits", "audio_logits", "loss", "fused_loss", "visual_loss", "audio_loss"):
        assert torch.equal(expected[key], actual[key]), key
    # Config-derived buffers are rebuilt after meta-device loading, not left empty.
    assert torch.equal(loaded.criterion.criterion.class_gamma, model.criterion.criterion.class_gamma)
    swin_attention = loaded.avcanet.video_encoder.layers[0].blocks[0].attn
    reference = model.avcanet.video_encoder.layers[0].blocks[0].attn
    assert torch.equal(swin_attention.relative_position_index, reference.relative_position_index)


def test_eager_attention_gives_the_same_outputs_and_gradients():
    """`attn_implementation="eager"` runs every attention (backbone, LISF, integration, GLCF) as plain torch; the
    fast paths (SDPA, the fused CPU training kernel) give the same loss, logits and gradients."""
    inputs = make_inputs(tiny_config(), batch=2, audio_mask=[True, False])

    def run(attn_implementation):
        model = model_for(tiny_config(**NO_DROPOUT, attn_implementation=attn_implementation), seed=3).train()
        assert model.config._attn_implementation == attn_implementation
        out = model(**inputs)
        out.loss.backward()
        return out, {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    (fast, fast_grads), (eager, eager_grads) = run("sdpa"), run("eager")
    torch.testing.assert_close(eager.logits, fast.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eager.loss, fast.loss, rtol=1e-4, atol=1e-5)
    assert eager_grads.keys() == fast_grads.keys()
    for name, grad in fast_grads.items():
        torch.testing.assert_close(eager_grads[name], grad, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_zero_loss_touching_gives_every_parameter_a_zero_gradient():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    loss = zero_loss_touching(module.parameters())
    assert loss.item() == 0.0
    loss.backward()
    assert all(p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)) for p in module.parameters())


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config(**NO_DROPOUT)
    inputs = make_inputs(config, batch=2)

    def gradients(checkpointing):
        model = model_for(config, seed=3).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            flagged = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]
            assert any(isinstance(m, LISFLevel) for m in flagged) and len(flagged) > config.num_lgf_levels
        model(**inputs).loss.backward()
        return {name: p.grad for name, p in model.named_parameters()}

    plain, checkpointed = gradients(False), gradients(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=lambda m, name=name: f"{name}: {m}")


def test_modulation_coefficients_slow_the_branch_that_gives_the_true_class_more_mass():
    labels = torch.tensor([0, 1])
    confident = torch.tensor([[4.0, 0.0], [0.0, 4.0]])  # softmax mass on y: 0.982 each
    unsure = torch.zeros(2, 2)  # 0.5 each
    ratio = 2 * torch.sigmoid(torch.tensor(4.0)).item() / 1.0
    k_v, k_a = modulation_coefficients(confident, unsure, labels, alpha=0.5)
    assert (k_v, k_a) == pytest.approx((1 - math.tanh(0.5 * (ratio - 1)), 1.0))
    assert modulation_coefficients(unsure, confident, labels, alpha=0.5) == pytest.approx((1.0, k_v))
    assert modulation_coefficients(unsure, unsure, labels, alpha=0.5) == (1.0, 1.0)


@pytest.mark.parametrize("audio_mask", [None, [True, False, True]])
def test_gradient_modulation_scales_each_encoder_gradient_by_its_coefficient(audio_mask):
    """OGM scales every parameter gradient of the dominant branch's encoder and projection by its coefficient
    (measured on the videos with sound) and leaves the LGF module, the head and the other encoder as they were."""
    config = tiny_config(**NO_DROPOUT)
    inputs = make_inputs(config, batch=3, seed=5, audio_mask=audio_mask)
    alpha = 100.0  # tiny random branches differ little (rho ~ 1.004): a large alpha makes the scale visible

    def gradients(modulation):
        model = model_for(AVCANetConfig(**{**config.to_dict(), "gradient_modulation_alpha": modulation}), seed=3)
        outputs = model.train()(**inputs)
        outputs.loss.backward()
        return outputs, {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    plain_outputs, plain = gradients(0.0)
    modulated_outputs, modulated = gradients(alpha)
    torch.testing.assert_close(modulated_outputs.loss, plain_outputs.loss)
    keep = torch.ones(3, dtype=torch.bool) if audio_mask is None else torch.tensor(audio_mask)
    k_video, k_audio = modulation_coefficients(plain_outputs.visual_logits[keep], plain_outputs.audio_logits[keep],
                                               inputs["labels"][keep], alpha)
    assert min(k_video, k_audio) < 0.9 and max(k_video, k_audio) == 1.0
    scales = {"avcanet.video_": k_video, "avcanet.audio_": k_audio}
    assert modulated.keys() == plain.keys()
    for name, grad in plain.items():
        scale = next((k for prefix, k in scales.items() if name.startswith(prefix)), 1.0)
        torch.testing.assert_close(modulated[name], grad * scale, msg=lambda m, name=name: f"{name}: {m}")


def test_gradient_modulation_is_off_in_evaluation_and_for_an_all_silent_batch():
    config = tiny_config(**NO_DROPOUT, gradient_modulation_alpha=20.0)
    plain_config = tiny_config(**NO_DROPOUT)
    for mask, mode in (([False, False], "train"), ([True, True], "eval")):
        inputs = make_inputs(config, batch=2, seed=1, audio_mask=mask)
        grads = []
        for c in (config, plain_config):
            model = getattr(model_for(c, seed=2), mode)()
            model(**inputs).loss.backward()
            grads.append([p.grad for p in model.parameters() if p.grad is not None])
        for modulated, plain in zip(*grads, strict=True):
            torch.testing.assert_close(modulated, plain)


@pytest.mark.parametrize(("features", "fusion"), [("encoder", "mid_concat"), ("encoder", "gated"),
                                                   ("both", "mid_concat")])
def test_encoder_multitask_loss_classifies_each_encoders_own_features(features, fusion):
    """multitask_features="encoder": the visual and audio terms are the branch heads on the snippet means of F_v
    and F_a (no cross-modal step), silent videos left out of the audio term; it works with a non-linear fusion.
    "both" adds the paper's terms (the halves of W_f on the LGF outputs) to each."""
    config = tiny_config(**NO_DROPOUT, multitask_features=features, fusion=fusion, loss_type="ce",
                         video_feature_dropout=0.0)
    model = model_for(config, seed=4).train()
    inputs = make_inputs(config, batch=3, seed=2, audio_mask=[True, False, True])
    outputs = model(**inputs)
    encoded = model.avcanet(inputs["pixel_values"], inputs["input_features"], inputs["audio_mask"])
    labels, sound = inputs["labels"], inputs["audio_mask"]
    visual = model.branch_heads["video"](encoded.video_snippet_embeds.mean(1))
    audio = model.branch_heads["audio"](encoded.audio_snippet_embeds.mean(1))
    torch.testing.assert_close(outputs.fused_loss, F.cross_entropy(outputs.logits, labels))
    visual_loss, audio_loss = F.cross_entropy(visual, labels), F.cross_entropy(audio[sound], labels[sound])
    if features == "both":
        visual_loss = visual_loss + F.cross_entropy(outputs.visual_logits, labels)
        audio_loss = audio_loss + F.cross_entropy(outputs.audio_logits[sound], labels[sound])
    torch.testing.assert_close(outputs.visual_loss, visual_loss)
    torch.testing.assert_close(outputs.audio_loss, audio_loss)
    torch.testing.assert_close(outputs.loss, outputs.fused_loss + outputs.visual_loss + outputs.audio_loss)
    if fusion == "mid_concat":  # the reported branch logits stay the fused head's terms
        assert not torch.allclose(outputs.visual_logits, visual)


@pytest.mark.parametrize("features", ["encoder", "both"])
def test_encoder_branch_heads_get_a_gradient_in_every_batch_and_are_saved(tmp_path, features):
    config = tiny_config(**NO_DROPOUT, multitask_features=features)
    model = model_for(config, seed=1).train()
    for mask in ([False, False], [True, True]):
        model.zero_grad()
        model(**make_inputs(config, batch=2, audio_mask=mask)).loss.backward()
        assert [name for name, p in model.named_parameters() if p.grad is None] == []
        assert (model.branch_heads["audio"].weight.grad.abs().sum() > 0) == mask[0]
    model.save_pretrained(tmp_path)
    loaded = AVCANetForVideoClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.branch_heads["video"].weight, model.branch_heads["video"].weight)
    assert tiny_config().multitask_features == "lgf" and model_for(tiny_config()).branch_heads is None


def test_audio_modality_dropout_trains_the_dropped_videos_as_silent_ones():
    """audio_modality_dropout: in training each video's sound is dropped with that probability, exactly as if its
    audio_mask were False (on top of the given mask); evaluation and a probability of 0 leave the mask alone."""
    config = tiny_config(**NO_DROPOUT, video_feature_dropout=0.0, audio_modality_dropout=0.5)
    model = model_for(config, seed=2).train()
    plain = model_for(AVCANetConfig(**{**config.to_dict(), "audio_modality_dropout": 0.0}), seed=9)
    plain.load_state_dict(model.state_dict())
    given = torch.tensor([True, False, True, True, True, True])
    inputs = make_inputs(config, batch=6, seed=3, audio_mask=given.tolist())
    torch.manual_seed(11)
    keep = torch.rand(6) >= 0.5
    assert 0 < int((given & keep).sum()) < int(given.sum())  # this seed drops some, not all, of the sound
    torch.manual_seed(11)
    dropped = model(**inputs)
    expected = plain.train()(**{**inputs, "audio_mask": given & keep})
    for name in ("loss", "logits", "visual_logits", "audio_logits", "audio_loss"):
        torch.testing.assert_close(getattr(dropped, name), getattr(expected, name), msg=name)
    evaluated, plain_evaluated = model.eval()(**inputs), plain.eval()(**inputs)
    torch.testing.assert_close(evaluated.logits, plain_evaluated.logits)
    torch.testing.assert_close(evaluated.loss, plain_evaluated.loss)
    model.train()
    with pytest.raises(ValueError, match="needs input_features"):  # the model's own input check, not a crash
        model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
    with pytest.raises(ValueError, match=r"audio_mask must have shape \(B,\) = \(6,\)"):
        model(**{**inputs, "audio_mask": torch.ones(5, dtype=torch.bool)})


def test_audio_modality_dropout_of_every_video_still_touches_every_parameter():
    """A batch whose sound is all dropped keeps the audio branch in the backward (with zero gradients), for DDP."""
    config = tiny_config(**NO_DROPOUT, audio_modality_dropout=0.999)
    model = model_for(config, seed=1).train()
    torch.manual_seed(0)
    model(**make_inputs(config, batch=2)).loss.backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    assert all(float(p.grad.abs().sum()) == 0 for p in model.avcanet.audio_encoder.parameters())


def test_weight_init_follows_the_config():
    config = tiny_config(initializer_range=0.05, hidden_size=64, lgf_num_heads=4)
    model = model_for(config)
    ffn_weight = model.avcanet.lisf.levels[0].self_attention["video"].ffn[0].weight
    assert ffn_weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert torch.equal(model.head.classifier.bias, torch.zeros_like(model.head.classifier.bias))
    stem = model.avcanet.audio_encoder.embedder.embedder.convolution
    assert stem.kernel_size == (7, 1) and stem.stride == (2, 1) and stem.padding == (3, 0)
    fan_out = stem.out_channels * math.prod(stem.kernel_size)
    assert stem.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.25)  # kaiming, as transformers'


def test_wrong_shapes_raise_clear_errors():
    config = tiny_config()
    model = model_for(config)
    inputs = make_inputs(config)
    with pytest.raises(ValueError, match=r"\(B, s, T, 3, H, W\) = \(B, 4, 2, 3, 32, 32\)"):
        model(pixel_values=inputs["pixel_values"].transpose(2, 3), input_features=inputs["input_features"])
    with pytest.raises(ValueError, match=r"\(B, s, mfcc_frames, num_mfcc\) = \(B, 4, 16, 8\)"):
        model(pixel_values=inputs["pixel_values"], input_features=inputs["input_features"].transpose(2, 3))
    with pytest.raises(ValueError, match="needs input_features"):
        model(pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="audio_mask must have shape"):
        model(**inputs, audio_mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch size"):
        model(pixel_values=inputs["pixel_values"], input_features=inputs["input_features"][:1])


def test_single_modality_ignores_the_other_input():
    config = tiny_config(modality="visual", **NO_DROPOUT)
    model = model_for(config).eval()
    inputs = make_inputs(config)
    with torch.no_grad():
        with_audio = model(**inputs)
        without_audio = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
    assert torch.equal(with_audio.logits, without_audio.logits)
    assert torch.equal(with_audio.logits, with_audio.visual_logits + model.head.classifier.bias)


DDP_SCRIPT = textwrap.dedent(
    """
    import datetime, os, sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    sys.path.insert(0, sys.argv[1])
    from test_modeling_avcanet import NO_DROPOUT, make_inputs, model_for, tiny_config

    def run(rank):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
        config = tiny_config(**NO_DROPOUT)
        # find_unused_parameters=False: what the Trainer picks under gradient checkpointing
        model = DistributedDataParallel(model_for(config).train(), find_unused_parameters=False)
        for step in range(2):
            silent = rank == 0  # rank 0 holds only videos without sound, rank 1 only videos with sound
            model(**make_inputs(config, batch=2, seed=step, audio_mask=[not silent] * 2)).loss.backward()
        dist.destroy_process_group()
        os._exit(0)  # past this point the test has passed; skip the interpreter teardown, which can hang after gloo

    if __name__ == "__main__":
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
        torch.multiprocessing.spawn(run, nprocs=2)
    """
)


def test_ddp_trains_when_a_rank_has_only_videos_without_sound(tmp_path):
    """The audio branch still takes part in the backward of an all-silent batch (with zero gradients), so DDP
    without unused-parameter detection does not fail or hang on the ranks that hold only silent videos."""
    script = tmp_path / "ddp_silent.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, str(script), str(Path(__file__).parent), str(port)],
                            check=False, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]


def test_checkpoint_saved_by_version_0_1_loads_with_the_same_outputs(tmp_path):
    """Version 0.1 wrote every config setting at the top level and the processor as one flat
    preprocessor_config.json; the weights' names are unchanged. Such a folder loads and computes the same."""
    from emotions_hf.configuration_avcanet import FLAT_SETTINGS
    from emotions_hf.processing_avcanet import AVCANetProcessor

    model = AVCANetForVideoClassification(AVCANetConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for flat, (key, field) in FLAT_SETTINGS.items():  # back to the flat form
        saved[flat] = saved[key][field]
    del saved["vision_config"], saved["audio_config"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    flat_processor = {"num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "num_mfcc": 8, "mfcc_frames": 64,
                      "feature_extractor_type": "AVCANetProcessor", "processor_class": "AVCANetProcessor"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(flat_processor))

    loaded = AVCANetForVideoClassification.from_pretrained(tmp_path).eval()
    processor = AVCANetProcessor.from_pretrained(tmp_path)
    processor.check_model_config(loaded.config)
    inputs = make_inputs(loaded.config, audio_mask=[True, False])
    inputs.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
