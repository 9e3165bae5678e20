"""Training diagnostics for modality balance: per-branch gradient norms, loss terms, LGF gates and input scales.

    stats = BranchStatsCallback(model)
    trainer.add_callback(stats)
    trainer.train()
    stats.summary()      # means over the first / last third of training, per quantity
    stats.history        # one dict per optimiser step

Gradient norms are taken *before* the Trainer clips them (a post-accumulate-grad hook per parameter records
the norm of its finished gradient), per branch: `video` (Video Swin + its projection), `audio` (ResNet + its
projection), `audio_stem` (the ResNet's first conv, the one that sees raw MFCC values), `lgf` (LISF + GLCF),
`head`. Forward hooks record the LISF self/cross gates (Eq. 9) and the integration weights (Eq. 10-11) of each
modality, the pooled embedding norms |E_v|, |E_a|, the statistics of the MFCC input the model sees, and the spread
of each encoder's snippet features F_v, F_a over the batch (`feature_spread_video` / `_audio`: their standard
deviation across snippets over their root mean square). A spread near 0 means the encoder maps every clip to the
same vector: a collapsed branch, which no longer learns (the Video Swin at too high a learning rate, issue 14).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from transformers import TrainerCallback

BRANCHES = ("video", "audio", "audio_stem", "lgf", "head")


def branch_of(name: str) -> str | None:
    """The branch a parameter of `AVCANetForVideoClassification` belongs to (None for the loss buffers)."""
    if ".audio_encoder.embedder." in f".{name}":
        return "audio_stem"
    for prefix, branch in (("avcanet.video_", "video"), ("avcanet.audio_", "audio"), ("avcanet.lisf", "lgf"),
                           ("avcanet.glcf", "lgf"), ("head.", "head")):
        if name.startswith(prefix):
            return branch
    return None


def feature_spread(features: torch.Tensor) -> float:
    """(..., C) features -> standard deviation over all leading positions (mean over channels) / their RMS."""
    flat = features.reshape(-1, features.shape[-1]).float()
    return float(flat.std(0).mean() / flat.square().mean().sqrt().clamp_min(1e-12))


class BranchStatsCallback(TrainerCallback):
    """Records, per optimiser step, the pre-clipping gradient norm of each branch and forward statistics."""

    def __init__(self, model):
        self.model = model
        self.history: list[dict] = []
        self._grad_sq: dict[int, tuple[str, float]] = {}
        self._forward: dict[str, list[float]] = defaultdict(list)
        self._handles = []
        for name, parameter in model.named_parameters():
            branch = branch_of(name)
            if branch is not None and parameter.requires_grad:
                self._handles.append(parameter.register_post_accumulate_grad_hook(self._grad_hook(branch)))
        self._add_forward_hooks(model)

    def _grad_hook(self, branch):
        def hook(parameter):
            self._grad_sq[id(parameter)] = (branch, float(parameter.grad.detach().float().square().sum()))
        return hook

    def _record(self, key, value):
        if torch.is_grad_enabled():  # training forwards only
            self._forward[key].append(float(value.detach() if torch.is_tensor(value) else value))

    def _add_forward_hooks(self, model):
        base = model.avcanet
        hooks = []

        def on_model(module, args, kwargs, output):
            features = kwargs.get("input_features", args[1] if len(args) > 1 else None)
            if features is not None:
                self._record("mfcc_mean", features.mean())
                self._record("mfcc_std", features.std())
                self._record("mfcc_min", features.min())
                self._record("mfcc_max", features.max())
            pixels = kwargs.get("pixel_values", args[0] if args else None)
            if pixels is not None:
                self._record("pixel_std", pixels.std())
            for modality in ("video", "audio"):
                features = getattr(output, f"{modality}_snippet_embeds")
                if features is not None:
                    self._record(f"feature_spread_{modality}", feature_spread(features.detach()))
            if output.video_embeds is not None:
                self._record("video_embed_norm", output.video_embeds.norm(dim=-1).mean())
            if output.audio_embeds is not None:
                self._record("audio_embed_norm", output.audio_embeds.norm(dim=-1).mean())
        hooks.append(base.register_forward_hook(on_model, with_kwargs=True))
        if base.lisf is not None:
            for level_index, level in enumerate(base.lisf.levels):
                for modality, gate in (level.gate or {}).items():
                    def on_gate(module, args, output, key=f"L{level_index}_{modality}"):
                        self_gate, cross_gate = torch.sigmoid(output).chunk(2, -1)
                        self._record(f"gate_self_{key}", self_gate.mean())
                        self._record(f"gate_cross_{key}", cross_gate.mean())
                    hooks.append(gate.gates.register_forward_hook(on_gate))
            integration = base.lisf.integration
            for modality, score in integration.level_score.items():
                def on_score(module, args, output, modality=modality):
                    self._record(f"level_weight_{modality}", torch.sigmoid(output).mean())
                hooks.append(score.register_forward_hook(on_score))
            if integration.weight_attention is not None:
                def on_weights(module, args, output):
                    for modality, weights in output.items():
                        self._record(f"integrated_weight_{modality}", weights.mean())
                hooks.append(integration.weight_attention.register_forward_hook(on_weights))
        head = getattr(model.head, "classifier", None)
        if head is not None and getattr(model.head, "concat", False):
            def on_head(module, args, output):
                visual, audio = module.weight.detach().chunk(2, dim=1)
                self._record("head_weight_video", visual.norm())
                self._record("head_weight_audio", audio.norm())
            hooks.append(head.register_forward_hook(on_head))
        self._handles.extend(hooks)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        norms = defaultdict(float)
        for branch, squared in self._grad_sq.values():
            norms[branch] += squared
        record = {"step": state.global_step + 1}
        record.update({f"grad_{b}": math.sqrt(norms[b]) for b in BRANCHES if b in norms})
        record.update({key: sum(values) / len(values) for key, values in self._forward.items() if values})
        self.history.append(record)
        self._grad_sq.clear()
        self._forward.clear()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and self.history:
            for key in ("fused_loss", "visual_loss", "audio_loss", "loss", "grad_norm"):
                if key in logs:
                    self.history[-1][f"log_{key}"] = float(logs[key])

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def summary(self, parts: int = 3) -> dict[str, list[float]]:
        """Per quantity, its mean over each of `parts` equal stretches of training (early ... late)."""
        keys = sorted({key for record in self.history for key in record if key != "step"})
        chunks = [self.history[i * len(self.history) // parts:(i + 1) * len(self.history) // parts]
                  for i in range(parts)]
        out = {}
        for key in keys:
            out[key] = []
            for chunk in chunks:
                values = [r[key] for r in chunk if key in r]
                out[key].append(sum(values) / len(values) if values else float("nan"))
        return out


__all__ = ["BRANCHES", "BranchStatsCallback", "branch_of", "feature_spread"]
