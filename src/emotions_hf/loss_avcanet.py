"""AV-CANet losses: EP-CE (Eq. 15 of the paper), plain CE, and the multi-task sum over the fusion head's halves.

Kept out of the model file so the trainer (and anyone evaluating logits) can use the same criterion.
It imports only torch and the stdlib-only `labels`: it travels with a saved model as remote code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .labels import POLARITIES


def polarity_penalty(logits: torch.Tensor, labels: torch.Tensor, class_polarity: torch.Tensor,
                     class_gamma: torch.Tensor) -> torch.Tensor:
    """Per-sample EP-CE weight 1 + γ_{ep(y)} · [ep(argmax) != ep(y)], shape (N,).

    The weight only selects how hard a sample counts; it is computed without autograd so no gradient
    flows through the arg-max decision (as in the paper).
    """
    with torch.no_grad():
        mismatch = class_polarity[logits.argmax(dim=-1)] != class_polarity[labels]
        return 1.0 + class_gamma[labels] * mismatch.to(class_gamma.dtype)


class EPCELoss(nn.Module):
    """Emotion-polarity-enhanced cross-entropy (Eq. 15); with `gamma_enabled=False` it is plain CE.

    `class_polarity[c]` is the polarity index of class c (`AVCANetConfig.polarity_ids()`), `class_gamma[c]` the
    γ of that polarity. Both are non-persistent buffers: they derive from the config, not from training.
    """

    def __init__(self, polarity_ids: list[int], polarity_gamma: dict[str, float], gamma_enabled: bool = True):
        super().__init__()
        self.gamma_enabled = gamma_enabled
        self.polarity_ids = list(polarity_ids)
        self.gamma_per_polarity = [float(polarity_gamma[p]) for p in POLARITIES]
        self.register_buffer("class_polarity", torch.empty(len(self.polarity_ids), dtype=torch.long), persistent=False)
        self.register_buffer("class_gamma", torch.empty(len(self.polarity_ids)), persistent=False)
        self.reset_buffers()

    def buffer_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The values of `class_polarity` and `class_gamma` (used again after meta-device loading)."""
        polarity = torch.tensor(self.polarity_ids, dtype=torch.long)
        return polarity, torch.tensor(self.gamma_per_polarity)[polarity]

    @torch.no_grad()
    def reset_buffers(self):
        polarity, gamma = self.buffer_values()
        self.class_polarity.copy_(polarity)
        self.class_gamma.copy_(gamma)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        if self.gamma_enabled:
            per_sample = per_sample * polarity_penalty(logits, labels, self.class_polarity, self.class_gamma)
        return per_sample.mean()


@dataclass
class AVCANetLossTerms:
    """The total training loss and its terms; a term is None when it was not computed."""

    loss: torch.Tensor
    fused_loss: torch.Tensor
    visual_loss: torch.Tensor | None = None
    audio_loss: torch.Tensor | None = None


def _as_tuple(logits) -> tuple:
    return logits if isinstance(logits, tuple) else (logits,)


class AVCANetLoss(nn.Module):
    """The criterion an `AVCANetConfig` asks for: EP-CE or CE, optionally multi-task.

    EP-CE needs a known polarity for every label: with `config.default_polarity_labels` left (labels fine-tuned
    without a polarity map) `config.uses_ep_ce` is False and the criterion is plain CE.

    Multi-task: loss(fused) + loss(visual logits) + loss(audio logits over the samples that have audio) — a
    silent video has no audio prediction to learn from. Without any such sample the audio term is skipped
    (None). `visual_logits` / `audio_logits` may be tuples, one per unimodal classifier (the LGF halves of W_f and
    the encoder heads with `multitask_features="both"`): their losses add up into the visual / audio term.
    """

    def __init__(self, config):
        super().__init__()
        self.use_multitask = bool(config.use_multitask_loss)
        self.criterion = EPCELoss(config.polarity_ids(), config.polarity_gamma,
                                  gamma_enabled=config.uses_ep_ce)

    def forward(self, logits, labels, visual_logits=None, audio_logits=None, audio_mask=None) -> AVCANetLossTerms:
        labels = labels.to(logits.device).long()
        fused_loss = self.criterion(logits, labels)
        if not self.use_multitask:
            return AVCANetLossTerms(loss=fused_loss, fused_loss=fused_loss)
        if visual_logits is None or audio_logits is None:
            raise ValueError("the multi-task loss needs visual_logits and audio_logits (a linear fusion head)")
        visual_loss = sum(self.criterion(terms, labels) for terms in _as_tuple(visual_logits))
        audio_loss = None
        if audio_mask is None:
            audio_loss = sum(self.criterion(terms, labels) for terms in _as_tuple(audio_logits))
        elif bool(audio_mask.any()):
            audio_loss = sum(self.criterion(terms[audio_mask], labels[audio_mask]) for terms in _as_tuple(audio_logits))
        total = fused_loss + visual_loss
        if audio_loss is not None:
            total = total + audio_loss
        return AVCANetLossTerms(loss=total, fused_loss=fused_loss, visual_loss=visual_loss, audio_loss=audio_loss)


__all__ = ["AVCANetLoss", "AVCANetLossTerms", "EPCELoss", "polarity_penalty"]
