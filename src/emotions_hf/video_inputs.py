"""Turn the video inputs `transformers`' video tools accept into the kinds the processor reads.

`VideoInputResolver.resolve(item)` maps, per video:

- `http://` / `https://` URL  -> `MediaSource(name=url, path=<temporary file>)`: streamed to disk in chunks
  (never held whole in memory), at most `max_download_bytes`. A Hugging Face web URL of a file
  (`https://huggingface.co/<type>/<id>/blob|resolve/<rev>/<path>`) goes through the Hub like `hf://`,
  so a `blob/` page link gives the file, not its HTML page.
- `hf://[<type>/]<namespace>/<name>[@<revision>]/<path>` (huggingface_hub's grammar; type `models`
  (default), `datasets`, `spaces`, `kernels`, or `buckets/<namespace>/<name>/<path>` without a revision)
  -> `MediaSource(name=url, path=<file in the Hub cache>)`, through `hf_hub_download` (cache,
  `HF_HUB_OFFLINE`, `HF_TOKEN` respected); bucket files, which are not versioned or cached, go to a
  temporary file. `file://` URLs -> the local path.
- `{"path": <URL>, "bytes": None}` (a streamed `datasets` row) -> the URL's `MediaSource`;
  `{"video": <URL or any input>, "proxy", "mfcc"}` -> the same dict with its video resolved.
- (T, C, H, W) or (T, H, W, C) arrays / tensors, C in {1, 3} -> (T, H, W, 3) torch tensor (see
  `video_frames`), also inside `{"frames", "audio", "sample_rate"}`.
- a list of PIL images or of (H, W, C) frames (one video), or one PIL image (a one-frame video, as in
  transformers) -> (T, H, W, 3) uint8 tensor.
- a torchcodec `VideoDecoder` (what a `datasets` `Video()` column decodes to) -> its source when it
  exposes one (`{"path", "bytes"}` from datasets' `_hf_encoded`, else `metadata.path`): then nothing is
  decoded here, the processor decodes only the frames it samples and reads the sound from that source.
  A decoder without a readable source gives all its frames through `get_frames_in_range`, decoded once,
  and the item has no audio (a decoder holds one video stream only).
- anything else (local paths, bytes, file objects, `MediaSource`, existing dicts) -> unchanged.

Downloads live in a temporary folder owned by the resolver, a context manager: it is made at the first
download and removed, with every file in it, when the `with` block ends (also on an error; a resolver
dropped without `close()` is cleaned up by a `weakref.finalize`, also at interpreter exit), so a batch's
files exist exactly while the processor reads them, nothing accumulates across calls, and concurrent
calls (DataLoader workers, threads) never share or evict each other's files. The same URL is downloaded
once per resolver, so a caller that reads one remote video several times (the timeline pipeline's
windows) keeps one resolver open for all of them. Hub files are not copied: they stay in the shared
Hub cache, which outlives the resolver.

`video_batch(videos)` splits a processor argument into videos: a list or tuple is a batch, except a list
whose elements are all frames (PIL images or 3-D arrays), which is one video; a batch of frame-list
videos is a list of lists, and a 5-D array is a batch of 4-D videos.
"""

from __future__ import annotations

import http.client
import importlib
import os
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import numpy as np
import torch

from .decoding import MediaSource
from .errors import VideoReadError

CHANNELS_FIRST, CHANNELS_LAST = "channels_first", "channels_last"  # = transformers' `ChannelDimension` values
DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024**3
_CHUNK_BYTES = 1024 * 1024
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class VideoDownloadError(VideoReadError):
    """A remote video could not be fetched (offline, unreachable, HTTP error, too large, not on the Hub).
    A `VideoReadError`, so callers that skip unreadable videos skip it too; `source` is the URL."""


