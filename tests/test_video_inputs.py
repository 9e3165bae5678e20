"""`emotions_hf.video_inputs`: every input kind end to end, with no network (local HTTP servers, a fake Hub)."""

from __future__ import annotations

import gc
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from PIL import Image

from emotions_hf import video_inputs
from emotions_hf.decoding import MediaSource, probe
from emotions_hf.errors import VideoReadError
from emotions_hf.video_inputs import (
    VideoDownloadError,
    VideoInputResolver,
    decoder_frames,
    video_batch,
    video_frames,
)

# --------------------------------------------------------------------------------------------------
# Servers


class _Server:
    """A threaded HTTP server on 127.0.0.1 answering from `routes` (path -> (status, headers, body)), 404
    elsewhere; a header whose value is None is not sent (`"Content-Length": None`: a body of unknown size)."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, send_body: bool):
                server.requests.append((self.command, self.path))
                status, headers, body = server.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    if value is not None:
                        self.send_header(key, value)
                if "Content-Length" not in headers and isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body and body:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=lambda: self.httpd.serve_forever(poll_interval=0.05), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def clip(make_video) -> Path:
    return make_video("clip.mp4", num_frames=12)


@pytest.fixture
def server(clip):
    data = clip.read_bytes()
    served = _Server({
        "/videos/clip.mp4": (200, {"Content-Type": "video/mp4"}, data),
        "/moved": (302, {"Location": "/videos/clip.mp4"}, b""),
        # HTTP/1.0 without Content-Length: the body is whatever arrives before the connection closes
        "/unsized.mp4": (200, {"Content-Length": None}, data),
        "/garbage.mp4": (200, {}, b"this is not a video at all"),
        "/forbidden.mp4": (403, {}, b"no"),
    })
    yield served
    served.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _decode_all(path) -> np.ndarray:
    """(N, H, W, 3) uint8 frames of a file, straight from PyAV."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


# --------------------------------------------------------------------------------------------------
# http(s)


def test_http_url_is_streamed_to_a_temporary_file_removed_with_the_resolver(server, clip, monkeypatch):
    monkeypatch.setattr(video_inputs, "_CHUNK_BYTES", 1000)  # several chunks for this small file
    url = server.url + "/videos/clip.mp4"
    with VideoInputResolver() as resolver:
        source = resolver.resolve(url)
        assert isinstance(source, MediaSource) and source.name == url
        assert Path(source.path).read_bytes() == clip.read_bytes()
        assert source.path.endswith("clip.mp4")
        info = probe(source)
        assert info.num_frames == 12 and info.has_audio
        assert resolver.resolve(url) == source  # downloaded once per resolver
        assert server.requests.count(("GET", "/videos/clip.mp4")) == 1
        folder = Path(source.path).parent
    assert not Path(source.path).exists() and not folder.exists()


def test_temporary_files_are_removed_when_the_block_fails(server):
    with pytest.raises(RuntimeError, match="processing failed"), VideoInputResolver() as resolver:
        source = resolver.resolve(server.url + "/videos/clip.mp4")
        assert os.path.isfile(source.path)
        raise RuntimeError("processing failed")
    assert not os.path.exists(source.path)


def test_a_resolver_dropped_without_close_still_removes_its_files(server):
    resolver = VideoInputResolver()
    source = resolver.resolve(server.url + "/videos/clip.mp4")
    assert os.path.isfile(source.path)
    del resolver
    gc.collect()
    assert not os.path.exists(source.path) and not os.path.exists(os.path.dirname(source.path))


def test_redirects_and_bodies_without_length_are_followed(server, clip):
    with VideoInputResolver() as resolver:
        assert Path(resolver.resolve(server.url + "/moved").path).read_bytes() == clip.read_bytes()
        assert Path(resolver.resolve(server.url + "/unsized.mp4").path).read_bytes() == clip.read_bytes()


def test_http_errors_name_the_url_and_the_status(server):
    with VideoInputResolver() as resolver:
        for path, status in (("/nothing-here.mp4", "HTTP 404 Not Found"), ("/forbidden.mp4", "HTTP 403 Forbidden")):
            url = server.url + path
            with pytest.raises(VideoDownloadError) as raised:
                resolver.resolve(url)
            assert raised.value.source == url and raised.value.reason == status
            assert isinstance(raised.value, VideoReadError)
        assert resolver._folder is None  # nothing was written for a refused download


