"""Video Swin 3D backbone: shapes, the window machinery against a dense reference, locality, checkpointing."""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers.modeling_layers import GradientCheckpointingLayer

from emotions_hf import modeling_video_swin
from emotions_hf.configuration_video_swin import VideoSwinConfig
from emotions_hf.modeling_video_swin import (
    VideoSwinBlock3D,
    VideoSwinModel,
    relative_position_index,
    window_partition,
    window_reverse,
)


def tiny_config(**overrides):
    values = {"embed_dim": 8, "depths": (2, 2), "num_heads": (1, 2), "window_size": (2, 3, 3), "patch_size": (1, 2, 2),
              "image_size": 24, "num_frames": 4, "drop_path_rate": 0.0}
    values.update(overrides)
    return VideoSwinConfig(**values)


def randomized(model, seed=0):
    """Random weights of a visible scale, so that every path (bias tables included) changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


@pytest.mark.parametrize(
    "overrides, clip",
    [
        ({}, (2, 3, 4, 24, 24)),
        ({}, (1, 3, 5, 22, 26)),  # pads time and space to patch / window multiples
        ({"depths": (1, 1, 2), "num_heads": (1, 2, 4), "window_size": (4, 5, 5)}, (2, 3, 6, 20, 28)),
        ({"patch_size": (2, 4, 4), "embed_dim": 12, "num_heads": (3, 6)}, (1, 3, 8, 32, 32)),
    ],
)
def test_output_shapes(overrides, clip):
    config = tiny_config(**overrides)
    model = randomized(VideoSwinModel(config)).eval()
    features = model(torch.randn(clip)).pooler_output
    assert features.shape == (clip[0], config.hidden_size)
    assert torch.isfinite(features).all()


def test_full_size_swin_t_shape():
    config = VideoSwinConfig()
    model = VideoSwinModel(config).eval()
    assert sum(p.numel() for p in model.parameters()) == 28_158_070 - 400 * 768 - 400  # Swin-T K400 minus its head
    with torch.no_grad():
        features = model(torch.randn(1, 3, 8, 112, 112)).pooler_output
    assert features.shape == (1, 768)


def test_rejects_wrong_layout():
    model = VideoSwinModel(tiny_config())
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        model(torch.randn(1, 4, 3, 24, 24))


def test_patch_embedding_equals_conv3d_on_strided_input():
    model = randomized(VideoSwinModel(tiny_config(patch_size=(2, 4, 4))))
    embed = model.patch_embed
    clips = torch.randn(2, 4, 3, 24, 24).transpose(1, 2)  # (N, 3, T, H, W) view of a (N, T, 3, H, W) batch
    expected = embed.norm(embed.proj(clips.contiguous()).permute(0, 2, 3, 4, 1))
    torch.testing.assert_close(embed(clips), expected)


def test_convolutional_stem_embeds_overlapping_gelu_maps_per_tubelet():
    """stem_channels: a 3x3 conv over each tubelet's frames (overlapping patch borders) and a GELU, then a linear
    patchify of those maps; the same result as the plain Conv3d chain, also for a strided input."""
    model = randomized(VideoSwinModel(tiny_config(patch_size=(2, 4, 4), stem_channels=5)))
    embed = model.patch_embed
    assert embed.stem.weight.shape == (5, 3, 2, 3, 3) and embed.proj.weight.shape == (8, 5, 1, 4, 4)
    clips = torch.randn(2, 4, 3, 24, 24).transpose(1, 2)
    maps = F.gelu(F.conv3d(clips, embed.stem.weight, embed.stem.bias, stride=(2, 1, 1), padding=(0, 1, 1)))
    expected = embed.norm(F.conv3d(maps, embed.proj.weight, embed.proj.bias, stride=(1, 4, 4)).permute(0, 2, 3, 4, 1))
    torch.testing.assert_close(embed(clips), expected)
    # overlap: a pixel of the second patch row (row 4) reaches the first row's token through the 3x3 stem
    changed = clips.clone()
    changed[:, :, :, 4, 2] += 1.0
    difference = (embed(changed) - embed(clips)).abs().sum(-1)  # (N, D, H', W')
    assert (difference[:, :, 0, 0] > 0).all() and (difference[:, :, 1, 0] > 0).all()
    assert torch.isfinite(model(torch.randn(1, 3, 5, 22, 26)).pooler_output).all()  # padding to patch multiples
    wide = VideoSwinModel(tiny_config(patch_size=(2, 4, 4), stem_channels=5, stem_kernel_size=5)).patch_embed
    assert wide.stem.weight.shape == (5, 3, 2, 5, 5) and wide.stem.padding == (0, 2, 2)
    assert wide(clips).shape == embed(clips).shape


def test_convolutional_stem_starts_with_he_init_and_round_trips(tmp_path):
    model = VideoSwinModel(tiny_config(patch_size=(2, 4, 4), stem_channels=16))
    stem = model.patch_embed.stem
    fan_in = 3 * 2 * 3 * 3
    assert abs(stem.weight.std().item() - (2 / fan_in) ** 0.5) < 0.2 * (2 / fan_in) ** 0.5
    assert not stem.bias.any()
    model.save_pretrained(tmp_path)
    loaded = VideoSwinModel.from_pretrained(tmp_path)
    assert loaded.config.stem_channels == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert VideoSwinModel(tiny_config()).patch_embed.stem is None  # 0: the official linear patchify


def test_stem_settings_that_cannot_be_built_are_config_errors():
    with pytest.raises(ValueError, match="stem_channels=-1"):
        tiny_config(stem_channels=-1)
    with pytest.raises(ValueError, match="stem_kernel_size=4 must be odd"):
        tiny_config(stem_channels=8, stem_kernel_size=4)


def test_patch_merging_matches_official_neighbour_order():
    model = randomized(VideoSwinModel(tiny_config()))
    merge = model.layers[0].downsample
    x = torch.randn(2, 3, 6, 8, 8)
    official = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
    torch.testing.assert_close(merge(x), merge.reduction(merge.norm(official)))


def test_window_partition_round_trip_and_order():
    x = torch.randn(2, 4, 6, 9, 3 * 2 * 5)
    windows = window_partition(x.view(2, 4, 6, 9, 3, 2, 5), (2, 3, 3))
    assert windows.shape == (3, 2, 12 * 2, 18, 5)
    # window 1 of video 0 is frames 0-1, rows 0-2, columns 3-5; head 1 of the key stack
    expected = x[0, 0:2, 0:3, 3:6].reshape(18, 3, 2, 5)[:, 1, 1]
    torch.testing.assert_close(windows[1, 0, 1 * 2 + 1], expected)
    value = windows[2].unflatten(1, (-1, 2))
    torch.testing.assert_close(window_reverse(value, (2, 3, 3), (4, 6, 9)), x[..., 20:])


def test_relative_position_index_full_and_clipped():
    full = relative_position_index((8, 7, 7), (8, 7, 7))
    assert full.shape == (392, 392)
    assert full.unique().numel() == 15 * 13 * 13 and full.diagonal().eq(7 * 169 + 6 * 13 + 6).all()
    # a clipped window reads the rows of the same 3D offsets: the sub-box of the full index
    clipped = relative_position_index((4, 4, 4), (8, 7, 7))
    grid = torch.arange(392).view(8, 7, 7)[:4, :4, :4].flatten()
    torch.testing.assert_close(clipped, full[grid][:, grid])


def reference_attention(attn, x, window_size, shift_size):
    """Dense attention over the whole rolled map with an explicit "same window and same region" rule.

    Independent of the windowed implementation: no partition, masks and bias built per token pair.
    """
    n, depth, height, width, channels = x.shape
    heads = attn.num_heads
    rolled = torch.roll(x, tuple(-s for s in shift_size), dims=(1, 2, 3))
    grid = torch.stack(torch.meshgrid(*(torch.arange(s) for s in (depth, height, width)), indexing="ij"), -1)
    grid = grid.view(-1, 3)
    window = torch.tensor(window_size)
    same_window = (grid[:, None] // window == grid[None] // window).all(-1)
    sizes, shifts = torch.tensor([depth, height, width]), torch.tensor(shift_size)
    region = (grid >= sizes - window).long() + ((grid >= sizes - shifts) & (shifts > 0)).long()
    region = torch.where(shifts > 0, region, 0)
    allowed = same_window & (region[:, None] == region[None]).all(-1)
    offset = grid[:, None] % window - grid[None] % window + torch.tensor(attn.window_size) - 1
    _, th, tw = attn.window_size
    index = (offset[..., 0] * (2 * th - 1) + offset[..., 1]) * (2 * tw - 1) + offset[..., 2]
    bias = attn.relative_position_bias_table[index].permute(2, 0, 1)
    qkv = attn.qkv(rolled.view(n, -1, channels)).view(n, -1, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(-1, -2) * (channels // heads) ** -0.5 + bias
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    out = (weights @ qkv[2]).transpose(1, 2).reshape(n, depth, height, width, channels)
    return torch.roll(attn.proj(out), shift_size, dims=(1, 2, 3))


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("spatial", [(4, 6, 6), (3, 5, 7)])  # the second needs padding
def test_window_attention_matches_dense_reference(shifted, spatial):
    config = tiny_config(embed_dim=8, num_heads=(2, 2), window_size=(2, 3, 3))
    stage = randomized(VideoSwinModel(config)).layers[0]
    block = stage.blocks[1 if shifted else 0]
    x = torch.randn(2, *spatial, 8)
    window_size, shift_size = (2, 3, 3), ((1, 1, 1) if shifted else (0, 0, 0))
    mask = stage._shift_mask(spatial, window_size, shift_size, x)
    got = block._attention(x, window_size, shift_size, mask)
    padded = F.pad(x, (0, 0, 0, (-spatial[2]) % 3, 0, (-spatial[1]) % 3, 0, (-spatial[0]) % 2))
    expected = reference_attention(block.attn, padded, window_size, shift_size)
    torch.testing.assert_close(got, expected[:, :spatial[0], :spatial[1], :spatial[2]], rtol=1e-4, atol=1e-5)


def test_clipped_window_matches_dense_reference():
    """Feature smaller than the window: the window shrinks to the feature, and no shift."""
    config = tiny_config(window_size=(8, 7, 7), depths=(2,), num_heads=(2,))
    model = randomized(VideoSwinModel(config)).eval()
    x = torch.randn(1, 3, 4, 8, 12)  # tokens (4, 4, 6): smaller than (8, 7, 7) everywhere
    tokens = model.patch_embed(x)
    block = model.layers[0].blocks[1]
    got = block._attention(tokens, (4, 4, 6), (0, 0, 0), None)
    torch.testing.assert_close(got, reference_attention(block.attn, tokens, (4, 4, 6), (0, 0, 0)), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert model(x).pooler_output.shape == (1, 8)


@pytest.mark.parametrize("shifted", [False, True])
def test_attention_outside_the_window_gets_exactly_zero_weight(shifted):
    """Perturb a token the block must not see from a window: that window's outputs do not change at all."""
    config = tiny_config(embed_dim=8, num_heads=(2, 2), window_size=(2, 3, 3))
    stage = randomized(VideoSwinModel(config)).layers[0].eval()
    block = stage.blocks[1 if shifted else 0]
    spatial = (2, 6, 6)
    window_size = (2, 3, 3)
    shift_size = (0, 1, 1) if shifted else (0, 0, 0)
    # Shifted by one row and column, the rolled window at rows/cols 3-5 holds unrolled rows/cols 4, 5 and 0, which
    # come from different regions of the map; unshifted, (0, 0, 0) and (0, 0, 3) lie in different windows.
    watched, perturbed = ((0, 4, 4), (0, 0, 0)) if shifted else ((0, 0, 0), (0, 0, 3))
    mask = stage._shift_mask(spatial, window_size, shift_size, torch.zeros(()))
    x = torch.randn(1, *spatial, 8)
    y = x.clone()
    y[(0, *perturbed)] += 10.0 * torch.randn(8)
    with torch.no_grad():
        out_x = block(x, window_size=window_size, shift_size=shift_size, shift_mask=mask)
        out_y = block(y, window_size=window_size, shift_size=shift_size, shift_mask=mask)
    assert torch.equal(out_x[(0, *watched)], out_y[(0, *watched)])
    # sanity: the perturbation does reach the tokens of its own window
    neighbour = (1, 0, 0) if shifted else (0, 0, 4)
    assert not torch.equal(out_x[(0, *neighbour)], out_y[(0, *neighbour)])


