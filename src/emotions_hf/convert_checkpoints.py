"""Public pretrained checkpoints -> AV-CANet's encoders.

Video (the `VideoSwinModel` backbone, official Video Swin names without `backbone.`):
- 2D Swin to inflate: a transformers `SwinModel` / `SwinForImageClassification` (folder, instance or state dict, old
  `attention.self.query` or new `attention.q_proj` names), the official 2D `.pth` (`ckpt["model"]`), torchvision `swin_t`;
- 3D Video Swin as is: the official K400 `.pth` (`ckpt["state_dict"]`, `backbone.*`), torchvision `swin3d_t`, and our
  own names.
Audio (the ResNet over MFCC chunks, transformers `ResNetModel` names): a transformers `ResNetModel` /
`ResNetForImageClassification`, or a torchvision `resnet*` state dict.

Every converter returns the state dict and a `ConversionReport` that accounts for every source key: mapped, ignored on
purpose (classifier heads, recomputed buffers, each with its reason), or unexpected (no place in the target); nothing is
dropped silently. A tensor whose shape does not fit the target raises a `ValueError` naming it.
Pickled files are only ever read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedConfig

from .configuration_avcanet import AVCANetAudioConfig
from .configuration_video_swin import VideoSwinConfig
from .modeling_video_swin import VideoSwinModel

StateDict = dict[str, torch.Tensor]

VIDEO_FORMATS = ("hf_swin2d", "official_swin2d", "torchvision_swin2d", "official_video_swin", "torchvision_swin3d",
                 "native")
AUDIO_FORMATS = ("hf_resnet", "torchvision_resnet")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class ConversionReport:
    """What happened to each key of a checkpoint on its way into a target module."""

    source_format: str
    mapped: int = 0
    missing_keys: list[str] = field(default_factory=list)  # target keys the checkpoint does not provide
    unexpected_keys: list[str] = field(default_factory=list)  # (renamed) source keys with no place in the target
    ignored_keys: dict[str, str] = field(default_factory=dict)  # source keys dropped on purpose -> why

    def summary(self) -> str:
        return (f"{self.source_format}: {self.mapped} tensors mapped, {len(self.ignored_keys)} ignored, "
                f"{len(self.unexpected_keys)} unexpected, {len(self.missing_keys)} missing")


# ----------------------------------------------------------------------------------------------------- reading sources


def _read_file(path: Path) -> Mapping:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".json":  # sharded checkpoint index
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        merged = {}
        for shard in shards:
            merged.update(_read_file(path.parent / shard))
        return merged
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refused or not a torch file: say which file and why
        raise ValueError(f"{path}: cannot be read as a weights-only PyTorch checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}). Only tensors and plain containers are "
                         "loaded; re-save the state dict with torch.save(model.state_dict(), ...) or as .safetensors"
                         ) from error


def _unwrap(checkpoint: Mapping, origin: str) -> StateDict:
    """The tensor dict inside a training checkpoint (`state_dict` / `model` / `module` entries)."""
    if all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return dict(checkpoint)
    for key in ("state_dict", "model", "module"):
        if isinstance(checkpoint.get(key), Mapping):
            return _unwrap(checkpoint[key], origin)
    raise ValueError(f"{origin}: no state dict found; top-level entries are {sorted(checkpoint)[:10]}, expected "
                     "tensors or one of 'state_dict', 'model', 'module'")


def read_state_dict(source) -> tuple[StateDict, str]:
    """Read `source` into a flat {name: tensor} dict; also return a name for messages.

    `source`: a path (`.pth`/`.pt`/`.bin`/`.safetensors` file, or a Hugging Face folder), an `nn.Module`, or a mapping
    (a state dict, or a checkpoint holding one).
    """
    if isinstance(source, nn.Module):
        return dict(source.state_dict()), type(source).__name__
    if isinstance(source, Mapping):
        return _unwrap(source, "state dict"), "state dict"
    path = Path(source)
    if path.is_dir():
        files = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        if not files:
            raise FileNotFoundError(f"{path}: no weights file in this folder (looked for {', '.join(WEIGHT_FILES)})")
        path = files[0]
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or folder")
    return _unwrap(_read_file(path), str(path)), str(path)


# ------------------------------------------------------------------------------------------ key mapping machinery


@dataclass(frozen=True)
class Ignore:
    """Rule target for keys dropped on purpose; the reason goes into the report."""

    reason: str


Rules = list[tuple[str, "str | Ignore"]]


def _rename(state: StateDict, rules: Rules, report: ConversionReport) -> StateDict:
    """Apply the first rule whose regex matches the whole key: rename it, or ignore it with a reason. Keys that no rule
    matches are reported unexpected."""
    out = {}
    for key, tensor in state.items():
        for regex, target in rules:
            if re.fullmatch(regex, key):
                if isinstance(target, Ignore):
                    report.ignored_keys[key] = target.reason
                else:
                    out[re.sub(regex, target, key)] = tensor
                break
        else:
            report.unexpected_keys.append(key)
    return out


_DERIVED_BUFFERS: Rules = [
    (r".*relative_position_index", Ignore("buffer recomputed from the window size")),
    (r".*attn_mask", Ignore("shift mask recomputed from the feature size")),
]


def _fit_to_target(converted: StateDict, expected: Mapping[str, torch.Size], report: ConversionReport,
                   origin: str) -> StateDict:
    """Keep the tensors the target has; shapes must agree. Fills `mapped`, `missing_keys`, `unexpected_keys`."""
    fitted = {}
    for key, tensor in converted.items():
        if key not in expected:
            report.unexpected_keys.append(key)
        elif tensor.shape != expected[key]:
            raise ValueError(f"{origin}: {key} has shape {tuple(tensor.shape)} but the target needs "
                             f"{tuple(expected[key])}; the checkpoint was made for a different architecture")
        else:
            fitted[key] = tensor
    report.mapped = len(fitted)
    report.missing_keys = sorted(set(expected) - set(fitted))
    return fitted


def _shapes_of(build: Callable[[], nn.Module]) -> dict[str, torch.Size]:
    """State-dict shapes of a module built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        module = build()
    return {key: value.shape for key, value in module.state_dict().items()}


