"""AV-CANet (eMotions paper §4) as a transformers model.

Video: Video Swin-T per snippet -> Linear -> F_v (B, s, C1). Audio: ResNet-34 per MFCC chunk -> Linear +
BatchNorm + Tanh -> F_a (B, s, C1). Local-Global Fusion: LISF (windowed self- and shared cross-modal attention,
self/cross gates, dilated residual blocks, selectively cross-aggregative integration; Eq. 4-11), then GLCF
(global cross-modal attention, residual, mean over snippets; Eq. 12-13), then a fusion head (Mid-Concat, Eq. 14,
or a Table 7 ablation).

Every attention runs through `F.scaled_dot_product_attention` (with `attn_implementation="eager"`: the plain
`eager_attention`), batched over videos and snippets.

Interpretations the paper leaves open (documented so results are comparable):
- LISF level l (0-based) attends within |j - t| <= `config.lgf_window_sizes[l]`; its dilated residual block uses
  dilation 2^l, as the authors' released code (which also uses the windows 2^l, i.e. (1, 2)).
- The selectively cross-aggregative integration attends over the L level weights of one snippet (L tokens of
  dimension 1), video weights querying audio weights and vice versa with one shared set of 1x1 projections, and
  adds the result to the weights (a residual, as the authors' code).
- GLCF uses one attention for both directions (as the authors' code) and a Linear per modality.
- Dropout (`lgf_dropout`) is applied to the residual branches of the LISF attention blocks and inside their
  feed-forward layers, not to attention probabilities.

Videos without sound (`audio_mask` False) give a well-defined result: their MFCC chunks never enter the audio
encoder (F_a = 0, no BatchNorm statistics), every cross-modal message from audio into video is zeroed (so video
tokens keep only their residual path), the video keeps its own level weights in the integration, and E_a = 0.
The video path is then independent of the audio input and, for the linear fusions, the audio contribution to the
logits is exactly 0 (`logits == visual_logits + bias`, `audio_logits == 0`). The multi-task audio loss skips them.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, ResNetConfig, ResNetModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_avcanet import LINEAR_FUSIONS, AVCANetAudioConfig, AVCANetConfig
from .loss_avcanet import AVCANetLoss, EPCELoss
from .modeling_video_swin import VideoSwinModel, attention_function

VIDEO, AUDIO = "video", "audio"


@functools.lru_cache(maxsize=64)
def window_mask(num_snippets: int, window: int, device: torch.device) -> torch.Tensor:
    """(s, s) boolean SDPA mask, True where snippet t may attend to snippet j: the window |j - t| <= d.

    Cached per (s, d, device); created outside inference mode so a mask first built by a pipeline can later be
    saved for backward by training.
    """
    with torch.inference_mode(False):
        index = torch.arange(num_snippets, device=device)
        return (index[:, None] - index[None, :]).abs() <= window


def readout(linear: nn.Linear) -> nn.Linear:
    """Marks a Linear between the encoders and the logits, whose init `config.readout_init` chooses."""
    linear.is_readout = True
    return linear


def _checked_batch(tensor, name: str, axes: str, layout: tuple[int, ...], modality: str) -> int:
    """Batch size of an input that must be (B, *layout); a ValueError naming the expected layout otherwise."""
    expected = f"{axes} = (B, {', '.join(map(str, layout))})"
    if tensor is None:
        raise ValueError(f"modality={modality!r} needs {name} of shape {expected}")
    if tensor.dim() != len(layout) + 1 or tuple(tensor.shape[1:]) != layout:
        raise ValueError(f"{name} must have shape {expected} for this config; got {tuple(tensor.shape)}")
    return tensor.shape[0]


def modalities_of(config: AVCANetConfig) -> tuple[str, ...]:
    return tuple(m for m, used in ((VIDEO, config.uses_video), (AUDIO, config.uses_audio)) if used)


def zero_loss_touching(parameters: Iterable[nn.Parameter]) -> torch.Tensor:
    """0 · Σ parameters: adds nothing to a loss, but puts every given parameter into its backward with a zero
    gradient.

    DDP without unused-parameter detection (the Trainer's choice under gradient checkpointing) fails on a rank
    whose backward leaves a parameter without a gradient: a batch without sound skips the audio branch, a
    micro-batch of unreadable videos skips the whole model.
    """
    return torch.stack([parameter.sum() for parameter in parameters]).sum() * 0.0


def modulation_coefficients(visual_logits: torch.Tensor, audio_logits: torch.Tensor, labels: torch.Tensor,
                            alpha: float) -> tuple[float, float]:
    """OGM's gradient scales (k_v, k_a) for a batch: s_m = Σ softmax(logit term of m)[y]; the branch with the
    larger share (ρ = s_m / s_other > 1) gets 1 − tanh(α·(ρ − 1)), the other 1."""
    with torch.no_grad():
        scores = [F.softmax(terms.float(), dim=-1).gather(1, labels[:, None]).sum()
                  for terms in (visual_logits, audio_logits)]
        ratio = (scores[0] / scores[1].clamp_min(1e-12)).item()
    if ratio > 1:
        return 1.0 - math.tanh(alpha * (ratio - 1.0)), 1.0
    return 1.0, 1.0 - math.tanh(alpha * (1.0 / max(ratio, 1e-12) - 1.0))


def modulate_encoder_gradients(encoded: AVCANetModelOutput, visual_logits: torch.Tensor, audio_logits: torch.Tensor,
                               labels: torch.Tensor, audio_mask: torch.Tensor | None, alpha: float) -> None:
    """Scales the gradients reaching F_v and F_a (so every encoder parameter's) by `modulation_coefficients`,
    measured on the videos that have sound: a silent video's audio term says nothing about the audio branch."""
    if audio_mask is not None:
        if not bool(audio_mask.any()):
            return
        visual_logits, audio_logits, labels = visual_logits[audio_mask], audio_logits[audio_mask], labels[audio_mask]
    coefficients = modulation_coefficients(visual_logits, audio_logits, labels, alpha)
    for features, coefficient in zip((encoded.video_snippet_embeds, encoded.audio_snippet_embeds), coefficients):
        if coefficient != 1.0 and features.requires_grad:
            features.register_hook(lambda grad, scale=coefficient: grad * scale)


@dataclass
class AVCANetModelOutput(ModelOutput):
    """Outputs of [`AVCANetModel`].

    Args:
        video_embeds / audio_embeds (`torch.FloatTensor` of shape `(B, hidden_size)`): E_v^4 / E_a^4, the pooled
            video and audio representations (None for a modality the config does not use; E_a = 0 without sound).
        video_snippet_embeds / audio_snippet_embeds (`torch.FloatTensor` of shape `(B, s, hidden_size)`): F_v / F_a,
            the encoder features per snippet before the LGF module.
    """

    video_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    video_snippet_embeds: torch.FloatTensor | None = None
    audio_snippet_embeds: torch.FloatTensor | None = None


@dataclass
class AVCANetVideoClassifierOutput(ModelOutput):
    """Outputs of [`AVCANetForVideoClassification`].

    Args:
        loss (`torch.FloatTensor`, *optional*): total loss (with multi-task: fused + visual + audio terms).
        logits (`torch.FloatTensor` of shape `(B, num_labels)`): the fused prediction.
        visual_logits / audio_logits (`torch.FloatTensor` of shape `(B, num_labels)`): the bias-free visual and audio
            terms of a linear head (`logits == visual_logits + audio_logits + bias` for "mid_concat" and "sum"; a
            single-modality model reports its own term); None for the non-linear fusions.
        fused_loss / visual_loss / audio_loss (`torch.FloatTensor`, *optional*): the loss terms; None when not
            computed (no labels, no multi-task, or no sample with audio for `audio_loss`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    visual_logits: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    fused_loss: torch.FloatTensor | None = None
    visual_loss: torch.FloatTensor | None = None
    audio_loss: torch.FloatTensor | None = None


class SnippetAttention(nn.Module):
    """Multi-head attention over snippets: queries from one sequence, keys and values from another (Eq. 4-8, 12)."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.config = config  # read at each call: the attention implementation can change after construction
        self.num_heads = config.lgf_num_heads
        hidden_size = config.hidden_size
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, attn_mask: torch.Tensor | None = None):
        q = self._split_heads(self.query(query))
        k, v = (self._split_heads(t) for t in self.key_value(key_value).chunk(2, dim=-1))
        attended = attention_function(self.config)(q, k, v, attn_mask=attn_mask)
        return self.output(attended.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Position-wise feed-forward layer of the LGF attention blocks (ReLU, width `lgf_ffn_ratio`·C1)."""

    def __init__(self, config: AVCANetConfig):
        hidden_size, width = config.hidden_size, int(config.hidden_size * config.lgf_ffn_ratio)
        super().__init__(nn.Linear(hidden_size, width), nn.ReLU(), nn.Dropout(config.lgf_dropout),
                         nn.Linear(width, hidden_size))


class LGFBlock(nn.Module):
    """Pre-LayerNorm attention block: x + Att(LN(x), context), then x + FFN(LN(x)).

    Self-attention when `context` is None (the context is then x itself). As in the authors' code, only the query is
    normalised: their `SublayerConnection` computes `x + dropout(sublayer(norm(x)))` with the keys/values passed in
    raw. `config.lgf_norm_context=True` normalises the keys/values too (LN(x) in self-attention, a LayerNorm of its
    own on a cross-modal context). `message_mask` (B,) zeroes the attention message of some samples, which
    then keep only their residual path (cross-modal attention into a video without sound).
    """

    def __init__(self, config: AVCANetConfig, cross_modal: bool):
        super().__init__()
        hidden = config.hidden_size
        self.query_norm = nn.LayerNorm(hidden)
        self.norm_context = config.lgf_norm_context
        self.context_norm = nn.LayerNorm(hidden) if cross_modal and self.norm_context else None
        self.attention = SnippetAttention(config)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = FeedForward(config)
        self.dropout = nn.Dropout(config.lgf_dropout)

    def forward(self, hidden, context=None, attn_mask=None, message_mask=None):
        query = self.query_norm(hidden)
        if context is None:
            key_value = query if self.norm_context else hidden
        else:
            key_value = context if self.context_norm is None else self.context_norm(context)
        message = self.attention(query, key_value, attn_mask)
        if message_mask is not None:
            message = message * message_mask[:, None, None].to(message.dtype)
        hidden = hidden + self.dropout(message)
        return hidden + self.dropout(self.ffn(self.ffn_norm(hidden)))


class SelfCrossGate(nn.Module):
    """Eq. 9: σ(W_s[F_s; F_c] + b_s)·F_s + σ(W_c[F_s; F_c] + b_c)·F_c, both gates in one Linear.

    Mixes a modality's self-attended and cross-attended snippets inside LISF; not the `fusion="gated"` head
    (`NonLinearFusionHead`), which mixes E_v and E_a after GLCF.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.gates = nn.Linear(2 * hidden_size, 2 * hidden_size)

    def forward(self, self_attended, cross_attended):
        self_gate, cross_gate = torch.sigmoid(self.gates(torch.cat([self_attended, cross_attended], -1))).chunk(2, -1)
        return self_gate * self_attended + cross_gate * cross_attended


class DilatedResidualBlock(nn.Module):
    """Acausal (centred) dilated residual block over snippets: ReLU(x + Conv1x1(ReLU(DilatedConv3(x))))."""

    def __init__(self, hidden_size: int, dilation: int, residual_relu: bool = True):
        super().__init__()
        self.residual_relu = residual_relu  # config.lgf_residual_relu: False gives x + update
        self.dilated = nn.Conv1d(hidden_size, hidden_size, kernel_size=3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(hidden_size, hidden_size, kernel_size=1)

    def forward(self, hidden):  # (B, s, C1)
        update = self.pointwise(F.relu(self.dilated(hidden.transpose(1, 2)))).transpose(1, 2)
        return F.relu(hidden + update) if self.residual_relu else hidden + update


class LISFLevel(GradientCheckpointingLayer):
    """One attentive pyramid level (0-based `level`): windowed SA per modality and one CMA block whose weights
    serve both directions, self/cross gates, dilated residual block. Single modality: SA and the dilated block
    only."""

    def __init__(self, config: AVCANetConfig, level: int):
        super().__init__()
        modalities = modalities_of(config)
        self.window = int(config.lgf_window_sizes[level])
        self.self_attention = nn.ModuleDict({m: LGFBlock(config, cross_modal=False) for m in modalities})
        cross_modal = len(modalities) == 2
        self.cross_attention = LGFBlock(config, cross_modal=True) if cross_modal else None
        self.gate = (nn.ModuleDict({m: SelfCrossGate(config.hidden_size) for m in modalities}) if cross_modal
                     else None)
        self.temporal = nn.ModuleDict({m: DilatedResidualBlock(config.hidden_size, 2**level, config.lgf_residual_relu)
                                       for m in modalities})

    def forward(self, video, audio, audio_mask):
        streams = {m: x for m, x in ((VIDEO, video), (AUDIO, audio)) if x is not None}
        any_stream = next(iter(streams.values()))
        mask = window_mask(any_stream.shape[1], self.window, any_stream.device)
        fused = {m: self.self_attention[m](x, attn_mask=mask) for m, x in streams.items()}
        if self.cross_attention is not None:
            # One call for both directions: video queries audio, audio queries video, same weights.
            keep = torch.cat([audio_mask, torch.ones_like(audio_mask)])
            crossed = self.cross_attention(torch.cat([video, audio]), torch.cat([audio, video]), mask, keep)
            crossed = dict(zip((VIDEO, AUDIO), crossed.chunk(2)))
            fused = {m: self.gate[m](fused[m], crossed[m]) for m in fused}
        out = {m: self.temporal[m](x) for m, x in fused.items()}
        return out.get(VIDEO), out.get(AUDIO)


class LevelWeightAttention(nn.Module):
    """Eq. 11's 1-head, 1-dim cross-modal attention over the L level weights of a snippet, shared by both directions,
    added to the weights. A video without sound gets no message from audio and keeps its own level weights."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.config = config  # read at each call: the attention implementation can change after construction
        self.query = nn.Linear(1, 1)
        self.key = nn.Linear(1, 1)
        self.value = nn.Linear(1, 1)

    def forward(self, video_weights, audio_weights, audio_mask):  # (B, s, L, 1) each
        queries = torch.cat([video_weights, audio_weights])
        context = torch.cat([audio_weights, video_weights])
        attend = attention_function(self.config)
        attended = attend(self.query(queries), self.key(context), self.value(context))
        video_message, audio_message = attended.chunk(2)
        video_message = video_message * audio_mask[:, None, None, None].to(video_message.dtype)
        return {VIDEO: video_weights + video_message, AUDIO: audio_weights + audio_message}


class SelectiveIntegration(nn.Module):
    """Eq. 10-11: per-snippet weights σ(Linear(C1 -> 1)) for each pyramid level, cross-modally adjusted, then the
    weighted sum over levels -> E² (B, s, C1). Single modality: the σ weights are used directly."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        modalities = modalities_of(config)
        self.level_score = nn.ModuleDict({m: nn.Linear(config.hidden_size, 1) for m in modalities})
        self.weight_attention = LevelWeightAttention(config) if len(modalities) == 2 else None

    def forward(self, pyramids: dict[str, torch.Tensor], audio_mask):  # each (B, s, L, C1)
        weights = {m: torch.sigmoid(self.level_score[m](p)) for m, p in pyramids.items()}
        if self.weight_attention is not None:
            weights = self.weight_attention(weights[VIDEO], weights[AUDIO], audio_mask)
        return {m: (p * weights[m]).sum(dim=2) for m, p in pyramids.items()}


class LISF(nn.Module):
    """Local-level Interactive-Selective Fusion: L serial pyramid levels and the selective integration."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.levels = nn.ModuleList(LISFLevel(config, level) for level in range(config.num_lgf_levels))
        self.integration = SelectiveIntegration(config)

    def forward(self, video, audio, audio_mask):
        outputs = {VIDEO: [], AUDIO: []}
        for level in self.levels:
            video, audio = level(video, audio, audio_mask)
            for modality, hidden in ((VIDEO, video), (AUDIO, audio)):
                if hidden is not None:
                    outputs[modality].append(hidden)
        pyramids = {m: torch.stack(levels, dim=2) for m, levels in outputs.items() if levels}  # (B, s, L, C1)
        integrated = self.integration(pyramids, audio_mask)
        return integrated.get(VIDEO), integrated.get(AUDIO)


class GLCF(nn.Module):
    """Global-level Complementary Fusion (Eq. 12-13): unrestricted multi-head cross-modal attention (one module, both
    directions in one call), Linear per modality (W_g, b_g), residual, mean over snippets -> E⁴ (B, C1)."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        hidden = config.hidden_size
        self.attention = SnippetAttention(config)
        self.projection = nn.ModuleDict({m: nn.Linear(hidden, hidden) for m in (VIDEO, AUDIO)})

    def forward(self, video, audio, audio_mask):
        attended = self.attention(torch.cat([video, audio]), torch.cat([audio, video]))
        video_attended, audio_attended = attended.chunk(2)
        video_message = self.projection[VIDEO](video_attended) * audio_mask[:, None, None].to(video.dtype)
        audio_message = self.projection[AUDIO](audio_attended)
        return (video + video_message).mean(1), (audio + audio_message).mean(1)


class LinearFusionHead(nn.Module):
    """A linear classifier whose logits split exactly into a visual and an audio term plus the bias.

    Mid-Concat (Eq. 14): W_f [E_v; E_a] + b_f with W_f = [W_v | W_a]. Sum: W (E_v + E_a) + b. One modality: W E + b.
    """

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.modalities = modalities_of(config)
        self.concat = config.fusion == "mid_concat" and len(self.modalities) == 2
        in_features = config.hidden_size * (2 if self.concat else 1)
        self.classifier = readout(nn.Linear(in_features, config.num_labels))

    def forward(self, video, audio):
        weights = self.classifier.weight.chunk(2, dim=1) if self.concat else (self.classifier.weight,) * 2
        terms = {m: F.linear(x, w) for m, x, w in ((VIDEO, video, weights[0]), (AUDIO, audio, weights[1]))
                 if m in self.modalities}
        logits = sum(terms.values()) + self.classifier.bias
        return logits, terms.get(VIDEO), terms.get(AUDIO)


class NonLinearFusionHead(nn.Module):
    """Table 7 ablations without a per-modality split: "gated" (z = σ(W[E_v; E_a]), z·E_v + (1-z)·E_a),
    "ew_multiply" (E_v ⊙ E_a) and "neural" (an MLP over [E_v; E_a]), each followed by a Linear classifier."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        hidden = config.hidden_size
        self.fusion = config.fusion
        if self.fusion == "gated":
            self.gate = nn.Linear(2 * hidden, hidden)
        elif self.fusion == "neural":
            self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Dropout(config.lgf_dropout))
        self.classifier = readout(nn.Linear(hidden, config.num_labels))

    def forward(self, video, audio):
        if self.fusion == "gated":
            gate = torch.sigmoid(self.gate(torch.cat([video, audio], -1)))
            fused = gate * video + (1 - gate) * audio
        elif self.fusion == "ew_multiply":
            fused = video * audio
        else:
            fused = self.mlp(torch.cat([video, audio], -1))
        return self.classifier(fused), None, None


def build_audio_encoder(config: AVCANetAudioConfig) -> ResNetModel:
    """ResNet over single-channel MFCC chunks (ResNet-34 by default) with the authors' (7, 1)/(2, 1) stem conv."""
    resnet = ResNetModel(ResNetConfig(
        num_channels=1, embedding_size=config.embedding_size, hidden_sizes=list(config.hidden_sizes),
        depths=list(config.depths), layer_type="basic", downsample_in_first_stage=False,
    ))
    kernel = config.stem_kernel
    resnet.embedder.embedder.convolution = nn.Conv2d(
        1, config.embedding_size, kernel_size=kernel, stride=config.stem_stride,
        padding=tuple(k // 2 for k in kernel), bias=False,
    )
    return resnet


class AVCANetPreTrainedModel(PreTrainedModel):
    config_class = AVCANetConfig
    config: AVCANetConfig
    base_model_prefix = "avcanet"
    main_input_name = "pixel_values"
    input_modalities = ("video", "audio")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ("VideoSwinBlock3D", "LISFLevel")

    def _init_weights(self, module):
        """Truncated-normal Linear/Conv weights and zero biases (the readout Linears: `config.readout_init`), unit
        norms, config-derived buffers; the Video Swin backbone and the ResNet keep their own init (transformers
        dispatches to it)."""
        std = self.config.initializer_range
        if getattr(module, "is_readout", False) and self.config.readout_init == "fan_in":
            bound = 1.0 / math.sqrt(module.in_features)  # PyTorch's nn.Linear default
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv3d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, EPCELoss):
            polarity, gamma = module.buffer_values()
            init.copy_(module.class_polarity, polarity)
            init.copy_(module.class_gamma, gamma)


class AVCANetModel(AVCANetPreTrainedModel):
    """Encoders and the LGF module: videos -> pooled video and audio representations E_v^4, E_a^4."""

    def __init__(self, config: AVCANetConfig):
        super().__init__(config)
        if config.uses_video:
            self.video_encoder = VideoSwinModel(config.vision_config)
            # The authors' `nn.Dropout(p=0.5)` on the pooled Swin features, before their `v_fc` (768 -> 512).
            self.video_feature_dropout = nn.Dropout(config.video_feature_dropout)
            self.video_projection = readout(nn.Linear(config.vision_config.hidden_size, config.hidden_size))
            # config.video_projection_norm: "layernorm" gives F_v the unit scale F_a gets from its BatchNorm + Tanh
            self.video_projection_norm = (nn.LayerNorm(config.hidden_size)
                                          if config.video_projection_norm == "layernorm" else None)
        if config.uses_audio:
            self.audio_encoder = build_audio_encoder(config.audio_config)
            self.audio_projection = nn.Sequential(
                nn.Linear(config.audio_config.hidden_size, config.hidden_size), nn.BatchNorm1d(config.hidden_size),
                nn.Tanh(),
            )
        self.lisf = LISF(config) if config.use_lisf else None
        self.glcf = GLCF(config) if config.use_glcf else None
        self.post_init()

    def _check_inputs(self, pixel_values, input_features, audio_mask) -> int:
        """Validate shapes against the config; return the batch size."""
        c, vision, audio = self.config, self.config.vision_config, self.config.audio_config
        batch_sizes = []
        if c.uses_video:
            layout = (c.num_snippets, vision.num_frames, vision.num_channels, vision.image_size, vision.image_size)
            batch_sizes.append(_checked_batch(pixel_values, "pixel_values", "(B, s, T, 3, H, W)", layout, c.modality))
        if c.uses_audio:
            layout = (c.num_snippets, audio.num_frames, audio.num_mfcc)
            batch_sizes.append(_checked_batch(input_features, "input_features", "(B, s, mfcc_frames, num_mfcc)",
                                              layout, c.modality))
            if audio_mask is not None and tuple(audio_mask.shape) != (batch_sizes[-1],):
                raise ValueError(f"audio_mask must have shape (B,) = ({batch_sizes[-1]},); got {tuple(audio_mask.shape)}")
        if len(set(batch_sizes)) > 1:
            raise ValueError(f"pixel_values and input_features disagree on the batch size: {batch_sizes}")
        return batch_sizes[0]

    def _video_features(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) -> (N, C1): backbone, `video_feature_dropout` (training only), projection and its norm."""
        pooled = self.video_feature_dropout(self.video_encoder(clips).pooler_output)
        features = self.video_projection(pooled)
        return features if self.video_projection_norm is None else self.video_projection_norm(features)

    def encode_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, s, T, 3, H, W) -> F_v (B, s, C1): all snippets of all videos through the backbone at once."""
        batch, snippets = pixel_values.shape[:2]
        return self._video_features(pixel_values.flatten(0, 1).transpose(1, 2)).view(batch, snippets, -1)

    def _encode_audio_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        pooled = self.audio_encoder(chunks).pooler_output.flatten(1)
        return self.audio_projection(pooled)

    def encode_audio(self, input_features: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, s, F, M) -> F_a (B, s, C1). Silent videos' chunks are skipped and get F_a = 0."""
        batch, snippets, frames, coefficients = input_features.shape
        chunks = input_features.reshape(batch * snippets, 1, frames, coefficients)
        if bool(audio_mask.all()):
            return self._encode_audio_chunks(chunks).view(batch, snippets, -1)
        present = audio_mask.repeat_interleave(snippets)
        features = chunks.new_zeros(batch * snippets, self.config.hidden_size)
        if bool(present.any()):
            features = features.index_put((present,), self._encode_audio_chunks(chunks[present]).to(features.dtype))
        elif torch.is_grad_enabled():  # keep the audio branch in this backward, with zero gradients (for DDP)
            parameters = itertools.chain(self.audio_encoder.parameters(), self.audio_projection.parameters())
            features = features + zero_loss_touching(parameters).to(features.dtype)
        return features.view(batch, snippets, -1)

    def encode_snippets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> F_v (N, C1) of N independent snippets: a snippet's features depend on its frames
        alone, so a timeline computes each snippet once and shares it between the windows that contain it."""
        return self._video_features(pixel_values.transpose(1, 2))

    def fuse_snippets(self, video: torch.Tensor | None, audio: torch.Tensor | None,
                      audio_mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """F_v, F_a (B, s, C1) -> E_v^4, E_a^4 (B, C1): the LGF module (LISF, GLCF) on encoder features, the part
        of the model that sees a window's snippets together (None for a modality the config does not use)."""
        if audio is not None and audio_mask is None:
            audio_mask = torch.ones(audio.shape[0], dtype=torch.bool, device=audio.device)
        if self.lisf is not None:
            video, audio = self.lisf(video, audio, audio_mask)
        if self.glcf is not None:
            video, audio = self.glcf(video, audio, audio_mask)
        else:
            video, audio = (x.mean(1) if x is not None else None for x in (video, audio))
        if audio is not None:
            audio = audio * audio_mask[:, None].to(audio.dtype)
        return video, audio

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        audio_mask: torch.BoolTensor | None = None,
        return_dict: bool | None = None,
    ) -> AVCANetModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(B, s, T, 3, H, W)`): normalised frames, s snippets of T frames.
        input_features (`torch.FloatTensor` of shape `(B, s, mfcc_chunk_frames, num_mfcc)`): one MFCC chunk per snippet.
        audio_mask (`torch.BoolTensor` of shape `(B,)`, *optional*): False for videos without sound; default all True.

        Inputs of a modality the config does not use are ignored.
        """
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        batch = self._check_inputs(pixel_values, input_features, audio_mask)
        video = audio = None
        if config.uses_audio:
            device = input_features.device
            audio_mask = (torch.ones(batch, dtype=torch.bool, device=device) if audio_mask is None
                          else audio_mask.to(device=device, dtype=torch.bool))
            audio = self.encode_audio(input_features, audio_mask)
        if config.uses_video:
            video = self.encode_video(pixel_values)
        video_embeds, audio_embeds = self.fuse_snippets(video, audio, audio_mask)
        output = AVCANetModelOutput(video_embeds=video_embeds, audio_embeds=audio_embeds, video_snippet_embeds=video,
                                    audio_snippet_embeds=audio)
        return output if return_dict else output.to_tuple()


class AVCANetForVideoClassification(AVCANetPreTrainedModel):
    """AV-CANet with its fusion head and loss (EP-CE or CE, optionally multi-task)."""

    def __init__(self, config: AVCANetConfig):
        super().__init__(config)
        self.avcanet = AVCANetModel(config)
        single_modality = config.modality != "audio-visual"
        self.head = LinearFusionHead(config) if single_modality or config.fusion in LINEAR_FUSIONS \
            else NonLinearFusionHead(config)
        # the multi-task loss's own unimodal classifiers (multitask_features "encoder" or "both"), training only
        self.branch_heads = nn.ModuleDict({m: readout(nn.Linear(config.hidden_size, config.num_labels))
                                           for m in (VIDEO, AUDIO)}
                                          ) if config.use_multitask_loss and config.multitask_features != "lgf" \
            else None
        self.criterion = AVCANetLoss(config)
        self.post_init()

    def fusion_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters after the encoders, by stream: "video" and "audio" (each LISF, GLCF and branch-head
        `ModuleDict`'s entry of that modality: its self-attention blocks, gates, dilated blocks, level scores, GLCF
        projection, branch head) and "shared" (what both streams use: the cross-modal attention, the level-weight
        attention, GLCF's attention, the fusion head). `AVCANetTrainingArguments.fusion_learning_rate_scales`
        trains each at its own rate."""
        owners = [m for m in (getattr(self.avcanet, "lisf", None), getattr(self.avcanet, "glcf", None), self.head,
                              self.branch_heads) if m is not None]
        groups = {VIDEO: [], AUDIO: []}
        for module in (module for owner in owners for module in owner.modules()):
            if isinstance(module, nn.ModuleDict):
                for modality, parameters in groups.items():
                    if modality in module:
                        parameters.extend(module[modality].parameters())
        streams = {id(p) for parameters in groups.values() for p in parameters}
        groups["shared"] = [p for owner in owners for p in owner.parameters() if id(p) not in streams]
        return groups

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; the saved `auto_map` also names the base `AVCANetModel`, so
        `AutoModel.from_pretrained(folder, trust_remote_code=True)` loads the encoders from this checkpoint."""
        if self._auto_class is not None:
            base = AVCANetModel
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}),
                                    "AutoModel": f"{base.__module__.rpartition('.')[2]}.{base.__name__}"}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def classify_snippet_features(self, video_features: torch.Tensor | None, audio_features: torch.Tensor | None,
                                  audio_mask: torch.Tensor | None = None) -> AVCANetVideoClassifierOutput:
        """Logits of windows given as encoder features F_v, F_a (B, s, C1) (`AVCANetModel.encode_snippets`,
        `encode_audio`): LGF and the head, what `forward` runs after the encoders. A timeline encodes every
        snippet once and classifies each window from the features of its s snippets."""
        fused = self.avcanet.fuse_snippets(video_features, audio_features, audio_mask)
        logits, visual_logits, audio_logits = self.head(*fused)
        return AVCANetVideoClassifierOutput(logits=logits, visual_logits=visual_logits, audio_logits=audio_logits)

    def multitask_logits(self, encoded: AVCANetModelOutput, visual_logits, audio_logits) -> tuple:
        """What the multi-task loss's visual and audio terms classify (`config.multitask_features`): the fused
        head's terms on E_v^4, E_a^4 ("lgf"); each branch head on the snippet mean of its encoder's features
        F_v / F_a, which no cross-modal step has touched ("encoder"); or both, as pairs ("both")."""
        if self.branch_heads is None:
            return visual_logits, audio_logits
        encoder = tuple(self.branch_heads[m](features.mean(1)) for m, features in (
            (VIDEO, encoded.video_snippet_embeds), (AUDIO, encoded.audio_snippet_embeds)))
        if self.config.multitask_features == "encoder":
            return encoder
        return (visual_logits, encoder[0]), (audio_logits, encoder[1])

    def drop_audio(self, pixel_values: torch.Tensor | None, input_features: torch.Tensor | None,
                   audio_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Modality dropout (`config.audio_modality_dropout`): in training, each video's sound is dropped with that
        probability by clearing its `audio_mask`, so the video trains the visual path exactly as a silent one does."""
        probability = self.config.audio_modality_dropout
        if not (probability and self.training and torch.is_grad_enabled()):
            return audio_mask
        batch = self.avcanet._check_inputs(pixel_values, input_features, audio_mask)  # its clear errors come first
        keep = torch.rand(batch, device=input_features.device) >= probability
        return keep if audio_mask is None else audio_mask.to(device=keep.device, dtype=torch.bool) & keep

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        audio_mask: torch.BoolTensor | None = None,
        labels: torch.LongTensor | None = None,
        return_dict: bool | None = None,
    ) -> AVCANetVideoClassifierOutput | tuple:
        r"""
        pixel_values, input_features, audio_mask: see [`AVCANetModel.forward`].
        labels (`torch.LongTensor` of shape `(B,)`, *optional*): class ids; when given, the loss is computed.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        audio_mask = self.drop_audio(pixel_values, input_features, audio_mask)
        encoded = self.avcanet(pixel_values, input_features, audio_mask, return_dict=True)  # -> fuse_snippets
        logits, visual_logits, audio_logits = self.head(encoded.video_embeds, encoded.audio_embeds)
        loss_terms = {}
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.uses_audio and audio_mask is not None:
                audio_mask = audio_mask.to(device=logits.device, dtype=torch.bool)
            if self.config.gradient_modulation_alpha and self.training and torch.is_grad_enabled():
                modulate_encoder_gradients(encoded, visual_logits, audio_logits, labels, audio_mask,
                                           self.config.gradient_modulation_alpha)
            terms = self.criterion(logits, labels, *self.multitask_logits(encoded, visual_logits, audio_logits),
                                   audio_mask)
            if self.branch_heads is not None and terms.audio_loss is None:  # no sound in the batch: for DDP
                terms.loss = terms.loss + zero_loss_touching(self.branch_heads[AUDIO].parameters())
            loss_terms = {field.name: getattr(terms, field.name) for field in fields(terms)}
        output = AVCANetVideoClassifierOutput(
            logits=logits, visual_logits=visual_logits, audio_logits=audio_logits, **loss_terms
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "AVCANetForVideoClassification",
    "AVCANetModel",
    "AVCANetModelOutput",
    "AVCANetPreTrainedModel",
    "AVCANetVideoClassifierOutput",
    "zero_loss_touching",
]
