"""`pipeline("video-emotion")`: the emotions of whole videos, with an optional timeline.

One video is one model input: the processor spreads the model's snippets over the whole duration.
With `timeline=True` the video is also cut into overlapping windows, each window one more model
input (`clip_range=(start, end)`). Windows are planned from the frames and sound the file really
holds (its packet timestamps, not its metadata), counted before anything is decoded and capped by
`max_timeline_windows`; they are produced lazily and batched like any other chunk, so memory does
not grow with the length of the video.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from transformers import AutoModelForVideoClassification
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .decoding import ContentTimes, as_source, content_times
from .errors import VideoReadError
from .processing_avcanet import AVCANetProcessor
from .video_inputs import VideoInputResolver

DEFAULT_TOP_K = 3
# 5 s at 25 fps is about the 16 x 8 = 128 frames the model samples: its snippets then see nearly every frame.
DEFAULT_WINDOW_SECONDS = 5.0
# 10,000 windows are ~7 hours of video at the default window and stride: more is most likely a broken file.
DEFAULT_MAX_TIMELINE_WINDOWS = 10_000
ERRORS = ("raise", "return")
# A frame (or audio packet) is content for at least this long even in windows shorter than it, so windows
# shorter than the frame interval do not leave holes in an ordinary video's timeline.
MIN_HOLD_SECONDS = 1.0


def plan_windows(duration: float, window: float = DEFAULT_WINDOW_SECONDS, stride: float | None = None):
    """Return `(start, end)` windows in seconds that cover `[0, duration]` with no gap.

    Each window lasts `min(duration, window)`; a new one starts every `stride` seconds (default half a
    window) and the last one is aligned to the end of the video.
    """
    length, stride, count = _window_grid(duration, window, stride)
    starts = [min(index * stride, duration - length) for index in range(count)]
    return [(float(start), float(start + length)) for start in starts]


def _window_grid(duration: float, window: float, stride: float | None) -> tuple[float, float, int]:
    """(window length, stride, number of windows) of `plan_windows`, without listing the windows."""
    if not duration > 0 or not math.isfinite(duration):
        raise ValueError(f"cannot plan timeline windows for a video of duration {duration!r} s")
    if not window > 0:
        raise ValueError(f"timeline window must be positive, got {window!r} s")
    stride = window / 2 if stride is None else stride
    if not 0 < stride <= window:
        raise ValueError(f"timeline stride must be in (0, window={window}] so windows leave no gap, got {stride!r}")
    length = min(duration, window)
    # tolerance: a duration that is a whole number of strides must not get an extra window
    return length, stride, math.ceil((duration - length) / stride - 1e-9) + 1


def plan_timeline(content: ContentTimes, window: float = DEFAULT_WINDOW_SECONDS, stride: float | None = None,
                  max_windows: int | None = DEFAULT_MAX_TIMELINE_WINDOWS, name: str = "<video>"):
    """The windows of `plan_windows(content.end, window, stride)` that hold some content.

    A window is kept when it overlaps content: a video frame or an audio packet counts from its start
    until the next one, but for at most a window length (and at least `MIN_HOLD_SECONDS`). A file whose
    timestamps jump by days gets the few windows around its frames, not one per stride across the
    jump. On an ordinary video (frames and sound less than a second apart) every window is kept; the
    timeline skips only spans longer than a window with neither a new frame nor sound.

    The windows are counted before any is listed: more than `max_windows` (None: no limit) raises
    `VideoReadError` naming `name`, the count and how to allow it.
    """
    length, stride, count = _window_grid(content.end, window, stride)
    spans = content.covered(hold=max(length, MIN_HOLD_SECONDS))
    # window k starts at k * stride (the last one at end - length) and overlaps [a, b) when it starts before
    # b and ends after a: (a - length) / stride < k < b / stride, for k < count - 1
    final = float(count - 1)  # window indices stay floats: a hostile file can count more than int64 holds
    first = np.clip(np.floor((spans[:, 0] - length) / stride + 1e-9) + 1, 0, final)
    last = np.clip(np.ceil(spans[:, 1] / stride - 1e-9) - 1, 0, final)
    keep = first <= last
    first, last = np.append(first[keep], [0, final]), np.append(last[keep], [0, final])  # both ends, always
    order = np.argsort(first, kind="stable")
    first, reach = first[order], np.maximum.accumulate(last[order])
    opens = np.flatnonzero(np.concatenate([[True], first[1:] > reach[:-1] + 1]))
    runs = np.stack([first[opens], reach[np.append(opens[1:] - 1, len(first) - 1)]], axis=1)
    total = int((runs[:, 1] - runs[:, 0] + 1).sum())  # before listing any
    if max_windows is not None and total > max_windows:
        raise VideoReadError(name, f"its timeline would take {total:,} windows of {length:g} s (stride {stride:g} s "
                                   f"over {content.end:g} s), more than max_timeline_windows={max_windows:,}; pass a "
                                   "larger max_timeline_windows (or a longer timeline_window / timeline_stride)")
    starts = (min(index * stride, content.end - length) for lo, hi in runs.tolist()
              for index in range(int(lo), int(hi) + 1))
    return [(float(start), float(start + length)) for start in starts]


def _rewindable(video):
    """A binary file-like input read once, from its start, as every timeline window reads the video again:
    `{"path": its name, "bytes": its content}`, so that errors still name the file."""
    if not hasattr(video, "read"):
        return video
    name = str(getattr(video, "name", None) or "<file object>")
    try:
        if getattr(video, "seekable", lambda: False)():
            video.seek(0)  # a file that was partly read is still read whole
        data = video.read()
    except (OSError, ValueError) as error:
        raise VideoReadError(name, f"cannot read the file object ({error})") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise VideoReadError(name, f"the file object gave {type(data).__name__}, not bytes (open it with 'rb')")
    return {"path": name, "bytes": bytes(data)}


def _name(video) -> str:
    """How an error names an input: its path, or what kind of object it is."""
    if isinstance(video, dict) and "video" in video:
        video = video["video"] if video["video"] is not None else video.get("proxy")
    try:
        return as_source(video).name
    except VideoReadError as error:
        return error.source


class VideoEmotionPipeline(ChunkPipeline):
    """Predict the emotions of videos with AV-CANet.

    Call with a video (path, bytes, binary file object, `{"path", "bytes"}` dict, or anything else the
    [`AVCANetProcessor`] accepts) or a non-empty list of them. A file object is read from its start
    (it is rewound first when it can seek). Keyword arguments, at construction or per call:

    - `top_k` (`int`, 3): how many emotions to return, most likely first.
    - `timeline` (`bool`, False): also return emotion probabilities over time.
    - `timeline_window` (`float`, 5.0) / `timeline_stride` (`float`, half the window): window length
      and step in seconds.
    - `max_timeline_windows` (`int`, 10,000, about 7 hours at the default window and stride): a video
      whose timeline would take more windows is an error (`VideoReadError`, with the count), raised
      before anything is decoded; pass a larger number for longer videos.
      The windows are planned over the frames and sound the file really holds, so a tiny file whose
      timestamps jump by days takes a few windows, not millions.
    - `errors` (`"raise"` or `"return"`, default `"raise"`): what a video that cannot be read does.
      `"raise"` raises its `VideoReadError` (or `ValueError`), as every pipeline does, and a list
      then returns nothing. `"return"` gives `{"error": "<file>: <reason>"}` in that video's place
      and the results of all the others, in order.

    Each video gives a dict:

    - `predictions`: `[{"label", "score", "polarity"}, ...]`, top-k over the whole video.
    - `has_audio`: whether the video's sound was used (it has an audio track and the model listens).
    - `contribution`: for the linear fusion heads, the exact split of the predicted class's logit,
      `{"label", "logit", "visual", "audio", "bias"}` with `visual + audio + bias == logit` (a
      single-modality model has None for the other modality); None for the non-linear fusions.
    - `timeline` (with `timeline=True`): `[{"start", "end", "scores": {label: probability}}, ...]`,
      over `[0, end of the last frame]`; spans longer than a window (and than a second) where the file
      has neither a new frame nor sound, as at a jump in its timestamps, get no windows.
    """

    _load_processor = None  # AutoProcessor when registered (or named by remote code), else loaded in __init__
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
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
        processor.check_model_config(self.model.config)
        # The base class batches through `feature_extractor`; both names refer to the processor. It took the
        # processor's text-less `tokenizer` stand-in for a tokenizer: there is none.
        self.processor = self.feature_extractor = processor
        self.tokenizer = None

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise ValueError("no videos given: pass a video or a non-empty list of videos")
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, timeline=None, timeline_window=None, timeline_stride=None,
                             max_timeline_windows=None, errors=None):
        preprocess_params, postprocess_params = {}, {}
        if timeline is not None:
            preprocess_params["timeline"] = timeline
        if timeline_window is not None:
            preprocess_params["timeline_window"] = timeline_window
        if timeline_stride is not None:
            preprocess_params["timeline_stride"] = timeline_stride
        if timeline_window is not None or timeline_stride is not None:  # bad arguments raise, whatever `errors`
            known = getattr(self, "_preprocess_params", {})  # those given at construction
            window = timeline_window if timeline_window is not None else known.get("timeline_window",
                                                                                  DEFAULT_WINDOW_SECONDS)
            stride = timeline_stride if timeline_stride is not None else known.get("timeline_stride")
            _window_grid(window, window, stride)
        if max_timeline_windows is not None:
            if int(max_timeline_windows) < 1:
                raise ValueError(f"max_timeline_windows must be at least 1, got {max_timeline_windows}")
            preprocess_params["max_timeline_windows"] = int(max_timeline_windows)
        if errors is not None:
            if errors not in ERRORS:
                raise ValueError(f"errors={errors!r} is not one of {ERRORS}")
            preprocess_params["errors"] = errors
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be at least 1, got {top_k}")
            postprocess_params["top_k"] = int(top_k)
        return preprocess_params, {}, postprocess_params

    def preprocess(self, video, timeline=False, timeline_window=DEFAULT_WINDOW_SECONDS, timeline_stride=None,
                   max_timeline_windows=DEFAULT_MAX_TIMELINE_WINDOWS, errors="raise"):
        chunks = self._chunks(video, timeline, timeline_window, timeline_stride, max_timeline_windows)
        if errors == "raise":
            yield from chunks
            return
        try:
            yield from chunks
        except ValueError as error:  # VideoReadError and the processor's other complaints about an input
            # One chunk closes this video with its error (other videos batched with it go on); postprocess
            # turns it into the video's result.
            message = str(error) if isinstance(error, VideoReadError) else f"{_name(video)}: {error}"
            yield {**self._placeholder_inputs(), "error": message, "window": None, "overall": True, "is_last": True}

    def _chunks(self, video, timeline, timeline_window, timeline_stride, max_timeline_windows):
        with VideoInputResolver() as resolver:  # a URL is downloaded once for all the windows, removed after
            yield from self._resolved_chunks(resolver.resolve(_rewindable(video)), timeline, timeline_window,
                                             timeline_stride, max_timeline_windows)

    def _resolved_chunks(self, video, timeline, timeline_window, timeline_stride, max_timeline_windows):
        windows = []
        if timeline:
            source = video
            if isinstance(video, dict) and "video" in video:  # {"video", "proxy", "mfcc"}: the processor's items
                source = video["video"] if video["video"] is not None else video.get("proxy")
            windows = plan_timeline(content_times(source), timeline_window, timeline_stride,
                                    max_windows=max_timeline_windows, name=_name(source))
        whole = self.processor(video, return_tensors="pt")
        # A video no longer than one window has a single window: the whole-video input itself.
        whole_window = windows[0] if len(windows) == 1 else None
        yield {**whole, "error": None, "window": whole_window, "overall": True, "is_last": len(windows) <= 1}
        if len(windows) <= 1:
            return
        for index, window in enumerate(windows):
            inputs = self.processor(video, clip_range=window, return_tensors="pt")
            yield {**inputs, "error": None, "window": window, "overall": False, "is_last": index == len(windows) - 1}

    def _placeholder_inputs(self) -> dict:
        """Model inputs with the keys and shapes of a real video's (a blank frame, no sound), so that a
        failed video's error chunk can be batched with other videos' chunks."""
        return dict(self.processor(np.zeros((1, 2, 2, 3), np.uint8), return_tensors="pt"))

    def _forward(self, model_inputs):
        errors = model_inputs["error"]
        # first: the pipeline's iterator counts a batch's items from the first output (a list here)
        passed = {key: model_inputs[key] for key in ("error", "window", "overall", "is_last")}
        if errors is not None and (isinstance(errors, str) or all(error is not None for error in errors)):
            # only failed videos: nothing to run (a mixed batch runs their blank inputs, ignored afterwards)
            return {**passed, "logits": None, "visual_logits": None, "audio_logits": None, "audio_mask": None}
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
            **passed,
            "logits": outputs.logits.float(),
            "visual_logits": as_float(outputs.visual_logits),
            "audio_logits": as_float(outputs.audio_logits),
            "audio_mask": model_inputs.get("audio_mask"),
        }

    def postprocess(self, model_outputs, top_k=DEFAULT_TOP_K):
        failed = next((output["error"] for output in model_outputs if output["error"] is not None), None)
        if failed is not None:
            return {"error": failed}
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


# Registered with the Auto class: a saved `custom_pipelines` then names `AutoModelForVideoClassification`, which
# transformers has, and the model class comes from the folder's `auto_map` (remote code), not from this package.
PIPELINE_REGISTRY.register_pipeline(
    "video-emotion",
    pipeline_class=VideoEmotionPipeline,
    pt_model=AutoModelForVideoClassification,
    type="multimodal",
)


def custom_pipelines() -> dict:
    """The `custom_pipelines` entry of a saved config, as `Pipeline.save_pretrained` writes it: with it,
    `pipeline(model=folder_or_repo, trust_remote_code=True)` finds the task and the pipeline's code."""
    return {task: {**info, "impl": f"{__name__.rpartition('.')[2]}.{info['impl'].__name__}",
                   "pt": tuple(model_class.__name__ for model_class in info["pt"])}
            for task, info in VideoEmotionPipeline._registered_impl.items()}


def save_pipeline_code(model, save_directory) -> None:
    """Make `model`'s next save carry the video-emotion pipeline: `custom_pipelines` in its config and the
    pipeline's code (with the files it imports) in `save_directory`."""
    model.config.custom_pipelines = custom_pipelines()
    os.makedirs(save_directory, exist_ok=True)
    custom_object_save(VideoEmotionPipeline, save_directory)

__all__ = ["DEFAULT_MAX_TIMELINE_WINDOWS", "VideoEmotionPipeline", "custom_pipelines", "plan_timeline", "plan_windows",
           "save_pipeline_code"]