# --------------------------------------------------------------------------------------------------------- video


def detect_video_format(state: Mapping[str, torch.Tensor]) -> str:
    """Name the layout of a Swin / Video Swin state dict from its keys."""
    keys = set(state)

    def has(suffix):
        return any(key.endswith(suffix) for key in keys)

    if has("embeddings.patch_embeddings.projection.weight"):
        return "hf_swin2d"
    if "backbone.patch_embed.proj.weight" in keys:
        return "official_video_swin"
    if "features.0.0.weight" in keys:
        return "torchvision_swin2d"
    if "patch_embed.proj.weight" in keys:
        three_d = state["patch_embed.proj.weight"].dim() == 5
        if "features.0.0.norm1.weight" in keys:
            return "torchvision_swin3d"
        if "layers.0.blocks.0.norm1.weight" in keys:
            return "native" if three_d else "official_swin2d"
    raise ValueError("not a recognised Swin / Video Swin state dict: expected keys like 'patch_embed.proj.weight', "
                     "'backbone.patch_embed.proj.weight', 'features.0.0.weight' or "
                     f"'embeddings.patch_embeddings.projection.weight'; got e.g. {sorted(keys)[:5]}")


def _hf_swin_rules() -> Rules:
    block = r"(?:swin\.)?encoder\.layers\.(\d+)\.blocks\.(\d+)\."
    target = r"layers.\1.blocks.\2."
    return [
        (r"(?:swin\.)?embeddings\.patch_embeddings\.projection\.(\w+)", r"patch_embed.proj.\1"),
        (r"(?:swin\.)?embeddings\.norm\.(\w+)", r"patch_embed.norm.\1"),
        (r"(?:swin\.)?embeddings\.mask_token", Ignore("masked-image-modeling token, unused for classification")),
        (block + r"layernorm_before\.(\w+)", target + r"norm1.\3"),
        (block + r"layernorm_after\.(\w+)", target + r"norm2.\3"),
        (block + r"attention\.(?:self\.|)(query|key|value|q_proj|k_proj|v_proj)\.(\w+)", target + r"attn.\3.\4"),
        (block + r"attention\.(?:output\.dense|o_proj)\.(\w+)", target + r"attn.proj.\3"),
        (block + r"attention\.(?:self|relative_position_bias)\.relative_position_bias_table",
         target + "attn.relative_position_bias_table"),
        (block + r"(?:intermediate\.dense|mlp\.fc1)\.(\w+)", target + r"mlp.fc1.\3"),
        (block + r"(?:output\.dense|mlp\.fc2)\.(\w+)", target + r"mlp.fc2.\3"),
        (r"(?:swin\.)?encoder\.layers\.(\d+)\.downsample\.(\w+)\.(\w+)", r"layers.\1.downsample.\2.\3"),
        (r"(?:swin\.)?layernorm\.(\w+)", r"norm.\1"),
        (r"classifier\..*", Ignore("image classification head")),
        *_DERIVED_BUFFERS,
    ]


