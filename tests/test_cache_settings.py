"""MFCC caches and training proxies carry the settings they were made with; a stale one is never used
silently: the processor recomputes from the original (one warning per process) or names the problem."""

import errno
import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media_samples import write
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from emotions_hf import processing_avcanet, proxy, video_processing_avcanet
from emotions_hf.audio_features import fit_frames
from emotions_hf.errors import VideoReadError
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.proxy import check_proxy, write_mfcc_cache, write_proxy

LOGGER = "emotions_hf.processing_avcanet"
# q = 64 MFCC frames (~0.7 s): the 3 s test videos' caches are longer, so reads are centre crops
SMALL = {"num_snippets": 4, "frames_per_snippet": 2, "image_size": 32, "mfcc_frames": 64}
OTHER_SETTINGS = [("sample_rate", 22050), ("num_mfcc", 20), ("n_fft", 1024), ("hop_length", 256),
                  ("n_mels", 64), ("top_db", 60.0)]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 3 s 160x120 video with sound, its default-settings MFCC cache and a 48 px proxy."""
    folder = tmp_path_factory.mktemp("media")
    video = write(folder / "video.mp4", num_frames=75, size=(120, 160))
    processor = AVCANetProcessor(**SMALL)
    cache = write_mfcc_cache(video, folder / "video.safetensors", processor)
    small_proxy = write_proxy(video, folder / "proxy48.mp4", short_side=48)
    return {"video": str(video), "mfcc": str(cache), "proxy": str(small_proxy)}


@pytest.fixture
def warnings(monkeypatch, caplog):
    """The processor's warnings, as if this test were the first in its process."""
    monkeypatch.setattr(processing_avcanet, "_WARNED", set())
    caplog.set_level(logging.WARNING, logger=LOGGER)
    return lambda: [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def frame_sources(monkeypatch):
    """The files the processor decodes frames from, in order."""
    sources, read_clip = [], video_processing_avcanet.read_clip

    def recording(video, *args, **kwargs):
        sources.append(str(video))
        return read_clip(video, *args, **kwargs)

    monkeypatch.setattr(video_processing_avcanet, "read_clip", recording)
    return sources


def _assert_same(batch, expected):
    assert batch.keys() == expected.keys()
    for key, value in batch.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_mfcc_cache_records_its_settings(media):
    with safe_open(media["mfcc"], "pt") as cache:
        assert cache.metadata() == {"format_version": "1", "sample_rate": "44100", "num_mfcc": "32",
                                    "n_fft": "2048", "hop_length": "512", "n_mels": "128", "top_db": "80.0"}
        assert cache.get_slice("mfcc").get_shape() == [32, 1 + 3 * 44100 // 512]


def test_cached_crop_is_the_centre_of_the_full_mfcc(media, warnings):
    processor = AVCANetProcessor(**SMALL)
    full = load_file(media["mfcc"])["mfcc"]
    item = {"video": media["video"], "mfcc": media["mfcc"]}
    features = processor(item, return_tensors="pt")["input_features"][0]
    expected = fit_frames(full, 64).T.reshape(4, 16, 32)
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    window = processor(item, clip_range=(1.0, 2.0))["input_features"][0]
    frames = fit_frames(full[:, 87 : 172 + 1], 64)  # frames whose centres lie in [1 s, 2 s] at 86.13 frames/s
    torch.testing.assert_close(window, frames.T.reshape(4, 16, 32), rtol=0, atol=0)
    assert warnings() == []


@pytest.mark.parametrize(("setting", "value"), OTHER_SETTINGS)
def test_cache_with_other_settings_is_recomputed_with_one_warning(media, warnings, setting, value):
    """Before: only num_mfcc was checked; any other setting silently reused the stale features."""
    processor = AVCANetProcessor(**{**SMALL, setting: value})
    item = {"video": media["video"], "mfcc": media["mfcc"]}
    _assert_same(processor(item), processor(media["video"]))
    _assert_same(processor(item, clip_range=(0.5, 2.5)), processor(media["video"], clip_range=(0.5, 2.5)))
    messages = warnings()
    assert len(messages) == 1, messages
    assert media["mfcc"] in messages[0] and f"{setting}=" in messages[0] and "recomputing" in messages[0]


@pytest.mark.parametrize(("setting", "value"), [("n_fft", 1024), ("top_db", 60.0)])
def test_stale_cache_without_the_original_names_file_and_setting(media, setting, value):
    processor = AVCANetProcessor(**{**SMALL, setting: value})
    current_proxy = write_proxy(media["video"], media["proxy"] + ".full.mp4", short_side=160)
    with pytest.raises(VideoReadError) as error:
        processor({"video": None, "proxy": str(current_proxy), "mfcc": media["mfcc"]})
    assert error.value.source == media["mfcc"]
    assert f"{setting}={getattr(AVCANetProcessor().feature_extractor, setting)} (processor: {value})" in error.value.reason


def test_legacy_npy_and_old_format_caches_are_recomputed(media, tmp_path, warnings, monkeypatch):
    processor = AVCANetProcessor(**SMALL)
    legacy = tmp_path / "legacy.npy"  # what write_mfcc_cache wrote before: the bare array
    np.save(legacy, load_file(media["mfcc"])["mfcc"].numpy())
    direct = processor(media["video"])
    _assert_same(processor({"video": media["video"], "mfcc": str(legacy)}), direct)
    with pytest.raises(VideoReadError, match=r"legacy.npy: stale MFCC cache: a legacy \.npy"):
        processor({"video": None, "proxy": media["proxy"], "mfcc": str(legacy)})

    monkeypatch.setattr(proxy, "MFCC_CACHE_VERSION", 2)  # a cache from an older format version
    _assert_same(processor({"video": media["video"], "mfcc": media["mfcc"]}), direct)
    messages = warnings()
    assert len(messages) == 1 and "legacy.npy" in messages[0], messages  # one for the process, not per file


def test_damaged_cache_with_current_settings_is_an_error(media, tmp_path):
    with safe_open(media["mfcc"], "pt") as cache:
        metadata = cache.metadata()
    damaged = tmp_path / "damaged.safetensors"
    save_file({"mfcc": torch.zeros(32, 10, dtype=torch.float16)}, damaged, metadata=metadata)
    with pytest.raises(VideoReadError, match=r"damaged.safetensors: the MFCC cache holds F16"):
        AVCANetProcessor(**SMALL)({"video": media["video"], "mfcc": str(damaged)})


def test_proxy_records_its_settings(media):
    with av.open(media["proxy"]) as container:
        tag = json.loads(container.metadata["emotions_hf_proxy"])
    assert tag == {"format_version": 1, "short_side": 48, "keyframe_interval": 8, "crf": 23,
                   "preset": "veryfast", "source_short_side": 120}
    check_proxy(media["proxy"], 48)
    with pytest.raises(proxy.StaleCacheError, match="short_side=48 is below the processor's image_size=64"):
        check_proxy(media["proxy"], 64)
    full_size = write_proxy(write(media["proxy"] + ".tiny.mp4", num_frames=5, size=(16, 24)),
                            media["proxy"] + ".tiny_proxy.mp4", short_side=48)
    check_proxy(full_size, 1000)  # a proxy as large as its original is as sharp as the original
    matroska = write_proxy(media["video"], media["proxy"] + ".mkv", short_side=48)  # upper-cases tag names
    check_proxy(matroska, 48)
    with pytest.raises(proxy.StaleCacheError, match="short_side=48"):
        check_proxy(matroska, 64)


def test_too_small_proxy_falls_back_to_the_original(media, warnings, frame_sources):
    """Before: a proxy written smaller than the model's frames was upscaled silently."""
    item = {"video": media["video"], "proxy": media["proxy"], "mfcc": None}
    AVCANetProcessor(**SMALL)(item, training=True, seed=1)  # the 48 px proxy holds 32 px frames
    assert frame_sources == [media["proxy"]] and warnings() == []
    processor = AVCANetProcessor(**{**SMALL, "image_size": 64})
    _assert_same(processor(item), processor(media["video"]))
    _assert_same(processor(item, training=True, seed=6), processor(media["video"], training=True, seed=6))
    assert frame_sources[1:] == [media["video"]] * 4
    messages = warnings()
    assert len(messages) == 1 and media["proxy"] in messages[0] and "short_side=48" in messages[0], messages
    with pytest.raises(VideoReadError, match="stale training proxy: short_side=48 is below the processor's image"):
        processor({"video": None, "proxy": media["proxy"], "mfcc": None}, training=True)


def test_untagged_or_old_format_proxy_is_not_used(media, tmp_path, warnings, monkeypatch, frame_sources):
    processor = AVCANetProcessor(**SMALL)
    untagged = write(tmp_path / "untagged.mp4", num_frames=75, size=(32, 42))  # as proxies were before
    processor({"video": media["video"], "proxy": str(untagged), "mfcc": None})
    assert frame_sources == [media["video"]]
    with pytest.raises(VideoReadError, match="untagged.mp4: stale training proxy: it records no emotions_hf"):
        processor({"video": None, "proxy": str(untagged), "mfcc": None})
    monkeypatch.setattr(proxy, "PROXY_VERSION", 2)
    with pytest.raises(proxy.StaleCacheError, match="proxy format 1, expected 2"):
        check_proxy(media["proxy"], 32)
    assert len(warnings()) == 1


def test_a_full_disk_is_not_a_bad_video(media, tmp_path, monkeypatch):
    """ENOSPC is the machine's problem: an OSError, not a VideoReadError (a skipped video), from the proxy's
    muxer and from the cache's writer (safetensors' own writer would raise its SafetensorError)."""
    monkeypatch.setattr(proxy, "_transcode", lambda *args, **kwargs: av.error.err_check(-errno.ENOSPC))
    with pytest.raises(OSError) as error:
        write_proxy(media["video"], tmp_path / "full.mp4")
    assert error.value.errno == errno.ENOSPC and not isinstance(error.value, VideoReadError)

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", full_disk)
        with pytest.raises(OSError) as error:
            write_mfcc_cache(media["video"], tmp_path / "full.safetensors", AVCANetProcessor(**SMALL))
    assert error.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())


def test_prepare_writes_tagged_proxies_and_caches_with_the_processors_settings(tmp_path):
    from emotions_hf.data.prepare import prepare
    from emotions_hf.data.synthetic import generate

    source = generate(tmp_path / "src", videos_per_class=3, layout="folder", seed=8, size=(48, 64))
    processor = AVCANetProcessor(num_snippets=2, frames_per_snippet=2, image_size=12, mfcc_frames=64)
    prepare(source.root, tmp_path / "out", proxy=True, processor=processor, test_size=12, test_fraction=0.34,
            balanced_counts={"Excitation": 2}, progress=False, proxy_options={"short_side": 24})
    proxies = sorted((tmp_path / "out" / "proxy").glob("*/*.mp4"))
    caches = sorted((tmp_path / "out" / "mfcc").glob("*/*.safetensors"))
    assert len(proxies) == len(caches) == 18
    assert [p.name for p in proxies] == [c.stem for c in caches]  # <id>.mp4 and <id>.mp4.safetensors
    for path in proxies:
        with av.open(str(path)) as container:
            assert json.loads(container.metadata["emotions_hf_proxy"])["short_side"] == 24
        check_proxy(path, processor.image_size)
    with safe_open(caches[0], "pt") as cache:
        assert cache.metadata()["num_mfcc"] == "32"


def test_prepare_rerun_with_other_settings_redoes_proxies_and_caches(tmp_path):
    """A rerun of `prepare --proxy` with another processor or proxy size rewrites the files it made
    before (it once kept them: the journal only knew that a proxy existed)."""
    from emotions_hf.data.prepare import prepare
    from emotions_hf.data.synthetic import generate

    source = generate(tmp_path / "src", videos_per_class=2, layout="folder", seed=9, size=(48, 64))
    options = {"proxy": True, "test_size": 12, "test_fraction": 0.5, "progress": False,
               "balanced_counts": {"Excitation": 1}}

    def made(out):
        caches = sorted((out / "mfcc").glob("*/*.safetensors"))
        proxies = sorted((out / "proxy").glob("*/*.mp4"))
        with safe_open(caches[0], "pt") as cache:
            n_fft = cache.metadata()["n_fft"]
        with av.open(str(proxies[0])) as container:
            short_side = json.loads(container.metadata["emotions_hf_proxy"])["short_side"]
        return len(caches), n_fft, short_side

    out = tmp_path / "out"
    prepare(source.root, out, processor=AVCANetProcessor(**SMALL), proxy_options={"short_side": 32}, **options)
    assert made(out) == (12, "2048", 32)
    prepare(source.root, out, processor=AVCANetProcessor(**SMALL, n_fft=1024), proxy_options={"short_side": 32},
            **options)
    assert made(out) == (12, "1024", 32)
    prepare(source.root, out, processor=AVCANetProcessor(**SMALL, n_fft=1024), proxy_options={"short_side": 40},
            **options)
    assert made(out) == (12, "1024", 40)
