"""`pipeline("video-emotion")`: the emotions of whole videos, with an optional timeline.

One video is one model input: the processor spreads the model's snippets over the whole duration.
With `timeline=True` the video is also cut into overlapping windows, each window one more model
input (`clip_range=(start, end)`). Windows are planned from the frames and sound the file really
holds (its packet timestamps, not its metadata), counted before anything is decoded and capped by
`max_timeline_windows`; they are produced lazily and batched like any other chunk, so memory does
not grow with the length of the video.

Overlapping windows share snippets: a window of W s is s snippets of W/s s, and a window starting
at a multiple of W/s has the snippets of a grid over the whole video. So a file's timeline decodes
and encodes (Video Swin) each distinct snippet once, identified by the frames it takes (one
`FrameDecoder` goes on from window to window: the file is read about once, not from a keyframe per
window), keeps its features F_v only while a later window still needs them, and runs only the audio
encoder, LGF and the head per window (`AVCANetModel.encode_snippets`, `classify_snippet_features`). Where the stride
is a multiple of W/s the result is today's per-window computation (the same frames, the same
audio); otherwise every window but the last is computed as the window starting at the nearest
multiple of W/s (at most W/(2s) = 0.16 s earlier or later at the defaults; reported with its planned
bounds), which the grid holds. The audio of a window is not shared: the processor tiles a window's
MFCC over its s chunks, so the chunks depend on where the window starts. Inputs other than files
(decoded frames, prepared dataset rows) and the decord backend keep one full model input per window.
"""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import torch
from transformers import AutoModelForVideoClassification
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .audio_features import read_audio
from .decoding import (
    ContentTimes,
    FrameDecoder,
    _coded_size,
    _frame_step,
    _upright,
    _video_info,
    as_source,
    content_times,
    open_container,
    packet_timestamps,
    sample_frame_indices,
    video_stream,
)
from .errors import VideoReadError
from .processing_avcanet import AVCANetProcessor
from .quantization import quantize_int8
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


class _WindowSnippets:
    """How a timeline window's video features are assembled from shared snippets: `keys` are its s snippets
    (each the tuple of frame indices it takes), `fresh` the ones first needed here, whose pixels are the first
    rows of the chunk's `pixel_values`, `release` those no later window of the video needs."""

    __slots__ = ("fresh", "keys", "release", "video")

    def __init__(self, video: str, keys: tuple, fresh: tuple, release: tuple):
        self.video, self.keys, self.fresh, self.release = video, keys, fresh, release


