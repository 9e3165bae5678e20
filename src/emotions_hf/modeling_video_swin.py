"""Video Swin Transformer 3D backbone (Liu et al., "Video Swin Transformer", CVPR 2022), the visual branch of AV-CANet.

Parameters are named like the official Video Swin checkpoint without its `backbone.` prefix (`patch_embed.proj`,
`layers.{s}.blocks.{j}.attn.qkv`, `layers.{s}.downsample.reduction`, `norm`, ...), so `convert_checkpoints` only renames.

Layout and speed: the network works on channels-last maps (N, D, H, W, C), so LayerNorm and every Linear act on the
contiguous last dim and the patch embedding is one Linear over flattened patches. Attention moves data twice per
block: one `index_select` rolls the normed map and splits it into windows (`window_token_order`), one undoes both
after the output projection. Windowed tokens run window fastest, so q, k and v (three Linears on the qkv weight's
row blocks) view as (N, nW·h, V, d) without a copy: windows ride in the head dim and the per-window additive mask
(relative position bias plus, in shifted blocks, the -inf shift mask built once per feature shape) broadcasts over
the batch. Attention is `F.scaled_dot_product_attention`, on the CPU its fused flash kernel; when the bias needs a
gradient on the CPU (training), where PyTorch would fall back to its math path, `_MaskedAttentionCPU` keeps the fused
forward and computes the mask gradient in a cache-blocked backward. That forward is a private aten op, so it is
used only where a one-time check finds it present and right (`fused_cpu_attention_works`); SDPA serves
otherwise. `attn_implementation="eager"` (the config's `_attn_implementation`) selects `eager_attention`
instead, the plain reference every fast path must match.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_video_swin import VideoSwinConfig

Size3 = tuple[int, int, int]


def window_partition(x: torch.Tensor, window_size: Size3) -> torch.Tensor:
    """Cut a channels-last map into windows, one copy.

    (N, D, H, W, S, h, d) -> (S, N, nW·h, wd·wh·ww, d): S stacked projections (3 for q|k|v), h heads of width d.
    Windows run in (D, H, W) raster order, heads fastest, so the result views as (S, N·nW, h, window, d) too.
    D, H, W must be multiples of the window size.
    """
    n, depth, height, width, stack, heads, dim = x.shape
    wd, wh, ww = window_size
    x = x.view(n, depth // wd, wd, height // wh, wh, width // ww, ww, stack, heads, dim)
    x = x.permute(7, 0, 1, 3, 5, 8, 2, 4, 6, 9)
    return x.reshape(stack, n, -1, wd * wh * ww, dim)


def window_reverse(windows: torch.Tensor, window_size: Size3, spatial: Size3) -> torch.Tensor:
    """Inverse of `window_partition` for one stack: (N, nW, h, window, d) -> channels-last (N, D, H, W, h·d)."""
    n, _, heads, _, dim = windows.shape
    wd, wh, ww = window_size
    depth, height, width = spatial
    x = windows.unflatten(3, (wd, wh, ww)).unflatten(1, (depth // wd, height // wh, width // ww))
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4, 8)  # (N, nD, wd, nH, wh, nW, ww, h, d)
    return x.reshape(n, depth, height, width, heads * dim)


def effective_window(spatial: Size3, window_size: Size3, shift_size: Size3) -> tuple[Size3, Size3]:
    """Clip the window to the feature size where the feature is smaller, with no shift in such dims (official code)."""
    window = tuple(min(w, s) for w, s in zip(window_size, spatial))
    shift = tuple(0 if s <= w else sh for w, s, sh in zip(window_size, spatial, shift_size))
    return window, shift


@lru_cache(maxsize=32)
def relative_position_index(window_size: Size3, table_window: Size3) -> torch.Tensor:
    """(V, V) index into a relative-position table of `table_window`, for two tokens of a `window_size` window.

    With `window_size == table_window` this is the official index. A clipped window uses the same table rows for the
    same 3D offsets (the official code instead slices the first V rows and columns of the full index, which only
    keeps the geometry when just the time dim is clipped).
    """
    coords = torch.meshgrid(*(torch.arange(w, device="cpu") for w in window_size), indexing="ij")
    coords = torch.stack(coords).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :]  # (3, V, V), each offset in (-w, w)
    td, th, tw = table_window
    offsets = [relative[0] + td - 1, relative[1] + th - 1, relative[2] + tw - 1]
    return (offsets[0] * (2 * th - 1) + offsets[1]) * (2 * tw - 1) + offsets[2]


@lru_cache(maxsize=32)
def _shift_regions(spatial: Size3, window_size: Size3, shift_size: Size3) -> torch.Tensor:
    """Shift mask of the official code: (nW, V, V) bool, True where two tokens of a rolled window come from different
    regions of the unrolled map (so must not attend to each other). Built once per feature shape."""
    region = torch.zeros(spatial, dtype=torch.int64, device="cpu")  # cached: never on the meta device
    count = 0
    bounds = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window_size, shift_size)]
    for d0, d1 in bounds[0]:
        for h0, h1 in bounds[1]:
            for w0, w1 in bounds[2]:
                region[d0:d1, h0:h1, w0:w1] = count
                count += 1
    ids = window_partition(region.view(1, *spatial, 1, 1, 1), window_size)[0, 0, :, :, 0]  # (nW, V)
    return ids[:, :, None] != ids[:, None, :]


@lru_cache(maxsize=32)
def window_token_order(spatial: Size3, window_size: Size3, shift_size: Size3) -> tuple[torch.Tensor, torch.Tensor]:
    """Token permutations into and out of the (shifted) windows of a padded (D, H, W) map, for `index_select`.

    `order[p]` is the flat map index of windowed position p: the roll by -shift and the window split in one gather.
    Positions run window fastest, (V, nW) for V tokens per window, so that after a per-token Linear the windows and
    heads of q, k and v merge into one strided dim. `inverse` undoes it (window merge and roll back).
    """
    volume = spatial[0] * spatial[1] * spatial[2]
    rolled = torch.roll(torch.arange(volume).view(spatial), tuple(-s for s in shift_size), dims=(0, 1, 2))
    windows = window_partition(rolled.view(1, *spatial, 1, 1, 1), window_size)[0, 0, :, :, 0]  # (nW, V)
    order = windows.t().flatten()
    positions = torch.arange(volume).view(windows.shape[1], -1).t()  # windowed position of each (window, token)
    unrolled = window_reverse(positions.view(1, *positions.shape[:1], 1, -1, 1), window_size, spatial)[0, ..., 0]
    inverse = torch.roll(unrolled, shift_size, dims=(0, 1, 2)).flatten()
    return order, inverse


def eager_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(Q Kᵀ / √d + mask) V in plain torch ops, with SDPA's signature: the reference the fused paths
    must match.

    A boolean `attn_mask` marks the pairs that may attend (as in SDPA); a float one is added to the scores.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)) * query.shape[-1] ** -0.5
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, dropout_p)
    return torch.matmul(probs, value)


def attention_function(config: PreTrainedConfig) -> Callable[..., torch.Tensor]:
    """`eager_attention` when the config asks for `attn_implementation="eager"`, else SDPA (same
    signature)."""
    return eager_attention if config._attn_implementation == "eager" else F.scaled_dot_product_attention


_FUSED_CPU_OP = "_scaled_dot_product_flash_attention_for_cpu"  # private: may change or vanish in any torch


@cache
def fused_cpu_attention_works(dtype: torch.dtype) -> bool:
    """Whether this torch has the private fused CPU kernel `_MaskedAttentionCPU` builds on, with the (out,
    logsumexp) result it expects and SDPA's output for `dtype`. Checked once per dtype on a tiny input."""
    op = getattr(torch.ops.aten, _FUSED_CPU_OP, None)
    if op is None:
        return False
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, 2, 4, 8, generator=generator).to(dtype) for _ in range(3))
    mask = torch.randn(1, 2, 4, 4, generator=generator).to(dtype)
    try:
        with torch.no_grad():
            out, logsumexp = op(query, key, value, attn_mask=mask, scale=8 ** -0.5)
            expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False
    return (tuple(logsumexp.shape) == tuple(query.shape[:-1])
            and torch.allclose(out.float(), expected.float(), rtol=1e-2, atol=1e-2))