class VideoInputResolver:
    """Resolves video inputs (see the module doc) and owns the temporary files of the downloads.

    Use as `with VideoInputResolver() as resolver: items = [resolver.resolve(v) for v in videos]`; the
    resolved items are valid until the block ends.

    Args:
        max_download_bytes: refuse a plain HTTP(S) download larger than this (by its Content-Length
            before anything is written, or as soon as more arrives); None for no limit. Hub files are
            not limited: they go to the Hub cache the user manages.
        timeout: seconds to wait for a connection or for the next chunk (not for the whole file).
        input_data_format: "channels_first" / "channels_last" to state the channel axis of frame
            arrays (transformers' `input_data_format`); None infers it and refuses ambiguous shapes.
        do_rescale: whether non-uint8 frame arrays hold 0-255 values to divide by 255 (True) or are in
            [0, 1] already (False); None decides from their values (see `video_frames`).
        temp_dir: parent folder of the download folder (default: the system's temporary folder).
    """

    def __init__(self, *, max_download_bytes: int | None = DEFAULT_MAX_DOWNLOAD_BYTES, timeout: float = 30.0,
                 input_data_format: str | None = None, do_rescale: bool | None = None,
                 temp_dir: str | os.PathLike | None = None):
        if input_data_format is not None:
            input_data_format = str(getattr(input_data_format, "value", input_data_format))
            if input_data_format not in (CHANNELS_FIRST, CHANNELS_LAST):
                raise ValueError(f"input_data_format={input_data_format!r} must be {CHANNELS_FIRST!r}, "
                                 f"{CHANNELS_LAST!r} or None")
        self.max_download_bytes = max_download_bytes
        self.timeout = float(timeout)
        self.input_data_format = input_data_format
        self.do_rescale = do_rescale
        self.temp_dir = temp_dir
        self._folder: str | None = None
        self._cleanup: weakref.finalize | None = None
        self._downloads: dict[str, MediaSource] = {}
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Delete the downloaded files; items resolved from URLs become unreadable."""
        with self._lock:
            cleanup, self._cleanup, self._folder = self._cleanup, None, None
            self._downloads.clear()
        if cleanup is not None:
            cleanup()

    # ----------------------------------------------------------------------------------------------

    def resolve(self, item):
        """`item` as a kind the processor reads (see the module doc); raises `VideoReadError` (a
        `VideoDownloadError` for fetches) naming the input, or `ValueError` for frames of a bad shape."""
        if isinstance(item, str) and _SCHEME.match(item):
            return self._resolve_url(item)
        if isinstance(item, dict):
            return self._resolve_dict(item)
        if _is_array(item):
            return video_frames(item, input_data_format=self.input_data_format, do_rescale=self.do_rescale)
        if _is_pil(item):
            return frames_from_list([item])
        if isinstance(item, (list, tuple)):
            return frames_from_list(item, input_data_format=self.input_data_format, do_rescale=self.do_rescale)
        if _is_video_decoder(item):
            return self._resolve_decoder(item)
        return item

    def _resolve_dict(self, item: dict):
        if "video" in item:
            video = self.resolve(item["video"]) if item["video"] is not None else None
            return item if video is item["video"] else {**item, "video": video}
        if "frames" in item:
            return {**item, "frames": video_frames(item["frames"], input_data_format=self.input_data_format,
                                                   do_rescale=self.do_rescale)}
        path = item.get("path")
        if item.get("bytes") is None and isinstance(path, str) and _SCHEME.match(path):
            return self._resolve_url(path)
        return item

    def _resolve_decoder(self, decoder):
        encoded = getattr(decoder, "_hf_encoded", None)  # set by `datasets.Video.decode_example`
        if isinstance(encoded, dict) and encoded.get("bytes") is not None:
            return {"path": encoded.get("path"), "bytes": encoded["bytes"]}
        path = encoded.get("path") if isinstance(encoded, dict) else None
        path = path or getattr(getattr(decoder, "metadata", None), "path", None)
        if isinstance(path, (str, Path)):
            path = str(path)
            if _SCHEME.match(path):
                return self._resolve_url(path)
            if os.path.isfile(path):
                return path
        return decoder_frames(decoder)

    # ----------------------------------------------------------------------------------------------
    # URLs

    def _resolve_url(self, url: str) -> MediaSource | str:
        scheme = _SCHEME.match(url).group(1).lower()
        if scheme == "file":
            path = url2pathname(urlsplit(url).path)
            if not os.path.isfile(path):
                raise VideoReadError(url, "no such file")
            return path
        if scheme not in ("http", "https", "hf"):
            raise VideoReadError(url, f"unsupported URL scheme {scheme!r} (http, https, hf and file are read)")
        with self._lock:
            done = self._downloads.get(url)
        if done is not None:
            return done
        hub_uri = _hub_uri(url)
        path = self._download_hub(url, hub_uri) if hub_uri is not None else self._download_http(url)
        source = MediaSource(name=url, path=path)
        with self._lock:
            self._downloads[url] = source
        return source

    def _new_file(self, url: str) -> str:
        """A fresh path in the resolver's folder, ending like the URL's file name (a decoder may use it)."""
        with self._lock:
            if self._folder is None:
                self._folder = tempfile.mkdtemp(prefix="emotions-hf-videos-", dir=self.temp_dir)
                # also runs if the resolver is dropped without `close()`, or at interpreter exit
                self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            self._count += 1
            name = _UNSAFE_NAME.sub("_", unquote(urlsplit(url).path.rsplit("/", 1)[-1]))[-80:] or "video"
            return os.path.join(self._folder, f"{self._count:05d}-{name}")

    def _download_http(self, url: str) -> str:
        """Stream `url` to a new file in chunks (stdlib urllib: no client library needed). Failures of the
        network or the server become `VideoDownloadError`; failures to write (a full disk) stay `OSError`."""
        limit = self.max_download_bytes
        request = urllib.request.Request(url, headers={"User-Agent": "emotions-hf", "Accept-Encoding": "identity"})
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise VideoDownloadError(url, f"HTTP {error.code} {error.reason}".rstrip()) from error
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise VideoDownloadError(url, f"cannot download ({type(reason).__name__}: {reason}); offline or "
                                          f"unreachable?") from error
        path = None
        with response:
            declared = response.headers.get("Content-Length")
            if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
                raise VideoDownloadError(url, f"the file is {int(declared)} bytes, over max_download_bytes={limit}")
            path = self._new_file(url)
            written = 0
            try:
                with open(path, "wb") as out:
                    while True:
                        try:
                            chunk = response.read(_CHUNK_BYTES)
                        except (OSError, http.client.HTTPException) as error:
                            raise VideoDownloadError(url, f"the download broke off after {written} bytes "
                                                          f"({type(error).__name__}: {error})") from error
                        if not chunk:
                            break
                        written += len(chunk)
                        if limit is not None and written > limit:
                            raise VideoDownloadError(url, f"more than max_download_bytes={limit} bytes arrived")
                        out.write(chunk)
            except BaseException:
                _remove(path)
                raise
        return path

    def _download_hub(self, url: str, uri) -> str:
        from huggingface_hub import HfApi, errors, hf_hub_download

        if not uri.path_in_repo:
            raise VideoDownloadError(url, "the URL names a repository, not a file in it")
        try:
            if uri.is_bucket:
                path = self._new_file(url)
                HfApi().download_bucket_files(uri.id, [(uri.path_in_repo, path)], raise_on_missing_files=True)
                return path
            return hf_hub_download(uri.id, uri.path_in_repo, repo_type=uri.type, revision=uri.revision)
        except errors.GatedRepoError as error:
            raise VideoDownloadError(url, f"gated repository {uri.id}: accept its terms and log in "
                                          f"({_first_line(error)})") from error
        except errors.RepositoryNotFoundError as error:
            raise VideoDownloadError(url, f"no {uri.type} repository {uri.id} on the Hub, or it is private "
                                          f"({_first_line(error)})") from error
        except errors.RevisionNotFoundError as error:
            raise VideoDownloadError(url, f"no revision {uri.revision!r} in {uri.id}") from error
        except errors.LocalEntryNotFoundError as error:
            raise VideoDownloadError(url, f"the Hub cannot be reached (offline?) and the file is not in the "
                                          f"local cache ({_first_line(error)})") from error
        except errors.EntryNotFoundError as error:
            raise VideoDownloadError(url, f"no file {uri.path_in_repo!r} in {uri.id}") from error
        except (errors.HfHubHTTPError, errors.OfflineModeIsEnabled, *_http_client_errors()) as error:
            raise VideoDownloadError(url, f"cannot download from the Hub ({_first_line(error)})") from error


def _hub_uri(url: str):
    """The parsed Hub location of an `hf://` URL or of a Hugging Face web URL of a file, else None
    (other http(s) URLs are plain downloads). Raises `VideoDownloadError` for a malformed hf:// URL."""
    from huggingface_hub import constants, errors, parse_hf_uri

    if not url.startswith(constants.HF_PROTOCOL):
        parts = urlsplit(url)
        hub = urlsplit(constants.ENDPOINT)
        if (parts.hostname or "").lower() not in constants.HF_URL_HOSTS and parts.netloc != hub.netloc:
            return None
        try:
            uri = parse_hf_uri(url, endpoint=constants.ENDPOINT)
        except (errors.HfUriError, ValueError):
            return None  # another route on a Hub host (a CDN link, ...): a plain download
        return uri if uri.path_in_repo else None
    try:
        return parse_hf_uri(url)
    except (errors.HfUriError, ValueError) as error:
        raise VideoDownloadError(url, f"not a valid hf:// URL ({_first_line(error)}); the form is "
                                      f"hf://[datasets/|spaces/]<namespace>/<name>[@<revision>]/<path>") from error