def test_shift_mask_is_built_once_per_shape():
    model = randomized(VideoSwinModel(tiny_config())).eval()
    stage = model.layers[0]
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 24, 24))
        first = dict(stage._mask_cache)
        model(torch.randn(2, 3, 4, 24, 24))
    assert len(first) == 1 and all(stage._mask_cache[key] is mask for key, mask in first.items())


def test_gradients_reach_every_parameter():
    model = randomized(VideoSwinModel(tiny_config())).train()
    model(torch.randn(2, 3, 4, 24, 24)).pooler_output.square().sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config(drop_path_rate=0.3)
    model = randomized(VideoSwinModel(config)).train()
    clips = torch.randn(2, 3, 4, 24, 24)

    def gradients(seed):
        model.zero_grad()
        torch.manual_seed(seed)
        model(clips).pooler_output.square().sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients(0)
    blocks = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(blocks) == sum(config.depths) and all(isinstance(b, VideoSwinBlock3D) for b in blocks)
    for block in blocks:  # what PreTrainedModel.gradient_checkpointing_enable() does to each layer
        block.gradient_checkpointing = True
        block._gradient_checkpointing_func = functools.partial(checkpoint, use_reentrant=False)
    checkpointed = gradients(0)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_cpu_training_attention_matches_sdpa_gradients_over_several_chunks(monkeypatch):
    """The fused-forward / hand-written-backward attention used for CPU training equals SDPA's math path, mask
    gradient included, also when its backward walks the batch in several chunks (and with -inf shift entries)."""
    monkeypatch.setattr(modeling_video_swin, "_BACKWARD_CHUNK_BYTES", 1)  # one batch row per chunk
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(3, 4, 10, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    mask = torch.randn(1, 4, 10, 10, generator=generator, dtype=torch.float64)
    mask[..., 0, 5:] = float("-inf")
    grad_out = torch.randn(3, 4, 10, 8, generator=generator, dtype=torch.float64)

    def gradients(attention):
        inputs = [t.clone().requires_grad_() for t in (query, key, value, mask)]
        out = attention(*inputs)
        out.backward(grad_out)
        return [out.detach(), *(t.grad for t in inputs)]

    ours = gradients(modeling_video_swin._MaskedAttentionCPU.apply)
    reference = gradients(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


def test_matches_torchvision_swin3d_t_with_its_weights():
    """Where torchvision is installed (not beside the CPU torch of `scripts/setup_env.sh`): with torchvision's weights
    the backbone computes torchvision's `swin3d_t` features. At 224² no window is clipped in space; see
    `relative_position_index` for why clipped spatial windows (stage 3 at 112²) differ on purpose."""
    video_models = pytest.importorskip("torchvision.models.video")
    from emotions_hf.convert_checkpoints import convert_video_backbone

    torch.manual_seed(0)
    reference = video_models.swin3d_t().eval()
    reference.head = torch.nn.Identity()
    config = VideoSwinConfig(image_size=224, num_frames=4)
    state, report = convert_video_backbone(reference.state_dict(), config)
    assert not report.missing_keys and not report.unexpected_keys
    model = VideoSwinModel(config).eval()
    model.load_state_dict(state, strict=True)
    clip = torch.randn(1, 3, 4, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(clip).pooler_output, reference(clip), rtol=1e-4, atol=1e-5)


def backbone_outputs_and_gradients(model, clips):
    model.zero_grad()
    out = model(clips).pooler_output
    out.square().sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_eager_attention_matches_the_fast_paths_forward_and_gradients():
    """`attn_implementation="eager"` runs the plain softmax(QKᵀ/√d + bias)V; the fused CPU training path (and
    SDPA, under no_grad) give the same outputs and gradients."""
    fast = randomized(VideoSwinModel(tiny_config())).train()
    eager = VideoSwinModel(tiny_config(attn_implementation="eager")).train()
    eager.load_state_dict(fast.state_dict())
    assert fast.config._attn_implementation != "eager" and eager.config._attn_implementation == "eager"
    clips = torch.randn(2, 3, 4, 24, 24, generator=torch.Generator().manual_seed(1))
    fast_out, fast_grads = backbone_outputs_and_gradients(fast, clips)
    eager_out, eager_grads = backbone_outputs_and_gradients(eager, clips)
    torch.testing.assert_close(fast_out, eager_out, rtol=1e-4, atol=1e-5)
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], eager_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(clips).pooler_output, eager.eval()(clips).pooler_output, rtol=1e-4, atol=1e-5)