def test_unreachable_url_is_a_clear_error():
    url = f"http://127.0.0.1:{_closed_port()}/clip.mp4"
    with VideoInputResolver(timeout=5) as resolver, pytest.raises(VideoDownloadError) as raised:
        resolver.resolve(url)
    assert raised.value.source == url
    assert "cannot download" in raised.value.reason and "refused" in raised.value.reason.lower()


def test_download_size_cap_by_header_and_while_streaming(server, clip):
    size = clip.stat().st_size
    with VideoInputResolver(max_download_bytes=size - 1) as resolver:
        with pytest.raises(VideoDownloadError, match=f"the file is {size} bytes, over max_download_bytes"):
            resolver.resolve(server.url + "/videos/clip.mp4")
        with pytest.raises(VideoDownloadError, match="more than max_download_bytes"):
            resolver.resolve(server.url + "/unsized.mp4")  # no Content-Length: stopped while streaming
        assert os.listdir(resolver._folder) == []  # the partial file is gone
    with VideoInputResolver(max_download_bytes=size) as resolver:
        assert os.path.getsize(resolver.resolve(server.url + "/unsized.mp4").path) == size


def test_a_downloaded_file_that_is_no_video_is_reported_under_its_url(server):
    url = server.url + "/garbage.mp4"
    with VideoInputResolver() as resolver, pytest.raises(VideoReadError) as raised:
        probe(resolver.resolve(url))
    assert raised.value.source == url and "not a readable media file" in raised.value.reason


def test_url_dicts_file_urls_and_other_schemes(server, clip):
    url = server.url + "/videos/clip.mp4"
    with VideoInputResolver() as resolver:
        streamed = resolver.resolve({"path": url, "bytes": None})  # a streamed `datasets` row
        assert isinstance(streamed, MediaSource) and streamed.name == url
        item = resolver.resolve({"video": url, "proxy": None, "mfcc": None})
        assert item["video"] == streamed and item["proxy"] is None
        local = {"path": str(clip), "bytes": None}
        assert resolver.resolve(local) is local
        assert resolver.resolve(str(clip)) == str(clip) and resolver.resolve(clip) == clip
        assert resolver.resolve(clip.as_uri()) == str(clip)
        with pytest.raises(VideoReadError, match="no such file"):
            resolver.resolve(clip.with_name("absent.mp4").as_uri())
        with pytest.raises(VideoReadError, match="unsupported URL scheme 's3'"):
            resolver.resolve("s3://bucket/clip.mp4")


# --------------------------------------------------------------------------------------------------
# hf://


COMMIT = "0123456789abcdef" * 2 + "01234567"


@pytest.fixture
def hub(clip, tmp_path, monkeypatch):
    """A fake Hub (what `HF_ENDPOINT` would point to) serving one dataset file and one model file, with an
    empty cache; `huggingface_hub`'s real `hf_hub_download` talks to it."""
    from huggingface_hub import constants

    data = clip.read_bytes()
    headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
    missing = (404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}, b"")
    served = _Server({
        "/datasets/owner/name/resolve/main/videos/clip.mp4": (200, headers, data),
        "/datasets/owner/name/resolve/v1.0/videos/clip.mp4": (200, headers, data),
        "/datasets/owner/name/blob/main/videos/clip.mp4": (200, {}, b"<html>the file viewer page</html>"),
        "/datasets/owner/name/resolve/main/videos/missing.mp4": missing,
        "/owner/model/resolve/main/file.mp4": (200, headers, data),
    })
    monkeypatch.setattr(constants, "ENDPOINT", served.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", served.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield served
    served.close()


def _file_gets(hub) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]


def test_hf_url_downloads_into_the_hub_cache(hub, clip, tmp_path):
    urls = ["hf://datasets/owner/name/videos/clip.mp4", "hf://datasets/owner/name@v1.0/videos/clip.mp4",
            "hf://owner/model/file.mp4"]
    with VideoInputResolver() as resolver:
        sources = [resolver.resolve(url) for url in urls]
        for url, source in zip(urls, sources):
            assert source.name == url and Path(source.path).read_bytes() == clip.read_bytes()
            assert (tmp_path / "hub-cache") in Path(source.path).parents
        assert "datasets--owner--name" in sources[0].path and "models--owner--model" in sources[2].path
        assert probe(sources[0]).num_frames == 12
    assert all(os.path.isfile(source.path) for source in sources)  # the shared cache outlives the resolver


