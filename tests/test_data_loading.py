"""`load_prepared`: datasets' decoded `Video` where torchcodec works, `{"path", "bytes"}` elsewhere, and rows
that point into the folder being loaded (moved or copied) with the membership layout."""

import shutil
import sys
from pathlib import Path

import datasets
import pytest

from emotions_hf.data import loading, processor_item
from emotions_hf.data.loading import load_prepared, media_paths, set_video_decoding, torchcodec_status
from emotions_hf.data.prepare import prepare
from emotions_hf.data.synthetic import generate

SMALL = {"balanced_counts": {"Excitation": 2, "Neutral": 2}, "test_size": 9, "test_fraction": 0.34,
         "progress": False}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    source = generate(tmp_path_factory.mktemp("loading_source") / "src", videos_per_class=3, layout="folder", seed=7)
    out = tmp_path_factory.mktemp("loading_prepared") / "emotions"
    prepare(source.root, out, **SMALL)
    return out


@pytest.fixture
def broken_torchcodec(tmp_path, monkeypatch):
    """A `torchcodec` that is installed but cannot load, like the PyPI wheel beside a CPU build of torch."""
    package = tmp_path / "fake" / "torchcodec"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise OSError('libnvrtc.so.13: cannot open shared object file: No such file or directory')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    for name in [name for name in sys.modules if name == "torchcodec" or name.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    torchcodec_status.cache_clear()
    yield
    torchcodec_status.cache_clear()


def test_a_broken_torchcodec_gives_undecoded_videos_and_a_clear_error(prepared, broken_torchcodec, tmp_path):
    reason = torchcodec_status()
    assert reason.startswith("torchcodec cannot be imported (OSError: libnvrtc.so.13")
    dataset = load_prepared(prepared, "test", cache_dir=str(tmp_path / "cache"))  # decode_video=None
    video = dataset["train"].features["video"]
    assert isinstance(video, datasets.Video) and not video.decode
    row = dataset["train"][0]
    assert set(row["video"]) == {"path", "bytes"} and Path(row["video"]["path"]).is_file()
    with pytest.raises(RuntimeError, match=r"emotions: decode_video=True needs torchcodec, but .*libnvrtc"):
        load_prepared(prepared, "test", decode_video=True, cache_dir=str(tmp_path / "cache"))


def test_decoding_is_chosen_at_load_time(prepared, tmp_path, monkeypatch):
    """With torchcodec working (pretended here: it is checked for real in the next test), `video` decodes and
    the caches stay `{"path", "bytes"}`; `decode_video=False` keeps it undecoded whatever is installed."""
    monkeypatch.setattr(loading, "torchcodec_status", lambda: None)
    dataset = load_prepared(prepared, "all", cache_dir=str(tmp_path / "cache"))
    for split in dataset.values():
        assert split.features["video"] == datasets.Video()  # decode=True
        assert len(media_paths(split)) == len(split)  # read from Arrow, no decoding
    assert not load_prepared(prepared, "all", decode_video=False,
                             cache_dir=str(tmp_path / "cache"))["train"].features["video"].decode
    undecoded = set_video_decoding(dataset, False)
    assert not undecoded["test"].features["video"].decode
    assert set_video_decoding(undecoded["test"], False) is undecoded["test"]  # already so: unchanged


def test_processor_item_hands_a_decoded_video_over_as_its_file():
    class Decoded:  # what `datasets.Video.decode_example` returns: a torchcodec decoder with `_hf_encoded`
        def __init__(self):
            self._hf_encoded = {"path": "/data/videos/all-train_ab/1.mp4", "bytes": None}

    decoded = Decoded()
    assert processor_item({"video": decoded}) == decoded._hf_encoded
    item = processor_item({"video": decoded, "proxy": {"path": "p.mp4", "bytes": None},
                           "mfcc": {"path": "m.mp4.safetensors", "bytes": None}})
    assert item["video"] == decoded._hf_encoded and item["proxy"]["path"] == "p.mp4"


def test_decoded_rows_where_torchcodec_works(prepared, tmp_path):
    torchcodec_status.cache_clear()
    reason = torchcodec_status()
    if reason is not None:
        pytest.skip(f"decoded rows need a working torchcodec: {reason}")
    from torchcodec.decoders import VideoDecoder

    split = load_prepared(prepared, "test", cache_dir=str(tmp_path / "cache"))["test"]
    row = split[0]
    assert isinstance(row["video"], VideoDecoder) and row["video"].metadata.num_frames > 0
    assert Path(processor_item(row)["path"]).is_file()


def test_rows_point_into_a_copied_folder(prepared, tmp_path):
    first = load_prepared(prepared, "balanced", decode_video=False, cache_dir=str(tmp_path / "cache"))
    copy = tmp_path / "elsewhere" / "emotions"
    shutil.copytree(prepared, copy)
    again = load_prepared(copy, "balanced", decode_video=False, cache_dir=str(tmp_path / "cache"))
    for name in ("train", "test"):
        paths = media_paths(again[name])
        assert len(paths) == len(first[name]) and all(path.startswith(str(copy) + "/videos/") for path in paths)
        assert all(Path(path).is_file() for path in paths)