def _fuse_hf_qkv(state: StateDict) -> StateDict:
    """transformers' separate query/key/value projections -> the official fused qkv (rows q|k|v)."""
    out = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"(.*attn\.)(query|key|value|q_proj|k_proj|v_proj)\.(\w+)", key)
        if match is None:
            out[key] = tensor
        elif match[2] in ("query", "q_proj"):
            prefix, kind = match[1], match[3]
            parts = [state.get(f"{prefix}{name}.{kind}", state.get(f"{prefix}{alt}.{kind}"))
                     for name, alt in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"))]
            if any(part is None for part in parts):
                raise ValueError(f"{prefix}: query, key and value projections must all be present to fuse them")
            out[f"{prefix}qkv.{kind}"] = torch.cat(parts, 0)
    return out


def _torchvision_swin_rules(three_d: bool) -> Rules:
    """torchvision flattens the stages into `features.N` (3D: blocks at even N, merging at odd N; 2D: `features.0` is
    the patch embedding, blocks at odd N, merging at even N > 0). Renamed to `features.N.blocks.j.…` /
    `features.N.downsample.…` here; `_renumber_stages` turns N into the stage."""
    block = r"features\.(\d+)\.(\d+)\."
    if three_d:
        embedding = [(r"patch_embed\.(proj|norm)\.(\w+)", r"patch_embed.\1.\2")]
    else:
        embedding = [(r"features\.0\.0\.(\w+)", r"patch_embed.proj.\1"), (r"features\.0\.2\.(\w+)", r"patch_embed.norm.\1")]
    return [
        *embedding,
        *_DERIVED_BUFFERS,
        (block + r"mlp\.0\.(\w+)", r"features.\1.blocks.\2.mlp.fc1.\3"),
        (block + r"mlp\.3\.(\w+)", r"features.\1.blocks.\2.mlp.fc2.\3"),
        (block + r"(norm1|norm2|attn\.qkv|attn\.proj)\.(\w+)", r"features.\1.blocks.\2.\3.\4"),
        (block + r"attn\.relative_position_bias_table", r"features.\1.blocks.\2.attn.relative_position_bias_table"),
        (r"features\.(\d+)\.(reduction|norm)\.(\w+)", r"features.\1.downsample.\2.\3"),
        (r"norm\.(\w+)", r"norm.\1"),
        (r"head\..*", Ignore("classification head")),
    ]


def _renumber_stages(state: StateDict, three_d: bool) -> StateDict:
    """`features.N.blocks.*` / `features.N.downsample.*` -> `layers.{stage}.…` (see `_torchvision_swin_rules`)."""
    out = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"features\.(\d+)\.(blocks|downsample)\.(.*)", key)
        if match is None:
            out[key] = tensor
            continue
        index = int(match[1])
        stage = index // 2 if three_d else (index - 1) // 2
        out[f"layers.{stage}.{match[2]}.{match[3]}"] = tensor
    return out


