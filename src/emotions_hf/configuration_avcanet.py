"""AV-CANet configuration: every size and switch of the paper's model (§4) and loss (Eq. 15), with the paper's
defaults (`paper.py`)."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.utils import logging

from .labels import DEFAULT_POLARITY, EMOTIONS, LABEL_SETS, POLARITIES, known_polarities
from .paper import (
    FRAMES_PER_SNIPPET,
    HIDDEN_SIZE,
    IMAGE_SIZE,
    MFCC_FRAMES,
    NUM_MFCC,
    NUM_SNIPPETS,
    POLARITY_GAMMA,
)

FUSIONS = ("mid_concat", "gated", "ew_multiply", "sum", "neural")
# Fusions whose fused logit is a sum of a visual and an audio term (W_f[:, :C1] E_v + W_f[:, C1:] E_a).
LINEAR_FUSIONS = ("mid_concat", "sum")
MODALITIES = ("audio-visual", "visual", "audio")
LOSSES = ("ep_ce", "ce")

logger = logging.get_logger(__name__)


class ModalityStreams:
    """`uses_video` / `uses_audio` of anything with a `modality` setting: the config and the processor."""

    modality: str

    @property
    def uses_video(self) -> bool:
        return self.modality in ("audio-visual", "visual")

    @property
    def uses_audio(self) -> bool:
        return self.modality in ("audio-visual", "audio")


def _tuple(value):
    return tuple(value) if value is not None else None


class AVCANetConfig(ModalityStreams, PreTrainedConfig):
    r"""Configuration of [`AVCANetForVideoClassification`].

    Inputs are `num_snippets` snippets of `frames_per_snippet` frames at `image_size`², and one MFCC
    chunk of `mfcc_chunk_frames` × `num_mfcc` per snippet.

    Args:
        num_snippets (`int`, 16): segments s a video is cut into.
        frames_per_snippet (`int`, 8): consecutive frames T per snippet.
        image_size (`int`, 112): frame height and width.
        num_channels (`int`, 3): colour channels.
        patch_size (`tuple[int]`, (2, 4, 4)): Video Swin patch (time, height, width).
        embed_dim (`int`, 96): Video Swin channel width C of the first stage (the last has 8C).
        depths (`tuple[int]`, (2, 2, 6, 2)): Swin blocks per stage.
        num_heads (`tuple[int]`, (3, 6, 12, 24)): attention heads per stage.
        window_size (`tuple[int]`, (8, 7, 7)): 3D attention window (time, height, width).
        mlp_ratio (`float`, 4.0): Swin MLP hidden width over channel width.
        qkv_bias (`bool`, True): bias on the fused qkv projection.
        drop_path_rate (`float`, 0.1): stochastic depth, linearly increasing over blocks.
        attention_dropout (`float`, 0.0) / hidden_dropout (`float`, 0.0): Swin dropouts.
        layer_norm_eps (`float`, 1e-5): LayerNorm epsilon of the backbone.
        mfcc_chunk_frames (`int`, 256): MFCC frames per snippet chunk (q / s = 4096 / 16).
        num_mfcc (`int`, 32): MFCC coefficients.
        audio_depths (`tuple[int]`, (3, 4, 6, 3)): ResNet-34 basic blocks per stage.
        audio_hidden_sizes (`tuple[int]`, (64, 128, 256, 512)): ResNet-34 stage widths.
        audio_stem_kernel (`tuple[int]`, (7, 1)) / audio_stem_stride (`tuple[int]`, (2, 1)): the
            authors' first conv over (time, coefficient).
        hidden_size (`int`, 512): C1, the width of F_v, F_a and the whole LGF module.
        lgf_window_sizes (`tuple[int]`, (1, 2)): LISF level windows d_l (snippet t attends to |j − t| ≤ d_l);
            their number is the number of pyramid levels L. The authors' code uses d_l = 2^l for the
            0-based level l, with L = 2 ("two attentive pyramid layers", paper §4.2).
        lgf_num_heads (`int`, 8): heads of the LISF and GLCF attention.
        lgf_dropout (`float`, 0.5): dropout inside the LGF module.
        lgf_ffn_ratio (`float`, 4.0): width of the LGF feed-forward layers over hidden_size. The authors' value is
            not published; 4 is the Transformer's (and puts 27 M of the model's 79 M parameters in LISF).
        fusion (`str`, "mid_concat"): one of "mid_concat", "gated", "ew_multiply", "sum", "neural".
        use_lisf / use_glcf (`bool`, True): the local and global halves of the LGF module.
        modality (`str`, "audio-visual"): "audio-visual", "visual" or "audio".
        loss_type (`str`, "ep_ce"): "ep_ce" (polarity-enhanced CE, Eq. 15) or "ce".
        label2polarity (`dict[str, str]`): polarity ("positive", "neutral", "negative") of every label. When not
            given, or when the labels change so that it no longer covers them (the fine-tuning idiom
            `from_pretrained(repo, num_labels=8, ignore_mismatched_sizes=True)`, or `id2label=...` there), labels
            that are exactly a known label set (`labels.LABEL_SETS`, names matched case-insensitively) get that
            set's polarities; any other label no map covers gets `labels.DEFAULT_POLARITY` ("neutral"), is listed
            in `default_polarity_labels`, and one warning says so. A map given with these very labels but
            missing some is an error.
        default_polarity_labels (`tuple[str]`, ()): labels whose polarity is that default rather than known. While
            any is left, EP-CE falls back to plain cross-entropy (`uses_ep_ce` is False): its polarity penalty
            would rest on made-up polarities. Saved with the config, so a reloaded fine-tune keeps training with
            CE without warning again; to use EP-CE, pass a complete `label2polarity` and
            `default_polarity_labels=()`.
        polarity_gamma (`dict[str, float]`): EP-CE penalty γ per polarity (paper: 0.7 each).
        use_multitask_loss (`bool`, True): add the visual-only and audio-only losses computed with
            the two halves of W_f.
        id2label / label2id: the classes; eMotions' six by default.
    """

    model_type = "avcanet"

    def __init__(
        self,
        num_snippets=NUM_SNIPPETS,
        frames_per_snippet=FRAMES_PER_SNIPPET,
        image_size=IMAGE_SIZE,
        num_channels=3,
        patch_size=(2, 4, 4),
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=(8, 7, 7),
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.1,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        layer_norm_eps=1e-5,
        mfcc_chunk_frames=MFCC_FRAMES // NUM_SNIPPETS,
        num_mfcc=NUM_MFCC,
        audio_depths=(3, 4, 6, 3),
        audio_hidden_sizes=(64, 128, 256, 512),
        audio_stem_kernel=(7, 1),
        audio_stem_stride=(2, 1),
        hidden_size=HIDDEN_SIZE,
        lgf_window_sizes=(1, 2),
        lgf_num_heads=8,
        lgf_dropout=0.5,
        lgf_ffn_ratio=4.0,
        fusion="mid_concat",
        use_lisf=True,
        use_glcf=True,
        modality="audio-visual",
        loss_type="ep_ce",
        label2polarity=None,
        default_polarity_labels=(),
        polarity_gamma=None,
        use_multitask_loss=True,
        initializer_range=0.02,
        **kwargs,
    ):
        if "id2label" not in kwargs and "num_labels" not in kwargs and list(label2polarity or ()) == [
                "LABEL_0", "LABEL_1"]:
            # transformers does not save the id2label of num_labels=2 (its own default): the map names the labels.
            kwargs["num_labels"] = 2
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = EMOTIONS.id2label
            kwargs["label2id"] = EMOTIONS.label2id
        given_id2label = kwargs.get("id2label")
        super().__init__(**kwargs)
        self.num_snippets = num_snippets
        self.frames_per_snippet = frames_per_snippet
        self.image_size = image_size
        self.num_channels = num_channels
        self.patch_size = _tuple(patch_size)
        self.embed_dim = embed_dim
        self.depths = _tuple(depths)
        self.num_heads = _tuple(num_heads)
        self.window_size = _tuple(window_size)
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.attention_dropout = attention_dropout
        self.hidden_dropout = hidden_dropout
        self.layer_norm_eps = layer_norm_eps
        self.mfcc_chunk_frames = mfcc_chunk_frames
        self.num_mfcc = num_mfcc
        self.audio_depths = _tuple(audio_depths)
        self.audio_hidden_sizes = _tuple(audio_hidden_sizes)
        self.audio_stem_kernel = _tuple(audio_stem_kernel)
        self.audio_stem_stride = _tuple(audio_stem_stride)
        self.hidden_size = hidden_size
        self.lgf_window_sizes = _tuple(lgf_window_sizes)
        self.lgf_num_heads = lgf_num_heads
        self.lgf_dropout = lgf_dropout
        self.lgf_ffn_ratio = lgf_ffn_ratio
        self.fusion = fusion
        self.use_lisf = use_lisf
        self.use_glcf = use_glcf
        self.modality = modality
        self.loss_type = loss_type
        self.default_polarity_labels = tuple(default_polarity_labels or ())
        # `num_labels` that disagrees with the saved `id2label` (from_pretrained(repo, num_labels=8)) replaces the
        # labels: the saved label2polarity then describes the old ones.
        labels_replaced = given_id2label is not None and [str(v) for _, v in sorted(
            (int(k), v) for k, v in given_id2label.items())] != [str(v) for v in self.id2label.values()]
        self.label2polarity = {} if label2polarity is None or labels_replaced else dict(label2polarity)
        if label2polarity is None or labels_replaced:
            self.complete_label2polarity()
        if polarity_gamma is None:
            polarity_gamma = dict.fromkeys(POLARITIES, POLARITY_GAMMA)
        self.polarity_gamma = dict(polarity_gamma)
        self.use_multitask_loss = use_multitask_loss
        self.initializer_range = initializer_range
        self.validate()

    @property
    def backbone_hidden_size(self) -> int:
        """Channel width of the last Video Swin stage (768 for Swin-T)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def num_lgf_levels(self) -> int:
        return len(self.lgf_window_sizes)

    @property
    def uses_ep_ce(self) -> bool:
        """Whether the loss is EP-CE: `loss_type="ep_ce"` and every label has a known polarity (otherwise CE)."""
        self.complete_label2polarity()
        return self.loss_type == "ep_ce" and not self.default_polarity_labels

    def polarity_ids(self) -> list[int]:
        """Polarity index (into `POLARITIES`) of each class id, for vectorised EP-CE."""
        self.complete_label2polarity()
        return [POLARITIES.index(self.label2polarity[self.id2label[i]]) for i in range(self.num_labels)]

    def complete_label2polarity(self):
        """Give every label a polarity after the labels changed (see `label2polarity` in the class docs).

        A no-op when `label2polarity` covers the labels (then `default_polarity_labels` only drops names that
        are no labels any more). Otherwise a known label set's map replaces it, or else the labels it does not
        cover get `DEFAULT_POLARITY`, with one warning.
        """
        labels = list(self.id2label.values())
        current = getattr(self, "label2polarity", None) or {}
        if all(current.get(label) in POLARITIES for label in labels):
            self.default_polarity_labels = tuple(label for label in self.default_polarity_labels if label in labels)
            return
        known = known_polarities(labels)
        if known is not None:
            self.label2polarity, self.default_polarity_labels = known, ()
            return
        uncovered = [label for label in labels if current.get(label) not in POLARITIES]
        self.label2polarity = {label: DEFAULT_POLARITY if label in uncovered else current[label] for label in labels}
        self.default_polarity_labels = tuple(label for label in labels if label in uncovered
                                             or label in self.default_polarity_labels)
        fallback = ("EP-CE (loss_type='ep_ce') falls back to plain cross-entropy for this config"
                    if self.loss_type == "ep_ce" else "EP-CE would fall back to plain cross-entropy")
        logger.warning(
            f"AVCANetConfig: no polarity is known for labels {uncovered} (the labels are not exactly a known "
            f"label set: {sorted(LABEL_SETS)}); they get the default polarity {DEFAULT_POLARITY!r} and {fallback}. "
            "Pass label2polarity for every label and default_polarity_labels=() to use EP-CE."
        )

    def save_pretrained(self, *args, **kwargs):
        self.complete_label2polarity()  # a config whose labels were reassigned saves a map that covers them
        return super().save_pretrained(*args, **kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # from_pretrained(repo, id2label=...) sets the new labels after __init__: complete the map once they are in.
        loaded = super().from_dict(config_dict, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).complete_label2polarity()
        return loaded

    def validate(self):
        """Raise a `ValueError` naming the field to change when the combination cannot be built."""

        def fail(message):
            raise ValueError(f"AVCANetConfig: {message}")

        if self.fusion not in FUSIONS:
            fail(f"fusion={self.fusion!r} is not one of {FUSIONS}")
        if self.modality not in MODALITIES:
            fail(f"modality={self.modality!r} is not one of {MODALITIES}")
        if self.loss_type not in LOSSES:
            fail(f"loss_type={self.loss_type!r} is not one of {LOSSES}")
        if self.modality != "audio-visual":
            if self.use_glcf:
                fail(f"GLCF is cross-modal attention and needs both modalities; with modality={self.modality!r} "
                     "set use_glcf=False")
            if self.use_multitask_loss:
                fail(f"the multi-task loss adds per-modality losses and needs both modalities; with "
                     f"modality={self.modality!r} set use_multitask_loss=False")
        elif self.use_multitask_loss and self.fusion not in LINEAR_FUSIONS:
            fail(f"the multi-task loss uses the visual and audio halves of the linear fusion head, which "
                 f"fusion={self.fusion!r} does not have; set fusion to one of {LINEAR_FUSIONS} or "
                 "use_multitask_loss=False")
        if len(self.depths) != len(self.num_heads):
            fail(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        if len(self.patch_size) != 3 or len(self.window_size) != 3:
            fail("patch_size and window_size are (time, height, width) triples")
        if self.frames_per_snippet % self.patch_size[0]:
            fail(f"frames_per_snippet={self.frames_per_snippet} must be a multiple of the temporal patch "
                 f"size {self.patch_size[0]}")
        if self.image_size % self.patch_size[1] or self.image_size % self.patch_size[2]:
            fail(f"image_size={self.image_size} must be a multiple of the spatial patch size {self.patch_size[1:]}")
        if any(self.embed_dim * 2**i % h for i, h in enumerate(self.num_heads)):
            fail(f"each stage width embed_dim*2^i must divide by its heads: embed_dim={self.embed_dim}, "
                 f"num_heads={self.num_heads}")
        if self.hidden_size % self.lgf_num_heads:
            fail(f"hidden_size={self.hidden_size} must be a multiple of lgf_num_heads={self.lgf_num_heads}")
        if int(self.hidden_size * self.lgf_ffn_ratio) < 1:
            fail(f"lgf_ffn_ratio={self.lgf_ffn_ratio} leaves the LGF feed-forward layers no width; use a positive ratio")
        if not self.lgf_window_sizes or any(int(d) < 0 for d in self.lgf_window_sizes):
            fail(f"lgf_window_sizes={self.lgf_window_sizes} needs at least one non-negative window")
        if len(self.audio_depths) != len(self.audio_hidden_sizes):
            fail(f"audio_depths {self.audio_depths} and audio_hidden_sizes {self.audio_hidden_sizes} differ in length")
        if self.num_snippets < 1 or self.mfcc_chunk_frames < 1 or self.num_mfcc < 1:
            fail("num_snippets, mfcc_chunk_frames and num_mfcc must be positive")
        labels = list(self.id2label.values())
        bad = [label for label in labels if self.label2polarity.get(label) not in POLARITIES]
        if bad:
            fail(f"label2polarity gives no polarity in {POLARITIES} for {bad}; pass label2polarity for every label")
        unknown_defaults = [label for label in self.default_polarity_labels if label not in labels]
        if unknown_defaults:
            fail(f"default_polarity_labels names {unknown_defaults}, which are not labels {labels}")
        missing_gamma = [p for p in POLARITIES if p not in self.polarity_gamma]
        if missing_gamma:
            fail(f"polarity_gamma misses {missing_gamma}; give a gamma for each of {POLARITIES}")


__all__ = ["AVCANetConfig"]
