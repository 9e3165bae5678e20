"""`AVCANetProcessor`: any video -> the `pixel_values`, `input_features` and `audio_mask` AV-CANet takes.

The transformers multimodal pattern (as CLAP or LLaVA): a thin `ProcessorMixin` owning an `AVCANetVideoProcessor`
(frames) and an `AVCANetFeatureExtractor` (MFCC). The processor resolves what it is given (a file, a prepared dataset
row with its training proxy and MFCC cache, decoded frames and sound) and sends each stream to its sub-processor;
both read the same media. It keeps no decoder or file handle between calls, so it pickles into DataLoader workers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file, logging

from .configuration_avcanet import MODALITIES, ModalityStreams
from .decoding import VideoInfo, probe
from .errors import VideoReadError
from .feature_extraction_avcanet import AVCANetFeatureExtractor
from .proxy import StaleCacheError, check_proxy
from .video_inputs import VideoInputResolver, video_batch
from .video_processing_avcanet import AVCANetVideoProcessor

logger = logging.get_logger(__name__)
_WARNED: set[str] = set()  # kinds of stale file already reported by this process

# The settings each sub-processor takes, for the flat form `AVCANetProcessor(image_size=..., num_mfcc=...)` (and the
# flat preprocessor_config.json of version 0.1). `num_snippets` goes to both.
_VIDEO_SETTINGS = ("num_snippets", "frames_per_snippet", "image_size", "image_mean", "image_std", "backend",
                   "num_threads", "crop_scales", "augmentation_probability", "max_rotation", "brightness",
                   "output_dtype")
_AUDIO_SETTINGS = ("num_snippets", "sample_rate", "num_mfcc", "n_fft", "hop_length", "n_mels", "top_db",
                   "mfcc_frames", "mfcc_normalization", "mfcc_mean", "mfcc_std")


class _NoSpecialTokens:
    """What transformers' Trainer reads of a processor's `tokenizer` before training (`align_special_tokens` assumes
    every `ProcessorMixin` has one): AV-CANet reads no text, so it has no special tokens to align."""

    eos_token_id = bos_token_id = pad_token_id = None


class AVCANetProcessor(ModalityStreams, ProcessorMixin):
    r"""Turns videos into AV-CANet inputs: the paper's snippets of frames and one MFCC chunk per snippet.

    Args:
        video_processor (`AVCANetVideoProcessor`): frames (sampling, resize, crop, augmentation, normalisation).
        feature_extractor (`AVCANetFeatureExtractor`): the MFCC chunks.
        modality (`str`, "audio-visual"): "visual" or "audio" skip the other stream entirely.
        **settings: instead of the two sub-processors, their settings (`image_size=64, num_mfcc=20, ...`), each sent
            to the one that takes it; `num_snippets` to both.

    The two must agree on `num_snippets`; `check_model_config` compares every shape with a model's config.
    """

    tokenizer = _NoSpecialTokens()  # not a sub-processor: see `_NoSpecialTokens`

    def __init__(self, video_processor=None, feature_extractor=None, modality: str = "audio-visual", **settings):
        unknown = sorted(set(settings) - set(_VIDEO_SETTINGS) - set(_AUDIO_SETTINGS))
        if unknown:
            raise TypeError(f"AVCANetProcessor: unexpected arguments {unknown}")
        if settings and (video_processor is not None or feature_extractor is not None):
            raise TypeError(f"AVCANetProcessor: pass either the sub-processors or their settings {sorted(settings)}")
        if video_processor is None:
            video_processor = AVCANetVideoProcessor(**{k: v for k, v in settings.items() if k in _VIDEO_SETTINGS})
        if feature_extractor is None:
            feature_extractor = AVCANetFeatureExtractor(**{k: v for k, v in settings.items() if k in _AUDIO_SETTINGS})
        if modality not in MODALITIES:
            raise ValueError(f"modality={modality!r} is not one of {MODALITIES}")
        if video_processor.num_snippets != feature_extractor.num_snippets:
            raise ValueError(f"AVCANetProcessor: the video processor cuts videos into num_snippets="
                             f"{video_processor.num_snippets} snippets, the feature extractor into "
                             f"{feature_extractor.num_snippets}; they must agree")
        self.modality = modality
        super().__init__(video_processor=video_processor, feature_extractor=feature_extractor)

    @classmethod
    def from_model_config(cls, config, **settings) -> AVCANetProcessor:
        """A processor whose output shapes are those of an `AVCANetConfig`; `settings` set the rest."""
        vision, audio = config.vision_config, config.audio_config
        shapes = {"num_snippets": config.num_snippets, "frames_per_snippet": vision.num_frames,
                  "image_size": vision.image_size, "num_mfcc": audio.num_mfcc,
                  "mfcc_frames": config.num_snippets * audio.num_frames}
        modality = settings.pop("modality", config.modality)
        return cls(modality=modality, **{**shapes, **settings})

    def check_model_config(self, config) -> None:
        """Raise a `ValueError` naming both values when this processor's outputs do not fit a model's config (checked
        when a pipeline or the Trainer starts, before any video is read)."""
        vision, audio = config.vision_config, config.audio_config
        # (the two sub-processors' num_snippets agree: __init__ checks it)
        pairs = [("num_snippets", self.video_processor.num_snippets, "num_snippets", config.num_snippets)]
        if config.uses_video:
            pairs += [("video_processor.frames_per_snippet", self.video_processor.frames_per_snippet,
                       "vision_config.num_frames", vision.num_frames),
                      ("video_processor.image_size", self.video_processor.image_size,
                       "vision_config.image_size", vision.image_size)]
        if config.uses_audio:
            pairs += [("feature_extractor.num_mfcc", self.feature_extractor.num_mfcc, "audio_config.num_mfcc",
                       audio.num_mfcc),
                      ("feature_extractor.mfcc_chunk_frames", self.feature_extractor.mfcc_chunk_frames,
                       "audio_config.num_frames", audio.num_frames)]
        mismatches = [f"processor {mine}={value} but model {theirs}={wanted}"
                      for mine, value, theirs, wanted in pairs if value != wanted]
        missing = [stream for stream, used, made in (("video", config.uses_video, self.uses_video),
                                                     ("audio", config.uses_audio, self.uses_audio)) if used and not made]
        if missing:
            mismatches.append(f"processor modality={self.modality!r} makes no {' or '.join(missing)} input, which "
                              f"the model (modality={config.modality!r}) needs")
        if mismatches:
            raise ValueError("the processor does not fit the model: " + "; ".join(mismatches)
                             + ". Build it with AVCANetProcessor.from_model_config(model.config).")

    def check_argument_for_proper_class(self, argument_name, argument):
        """The base class looks the video processor's base class up among torchvision-only mappings, which fails
        without torchvision; the two classes are known, so check against them."""
        expected = {"video_processor": AVCANetVideoProcessor, "feature_extractor": AVCANetFeatureExtractor}
        proper_class = expected[argument_name]
        if not isinstance(argument, proper_class):
            raise TypeError(f"AVCANetProcessor: {argument_name} must be an {proper_class.__name__}, "
                            f"got {type(argument).__name__}")
        return proper_class

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """The two sub-processors, read with their own classes: `AutoVideoProcessor` (what the base class uses)
        needs torchvision, which this package does not."""
        processor_dict = processor_dict or {}
        loaded = []
        for name, sub_class in (("video_processor", AVCANetVideoProcessor),
                                ("feature_extractor", AVCANetFeatureExtractor)):
            settings = processor_dict.get(name)
            if isinstance(settings, dict):
                loaded.append(sub_class.from_dict(settings))
            else:
                loaded.append(sub_class.from_pretrained(pretrained_model_name_or_path, **kwargs))
        return loaded

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> AVCANetProcessor:
        """Load a saved processor; a folder saved by version 0.1 (one flat `preprocessor_config.json`) too."""
        legacy = _legacy_settings(pretrained_model_name_or_path, **kwargs)
        if legacy is not None:
            return cls(**legacy)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------------------------------------

    @property
    def num_snippets(self) -> int:
        return self.video_processor.num_snippets

    @property
    def image_size(self) -> int:
        return self.video_processor.image_size

    @property
    def mfcc_settings(self):
        return self.feature_extractor.mfcc_settings

    def training_short_side(self) -> int:
        return self.video_processor.training_short_side()

    @property
    def needs_mfcc_statistics(self) -> bool:
        """True when the feature extractor standardises MFCCs with dataset statistics not yet fitted."""
        return self.uses_audio and self.feature_extractor.needs_mfcc_statistics

    def fit_mfcc_statistics(self, items, max_items: int = 256, seed: int = 0) -> AVCANetProcessor:
        """Fit the feature extractor's `mfcc_mean` / `mfcc_std` on up to `max_items` videos (a seeded sample;
        processor inputs, e.g. `processor_item(row)`), over the frames the model would see; videos without sound
        or unreadable ones are passed over. Returns the processor."""
        items = list(items)
        if len(items) > max_items:
            items = [items[i] for i in np.random.default_rng(seed).choice(len(items), max_items, replace=False)]

        def raw_features():
            with VideoInputResolver() as resolver:
                for item in items:
                    try:
                        video, proxy, cache = _split_item(resolver.resolve(item))
                        decoded = video if isinstance(video, dict) and "frames" in video else None
                        yield self._mfcc(video, proxy, cache, decoded, None, None)
                    except VideoReadError:
                        continue

        self.feature_extractor.fit_mfcc_statistics(raw_features())
        return self

    def probe(self, item) -> VideoInfo:
        """Cheap metadata (duration, num_frames, fps, width, height, rotation, has_audio, ...)."""
        with VideoInputResolver() as resolver:
            video, proxy, _ = _split_item(resolver.resolve(item))
            return probe(video if video is not None else proxy)

    def __call__(self, videos, training: bool = False, seed: int | None = None, clip_range=None,
                 return_tensors="pt", **kwargs) -> BatchFeature:
        """Process one video or a list of them.

        Args:
            videos: a path, an `http(s)://` or `hf://` URL (downloaded for the call), bytes, a binary file
                object, `{"path", "bytes"}`, `{"video", "proxy", "mfcc"}`, decoded frames ((T, H, W, 3) or
                (T, C, H, W), a list of PIL images) or `{"frames", "audio", "sample_rate"}`, a torchcodec
                `VideoDecoder` (a `datasets` `Video()` value); or a list of these (see `video_inputs`).
            training: random frame positions and augmentation (reproducible with `seed`).
            clip_range: `(start_s, end_s)` for every video, or a list with one (or None) per video.
            return_tensors: "pt" (default) or "np" for batched arrays; None for a list per key, one NumPy array per
                video.
        Raises:
            VideoReadError: a video cannot be read; nothing is returned for the rest of the batch.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        videos = video_batch(videos)
        if not videos:
            raise ValueError("no videos given")
        ranges = _per_item_ranges(clip_range, len(videos))
        rngs = np.random.default_rng(seed).spawn(len(videos)) if training else [None] * len(videos)
        with VideoInputResolver() as resolver:  # downloads live until the videos are read
            outputs = [self._process(resolver.resolve(video), training, rng, window)
                       for video, rng, window in zip(videos, rngs, ranges)]
        if return_tensors is None:
            return BatchFeature({key: [o[key].numpy() for o in outputs] for key in outputs[0]})
        batch = {key: _batched([o[key] for o in outputs]) for key in outputs[0]}
        return BatchFeature(batch, tensor_type=return_tensors)

    # ----------------------------------------------------------------------------------------------

    def _process(self, item, training, rng, clip_range) -> dict:
        video, proxy, cache = _split_item(item)
        decoded = video if isinstance(video, dict) and "frames" in video else None
        result, info = {}, None
        if self.uses_video:
            frame_source = decoded["frames"] if decoded is not None else video
            if proxy is not None:
                try:
                    check_proxy(proxy, self.video_processor.image_size)
                    frame_source = proxy
                except StaleCacheError as stale:
                    _stale_fallback("training proxy", proxy, stale, video, "decoding frames from the original")
            result["pixel_values"], info = self.video_processor.pixel_values(frame_source, training, rng, clip_range)
            if frame_source is proxy:
                info = None  # the proxy's audio metadata is not the original's
        if self.uses_audio:
            result.update(self.feature_extractor.chunked(self._mfcc(video, proxy, cache, decoded, clip_range, info)))
        return result

    def _mfcc(self, video, proxy, cache, decoded, clip_range, info: VideoInfo | None) -> torch.Tensor | None:
        extractor = self.feature_extractor
        if cache is not None:
            try:
                return extractor.cached_features(cache, clip_range)
            except StaleCacheError as stale:
                _stale_fallback("MFCC cache", cache, stale, video, "recomputing it from the original")
        if decoded is not None:
            audio = decoded.get("audio")
            rate = int(decoded.get("sample_rate", extractor.sample_rate))
            return None if audio is None else extractor.waveform_features(audio, rate, clip_range)
        media = video if video is not None else proxy
        if isinstance(media, (np.ndarray, torch.Tensor)):
            return None
        if info is not None and not info.has_audio:
            return None
        return extractor.media_features(media, clip_range, duration=info.audio_duration if info else None)