@pytest.fixture
def fresh_kernel_check():
    """Forget the once-per-dtype kernel check before and after a test faking a torch without the kernel."""
    modeling_video_swin.fused_cpu_attention_works.cache_clear()
    yield
    modeling_video_swin.fused_cpu_attention_works.cache_clear()


def test_cpu_training_falls_back_to_sdpa_without_the_private_kernel(monkeypatch, fresh_kernel_check):
    """A torch without the fused CPU kernel trains through SDPA, with the same outputs and gradients."""
    model = randomized(VideoSwinModel(tiny_config())).train()
    clips = torch.randn(2, 3, 4, 24, 24, generator=torch.Generator().manual_seed(1))
    fused_out, fused_grads = backbone_outputs_and_gradients(model, clips)

    def forbidden(*args):
        raise AssertionError("the fused CPU kernel was used although the check found it missing")

    monkeypatch.setattr(modeling_video_swin, "_FUSED_CPU_OP", "no_such_attention_kernel")
    monkeypatch.setattr(modeling_video_swin._MaskedAttentionCPU, "apply", forbidden)
    modeling_video_swin.fused_cpu_attention_works.cache_clear()
    assert not modeling_video_swin.fused_cpu_attention_works(torch.float32)
    fallback_out, fallback_grads = backbone_outputs_and_gradients(model, clips)
    torch.testing.assert_close(fallback_out, fused_out, rtol=1e-4, atol=1e-5)
    for name in fused_grads:
        torch.testing.assert_close(fallback_grads[name], fused_grads[name], rtol=1e-4, atol=1e-5, msg=name)