def test_hf_web_url_of_a_file_goes_through_the_hub_not_its_html_page(hub, clip):
    url = hub.url + "/datasets/owner/name/blob/main/videos/clip.mp4"
    with VideoInputResolver() as resolver:
        source = resolver.resolve(url)
    assert source.name == url and Path(source.path).read_bytes() == clip.read_bytes()
    assert ("GET", "/datasets/owner/name/blob/main/videos/clip.mp4") not in hub.requests


def test_hf_cache_is_used_offline_and_a_missing_file_is_a_clear_error(hub, monkeypatch):
    from huggingface_hub import constants

    url = "hf://datasets/owner/name/videos/clip.mp4"
    with VideoInputResolver() as resolver:
        first = resolver.resolve(url)
    gets = len(_file_gets(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with VideoInputResolver() as resolver:
        assert resolver.resolve(url).path == first.path
        other = "hf://owner/model/file.mp4"
        with pytest.raises(VideoDownloadError) as raised:
            resolver.resolve(other)
    assert len(_file_gets(hub)) == gets  # nothing asked of the Hub
    assert raised.value.source == other and "offline" in raised.value.reason and "local cache" in raised.value.reason

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    missing = "hf://datasets/owner/name/videos/missing.mp4"
    with VideoInputResolver() as resolver, pytest.raises(VideoDownloadError) as raised:
        resolver.resolve(missing)
    assert raised.value.source == missing and raised.value.reason == "no file 'videos/missing.mp4' in owner/name"


def test_malformed_hf_urls(hub):
    with VideoInputResolver() as resolver:
        with pytest.raises(VideoDownloadError, match="not a valid hf:// URL"):
            resolver.resolve("hf://gpt2")
        with pytest.raises(VideoDownloadError, match="names a repository, not a file"):
            resolver.resolve("hf://datasets/owner/name")
    assert hub.requests == []


def test_hf_bucket_file_goes_to_the_resolver_folder(monkeypatch, clip):
    from huggingface_hub import HfApi

    calls = []

    def download_bucket_files(self, bucket_id, files, raise_on_missing_files=False, token=None):
        calls.append((bucket_id, [remote for remote, _ in files], raise_on_missing_files))
        for _, local in files:
            Path(local).write_bytes(clip.read_bytes())

    monkeypatch.setattr(HfApi, "download_bucket_files", download_bucket_files)
    url = "hf://buckets/owner/store/raw/clip.mp4"
    with VideoInputResolver() as resolver:
        source = resolver.resolve(url)
        assert source.name == url and probe(source).num_frames == 12
        assert Path(source.path).parent == Path(resolver._folder)
    assert calls == [("owner/store", ["raw/clip.mp4"], True)]
    assert not os.path.exists(source.path)


# --------------------------------------------------------------------------------------------------
# Frame arrays


def _video(frames=5, height=6, width=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def test_tchw_and_thwc_give_the_same_frames():
    thwc = _video()
    tchw = np.ascontiguousarray(thwc.transpose(0, 3, 1, 2))
    resolver = VideoInputResolver()
    for given in (thwc, tchw, torch.from_numpy(thwc), torch.from_numpy(tchw)):
        frames = resolver.resolve(given)
        assert isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8
        assert torch.equal(frames, torch.from_numpy(thwc))
    inside = resolver.resolve({"frames": tchw, "audio": np.zeros(10), "sample_rate": 16000})
    assert torch.equal(inside["frames"], torch.from_numpy(thwc)) and inside["sample_rate"] == 16000
    assert torch.equal(resolver.resolve(resolver.resolve(tchw)), torch.from_numpy(thwc))  # idempotent


def test_float_frames_in_unit_range_or_0_255_and_integers():
    thwc = _video()
    expected = torch.from_numpy(thwc).float() / 255
    resolver = VideoInputResolver()
    scaled = resolver.resolve(torch.from_numpy(thwc).permute(0, 3, 1, 2).double() / 255)
    assert scaled.dtype == torch.float32 and torch.allclose(scaled, expected)
    assert torch.allclose(resolver.resolve(thwc.astype(np.float32)), expected)  # 0-255 floats
    assert torch.equal(resolver.resolve(thwc.astype(np.int64)), torch.from_numpy(thwc))  # integers: uint8
    dim = np.full((2, 4, 4, 3), 0.5, np.float32)  # a dark 0-255 video is indistinguishable: say so
    assert torch.allclose(resolver.resolve(dim), torch.tensor(0.5))
    assert torch.allclose(VideoInputResolver(do_rescale=True).resolve(dim), torch.tensor(0.5 / 255))
    with pytest.raises(ValueError, match=r"with do_rescale=False must be in \[0, 1\], got values up to 255"):
        VideoInputResolver(do_rescale=False).resolve(thwc.astype(np.float32) + 0)
    normalised = (thwc / 255.0 - 0.45) / 0.22
    with pytest.raises(ValueError, match=r"span \[-2\.0\d*, .*not \[0, 1\] or \[0, 255\].*before normalisation"):
        resolver.resolve(normalised)
    with pytest.raises(ValueError, match="not pixel values"):
        resolver.resolve(np.ones((2, 4, 4, 3), bool))


def test_ambiguous_and_impossible_shapes_raise():
    resolver = VideoInputResolver()
    with pytest.raises(ValueError, match=r"\(4, 3, 5, 3\) are ambiguous.*input_data_format"):
        resolver.resolve(np.zeros((4, 3, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(2, 1, 5, 1\) are ambiguous"):
        resolver.resolve(np.zeros((2, 1, 5, 1), np.uint8))
    with pytest.raises(ValueError, match=r"\(4, 5, 6, 7\) have no channel axis"):
        resolver.resolve(np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match=r"one frame\? pass frames\[None\]"):
        resolver.resolve(np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="a batch of videos"):
        resolver.resolve(np.zeros((2, 4, 5, 6, 3), np.uint8))
    with pytest.raises(ValueError, match=r"given as channels_last have 5 channels"):
        video_frames(np.zeros((4, 3, 6, 5), np.uint8), input_data_format="channels_last")
    with pytest.raises(ValueError, match="input_data_format='NCHW'"):
        VideoInputResolver(input_data_format="NCHW")

    thwc = np.arange(4 * 3 * 5 * 3, dtype=np.uint8).reshape(4, 3, 5, 3)  # H = 3: only the caller knows
    last = VideoInputResolver(input_data_format="channels_last").resolve(thwc)
    first = VideoInputResolver(input_data_format="channels_first").resolve(thwc)
    assert torch.equal(last, torch.from_numpy(thwc))
    assert torch.equal(first, torch.from_numpy(thwc.transpose(0, 2, 3, 1)))


def test_one_channel_frames_become_grey_rgb():
    grey = np.random.default_rng(1).integers(0, 256, (3, 1, 4, 6), dtype=np.uint8)
    frames = VideoInputResolver().resolve(grey)
    assert frames.shape == (3, 4, 6, 3)
    for channel in range(3):
        assert torch.equal(frames[..., channel], torch.from_numpy(grey[:, 0]))


# --------------------------------------------------------------------------------------------------
# PIL frames and batches


def test_a_list_of_pil_images_is_one_video():
    thwc = _video(frames=4)
    images = [Image.fromarray(frame) for frame in thwc]
    frames = VideoInputResolver().resolve(images)
    assert frames.dtype == torch.uint8 and torch.equal(frames, torch.from_numpy(thwc))
    one = VideoInputResolver().resolve(images[0])  # a single image: a one-frame video, as in transformers
    assert torch.equal(one, torch.from_numpy(thwc[:1]))
    greys = VideoInputResolver().resolve([image.convert("L") for image in images])
    assert greys.shape == (4, 6, 8, 3) and torch.equal(greys[..., 0], greys[..., 2])
    arrays = VideoInputResolver().resolve([frame.transpose(2, 0, 1) for frame in thwc])  # (C, H, W) frames
    assert torch.equal(arrays, torch.from_numpy(thwc))
    with pytest.raises(ValueError, match=r"same size, got shapes \[\(6, 8, 3\), \(7, 8, 3\)\]"):
        VideoInputResolver().resolve([images[0], Image.fromarray(np.zeros((7, 8, 3), np.uint8))])
    with pytest.raises(ValueError, match="frame 1 of a video given as a list of frames is a str"):
        VideoInputResolver().resolve([images[0], "frame.png"])
    with pytest.raises(ValueError, match="at least one frame"):
        VideoInputResolver().resolve([])


def test_video_batch_tells_one_frame_list_from_a_batch(clip):
    images = [Image.fromarray(frame) for frame in _video(frames=3)]
    assert video_batch(images) == [images]
    assert video_batch([images, images[:2]]) == [images, images[:2]]
    assert video_batch([str(clip), b"bytes"]) == [str(clip), b"bytes"]
    assert video_batch(str(clip)) == [str(clip)]
    four_d = _video()
    assert len(video_batch([four_d, four_d])) == 2
    assert [v.shape for v in video_batch(np.stack([four_d, four_d]))] == [four_d.shape] * 2
    assert len(video_batch(list(four_d))) == 1  # a list of (H, W, 3) frames is one video
    with pytest.raises(ValueError, match=r"element 1 of the videos is a single frame \(Image\)"):
        video_batch([str(clip), images[0]])


# --------------------------------------------------------------------------------------------------
# torchcodec VideoDecoder (its documented API, duck-typed: the PyPI torchcodec wheel needs CUDA libraries)


class VideoDecoder:
    """The slice of `torchcodec.decoders.VideoDecoder` used here: `metadata`, `len()`,
    `get_frames_in_range(start, stop).data` in NCHW or NHWC; `datasets` adds `_hf_encoded` and
    `metadata.path`. Frames come from PyAV and every decode is counted."""

    def __init__(self, path, dimension_order="NCHW", output_dtype=torch.uint8, source_path=None):
        self._frames = torch.from_numpy(_decode_all(path))
        self._order, self._dtype = dimension_order, output_dtype
        height, width = self._frames.shape[1:3]
        self.metadata = SimpleNamespace(height=height, width=width, num_frames=len(self._frames), path=source_path)
        self.decoded = 0

    def __len__(self):
        return len(self._frames)

    def get_frames_in_range(self, start, stop, step=1):
        self.decoded += 1
        data = self._frames[start:stop:step]
        data = data.permute(0, 3, 1, 2) if self._order == "NCHW" else data
        data = data.float() / 255 if self._dtype == torch.float32 else data
        return SimpleNamespace(data=data, pts_seconds=torch.zeros(len(data)), duration_seconds=torch.zeros(len(data)))


def test_decoder_with_a_source_is_read_from_that_source_without_decoding(clip, server):
    resolver = VideoInputResolver()
    from_datasets = VideoDecoder(clip, source_path=str(clip))
    from_datasets._hf_encoded = {"path": str(clip), "bytes": None}
    assert resolver.resolve(from_datasets) == str(clip)
    with_bytes = VideoDecoder(clip)
    with_bytes._hf_encoded = {"path": "clip.mp4", "bytes": clip.read_bytes()}
    assert resolver.resolve(with_bytes) == {"path": "clip.mp4", "bytes": clip.read_bytes()}
    url = server.url + "/videos/clip.mp4"
    remote = VideoDecoder(clip, source_path=url)
    with resolver:
        source = resolver.resolve(remote)
        assert source.name == url and probe(source).has_audio  # the sound comes from the source
    assert from_datasets.decoded == with_bytes.decoded == remote.decoded == 0


@pytest.mark.parametrize("order", ["NCHW", "NHWC"])
def test_decoder_without_a_source_gives_its_frames_decoded_once(clip, order):
    expected = torch.from_numpy(_decode_all(clip))
    decoder = VideoDecoder(clip, dimension_order=order, source_path=None)
    frames = VideoInputResolver().resolve(decoder)
    assert decoder.decoded == 1 and torch.equal(frames, expected)
    in_unit_range = VideoDecoder(clip, dimension_order=order, output_dtype=torch.float32)
    assert torch.allclose(decoder_frames(in_unit_range), expected.float() / 255)
    missing = VideoDecoder(clip, source_path=str(clip.with_name("moved-away.mp4")))  # a stale path: decode
    assert torch.equal(VideoInputResolver().resolve(missing), expected) and missing.decoded == 1