def _legacy_settings(path, **kwargs) -> dict | None:
    """The flat settings of a processor saved by version 0.1 (a `preprocessor_config.json` naming
    `AVCANetProcessor`, no `processor_config.json`), or None for anything else."""
    hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision",
                                  "subfolder") if k in kwargs}
    if cached_file(path, PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False, **hub) is not None:
        return None
    legacy = cached_file(path, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False, **hub)
    if legacy is None:
        return None
    with open(legacy, encoding="utf-8") as handle:
        settings = json.load(handle)
    if settings.get("feature_extractor_type") != "AVCANetProcessor":
        return None
    return {k: v for k, v in settings.items() if k in (*_VIDEO_SETTINGS, *_AUDIO_SETTINGS, "modality")}


def _stale_fallback(kind: str, path, stale: StaleCacheError, video, action: str) -> None:
    """Use the original video instead of a stale proxy / cache, warning once per kind and process (a
    stale dataset has thousands); without the original, a clear error rather than stale inputs."""
    if video is None:
        raise VideoReadError(path, f"stale {kind}: {stale}; the item has no original video to use instead")
    if kind not in _WARNED:
        _WARNED.add(kind)
        logger.warning(f"{path}: stale {kind} ({stale}); {action}, which is slower. Rewrite them "
                       f"(`emotions-hf prepare --proxy`) with this processor's settings; further stale "
                       f"{kind}s are not reported.")


