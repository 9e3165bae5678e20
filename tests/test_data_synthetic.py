"""The synthetic eMotions-shaped source: layouts, cues in picture and sound, broken files, seeding."""

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from emotions_hf.data.synthetic import LAYOUTS, class_cues, generate
from emotions_hf.decoding import probe
from emotions_hf.errors import VideoReadError
from emotions_hf.labels import EMOTIONS


def _decode(path):
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        audio = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)] if container.streams.audio else []
    return frames, (np.concatenate(audio) if audio else None)


def _dominant_frequency(samples, sample_rate=44100):
    spectrum = np.abs(np.fft.rfft(samples))
    return np.fft.rfftfreq(samples.size, 1 / sample_rate)[spectrum.argmax()]


def test_cues_split_the_label_between_picture_and_sound(tmp_path):
    source = generate(tmp_path, videos_per_class=2, layout="folder", seed=3)
    assert [class_cues(i, 6) for i in range(6)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    for video in source.videos:
        frames, audio = _decode(source.root / video.relative_path)
        visual, band = class_cues(EMOTIONS.label2id[video.label], 6)
        assert frames.reshape(-1, 3).mean(0).argmax() == visual  # hue: red, green, blue
        frequency = _dominant_frequency(audio)
        assert (frequency > 1500) == bool(band), (video, frequency)


def test_same_seed_same_videos_other_seed_other_videos(tmp_path):
    first = generate(tmp_path / "a", videos_per_class=1, layout="folder", seed=7, duration=(1.0, 2.0))
    again = generate(tmp_path / "b", videos_per_class=1, layout="folder", seed=7, duration=(1.0, 2.0))
    other = generate(tmp_path / "c", videos_per_class=1, layout="folder", seed=8, duration=(1.0, 2.0))
    assert first.videos == again.videos
    for video in first.videos:  # bit for bit, whatever the machine's load (the encoder's threading)
        assert (first.root / video.relative_path).read_bytes() == (again.root / video.relative_path).read_bytes()
    path = first.videos[0].relative_path
    np.testing.assert_array_equal(_decode(first.root / path)[0], _decode(again.root / path)[0])
    assert not np.array_equal(_decode(first.root / path)[0], _decode(other.root / path)[0])


def test_broken_and_silent_videos(tmp_path):
    source = generate(tmp_path, videos_per_class=2, layout="folder", broken=3, silent=2, seed=1)
    broken = [v for v in source.videos if v.broken]
    assert sorted(v.broken for v in broken) == ["empty", "garbage", "truncated"]
    for video in broken:
        with pytest.raises(VideoReadError):
            probe(source.root / video.relative_path)
    silent = [v for v in source.videos if not v.has_audio]
    assert len(silent) == 2 and not any(v.broken for v in silent)
    assert not probe(source.root / silent[0].relative_path).has_audio


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(tmp_path, layout):
    source = generate(tmp_path, videos_per_class=1, layout=layout, seed=0, videos_per_shard=4, row_group_size=2)
    assert len(source.videos) == 6
    if layout == "parquet":
        shards = sorted((tmp_path / "data").glob("eMotions_chunk_*.parquet"))
        assert len(shards) == 2
        table = pq.read_table(shards[0])
        assert table.column_names == ["file_name", "label", "video_data"]
        assert table.column("file_name")[0].as_py() == "00000001.mp4"
        assert pq.ParquetFile(shards[0]).num_row_groups == 2
    else:
        assert all((tmp_path / v.relative_path).is_file() for v in source.videos)
    if layout == "csv":
        assert (tmp_path / "labels.csv").read_text().splitlines()[0] == "video_id,label"
    if layout == "ucf101":
        assert (tmp_path / "classInd.txt").read_text().splitlines()[0] == "1 Excitation"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        generate(tmp_path, layout="zip")
    with pytest.raises(ValueError, match="even"):
        generate(tmp_path, size=(31, 32))
