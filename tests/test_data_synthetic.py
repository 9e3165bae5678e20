"""The synthetic eMotions-shaped source: layouts, cues in picture and sound, broken files, seeding, and
building a set once when several processes start together."""

import contextlib
import multiprocessing
import os
import queue
import signal
import time

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from emotions_hf.data.synthetic import BUILD_LOCK, BUILD_MARKER, LAYOUTS, build_once, class_cues, generate
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


def _builder(folder, hold, go, events):
    """A process calling build_once once `go` is set; its build writes a file in two halves with a pause between
    them, so a process that did not wait for the build to finish would read half of it."""

    def build(target):
        with open(target / "payload.txt", "w") as handle:
            handle.write("first half,")
            handle.flush()
            events.put((os.getpid(), "started"))
            time.sleep(hold)
            handle.write("second half")

    go.wait()
    built = build_once(folder, build, key={"n": 1}, on_wait=lambda: events.put((os.getpid(), "waiting")))
    events.put((os.getpid(), f"{'built' if built else 'reused'} {(folder / 'payload.txt').read_text()}"))


def _start_builders(folder, count, hold):
    """`count` forked builder processes (fork: no second import of the package), released together."""
    context = multiprocessing.get_context("fork")
    go, events = context.Event(), context.Queue()
    processes = [context.Process(target=_builder, args=(folder, hold, go, events)) for _ in range(count)]
    for process in processes:
        process.start()
    go.set()
    return processes, events


def test_build_once_builds_once_for_processes_started_together(tmp_path):
    """Two processes released at the same instant: one builds, the other waits for it and reuses the result."""
    processes, events = _start_builders(tmp_path / "set", 2, hold=2.0)
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    seen = {}
    with contextlib.suppress(queue.Empty):
        while True:
            pid, event = events.get(timeout=1)
            seen.setdefault(pid, []).append(event)
    assert sorted(lines[-1] for lines in seen.values()) == [
        "built first half,second half", "reused first half,second half"], seen
    waiter = next(lines for lines in seen.values() if lines[-1].startswith("reused"))
    assert waiter == ["waiting", "reused first half,second half"], seen
    assert (tmp_path / "set" / BUILD_MARKER).is_file()


def test_build_once_redoes_a_build_cut_short_by_a_kill(tmp_path):
    """A builder killed mid-build leaves half a file and no marker; its lock dies with it, and the next call
    discards the remains and builds afresh."""
    folder = tmp_path / "set"
    (process,), events = _start_builders(folder, 1, hold=600)
    assert events.get(timeout=60)[1] == "started"
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=60)
    assert (folder / "payload.txt").read_text() == "first half," and not (folder / BUILD_MARKER).exists()

    def build(target):
        (target / "other.txt").write_text("complete")

    assert build_once(folder, build, key={"n": 1})
    assert sorted(p.name for p in folder.iterdir()) == sorted([BUILD_MARKER, BUILD_LOCK, "other.txt"])


def test_build_once_reuses_a_complete_build_and_rebuilds_for_another_key(tmp_path):
    calls = []

    def build(target):
        calls.append(sorted(p.name for p in target.iterdir()))
        (target / f"file-{len(calls)}").write_text("x")

    folder = tmp_path / "set"
    assert build_once(folder, build, key={"seed": 1})
    assert not build_once(folder, build, key={"seed": 1})
    assert build_once(folder, build, key={"seed": 2})  # other options: the old content goes
    assert calls == [[BUILD_LOCK], [BUILD_LOCK]]
    assert sorted(p.name for p in folder.iterdir()) == sorted([BUILD_LOCK, BUILD_MARKER, "file-2"])