def _existing_file(value) -> str | None:
    """The local path of a proxy / cache given as a path or as an undecoded `{"path", "bytes"}` media dict."""
    path = value.get("path") if isinstance(value, dict) else value
    return path if path and os.path.isfile(path) else None


def _split_item(item):
    """(video, proxy, mfcc cache) of an item; proxy and cache only when their files exist."""
    if isinstance(item, dict) and "video" in item:
        proxy, cache = _existing_file(item.get("proxy")), _existing_file(item.get("mfcc"))
        video = item["video"]
        if video is None and proxy is None:
            raise VideoReadError("<dict>", "the item has neither a video nor a proxy")
        return video, proxy, cache
    return item, None, None


def _batched(tensors: list) -> torch.Tensor:
    """Stack along a new batch axis; one item is only viewed as a batch (a clip's pixels are ~20 MB)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _per_item_ranges(clip_range, count: int) -> list:
    if clip_range is None:
        return [None] * count
    if len(clip_range) == 2 and all(isinstance(v, (int, float)) for v in clip_range):
        return [tuple(clip_range)] * count
    ranges = list(clip_range)
    if len(ranges) != count:
        raise ValueError(f"clip_range has {len(ranges)} entries for {count} videos")
    return ranges


__all__ = ["AVCANetProcessor"]