# --------------------------------------------------------------------------------------------------
# Frames


def video_frames(frames, *, input_data_format: str | None = None, do_rescale: bool | None = None) -> torch.Tensor:
    """(T, H, W, 3) frames from a (T, C, H, W) or (T, H, W, C) array or tensor, C in {1, 3} (one channel is
    repeated to grey RGB).

    The channel axis: axis 1 when only axis 1 has 1 or 3 elements, the last axis when only it has;
    when both do (e.g. (T, 3, H, 3)), `input_data_format` must say which (transformers would guess
    channels-first with a warning; a wrong guess here would scramble the picture silently).

    Values: integers are 0-255 and give uint8 (uint8 channels-last input is returned as a view). Floats
    become float32 in [0, 1]: divided by 255 when `do_rescale` is True, kept when False; with None,
    values within [0, 1] are taken as rescaled (transformers' `is_scaled_image` test) and values within
    [0, 255] as 0-255 (so a float 0-255 video darker than 1/255 everywhere reads as rescaled: pass
    `do_rescale`). Negative values or values over 255 (already normalised frames?) raise.
    """
    if isinstance(frames, torch.Tensor):
        tensor = frames
    else:
        with warnings.catch_warnings():  # a read-only array (np.asarray of a PIL image): it is never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.as_tensor(np.asarray(frames))
    shape = tuple(tensor.shape)
    if tensor.dim() == 5:
        raise ValueError(f"frames of shape {shape} are a batch of videos: pass a list of (T, C, H, W) or "
                         f"(T, H, W, C) videos")
    if tensor.dim() != 4 or shape[0] == 0:
        raise ValueError(f"video frames must be (T, C, H, W) or (T, H, W, C) with T > 0, got shape {shape}"
                         + (" (one frame? pass frames[None] or [frame])" if tensor.dim() == 3 else ""))
    layout = input_data_format
    if layout is None:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if first and last:
            raise ValueError(f"video frames of shape {shape} are ambiguous: axis 1 and the last axis could both "
                             f"be the channels; pass input_data_format='channels_first' or 'channels_last'")
        if not (first or last):
            raise ValueError(f"video frames of shape {shape} have no channel axis of 1 or 3 elements on axis 1 "
                             f"or the last axis: expected (T, C, H, W) or (T, H, W, C) with C in (1, 3)")
        layout = CHANNELS_FIRST if first else CHANNELS_LAST
    if layout == CHANNELS_FIRST:
        tensor = tensor.permute(0, 2, 3, 1)
    if tensor.shape[-1] not in (1, 3):
        raise ValueError(f"video frames of shape {shape} given as {layout} have {tensor.shape[-1]} channels, "
                         f"not 1 or 3")
    tensor = _unit_range(tensor, shape, do_rescale)
    return tensor.expand(*tensor.shape[:3], 3) if tensor.shape[-1] == 1 else tensor