class _SnippetGrid:
    """A file's frames decoded as `AVCANetVideoProcessor` decodes a clip in evaluation (PyAV, shorter side
    `image_size`, upright), but by snippet: a timeline samples each window with the processor's sampler and
    decodes only the snippets no earlier window took. One container and one decoder stay open for the whole
    timeline."""

    def __init__(self, video, video_processor):
        self.source = as_source(video)
        self.num_snippets, self.frames_per_snippet = video_processor.num_snippets, video_processor.frames_per_snippet
        self.container = open_container(self.source)
        try:
            self.stream = video_stream(self.container, self.source)
            self.stream.codec_context.thread_count = video_processor.num_threads
            self.info = _video_info(self.container, self.source)
            self.container.seek(0)
            self.size = _coded_size(self.info, video_processor.image_size)
            self.pts, keyframes = packet_timestamps(self.container, self.stream)
            if not len(self.pts):
                raise VideoReadError(self.source.name, "the video stream has no frames")
            # one decoder for the whole timeline: each window's new snippets continue where the last ones ended
            self.decoder = FrameDecoder(self.container, self.stream, self.source, keyframes, *self.size)
            base = float(self.stream.time_base)
            self.times = self.pts * base
            self.end_time = float(self.pts[-1] + _frame_step(self.pts)) * base
        except BaseException:
            self.container.close()
            raise

    def close(self) -> None:
        self.decoder.close()
        self.container.close()

    def snippets(self, clip_range) -> list[tuple]:
        """The frame indices of each snippet of the clip `clip_range`, as `read_clip` samples them."""
        sample = sample_frame_indices(self.times, self.num_snippets, self.frames_per_snippet, end_time=self.end_time,
                                      training=False, clip_range=clip_range)
        return [tuple(row) for row in sample.indices.tolist()]

    def frames(self, snippets) -> np.ndarray:
        """(s·T, H, W, 3) uint8: the frames of `snippets` in order, padded to s snippets with copies of the
        first frame (the processor samples s·T frames one to one; the padding is never encoded)."""
        indices = np.asarray(snippets, dtype=np.int64).reshape(-1)
        if len(indices):
            wanted, inverse = np.unique(indices, return_inverse=True)
            frames = self.decoder.decode(self.pts[wanted])[inverse.reshape(-1)]
        else:  # no new snippet: one blank frame so the processor has an input (never encoded, nothing decoded)
            width, height = self.size
            frames = np.zeros((1, height, width, 3), np.uint8)
        frames = _upright(frames, self.info.rotation)
        missing = self.num_snippets * self.frames_per_snippet - len(frames)
        if missing > 0:
            frames = np.concatenate([frames, np.broadcast_to(frames[:1], (missing, *frames.shape[1:]))])
        return frames


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

    At construction only, `quantize="int8"` runs the model's Linear layers in int8 on the CPU (a quantized copy;
    `emotions_hf.quantization.quantize_int8`): faster, with slightly different scores (see the README).

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
    # False: every timeline window is decoded and run through the whole model (the reference the shared-snippet
    # timeline is tested and benchmarked against).
    share_timeline_snippets = True
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, quantize: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if quantize is not None:  # opt-in CPU inference speed-up: int8 Linears, the fusion head kept float
            if quantize != "int8":
                raise ValueError(f"quantize={quantize!r}: the only option is 'int8' (CPU dynamic quantization)")
            self.model = quantize_int8(self.model)
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
        self._snippet_features = {}  # video id -> {snippet key: F_v}, while a timeline still needs them

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise ValueError("no videos given: pass a video or a non-empty list of videos")
        self._snippet_features.clear()  # left over by a call that raised mid-timeline
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
        video_id = uuid.uuid4().hex  # names this video's shared snippet features in `_forward`
        chunks = self._chunks(video, timeline, timeline_window, timeline_stride, max_timeline_windows, video_id)
        if errors == "raise":
            yield from chunks
            return
        try:
            yield from chunks
        except ValueError as error:  # VideoReadError and the processor's other complaints about an input
            # One chunk closes this video with its error (other videos batched with it go on); postprocess
            # turns it into the video's result.
            message = str(error) if isinstance(error, VideoReadError) else f"{_name(video)}: {error}"
            yield {**self._placeholder_inputs(), "error": message, "window": None, "overall": True, "is_last": True,
                   "snippets": None, "video_id": video_id}

    def _chunks(self, video, timeline, timeline_window, timeline_stride, max_timeline_windows, video_id):
        with VideoInputResolver() as resolver:  # a URL is downloaded once for all the windows, removed after
            for chunk in self._resolved_chunks(resolver.resolve(_rewindable(video)), timeline, timeline_window,
                                               timeline_stride, max_timeline_windows, video_id):
                yield {"snippets": None, **chunk, "video_id": video_id}

    def _resolved_chunks(self, video, timeline, timeline_window, timeline_stride, max_timeline_windows, video_id):
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
        if self._shares_snippets(video):
            stride = timeline_window / 2 if timeline_stride is None else timeline_stride
            yield from self._shared_window_chunks(video, windows, stride, video_id)
            return
        for index, window in enumerate(windows):
            inputs = self.processor(video, clip_range=window, return_tensors="pt")
            yield {**inputs, "error": None, "window": window, "overall": False, "is_last": index == len(windows) - 1}

    def _shares_snippets(self, video) -> bool:
        """Whether a timeline can share snippets: a file (path or bytes) read by PyAV, for a model that sees the
        picture (an audio-only model has nothing to share)."""
        is_file = isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or (
            isinstance(video, dict) and "path" in video and not {"video", "frames"} & set(video))
        return (self.share_timeline_snippets and is_file and self.model.config.uses_video
                and self.processor.uses_video and self.processor.video_processor.backend in ("auto", "pyav"))

    def _shared_window_chunks(self, video, windows, stride, video_id):
        """One chunk per window whose pixels are only its snippets no earlier window took (see the module doc).

        `live` mirrors the features `_forward` will hold once this chunk has run: a window's snippets are encoded
        once, kept while the next window still takes them, then released; memory follows the window, not the
        video. Off the grid (a stride that is not a multiple of W/s), every window but the last is computed as
        the grid window starting nearest to it."""
        grid = _SnippetGrid(video, self.processor.video_processor)
        try:
            length = windows[0][1] - windows[0][0]
            step = length / grid.num_snippets
            on_grid = abs(stride / step - round(stride / step)) < 1e-6
            last_end = windows[-1][1]

            def computed(index):
                start, end = windows[index]
                if on_grid or index == len(windows) - 1:
                    return start, end
                snapped = round(start / step) * step
                return (snapped, snapped + length) if snapped + length <= last_end else (start, end)

            uses_audio = self.processor.uses_audio and grid.info.has_audio
            rate = self.processor.feature_extractor.sample_rate
            live, upcoming = set(), grid.snippets(computed(0))
            for index, window in enumerate(windows):
                clip_range, keys = computed(index), upcoming
                upcoming = grid.snippets(computed(index + 1)) if index + 1 < len(windows) else []
                fresh = tuple(dict.fromkeys(key for key in keys if key not in live))
                live.update(fresh)
                release = tuple(live.difference(upcoming))
                live.difference_update(release)
                audio = read_audio(grid.source, rate, start=float(clip_range[0]), end=float(clip_range[1])) \
                    if uses_audio else None
                # the processor makes the pixels of the new snippets and the window's MFCC chunks, as for a file
                inputs = self.processor({"frames": grid.frames(fresh), "audio": audio, "sample_rate": rate},
                                        return_tensors="pt")
                yield {**inputs, "error": None, "window": window, "overall": False,
                       "is_last": index == len(windows) - 1,
                       "snippets": _WindowSnippets(video_id, tuple(keys), fresh, release)}
        finally:
            grid.close()

    def _placeholder_inputs(self) -> dict:
        """Model inputs with the keys and shapes of a real video's (a blank frame, no sound), so that a
        failed video's error chunk can be batched with other videos' chunks."""
        return dict(self.processor(np.zeros((1, 2, 2, 3), np.uint8), return_tensors="pt"))

    def _forward(self, model_inputs):
        errors = model_inputs["error"]
        # first: the pipeline's iterator counts a batch's items from the first output (a list here)
        passed = {key: model_inputs[key] for key in ("error", "window", "overall", "is_last")}
        finished = self._finished_videos(model_inputs)
        if errors is not None and (isinstance(errors, str) or all(error is not None for error in errors)):
            # only failed videos: nothing to run (a mixed batch runs their blank inputs, ignored afterwards)
            for video_id in finished:
                self._snippet_features.pop(video_id, None)
            return {**passed, "logits": None, "visual_logits": None, "audio_logits": None, "audio_mask": None}
        config = self.model.config
        dtype = self.model.dtype
        inputs = {}
        if config.uses_video:
            inputs["pixel_values"] = model_inputs["pixel_values"].to(dtype)
        if config.uses_audio:
            inputs["input_features"] = model_inputs["input_features"].to(dtype)
            inputs["audio_mask"] = model_inputs["audio_mask"]
        plans = model_inputs["snippets"]
        plans = plans if isinstance(plans, list) else [plans]
        if all(plan is None for plan in plans):
            outputs = self.model(**inputs)
        else:
            outputs = self._forward_mixed(inputs, plans)
        for video_id in finished:  # its last window has run (or it failed): none of its snippets is needed again
            self._snippet_features.pop(video_id, None)

        def as_float(tensor):
            return None if tensor is None else tensor.float()

        return {
            **passed,
            "logits": outputs.logits.float(),
            "visual_logits": as_float(outputs.visual_logits),
            "audio_logits": as_float(outputs.audio_logits),
            "audio_mask": model_inputs.get("audio_mask"),
        }

    @staticmethod
    def _finished_videos(model_inputs) -> list[str]:
        """The videos whose last chunk is in this batch (their last window, or the error chunk of a video that
        failed mid-timeline): their shared snippet features are dropped once the batch has run."""
        ids, last = model_inputs["video_id"], model_inputs["is_last"]
        ids, last = (ids, last) if isinstance(ids, list) else ([ids], [last])
        return [video_id for video_id, is_last in zip(ids, last) if is_last]

    def _forward_mixed(self, inputs: dict, plans: list):
        """A batch holding shared-snippet windows (`plans[i]` not None) and possibly other inputs (a whole video, a
        failed video's placeholder), which run the whole model. The new snippets of all windows are encoded in one
        backbone call, in chunk order, before any window gathers its s snippets."""
        model, rows = self.model, range(len(plans))
        shared = [row for row in rows if plans[row] is not None]
        full = [row for row in rows if plans[row] is None]
        fresh = [inputs["pixel_values"][row, : len(plans[row].fresh)] for row in shared]
        if sum(len(pixels) for pixels in fresh):
            encoded = iter(model.avcanet.encode_snippets(torch.cat(fresh)))
            for row in shared:
                store = self._snippet_features.setdefault(plans[row].video, {})
                store.update(zip(plans[row].fresh, encoded))
        video = torch.stack([torch.stack([self._snippet_features[plans[row].video][key] for key in plans[row].keys])
                             for row in shared])
        audio = audio_mask = None
        if model.config.uses_audio:
            audio_mask = inputs["audio_mask"][shared].to(device=video.device, dtype=torch.bool)
            audio = model.avcanet.encode_audio(inputs["input_features"][shared], audio_mask)
        windows = model.classify_snippet_features(video, audio, audio_mask)
        for row in shared:
            store = self._snippet_features.get(plans[row].video, {})
            for key in plans[row].release:
                store.pop(key, None)
        if not full:
            return windows
        others = self.model(**{name: value[full] for name, value in inputs.items()})
        merged = {}
        for name in ("logits", "visual_logits", "audio_logits"):
            parts = (getattr(windows, name), getattr(others, name))
            if parts[0] is None:
                merged[name] = None
                continue
            merged[name] = parts[0].new_empty((len(plans), *parts[0].shape[1:]))
            merged[name][shared], merged[name][full] = parts
        return type(windows)(**merged)

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