def _official_rules(prefix: str) -> Rules:
    """Official names already are ours: drop the prefix, the head and the derived buffers; `_fit_to_target` reports
    whatever else the target lacks."""
    return [
        *_DERIVED_BUFFERS,
        (r"(?:cls_head|head)\..*", Ignore("classification head")),
        (prefix + r"(.*)", r"\1"),
    ]


def _normalise_video(state: StateDict, source_format: str, report: ConversionReport) -> StateDict:
    """Any supported layout -> official Video Swin names without prefix (still 2D tensors for the 2D formats)."""
    if source_format == "hf_swin2d":
        return _fuse_hf_qkv(_rename(state, _hf_swin_rules(), report))
    if source_format in ("torchvision_swin2d", "torchvision_swin3d"):
        three_d = source_format == "torchvision_swin3d"
        return _renumber_stages(_rename(state, _torchvision_swin_rules(three_d), report), three_d)
    if source_format == "official_video_swin":
        return _rename(state, _official_rules(r"backbone\."), report)
    if source_format in ("official_swin2d", "native"):
        return _rename(state, _official_rules(""), report)
    raise ValueError(f"unknown video checkpoint format {source_format!r}; expected one of {VIDEO_FORMATS} or 'auto'")


def _inflate(state: StateDict, config: VideoSwinConfig, origin: str) -> StateDict:
    """2D Swin tensors -> 3D: patch conv repeated over the temporal patch and divided by its length (a static clip
    then embeds exactly like the image); relative position bias table tiled over the temporal offsets."""
    out = dict(state)
    patch_t = config.patch_size[0]
    if "patch_embed.proj.weight" in out:
        weight = out["patch_embed.proj.weight"]
        if weight.dim() != 4:
            raise ValueError(f"{origin}: patch_embed.proj.weight has shape {tuple(weight.shape)}; a 2D Swin has 4 dims")
        out["patch_embed.proj.weight"] = weight.unsqueeze(2).repeat(1, 1, patch_t, 1, 1) / patch_t
    window_t, window_h, window_w = config.window_size
    for key, table in state.items():
        if key.endswith("relative_position_bias_table"):
            side = math.isqrt(table.shape[0])
            if side * side != table.shape[0] or (side, side) != (2 * window_h - 1, 2 * window_w - 1):
                raise ValueError(f"{origin}: {key} has {table.shape[0]} rows, a 2D window of "
                                 f"{(side + 1) // 2}x{(side + 1) // 2}; the target window_size {config.window_size} "
                                 f"needs a {window_h}x{window_w} one ({(2 * window_h - 1) * (2 * window_w - 1)} rows)")
            out[key] = table.repeat(2 * window_t - 1, 1)
    return out


def _vision_config(config: PreTrainedConfig) -> VideoSwinConfig:
    """The backbone's config: a `VideoSwinConfig`, or the `vision_config` of an `AVCANetConfig`."""
    return getattr(config, "vision_config", config)


def _convert_video(state: StateDict, origin: str, config: PreTrainedConfig, source_format: str
                   ) -> tuple[StateDict, ConversionReport]:
    config = _vision_config(config)
    if config.stem_channels:
        raise ValueError(f"{origin}: Swin checkpoints embed patches linearly; a Video Swin with a convolutional stem "
                         f"(stem_channels={config.stem_channels}) has no pretrained weights to load. Use "
                         "stem_channels=0 to start from them.")
    if source_format == "auto":
        source_format = detect_video_format(state)
    report = ConversionReport(source_format)
    converted = _normalise_video(state, source_format, report)
    if source_format in ("hf_swin2d", "official_swin2d", "torchvision_swin2d"):
        converted = _inflate(converted, config, origin)
    fitted = _fit_to_target(converted, _shapes_of(lambda: VideoSwinModel(config)), report, origin)
    return fitted, report


def convert_video_backbone(source, config: PreTrainedConfig, source_format: str = "auto"
                           ) -> tuple[StateDict, ConversionReport]:
    """Any supported Swin / Video Swin checkpoint -> state dict of `VideoSwinModel(config)` (2D ones inflated).

    `config`: a `VideoSwinConfig` or an `AVCANetConfig` (its `vision_config`). `source_format`: "auto" (detected
    from the keys) or one of `VIDEO_FORMATS`.
    """
    state, origin = read_state_dict(source)
    return _convert_video(state, origin, config, source_format)


