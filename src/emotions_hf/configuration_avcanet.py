"""AV-CANet configuration: every size and switch of the paper's model (§4) and loss (Eq. 15), with the paper's
defaults (`paper.py`). The two encoders have configs of their own, as in CLAP or LLaVA: `vision_config` (a
`VideoSwinConfig`) and `audio_config` (an `AVCANetAudioConfig`); the LGF module, the fusion and the loss are set here.
"""

from __future__ import annotations

from typing import ClassVar

from transformers import PreTrainedConfig
from transformers.utils import logging

from .configuration_video_swin import VideoSwinConfig, as_tuples
from .labels import DEFAULT_POLARITY, EMOTIONS, LABEL_SETS, POLARITIES, known_polarities
from .paper import HIDDEN_SIZE, MFCC_FRAMES, NUM_MFCC, NUM_SNIPPETS, POLARITY_GAMMA

FUSIONS = ("mid_concat", "gated", "ew_multiply", "sum", "neural")
# Fusions whose fused logit is a sum of a visual and an audio term (W_f[:, :C1] E_v + W_f[:, C1:] E_a).
LINEAR_FUSIONS = ("mid_concat", "sum")
MODALITIES = ("audio-visual", "visual", "audio")
LOSSES = ("ep_ce", "ce")
VIDEO_PROJECTION_NORMS = ("none", "layernorm")
READOUT_INITS = ("trunc_normal", "fan_in")
# What the multi-task loss's visual-only and audio-only terms classify: the LGF outputs E_v^4, E_a^4 with the two
# halves of W_f (the paper), the snippet means of the encoder features F_v, F_a with heads of their own, or both.
MULTITASK_FEATURES = ("lgf", "encoder", "both")
# The settings that combine the two modalities, as a single-modality model (`modality` "visual" or "audio") needs
# them: what `examples/train.py` and the learnability bench turn off when they train one modality alone.
CROSS_MODAL_SETTINGS_OFF = {"use_glcf": False, "use_multitask_loss": False, "gradient_modulation_alpha": 0.0,
                            "audio_modality_dropout": 0.0}

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


class AVCANetAudioConfig(PreTrainedConfig):
    r"""Configuration of AV-CANet's audio encoder: a ResNet (ResNet-34 by default) over one MFCC chunk per snippet.

    Args:
        num_mfcc (`int`, 32): MFCC coefficients.
        num_frames (`int`, 256): MFCC frames per snippet chunk (q / s = 4096 / 16).
        depths (`tuple[int]`, (3, 4, 6, 3)): basic blocks per stage.
        hidden_sizes (`tuple[int]`, (64, 128, 256, 512)): stage widths; the last is `hidden_size`.
        embedding_size (`int`, 64): channels of the stem conv.
        stem_kernel (`tuple[int]`, (7, 1)) / stem_stride (`tuple[int]`, (2, 1)): the authors' first conv over
            (time, coefficient).
    """

    model_type = "avcanet_audio"
    base_config_key = "audio_config"

    num_mfcc: int = NUM_MFCC
    num_frames: int = MFCC_FRAMES // NUM_SNIPPETS
    depths: tuple[int, ...] = (3, 4, 6, 3)
    hidden_sizes: tuple[int, ...] = (64, 128, 256, 512)
    embedding_size: int = 64
    stem_kernel: tuple[int, int] = (7, 1)
    stem_stride: tuple[int, int] = (2, 1)

    def __post_init__(self, **kwargs):
        kwargs.pop("hidden_size", None)  # derived from hidden_sizes
        as_tuples(self, ("depths", "hidden_sizes", "stem_kernel", "stem_stride"))
        super().__post_init__(**kwargs)
        self.validate()

    @property
    def hidden_size(self) -> int:
        """Width of the pooled chunk features (512 for ResNet-34)."""
        return self.hidden_sizes[-1]

    def validate(self):
        if len(self.depths) != len(self.hidden_sizes):
            raise ValueError(f"AVCANetAudioConfig: depths {self.depths} and hidden_sizes {self.hidden_sizes} differ "
                             "in length")
        if self.num_frames < 1 or self.num_mfcc < 1:
            raise ValueError(f"AVCANetAudioConfig: num_frames={self.num_frames} and num_mfcc={self.num_mfcc} must "
                             "be positive")



# The values of the recipe switches in configs saved before they existed (the model those configs describe).
PRE_RECIPE_SWITCHES = {"lgf_norm_context": True, "video_feature_dropout": 0.0}

