"""`pipeline("video-emotion")`: the emotions of whole videos, with an optional timeline.

One video is one model input: the processor spreads the model's snippets over the whole duration.
With `timeline=True` the video is also cut into overlapping windows, each window one more model
input (`clip_range=(start, end)`). Windows are produced lazily and batched like any other chunk,
so memory does not grow with the length of the video.
"""

from __future__ import annotations

import math

import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .modeling_avcanet import AVCANetForVideoClassification
from .processing_avcanet import AVCANetProcessor

DEFAULT_TOP_K = 3
# 5 s at 25 fps is about the 16 x 8 = 128 frames the model samples: its snippets then see nearly every frame.
DEFAULT_WINDOW_SECONDS = 5.0


def plan_windows(duration: float, window: float = DEFAULT_WINDOW_SECONDS, stride: float | None = None):
    """Return `(start, end)` windows in seconds that cover `[0, duration]` with no gap.

    Each window lasts `min(duration, window)`; a new one starts every `stride` seconds (default half a
    window) and the last one is aligned to the end of the video.
    """
    if not duration > 0:
        raise ValueError(f"cannot plan timeline windows for a video of duration {duration!r} s")
    if not window > 0:
        raise ValueError(f"timeline window must be positive, got {window!r} s")
    stride = window / 2 if stride is None else stride
    if not 0 < stride <= window:
        raise ValueError(f"timeline stride must be in (0, window={window}] so windows leave no gap, got {stride!r}")
    length = min(duration, window)
    # tolerance: a duration that is a whole number of strides must not get an extra window
    count = math.ceil((duration - length) / stride - 1e-9) + 1
    starts = [min(index * stride, duration - length) for index in range(count)]
    return [(float(start), float(start + length)) for start in starts]


def _rewindable(video):
    """Read a binary file-like input once, as every timeline window reads the video again."""
    return video.read() if hasattr(video, "read") else video