def inflate_swin2d(source, target_config: PreTrainedConfig) -> tuple[StateDict, ConversionReport]:
    """A 2D Swin (transformers `SwinModel` folder / instance / state dict, official 2D `.pth`, torchvision `swin_t`)
    -> inflated state dict of `VideoSwinModel(target_config)` (a `VideoSwinConfig` or an `AVCANetConfig`)."""
    state, origin = read_state_dict(source)
    source_format = detect_video_format(state)
    if source_format not in ("hf_swin2d", "official_swin2d", "torchvision_swin2d"):
        raise ValueError(f"{origin}: this is a {source_format} checkpoint, not a 2D Swin; use convert_video_backbone")
    return _convert_video(state, origin, target_config, source_format)


def load_video_swin(source, config: VideoSwinConfig | None = None, source_format: str = "auto"
                    ) -> tuple[VideoSwinModel, ConversionReport]:
    """A `VideoSwinModel` with the weights of any supported Swin / Video Swin checkpoint (2D ones inflated), ready
    to `save_pretrained`; `config` defaults to Swin-T. Keys the checkpoint lacks are listed in the report's
    `missing_keys` and keep their initial values."""
    model = VideoSwinModel(config if config is not None else VideoSwinConfig())
    state, report = convert_video_backbone(source, model.config, source_format)
    report.missing_keys = sorted(model.load_state_dict(state, strict=False).missing_keys)
    return model, report


# --------------------------------------------------------------------------------------------------------- audio


def detect_audio_format(state: Mapping[str, torch.Tensor]) -> str:
    if any(key.endswith("embedder.embedder.convolution.weight") for key in state):
        return "hf_resnet"
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state:
        return "torchvision_resnet"
    raise ValueError("not a recognised ResNet state dict: expected 'conv1.weight' (torchvision) or "
                     f"'embedder.embedder.convolution.weight' (transformers); got e.g. {sorted(state)[:5]}")


def _torchvision_resnet_rules() -> Rules:
    rules = [
        (r"conv1\.weight", "embedder.embedder.convolution.weight"),
        (r"bn1\.(\w+)", r"embedder.embedder.normalization.\1"),
        (r"fc\..*", Ignore("ImageNet classification head")),
    ]
    for index in range(1, 5):  # layer1..layer4 -> stages 0..3
        source = rf"layer{index}\.(\d+)\."
        target = rf"encoder.stages.{index - 1}.layers.\1."
        rules += [
            (source + r"conv1\.weight", target + "layer.0.convolution.weight"),
            (source + r"bn1\.(\w+)", target + r"layer.0.normalization.\2"),
            (source + r"conv2\.weight", target + "layer.1.convolution.weight"),
            (source + r"bn2\.(\w+)", target + r"layer.1.normalization.\2"),
            (source + r"downsample\.0\.weight", target + "shortcut.convolution.weight"),
            (source + r"downsample\.1\.(\w+)", target + r"shortcut.normalization.\2"),
        ]
    return rules


def _hf_resnet_rules() -> Rules:
    return [
        (r"(?:resnet\.)?(embedder\..*|encoder\..*)", r"\1"),
        (r"classifier\..*", Ignore("image classification head")),
    ]