class _PackedLinear(torch.nn.Module):
    """A Linear whose `weight` is a method, as in torch's dynamically quantized Linear (packed weights)."""

    def __init__(self, linear):
        super().__init__()
        self.inner = linear

    def weight(self):
        return self.inner.weight

    def forward(self, hidden_states):
        return self.inner(hidden_states)


@pytest.mark.parametrize("shifted_stage_windows", [(2, 3, 3), (4, 5, 5)])
def test_attention_through_a_packed_qkv_module_matches_the_split_weights(shifted_stage_windows):
    """With a qkv module that has no weight tensor (int8 `quantize_int8`), attention calls it once and splits q|k|v;
    the result equals the path that slices the weight (regular, shifted and clipped windows)."""
    config = tiny_config(window_size=shifted_stage_windows)
    plain = randomized(VideoSwinModel(config)).eval()
    packed = VideoSwinModel(config).eval()
    packed.load_state_dict(plain.state_dict())
    for stage in packed.layers:
        for block in stage.blocks:
            block.attn.qkv = _PackedLinear(block.attn.qkv)
    clips = torch.randn(2, 3, 4, 24, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = plain(clips).last_hidden_state
        torch.testing.assert_close(packed(clips).last_hidden_state, expected, rtol=1e-5, atol=1e-6)
