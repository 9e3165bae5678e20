"""The branch statistics `bench/learnability.py --diagnose` prints: gradient norms per branch, feature spread."""

from types import SimpleNamespace

import torch
from test_learnability import _small_model

from emotions_hf.training.diagnostics import BRANCHES, BranchStatsCallback, branch_of, feature_spread


def test_feature_spread_is_zero_for_a_collapsed_encoder():
    assert feature_spread(torch.ones(4, 3, 8) * torch.randn(8)) < 1e-6
    assert feature_spread(torch.randn(4, 3, 8)) > 0.5


def test_every_parameter_but_the_loss_buffers_has_a_branch():
    model = _small_model()
    assert {branch_of(name) for name, _ in model.named_parameters()} == set(BRANCHES)


def test_one_step_records_gradients_per_branch_and_the_spread_of_each_encoder():
    model = _small_model().train()
    stats = BranchStatsCallback(model)
    audio = model.config.audio_config
    pixels, mfcc = torch.randn(3, 4, 2, 3, 32, 32), torch.randn(3, 4, audio.num_frames, audio.num_mfcc)
    model(pixel_values=pixels, input_features=mfcc, labels=torch.tensor([0, 1, 2])).loss.backward()
    stats.on_pre_optimizer_step(None, SimpleNamespace(global_step=0), None)
    record = stats.history[-1]
    assert all(record[f"grad_{branch}"] > 0 for branch in BRANCHES)
    assert record["feature_spread_video"] > 0.1 and record["feature_spread_audio"] > 0.1
    # the same clip and sound for every snippet of every sample (and no dropout): what a collapsed encoder outputs
    model.eval()
    model(pixel_values=pixels[:1, :1].expand(3, 4, 2, 3, 32, 32),
          input_features=mfcc[:1, :1].expand_as(mfcc), labels=torch.tensor([0, 1, 2])).loss.backward()
    stats.on_pre_optimizer_step(None, SimpleNamespace(global_step=1), None)
    assert stats.history[-1]["feature_spread_video"] < 1e-3
    stats.remove()
    assert not stats._handles