def _unit_range(tensor: torch.Tensor, shape, do_rescale: bool | None) -> torch.Tensor:
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"video frames of dtype {tensor.dtype} (shape {shape}) are not pixel values")
    low, high = float(tensor.min()), float(tensor.max())
    if not (low >= 0 and high <= 255):  # also catches NaN
        raise ValueError(f"video frame values span [{low:g}, {high:g}], not [0, 1] or [0, 255] (shape {shape}); "
                         f"pass frames before normalisation")
    if not tensor.is_floating_point() and do_rescale is not False:
        return tensor.to(torch.uint8)  # integer 0-255 values: exact as uint8
    tensor = tensor.float()
    if do_rescale is None:
        do_rescale = high > 1
    elif not do_rescale and high > 1:
        raise ValueError(f"video frames with do_rescale=False must be in [0, 1], got values up to {high:g}")
    return tensor / 255.0 if do_rescale else tensor


def frames_from_list(frames: Sequence, *, input_data_format: str | None = None,
                     do_rescale: bool | None = None) -> torch.Tensor:
    """(T, H, W, 3) frames from one video given as a list of PIL images (converted to RGB) or of (H, W, C) /
    (C, H, W) arrays; every frame must have the same size."""
    if not len(frames):
        raise ValueError("a video given as a list of frames needs at least one frame")
    arrays = []
    for index, frame in enumerate(frames):
        if _is_pil(frame):
            arrays.append(np.asarray(frame.convert("RGB")))
        elif _is_array(frame) and frame.ndim == 3:
            arrays.append(frame if isinstance(frame, torch.Tensor) else torch.as_tensor(np.asarray(frame)))
        else:
            kind = f"a {frame.ndim}-D array" if _is_array(frame) else f"a {type(frame).__name__}"
            raise ValueError(f"frame {index} of a video given as a list of frames is {kind}, not a PIL image or a "
                             f"3-D (H, W, C) / (C, H, W) array")
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"the frames of one video must all have the same size, got shapes {sorted(shapes)}")
    if all(isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.shape[-1] == 3 for a in arrays):
        return torch.from_numpy(np.stack(arrays))  # PIL frames: no layout question
    stacked = torch.stack([torch.as_tensor(a) for a in arrays])
    return video_frames(stacked, input_data_format=input_data_format, do_rescale=do_rescale)