_BACKWARD_CHUNK_BYTES = 8 << 20


class _MaskedAttentionCPU(torch.autograd.Function):
    """`scaled_dot_product_attention` with a learned additive mask of batch size 1, for CPU training (only
    where `fused_cpu_attention_works`).

    PyTorch's fused CPU kernel gives no gradient for `attn_mask`, so with a trainable bias SDPA falls back to its
    math path (which stores the probabilities and runs a NaN-safe softmax). Here the forward is the fused kernel
    itself, and the backward recomputes the probabilities from its log-sum-exp and forms every gradient, the mask's
    (the score gradient summed over the batch) included, with in-place elementwise steps.
    """

    @staticmethod
    def forward(ctx, query, key, value, attn_mask):
        scale = query.shape[-1] ** -0.5
        fused = getattr(torch.ops.aten, _FUSED_CPU_OP)
        out, logsumexp = fused(query, key, value, attn_mask=attn_mask, scale=scale)
        ctx.save_for_backward(query, key, value, attn_mask, out, logsumexp)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        query, key, value, attn_mask, out, logsumexp = ctx.saved_tensors
        grads = [torch.empty_like(t) for t in (query, key, value)]  # the inputs' strides: their views stay free
        grad_mask = torch.zeros_like(attn_mask) if ctx.needs_input_grad[3] else None
        # Batch chunks of about _BACKWARD_CHUNK_BYTES of scores: the (V, V) temporaries stay in cache and are reused
        # instead of being freshly mapped (at full size they are the largest tensors of the network).
        scores_bytes = query[:1].numel() // query.shape[-1] * key.shape[-2] * query.element_size()
        step = max(1, _BACKWARD_CHUNK_BYTES // scores_bytes)
        for start in range(0, query.shape[0], step):
            q, k, v, d_out, o, lse, d_q, d_k, d_v = (
                t[start:start + step] for t in (query, key, value, grad_out, out, logsumexp, *grads))
            probs = torch.matmul(q, k.transpose(-1, -2)).mul_(ctx.scale).add_(attn_mask)
            probs = probs.sub_(lse.unsqueeze(-1).to(probs.dtype)).exp_()
            d_v.copy_(torch.matmul(probs.transpose(-1, -2), d_out))
            d_scores = torch.matmul(d_out, v.transpose(-1, -2)).sub_((d_out * o).sum(-1, keepdim=True)).mul_(probs)
            if grad_mask is not None:
                grad_mask += d_scores.sum_to_size(attn_mask.shape)
            d_q.copy_(torch.matmul(d_scores, k)).mul_(ctx.scale)
            d_k.copy_(torch.matmul(d_scores.transpose(-1, -2), q)).mul_(ctx.scale)
        return (*grads, grad_mask)


class VideoSwinStem(nn.Conv3d):
    """The convolutional stem (`config.stem_channels`): a k×k Conv3d (`config.stem_kernel_size`) over each tubelet's
    frames, stride 1 in space so it overlaps patch borders, then a GELU."""

    def __init__(self, config: VideoSwinConfig):
        frames, side = config.patch_size[0], config.stem_kernel_size
        super().__init__(config.num_channels, config.stem_channels, kernel_size=(frames, side, side),
                         stride=(frames, 1, 1), padding=(0, side // 2, side // 2))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.gelu(super().forward(pixel_values))


class VideoSwinPatchEmbed3D(nn.Module):
    """Non-overlapping 3D patches -> tokens: Conv3d with kernel = stride = patch, then LayerNorm. With
    `config.stem_channels`, `VideoSwinStem` comes first and the patchify embeds its maps (one step in time)."""

    def __init__(self, config: VideoSwinConfig):
        super().__init__()
        self.patch_size = tuple(config.patch_size)
        self.stem = VideoSwinStem(config) if config.stem_channels else None
        projection_size = (1, *self.patch_size[1:]) if self.stem is not None else self.patch_size
        in_channels = config.stem_channels or config.num_channels
        self.proj = nn.Conv3d(in_channels, config.embed_dim, kernel_size=projection_size, stride=projection_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, H, W) -> channels-last (N, D, H', W', C). Pads T, H, W up to patch multiples like the official code.

        A kernel = stride convolution is a Linear over flattened patches; computing it that way gives the channels-last
        layout directly and reads a strided input (e.g. a transposed (N, T, C, H, W) batch) with a single copy.
        """
        _, _, frames, height, width = pixel_values.shape
        pad = [(-size) % patch for size, patch in zip((width, height, frames), self.patch_size[::-1])]
        if any(pad):
            pixel_values = F.pad(pixel_values, (0, pad[0], 0, pad[1], 0, pad[2]))
        if self.stem is not None:
            pixel_values = self.stem(pixel_values)
        pt, ph, pw = self.proj.kernel_size
        n, _, frames, height, width = pixel_values.shape
        patches = pixel_values.unflatten(4, (width // pw, pw)).unflatten(3, (height // ph, ph))
        patches = patches.unflatten(2, (frames // pt, pt)).permute(0, 2, 4, 6, 1, 3, 5, 7)  # (N, D, H', W', C_in, pt, ph, pw)
        patches = patches.reshape(n, frames // pt, height // ph, width // pw, -1)
        tokens = F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)
        return self.norm(tokens)


class VideoSwinWindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows, with a learned relative position bias per head."""

    def __init__(self, dim: int, num_heads: int, config: VideoSwinConfig):
        super().__init__()
        self.config = config  # read at each call: the attention implementation can change after construction
        self.num_heads = num_heads
        self.window_size = tuple(config.window_size)
        wd, wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer(
            "relative_position_index", relative_position_index(self.window_size, self.window_size).clone(), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = config.attention_dropout
        self.proj_drop = nn.Dropout(config.hidden_dropout)

    def relative_position_bias(self, window_size: Size3) -> torch.Tensor:
        """(h, V, V) bias for a (possibly clipped) window."""
        if window_size == self.window_size:
            index = self.relative_position_index
        else:
            index = relative_position_index(window_size, self.window_size).to(self.relative_position_index.device)
        volume = index.shape[0]
        bias = self.relative_position_bias_table.index_select(0, index.view(-1))  # (V·V, h): contiguous row gather
        return bias.view(volume, volume, self.num_heads).permute(2, 0, 1).contiguous()

    def attention_mask(self, window_size: Size3, num_windows: int, shift_mask: torch.Tensor | None) -> torch.Tensor:
        """Additive (1, nW·h, V, V) mask: the bias of every head plus, in a shifted block, the window's shift mask."""
        bias = self.relative_position_bias(window_size)
        if shift_mask is not None:
            mask = shift_mask.to(bias.dtype).unsqueeze(1) + bias
        else:
            mask = bias.expand(num_windows, *bias.shape)
        return mask.reshape(1, -1, *bias.shape[1:])

    def forward(self, windows: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """(N, V·nW, C) tokens in `window_token_order` -> same; `attn_mask` from `attention_mask`.

        q, k and v come from three Linears on the qkv weight's row blocks: each output (N, V, nW·h, d) views as
        (N, nW·h, V, d) without a copy, windows riding in the head dim so the per-window mask broadcasts over N.
        """
        n, tokens, channels = windows.shape
        volume = attn_mask.shape[-1]
        head_dim = channels // self.num_heads
        if isinstance(self.qkv.weight, torch.Tensor):
            weights = self.qkv.weight.chunk(3)
            biases = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None,) * 3
            query, key, value = (
                F.linear(windows, weight, bias).view(n, volume, -1, head_dim).transpose(1, 2)
                for weight, bias in zip(weights, biases)
            )
        else:  # a module with packed weights (`emotions_hf.quantization.quantize_int8`): one call, then q|k|v copies
            qkv = self.qkv(windows).view(n, volume, -1, 3, self.num_heads, head_dim)
            query, key, value = (qkv[:, :, :, i].reshape(n, volume, -1, head_dim).transpose(1, 2) for i in range(3))
        dropout = self.attention_dropout if self.training else 0.0
        attn_mask = attn_mask.to(query.dtype)
        attend = attention_function(self.config)
        cpu_training = (query.device.type == "cpu" and attn_mask.requires_grad and dropout == 0.0
                        and torch.is_grad_enabled())
        if attend is not eager_attention and cpu_training and fused_cpu_attention_works(query.dtype):
            out = _MaskedAttentionCPU.apply(query, key, value, attn_mask)
        else:
            out = attend(query, key, value, attn_mask=attn_mask, dropout_p=dropout)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(n, tokens, channels)))


class VideoSwinMLP(nn.Module):
    def __init__(self, dim: int, config: VideoSwinConfig):
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * config.mlp_ratio))
        self.act = nn.GELU()
        self.fc2 = nn.Linear(int(dim * config.mlp_ratio), dim)
        self.drop = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(hidden_states)))))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability `drop_prob`, rescaling the kept ones."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return hidden_states
        keep = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)
        return hidden_states * hidden_states.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class VideoSwinBlock3D(GradientCheckpointingLayer):
    """Pre-norm block: (shifted) window attention and MLP, each with a drop-path residual."""

    def __init__(self, dim: int, num_heads: int, shifted: bool, drop_path: float, config: VideoSwinConfig):
        super().__init__()
        self.shift_size = tuple(w // 2 for w in config.window_size) if shifted else (0, 0, 0)
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = VideoSwinWindowAttention3D(dim, num_heads, config)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = VideoSwinMLP(dim, config)

    def _attention(self, hidden_states, window_size, shift_size, shift_mask):
        """Pad to window multiples (after norm1, zeros, as the official code), roll and split into windows (one
        gather), attend, merge and roll back (one gather), crop."""
        n, depth, height, width, channels = hidden_states.shape
        pad = [(-s) % w for s, w in zip((depth, height, width), window_size)]
        if any(pad):
            hidden_states = F.pad(hidden_states, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        padded = tuple(hidden_states.shape[1:4])
        order, inverse = (i.to(hidden_states.device) for i in window_token_order(padded, window_size, shift_size))
        windows = hidden_states.reshape(n, -1, channels).index_select(1, order)
        num_windows = order.numel() // (window_size[0] * window_size[1] * window_size[2])
        mask = self.attn.attention_mask(window_size, num_windows, shift_mask if any(shift_size) else None)
        hidden_states = self.attn(windows, mask).index_select(1, inverse).view(n, *padded, channels)
        if any(pad):
            hidden_states = hidden_states[:, :depth, :height, :width]
        return hidden_states

    def forward(self, hidden_states: torch.Tensor, window_size: Size3, shift_size: Size3,
                shift_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D, H, W, C) -> same. `window_size` / `shift_size` are this feature size's clipped values."""
        attended = self._attention(self.norm1(hidden_states), window_size, shift_size, shift_mask)
        # Residual adds in place on the branch outputs (fresh tensors no backward needs): two allocations fewer.
        hidden_states = self.drop_path(attended).add_(hidden_states)
        return self.drop_path(self.mlp(self.norm2(hidden_states))).add_(hidden_states)


class VideoSwinPatchMerging(nn.Module):
    """2×2 spatial neighbours -> one token: concat (4C), LayerNorm, Linear 4C -> 2C without bias. Time is kept."""

    def __init__(self, dim: int, config: VideoSwinConfig):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=config.layer_norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        n, depth, height, width, channels = hidden_states.shape
        if height % 2 or width % 2:
            hidden_states = F.pad(hidden_states, (0, 0, 0, width % 2, 0, height % 2))
            height, width = height + height % 2, width + width % 2
        # Official order of the four neighbours: (row, col) = (0,0), (1,0), (0,1), (1,1): row fastest.
        merged = hidden_states.view(n, depth, height // 2, 2, width // 2, 2, channels).permute(0, 1, 2, 4, 5, 3, 6)
        merged = merged.reshape(n, depth, height // 2, width // 2, 4 * channels)
        return self.reduction(self.norm(merged))


class VideoSwinStage(nn.Module):
    """Blocks alternating regular and shifted windows, then (except for the last stage) patch merging."""

    def __init__(self, config: VideoSwinConfig, stage: int, drop_path: list[float]):
        super().__init__()
        dim = config.embed_dim * 2**stage
        self.window_size = tuple(config.window_size)
        self.blocks = nn.ModuleList(
            VideoSwinBlock3D(dim, config.num_heads[stage], shifted=j % 2 == 1, drop_path=drop_path[j], config=config)
            for j in range(config.depths[stage])
        )
        self.downsample = VideoSwinPatchMerging(dim, config) if stage < len(config.depths) - 1 else None
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def _shift_mask(self, spatial, window_size, shift_size, like: torch.Tensor) -> torch.Tensor | None:
        """Additive (nW, V, V) mask of the shifted blocks for this padded feature size, cached per shape/device/dtype."""
        if not any(shift_size):
            return None
        padded = tuple(s + (-s) % w for s, w in zip(spatial, window_size))
        key = (padded, window_size, shift_size, like.device, like.dtype)
        if key not in self._mask_cache:
            different = _shift_regions(padded, window_size, shift_size).to(like.device)
            mask = torch.zeros(different.shape, dtype=like.dtype, device=like.device)
            self._mask_cache[key] = mask.masked_fill_(different, float("-inf"))
        return self._mask_cache[key]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        spatial = tuple(hidden_states.shape[1:4])
        if self.blocks:
            shift = tuple(w // 2 for w in self.window_size)
            window_size, shift_size = effective_window(spatial, self.window_size, shift)
            shift_mask = self._shift_mask(spatial, window_size, shift_size, hidden_states)
            no_shift = (0, 0, 0)
            for block in self.blocks:
                shifted = any(block.shift_size)
                hidden_states = block(hidden_states, window_size=window_size,
                                      shift_size=shift_size if shifted else no_shift,
                                      shift_mask=shift_mask if shifted else None)
        if self.downsample is not None:
            hidden_states = self.downsample(hidden_states)
        return hidden_states


class VideoSwinPreTrainedModel(PreTrainedModel):
    config_class = VideoSwinConfig
    config: VideoSwinConfig
    base_model_prefix = "video_swin"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ("VideoSwinBlock3D",)

    def _init_weights(self, module):
        """Truncated-normal Linear weights and bias tables, zero biases, unit LayerNorms; the relative position index
        (a non-persistent buffer) is rebuilt, since meta-device loading leaves it empty."""
        std = self.config.initializer_range
        if isinstance(module, VideoSwinStem):
            # He init, the standard for a convolution before a rectifier: at std 0.02 its GELU would start linear
            init.kaiming_normal_(module.weight, nonlinearity="relu")
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv3d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, VideoSwinWindowAttention3D):
            init.trunc_normal_(module.relative_position_bias_table, std=0.02)
            init.copy_(module.relative_position_index, relative_position_index(module.window_size, module.window_size))


class VideoSwinModel(VideoSwinPreTrainedModel):
    """Video Swin backbone: (N, 3, T, H, W) clips -> the last stage's map and its average, (N, `hidden_size`).

    Pooling is the global average over the last stage after the final LayerNorm (as the official I3D head).
    Checkpoints of the official code, torchvision's `swin3d_*` and 2D Swins (inflated) load into it through
    `emotions_hf.convert_checkpoints.load_video_swin`.
    """

    def __init__(self, config: VideoSwinConfig):
        super().__init__(config)
        self.patch_embed = VideoSwinPatchEmbed3D(config)
        self.pos_drop = nn.Dropout(config.hidden_dropout)
        total = sum(config.depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear, as torch.linspace
        starts = [sum(config.depths[:s]) for s in range(len(config.depths))]
        self.layers = nn.ModuleList(
            VideoSwinStage(config, s, rates[start:start + depth])
            for s, (start, depth) in enumerate(zip(starts, config.depths))
        )
        self.num_features = config.hidden_size
        self.norm = nn.LayerNorm(self.num_features, eps=config.layer_norm_eps)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None
                ) -> BaseModelOutputWithPooling | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(N, num_channels, T, H, W)`): normalised clips.

        Returns `last_hidden_state`, the last stage's channels-last map (N, T', H', W', hidden_size) after the final
        LayerNorm, and `pooler_output`, its average (N, hidden_size).
        """
        if pixel_values.dim() != 5 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"VideoSwinModel expects pixel_values of shape (N, {self.config.num_channels}, T, H, W); "
                             f"got {tuple(pixel_values.shape)}")
        hidden_states = self.pos_drop(self.patch_embed(pixel_values))
        for stage in self.layers:
            hidden_states = stage(hidden_states)
        hidden_states = self.norm(hidden_states)
        output = BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=hidden_states.mean(dim=(1, 2, 3)))
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


__all__ = [
    "VideoSwinModel",
    "VideoSwinPreTrainedModel",
    "attention_function",
    "eager_attention",
    "fused_cpu_attention_works",
    "relative_position_index",
    "window_partition",
    "window_reverse",
]