def adapt_stem_kernel(weight: torch.Tensor, target_shape: torch.Size, origin: str) -> torch.Tensor:
    """Pretrained RGB stem conv (out, 3, kh, kw) -> the audio stem (out, 1, kh', kw').

    Input channels are summed: the summed kernel on one channel responds exactly like the RGB kernel on a grey image
    (the MFCC map repeated over R, G, B). A spatial axis of target size 1 is summed too: for the authors' (7, 1) kernel
    over (time, coefficient) this keeps the filter's temporal profile, and its response is exactly the 7x7 response to
    an input that is constant along the coefficient axis (away from the zero-padded border). Axes of equal size are
    kept; other sizes have no exact reduction and raise.
    """
    if weight.shape[0] != target_shape[0]:
        raise ValueError(f"{origin}: stem conv has {weight.shape[0]} filters, the target {target_shape[0]}")
    if weight.shape[1] != target_shape[1]:
        if target_shape[1] != 1:
            raise ValueError(f"{origin}: cannot map {weight.shape[1]} stem input channels to {target_shape[1]}")
        weight = weight.sum(1, keepdim=True)
    for axis in (2, 3):
        if weight.shape[axis] != target_shape[axis]:
            if target_shape[axis] != 1:
                raise ValueError(f"{origin}: stem kernel {tuple(weight.shape[2:])} cannot become "
                                 f"{tuple(target_shape[2:])}; only equal sizes or 1 (a sum over that axis) map exactly")
            weight = weight.sum(axis, keepdim=True)
    return weight.contiguous()


def _audio_encoder_builder(config: PreTrainedConfig) -> Callable[[], nn.Module]:
    from .modeling_avcanet import build_audio_encoder

    return lambda: build_audio_encoder(getattr(config, "audio_config", config))


def convert_resnet(source, config: AVCANetAudioConfig | PreTrainedConfig, target: nn.Module | None = None
                   ) -> tuple[StateDict, ConversionReport]:
    """A 2D ResNet (transformers folder / instance / state dict, or a torchvision `.pth`) -> state dict of the audio
    encoder (`target`, by default the one `AVCANetModel` builds for `config`, an `AVCANetAudioConfig` or an
    `AVCANetConfig`), the stem adapted by
    `adapt_stem_kernel`."""
    state, origin = read_state_dict(source)
    source_format = detect_audio_format(state)
    report = ConversionReport(source_format)
    rules = _torchvision_resnet_rules() if source_format == "torchvision_resnet" else _hf_resnet_rules()
    converted = _rename(state, rules, report)
    if target is not None:
        expected = {key: value.shape for key, value in target.state_dict().items()}
    else:
        expected = _shapes_of(_audio_encoder_builder(config))
    stem = "embedder.embedder.convolution.weight"
    if stem in converted and stem in expected:
        converted[stem] = adapt_stem_kernel(converted[stem], expected[stem], origin)
    return _fit_to_target(converted, expected, report, origin), report


# ---------------------------------------------------------------------------------------------------- into a model


def load_pretrained_backbones(model: nn.Module, video=None, audio=None, video_format: str = "auto"
                              ) -> dict[str, ConversionReport]:
    """Load public checkpoints into an `AVCANetForVideoClassification` (or `AVCANetModel`): `video` into its
    `video_encoder`, `audio` into its `audio_encoder`. Formats are detected from the keys (`video_format` overrides,
    one of `VIDEO_FORMATS`). Returns {"video": report, "audio": report} for what was given.

    Sources: `.pth`/`.pt` (weights-only), `.safetensors`, Hugging Face folders, modules or state dicts.
    """
    base = getattr(model, "avcanet", model)
    config = model.config
    reports = {}
    for name, source, attribute in (("video", video, "video_encoder"), ("audio", audio, "audio_encoder")):
        if source is None:
            continue
        encoder = getattr(base, attribute, None)
        if encoder is None:
            raise ValueError(f"a {name} checkpoint was given but this model (modality={config.modality!r}) has no "
                             f"{attribute}")
        if name == "video":
            state, report = convert_video_backbone(source, config, video_format)
        else:
            state, report = convert_resnet(source, config, target=encoder)
        result = encoder.load_state_dict(state, strict=False)
        report.missing_keys = sorted(result.missing_keys)
        reports[name] = report
    return reports


__all__ = [
    "AUDIO_FORMATS",
    "VIDEO_FORMATS",
    "ConversionReport",
    "adapt_stem_kernel",
    "convert_resnet",
    "convert_video_backbone",
    "detect_audio_format",
    "detect_video_format",
    "inflate_swin2d",
    "load_pretrained_backbones",
    "load_video_swin",
    "read_state_dict",
]