def decoder_frames(decoder) -> torch.Tensor:
    """All frames of a torchcodec `VideoDecoder` as (T, H, W, 3), through its public `get_frames_in_range`
    (one decode). Its `metadata.height` / `width` tell NCHW from NHWC output; its float output is
    documented as [0, 1]."""
    count = len(decoder)
    if not count:
        raise VideoReadError(_decoder_name(decoder), "the video decoder has no frames")
    try:
        data = decoder.get_frames_in_range(0, count).data
    except (RuntimeError, ValueError) as error:
        raise VideoReadError(_decoder_name(decoder), f"the video decoder failed ({error})") from error
    data = data.cpu()
    metadata = getattr(decoder, "metadata", None)
    height, width = getattr(metadata, "height", None), getattr(metadata, "width", None)
    layout = None
    if data.dim() == 4 and (height, width) == tuple(data.shape[2:]):
        layout = CHANNELS_FIRST
    elif data.dim() == 4 and (height, width) == tuple(data.shape[1:3]):
        layout = CHANNELS_LAST
    return video_frames(data, input_data_format=layout, do_rescale=False if data.is_floating_point() else None)


def _decoder_name(decoder) -> str:
    path = getattr(getattr(decoder, "metadata", None), "path", None)
    return str(path) if path else f"<{type(decoder).__name__}>"


# --------------------------------------------------------------------------------------------------
# Batches and kinds


def video_batch(videos) -> list:
    """The videos in a processor argument: one video, a list / tuple of videos, a 5-D array of videos, or
    one video as a list of frames (every element a PIL image or a 3-D array; a batch of such videos is a
    list of lists). Frames mixed with other inputs raise rather than guess."""
    if _is_array(videos) and videos.ndim == 5:
        return list(videos)
    if not isinstance(videos, (list, tuple)):
        return [videos]
    frames = [_is_frame(v) for v in videos]
    if videos and all(frames):
        return [list(videos)]
    if any(frames):
        first = frames.index(True)
        raise ValueError(f"element {first} of the videos is a single frame ({type(videos[first]).__name__}) but "
                         f"others are not: one video given as frames is a list of frames only; a batch of "
                         f"such videos is a list of lists")
    return list(videos)


def _is_frame(value) -> bool:
    return _is_pil(value) or (_is_array(value) and value.ndim == 3)


def _is_array(value) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def _is_pil(value) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(value, Image.Image)


def _is_video_decoder(value) -> bool:
    """A torchcodec `VideoDecoder`, by its documented API (torchcodec itself need not import here)."""
    return (type(value).__module__.startswith("torchcodec") or type(value).__name__ == "VideoDecoder") and all(
        hasattr(value, name) for name in ("get_frames_in_range", "metadata", "__len__"))


def _http_client_errors() -> tuple[type[BaseException], ...]:
    """The base errors of the HTTP clients huggingface_hub may use (httpx2 in 2.x, httpx before)."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _remove(path: str | None) -> None:
    if path is not None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


__all__ = ["VideoDownloadError", "VideoInputResolver", "decoder_frames", "frames_from_list", "video_batch",
           "video_frames"]