# The flat keyword arguments of version 0.1 and where they live now: (sub-config, field).
FLAT_SETTINGS = {
    "frames_per_snippet": ("vision_config", "num_frames"),
    **{name: ("vision_config", name) for name in (
        "image_size", "num_channels", "patch_size", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio",
        "qkv_bias", "drop_path_rate", "attention_dropout", "hidden_dropout", "layer_norm_eps")},
    "mfcc_chunk_frames": ("audio_config", "num_frames"),
    "num_mfcc": ("audio_config", "num_mfcc"),
    "audio_depths": ("audio_config", "depths"),
    "audio_hidden_sizes": ("audio_config", "hidden_sizes"),
    "audio_stem_kernel": ("audio_config", "stem_kernel"),
    "audio_stem_stride": ("audio_config", "stem_stride"),
}


def _sub_config(key: str, value, config_class, flat: dict):
    """A sub-config from an instance, a dict or None, with the flat settings of version 0.1 moved into it (over
    the dict's values: a preset dict plus a flat override is the usual case)."""
    if isinstance(value, PreTrainedConfig):
        if flat:
            raise ValueError(f"AVCANetConfig: {sorted(flat)} are {key} settings; set them on the {key} you pass")
        return value
    settings = {**(value or {}), **flat}
    settings.pop("model_type", None)
    try:
        return config_class(**settings)
    except ValueError as error:
        raise ValueError(f"AVCANetConfig: {key}: {error}") from None


