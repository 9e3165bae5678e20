"""Audio tracks that used to kill the interpreter or raise raw FFmpeg errors: 7.1 and other layouts
(PyAV reads planar 8+ channel frames past their plane pointers), and audio streams without packets.

Files that may crash are read in a child process, so a segfault fails the test instead of pytest."""

import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emotions_hf.audio_features import read_audio
from emotions_hf.decoding import probe
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.proxy import write_mfcc_cache, write_proxy

RATE = 44100
# (layout, codec, container): named and unnamed ("N channels") layouts, planar (AAC: fltp) and packed
# (FLAC, PCM: s16) decoders, 8 planes (7.1) and more than 8 (10 channels, PyAV's extended planes).
LAYOUTS = [
    ("7.1", "aac", "mp4"),
    ("7.1", "aac", "mkv"),
    ("7.1", "flac", "mkv"),
    ("7.1", "pcm_s16le", "mkv"),  # read back as "8 channels"
    ("6.1", "aac", "mp4"),  # read back as "7 channels"
    ("5.0", "flac", "mkv"),
    ("3 channels", "pcm_s16le", "mkv"),
    ("10 channels", "pcm_s16le", "mkv"),
]


def multichannel_signal(channels: int, seconds: float) -> np.ndarray:
    """(channels, samples): one sine, each channel at its own gain, so a weighted downmix (FFmpeg's
    mono layout drops the LFE and lowers the surrounds) differs from the plain mean."""
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.04 * (1 + np.arange(channels))[:, None] * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_multichannel(path, layout: str, codec: str, seconds: float = 1.0, fps: int = 25) -> np.ndarray:
    """A grey video with `layout` audio; returns the written channels. Frames are built packed ("flt"):
    PyAV's `from_ndarray` fills planar frames through the same unsafe plane list."""
    channel_layout = av.AudioLayout(layout)
    signal = multichannel_signal(channel_layout.nb_channels, seconds)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=RATE)
        audio.layout = channel_layout
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i % 256, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, signal.shape[1], 1024):
            chunk = np.ascontiguousarray(signal[:, start : start + 1024].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=channel_layout)
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return signal


CHILD = textwrap.dedent("""
    import json, sys
    import av, numpy as np
    from emotions_hf.audio_features import read_audio
    from emotions_hf.decoding import probe
    from emotions_hf.processing_avcanet import AVCANetProcessor
    from emotions_hf.proxy import write_mfcc_cache, write_proxy

    def reference_mono(path):
        # independent of MonoDownmix's plane reading: FFmpeg converts to packed float, numpy averages
        to_packed, chunks = av.AudioResampler(format="flt"), []
        with av.open(path) as container:
            for frame in container.decode(audio=0):
                for packed in to_packed.resample(frame):
                    chunks.append(packed.to_ndarray().reshape(-1, packed.layout.nb_channels).mean(axis=1))
        return np.concatenate(chunks)

    processor = AVCANetProcessor(num_snippets=4, frames_per_snippet=2, image_size=32, mfcc_frames=256)
    results = {}
    for path in sys.argv[1:]:
        print("reading", path, flush=True)  # the last name printed is the file that crashed
        out = {"reference": reference_mono(path), "mono": read_audio(path)}
        for name, kwargs in (("direct", {}), ("window", {"clip_range": (0.2, 0.8)})):
            batch = processor(path, **kwargs)
            out[name], out[name + "_mask"] = batch["input_features"].numpy(), batch["audio_mask"].numpy()
        proxy = write_proxy(path, path + ".proxy.mp4", short_side=32)
        cache = write_mfcc_cache(path, path + ".mfcc", processor)
        batch = processor({"video": path, "proxy": str(proxy), "mfcc": str(cache)})
        out["cached"], out["cached_mask"] = batch["input_features"].numpy(), batch["audio_mask"].numpy()
        batch = processor({"video": None, "proxy": str(proxy), "mfcc": None})
        out["proxy_mask"] = batch["audio_mask"].numpy()
        out["proxy_mono"] = read_audio(str(proxy))
        out["proxy_channels"] = np.array(probe(proxy).audio_channels)
        np.savez(path + ".npz", **out)
    print("done", flush=True)
""")