class VideoEmotionPipeline(ChunkPipeline):
    """Predict the emotions of videos with AV-CANet.

    Call with a video (path, bytes, binary file object, `{"path", "bytes"}` dict, or anything else the
    [`AVCANetProcessor`] accepts) or a list of them. Keyword arguments, at construction or per call:

    - `top_k` (`int`, 3): how many emotions to return, most likely first.
    - `timeline` (`bool`, False): also return emotion probabilities over time.
    - `timeline_window` (`float`, 5.0) / `timeline_stride` (`float`, half the window): window length
      and step in seconds.

    Each video gives a dict:

    - `predictions`: `[{"label", "score", "polarity"}, ...]`, top-k over the whole video.
    - `has_audio`: whether the video's sound was used (it has an audio track and the model listens).
    - `contribution`: for the linear fusion heads, the exact split of the predicted class's logit,
      `{"label", "logit", "visual", "audio", "bias"}` with `visual + audio + bias == logit` (a
      single-modality model has None for the other modality); None for the non-linear fusions.
    - `timeline` (with `timeline=True`): `[{"start", "end", "scores": {label: probability}}, ...]`.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = None  # AutoFeatureExtractor when registered, else loaded in __init__
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        given = (self.feature_extractor, self.processor)
        processor = next((component for component in given if isinstance(component, AVCANetProcessor)), None)
        if processor is None:
            if not self.model.name_or_path:
                raise ValueError("the video-emotion pipeline needs an AVCANetProcessor: pass processor=... for a "
                                 "model that was not loaded from a folder or the Hub")
            processor = AVCANetProcessor.from_pretrained(self.model.name_or_path)
        # The base class batches through `feature_extractor`; both names refer to the processor.
        self.processor = self.feature_extractor = processor

    def _sanitize_parameters(self, top_k=None, timeline=None, timeline_window=None, timeline_stride=None):
        preprocess_params, postprocess_params = {}, {}
        if timeline is not None:
            preprocess_params["timeline"] = timeline
        if timeline_window is not None:
            preprocess_params["timeline_window"] = timeline_window
        if timeline_stride is not None:
            preprocess_params["timeline_stride"] = timeline_stride
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be at least 1, got {top_k}")
            postprocess_params["top_k"] = int(top_k)
        return preprocess_params, {}, postprocess_params

    def preprocess(self, video, timeline=False, timeline_window=DEFAULT_WINDOW_SECONDS, timeline_stride=None):
        video = _rewindable(video)
        windows = []
        if timeline:
            windows = plan_windows(self.processor.probe(video).duration, timeline_window, timeline_stride)
        whole = self.processor(video, return_tensors="pt")
        # A video no longer than one window has a single window: the whole-video input itself.
        whole_window = windows[0] if len(windows) == 1 else None
        yield {**whole, "window": whole_window, "overall": True, "is_last": len(windows) <= 1}
        if len(windows) <= 1:
            return
        for index, window in enumerate(windows):
            inputs = self.processor(video, clip_range=window, return_tensors="pt")
            yield {**inputs, "window": window, "overall": False, "is_last": index == len(windows) - 1}

    def _forward(self, model_inputs):
        config = self.model.config
        dtype = self.model.dtype
        inputs = {}
        if config.uses_video:
            inputs["pixel_values"] = model_inputs["pixel_values"].to(dtype)
        if config.uses_audio:
            inputs["input_features"] = model_inputs["input_features"].to(dtype)
            inputs["audio_mask"] = model_inputs["audio_mask"]
        outputs = self.model(**inputs)

        def as_float(tensor):
            return None if tensor is None else tensor.float()

        return {
            "logits": outputs.logits.float(),
            "visual_logits": as_float(outputs.visual_logits),
            "audio_logits": as_float(outputs.audio_logits),
            "audio_mask": model_inputs.get("audio_mask"),
            "window": model_inputs["window"],
            "overall": model_inputs["overall"],
            "is_last": model_inputs["is_last"],
        }

    def postprocess(self, model_outputs, top_k=DEFAULT_TOP_K):
        config = self.model.config
        labels = [config.id2label[index] for index in range(config.num_labels)]
        overall = next(output for output in model_outputs if output["overall"])
        logits = overall["logits"][0]
        scores, indices = logits.softmax(-1).topk(min(top_k, len(labels)))
        result = {
            "predictions": [
                {"label": labels[i], "score": score, "polarity": config.label2polarity[labels[i]]}
                for score, i in zip(scores.tolist(), indices.tolist())
            ],
            "has_audio": overall["audio_mask"] is not None and bool(overall["audio_mask"].item()),
            "contribution": self._contribution(overall, int(indices[0]), labels),
        }
        windows = [output for output in model_outputs if output["window"] is not None]
        if windows:
            probabilities = torch.cat([output["logits"] for output in windows]).softmax(-1).tolist()
            result["timeline"] = [
                {"start": output["window"][0], "end": output["window"][1], "scores": dict(zip(labels, row))}
                for output, row in zip(windows, probabilities)
            ]
        return result

    def _contribution(self, output, class_index: int, labels: list[str]):
        """Split the predicted class's logit into its visual, audio and bias terms.

        Only the linear heads have such a split (None otherwise); a single-modality model has no term
        for the modality it does not use (None).
        """
        terms = {name: output[f"{name}_logits"] for name in ("visual", "audio")}
        if all(term is None for term in terms.values()):
            return None
        bias = self.model.head.classifier.bias
        return {
            "label": labels[class_index],
            "logit": output["logits"][0, class_index].item(),
            **{name: None if term is None else term[0, class_index].item() for name, term in terms.items()},
            "bias": bias[class_index].item(),
        }


PIPELINE_REGISTRY.register_pipeline(
    "video-emotion",
    pipeline_class=VideoEmotionPipeline,
    pt_model=AVCANetForVideoClassification,
    type="multimodal",
)

__all__ = ["VideoEmotionPipeline", "plan_windows"]