class AVCANetConfig(ModalityStreams, PreTrainedConfig):
    r"""Configuration of [`AVCANetForVideoClassification`].

    Loading a config saved before `lgf_norm_context` and `video_feature_dropout` existed keeps the model it
    describes (keys/values normalised, no feature dropout): see `from_dict`.

    Inputs are `num_snippets` snippets of `vision_config.num_frames` frames at `vision_config.image_size`², and one
    MFCC chunk of `audio_config.num_frames` × `audio_config.num_mfcc` per snippet.

    The flat keyword arguments of version 0.1 (`image_size`, `frames_per_snippet`, `embed_dim`, `depths`,
    `num_mfcc`, `mfcc_chunk_frames`, `audio_depths`, ...: see `FLAT_SETTINGS`) are still accepted, so configs saved
    by it load; they are moved into the sub-configs.

    Args:
        vision_config (`VideoSwinConfig` or `dict`): the Video Swin backbone (Swin-T on 8 × 112² clips); its
            `num_frames` is T, the frames per snippet, and `image_size` the frame side.
        audio_config (`AVCANetAudioConfig` or `dict`): the MFCC ResNet (ResNet-34 on 256 × 32 chunks).
        num_snippets (`int`, 16): segments s a video is cut into; each gives one clip and one MFCC chunk.
        hidden_size (`int`, 512): C1, the width of F_v, F_a and the whole LGF module.
        lgf_window_sizes (`tuple[int]`, (1, 2)): LISF level windows d_l (snippet t attends to |j − t| ≤ d_l);
            their number is the number of pyramid levels L. The authors' code uses d_l = 2^l for the
            0-based level l, with L = 2 ("two attentive pyramid layers", paper §4.2).
        lgf_num_heads (`int`, 8): heads of the LISF and GLCF attention.
        lgf_dropout (`float`, 0.5): dropout inside the LGF module.
        lgf_norm_context (`bool`, False): also LayerNorm the keys/values of the LISF attention blocks. False is the
            authors' code (`models/Transformer.py`): `SublayerConnection` computes `x + dropout(sublayer(norm(x)))`
            and the attention is called as `self_attn(q, k, v)` on the raw k, v, so only the query is normalised,
            in the cross-modal and (since k = v = the raw input there) the self-attention blocks alike. True is
            our earlier pre-LN variant (one LayerNorm on the query, one on the context). GLCF has no LayerNorm in
            either code.
        video_feature_dropout (`float`, 0.5): dropout on the pooled Video Swin features (768) before the projection
            to `hidden_size`: the authors' `AVNet.forward` applies its `nn.Dropout(p=0.5)` to the pooled Swin output
            right before `v_fc` (Linear 768 -> 512). 0 turns it off.
        lgf_ffn_ratio (`float`, 4.0): width of the LGF feed-forward layers over hidden_size. The authors' value is
            not published; 4 is the Transformer's (and puts 27 M of the model's 79 M parameters in LISF).
        lgf_residual_relu (`bool`, True): the LISF dilated residual block's ReLU(x + update), as the authors' code.
            False keeps the residual stream linear (x + update): the ReLU after the sum zeroes about half of every
            snippet feature at each level, which with a small `hidden_size` starves the head (`bench/learnability.py`).
        video_projection_norm (`str`, "none"): what follows the video projection Linear. "none" is the paper's F_v
            (a plain Linear, whose output scale is initializer_range·sqrt(width): ~0.14 for the small config while
            the audio projection's BatchNorm + Tanh gives F_a unit scale); "layernorm" normalises F_v per snippet,
            giving both modalities the same scale into the LGF module.
        readout_init (`str`, "trunc_normal"): the init of the Linear layers between the encoders and the logits
            (the video projection, the classifier and the multi-task `branch_heads`). "trunc_normal" gives them
            `initializer_range` like every other layer; "fan_in" gives them PyTorch's `nn.Linear` default,
            U(±1/sqrt(fan_in)) for weights and biases. The two agree at the paper's widths (1/sqrt(3·768) = 0.021);
            at the small config's (48 -> 32 -> 6) 0.02 is a quarter of the fan-in scale, and the product of two such
            near-zero matrices is all the Video Swin's gradient passes through at the start: the visual branch then
            learned a weak cue (motion direction) on fewer seeds (README, learnability suite).
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
        use_multitask_loss (`bool`, True): add a visual-only and an audio-only loss (on what
            `multitask_features` says; the paper's: the two halves of W_f).
        multitask_features (`str`, "lgf"): what those two losses classify. "lgf" is the paper's: E_v^4 and E_a^4,
            the LGF outputs, with the halves of W_f; but the LGF module's cross-modal attention has mixed the other
            modality into each, so neither loss is unimodal. "encoder" (not in the paper): the snippet means of F_v
            and F_a, before any cross-modal step, each with a Linear classifier of its own (`branch_heads`), so
            each encoder gets the training signal a single-modality model gets; works with every fusion. "both":
            the two pairs of terms, added (a linear fusion only).
        gradient_modulation_alpha (`float`, 0.0): on-the-fly gradient modulation (OGM, Peng et al., CVPR 2022), a
            remedy for modality imbalance that is not in the paper (0 turns it off). In training, the branch whose
            logit term gives the batch's true classes more probability mass (ratio ρ > 1 over the other branch)
            has its encoder gradients scaled by 1 − tanh(α·(ρ − 1)), so the other modality keeps learning. Needs
            both modalities and a linear fusion (the visual and audio logit terms).
        audio_modality_dropout (`float`, 0.0): modality dropout, another remedy for modality imbalance that is not in
            the paper (0 turns it off). In training, each video's sound is dropped with this probability: the video
            is treated as silent (`audio_mask` False), so the fused loss on it reaches the visual path alone and the
            picture has to carry the prediction. Needs both modalities.
        id2label / label2id: the classes; eMotions' six by default.
    """

    model_type = "avcanet"
    sub_configs_defaults: ClassVar[dict] = {"vision_config": VideoSwinConfig, "audio_config": AVCANetAudioConfig}

    def __init__(
        self,
        vision_config=None,
        audio_config=None,
        num_snippets=NUM_SNIPPETS,
        hidden_size=HIDDEN_SIZE,
        lgf_window_sizes=(1, 2),
        lgf_num_heads=8,
        lgf_dropout=0.5,
        lgf_ffn_ratio=4.0,
        lgf_norm_context=False,
        video_feature_dropout=0.5,
        lgf_residual_relu=True,
        video_projection_norm="none",
        readout_init="trunc_normal",
        fusion="mid_concat",
        use_lisf=True,
        use_glcf=True,
        modality="audio-visual",
        loss_type="ep_ce",
        label2polarity=None,
        default_polarity_labels=(),
        polarity_gamma=None,
        use_multitask_loss=True,
        multitask_features="lgf",
        gradient_modulation_alpha=0.0,
        audio_modality_dropout=0.0,
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
        if __name__.startswith("emotions_hf."):
            # A saved model stores the video-emotion pipeline (`custom_pipelines`) for users without this package.
            # Loaded by the installed package, whose registered pipeline serves that task, the stored copy would
            # only make transformers demand trust_remote_code=True: it is dropped (saving writes it again).
            kwargs.pop("custom_pipelines", None)
        flat = {key: {} for key in self.sub_configs}
        for name in [name for name in kwargs if name in FLAT_SETTINGS]:
            key, field = FLAT_SETTINGS[name]
            flat[key][field] = kwargs.pop(name)
        self.vision_config = _sub_config("vision_config", vision_config, VideoSwinConfig, flat["vision_config"])
        self.audio_config = _sub_config("audio_config", audio_config, AVCANetAudioConfig, flat["audio_config"])
        super().__init__(**kwargs)
        self.num_snippets = num_snippets
        self.hidden_size = hidden_size
        self.lgf_window_sizes = tuple(lgf_window_sizes)
        self.lgf_num_heads = lgf_num_heads
        self.lgf_dropout = lgf_dropout
        self.lgf_ffn_ratio = lgf_ffn_ratio
        self.lgf_norm_context = bool(lgf_norm_context)
        self.video_feature_dropout = float(video_feature_dropout)
        self.lgf_residual_relu = bool(lgf_residual_relu)
        self.video_projection_norm = video_projection_norm
        self.readout_init = readout_init
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
        self.multitask_features = multitask_features
        self.gradient_modulation_alpha = float(gradient_modulation_alpha)
        self.audio_modality_dropout = float(audio_modality_dropout)
        self.initializer_range = initializer_range
        self.validate()

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
        # A saved config without the recipe switches predates them: it describes (and its weights are) a model with
        # the key/value LayerNorm (`context_norm` weights) and no feature dropout, so it keeps both.
        config_dict = {**PRE_RECIPE_SWITCHES, **config_dict}
        # from_pretrained(repo, id2label=...) sets the new labels after __init__: complete the map once they are in.
        loaded = super().from_dict(config_dict, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).complete_label2polarity()
        return loaded

    def validate(self):
        """Raise a `ValueError` naming the field to change when the combination cannot be built."""

        def fail(message):
            raise ValueError(f"AVCANetConfig: {message}")

        if self.video_projection_norm not in VIDEO_PROJECTION_NORMS:
            fail(f"video_projection_norm={self.video_projection_norm!r} is not one of {VIDEO_PROJECTION_NORMS}")
        if self.readout_init not in READOUT_INITS:
            fail(f"readout_init={self.readout_init!r} is not one of {READOUT_INITS}")
        if self.fusion not in FUSIONS:
            fail(f"fusion={self.fusion!r} is not one of {FUSIONS}")
        if self.modality not in MODALITIES:
            fail(f"modality={self.modality!r} is not one of {MODALITIES}")
        if self.loss_type not in LOSSES:
            fail(f"loss_type={self.loss_type!r} is not one of {LOSSES}")
        if self.multitask_features not in MULTITASK_FEATURES:
            fail(f"multitask_features={self.multitask_features!r} is not one of {MULTITASK_FEATURES}")
        if self.modality != "audio-visual":
            if self.use_glcf:
                fail(f"GLCF is cross-modal attention and needs both modalities; with modality={self.modality!r} "
                     "set use_glcf=False")
            if self.use_multitask_loss:
                fail(f"the multi-task loss adds per-modality losses and needs both modalities; with "
                     f"modality={self.modality!r} set use_multitask_loss=False")
        elif self.use_multitask_loss and self.multitask_features != "encoder" and self.fusion not in LINEAR_FUSIONS:
            fail(f"the multi-task loss uses the visual and audio halves of the linear fusion head, which "
                 f"fusion={self.fusion!r} does not have; set fusion to one of {LINEAR_FUSIONS}, "
                 "multitask_features='encoder' or use_multitask_loss=False")
        if self.gradient_modulation_alpha < 0:
            fail(f"gradient_modulation_alpha={self.gradient_modulation_alpha} must be >= 0 (0: no modulation)")
        if self.gradient_modulation_alpha and (self.modality != "audio-visual" or self.fusion not in LINEAR_FUSIONS):
            fail(f"gradient modulation compares the visual and audio logit terms, which modality={self.modality!r} "
                 f"with fusion={self.fusion!r} does not have; use modality='audio-visual' with a fusion in "
                 f"{LINEAR_FUSIONS}, or gradient_modulation_alpha=0")
        if not 0.0 <= self.audio_modality_dropout < 1.0:
            fail(f"audio_modality_dropout={self.audio_modality_dropout} must be in [0, 1) (0: no modality dropout)")
        if self.audio_modality_dropout and self.modality != "audio-visual":
            fail(f"audio_modality_dropout drops the sound of some videos so that the picture carries them, which needs "
                 f"both modalities; with modality={self.modality!r} set audio_modality_dropout=0")
        if self.hidden_size % self.lgf_num_heads:
            fail(f"hidden_size={self.hidden_size} must be a multiple of lgf_num_heads={self.lgf_num_heads}")
        if int(self.hidden_size * self.lgf_ffn_ratio) < 1:
            fail(f"lgf_ffn_ratio={self.lgf_ffn_ratio} leaves the LGF feed-forward layers no width; use a positive ratio")
        if not self.lgf_window_sizes or any(int(d) < 0 for d in self.lgf_window_sizes):
            fail(f"lgf_window_sizes={self.lgf_window_sizes} needs at least one non-negative window")
        if self.num_snippets < 1:
            fail(f"num_snippets={self.num_snippets} must be positive")
        if not 0.0 <= self.video_feature_dropout < 1.0:
            fail(f"video_feature_dropout={self.video_feature_dropout} must be in [0, 1) (the authors': 0.5)")
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


__all__ = ["AVCANetAudioConfig", "AVCANetConfig"]