def test_any_channel_layout_is_averaged_without_crashing(tmp_path):
    """Before: 7.1 audio segfaulted the processor, `write_mfcc_cache` and `read_audio` (exit 139)."""
    written = {}
    for layout, codec, extension in LAYOUTS:
        path = str(tmp_path / f"{layout.replace(' ', '_')}_{codec}.{extension}")
        written[path] = (layout, codec, write_multichannel(path, layout, codec))
    child = subprocess.run([sys.executable, "-c", CHILD, *written], capture_output=True, text=True,
                           timeout=600, check=False)
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout[-2000:]}\n{child.stderr[-3000:]}"
    for path, (layout, codec, signal) in written.items():
        result = np.load(path + ".npz")
        mean = signal.mean(axis=0)
        mono = result["mono"]
        assert result["direct_mask"].tolist() == result["window_mask"].tolist() == [True], path
        assert result["cached_mask"].tolist() == result["proxy_mask"].tolist() == [True], path
        np.testing.assert_array_equal(result["cached"], result["direct"], err_msg=path)
        np.testing.assert_allclose(mono, result["reference"][: len(mono)], atol=1e-6, err_msg=path)
        if codec != "aac":  # lossless: exactly the plain mean of the channels (16-bit quantisation apart)
            assert len(mono) == len(mean), path
            np.testing.assert_allclose(mono, mean, atol=2e-4, err_msg=path)
        proxy_mono = result["proxy_mono"]
        if codec == "pcm_s16le":  # mp4 refuses PCM: re-encoded to AAC, as the mean of the channels
            assert result["proxy_channels"] == 1, path
            np.testing.assert_allclose(proxy_mono[2048:40000], mean[2048:40000], atol=0.02, err_msg=path)
        else:  # copied packets, every channel kept
            assert result["proxy_channels"] == av.AudioLayout(layout).nb_channels, path
            np.testing.assert_array_equal(proxy_mono, mono, err_msg=path)


def write_packetless_audio(path, codec: str, seconds: float = 8.0, fps: int = 25):
    """An mkv whose audio stream is declared but has no packets at all (mp4 would drop the stream)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=RATE)
        audio.layout = "stereo"
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i % 256, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


@pytest.mark.parametrize("codec", ["aac", "pcm_s16le"])
def test_audio_stream_without_packets_is_a_video_without_sound(tmp_path, codec):
    """Before: seeking in the empty track raised a raw `av.error.PermissionError` (clip_range, or the span
    decoded for tracks over twice the MFCC crop)."""
    video = write_packetless_audio(tmp_path / f"mute_{codec}.mkv", codec)
    with av.open(str(video)) as container:
        assert len(container.streams.audio) == 1
    processor = AVCANetProcessor(num_snippets=4, frames_per_snippet=2, image_size=32, mfcc_frames=256)
    assert read_audio(video, start=2.0, end=3.0).shape == (0,)
    batches = [processor(str(video)), processor(str(video), clip_range=(1.0, 3.0)),
               processor(str(video), training=True, seed=0)]
    cache = write_mfcc_cache(video, tmp_path / "mute.safetensors", processor)
    proxy = write_proxy(video, tmp_path / "mute_proxy.mp4", short_side=32)
    assert not probe(proxy).has_audio
    batches += [processor({"video": str(video), "proxy": str(proxy), "mfcc": str(cache)},
                          clip_range=(1.0, 3.0)),
                processor({"video": None, "proxy": str(proxy), "mfcc": None})]
    for batch in batches:
        assert batch["audio_mask"].tolist() == [False]
        assert torch.count_nonzero(batch["input_features"]) == 0
    assert load_file(cache)["mfcc"].shape == (32, 0)  # what a video without audio gets
