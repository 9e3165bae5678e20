"""`prepare` end to end on synthetic sources, then `load_dataset` on the folder it writes."""

import json
import shutil

import datasets
import pyarrow.parquet as pq
import pytest

from emotions_hf import cli
from emotions_hf.data import prepare as prepare_module
from emotions_hf.data import processor_item
from emotions_hf.data.prepare import PrepareError, prepare
from emotions_hf.data.sources import SourceError, open_source
from emotions_hf.data.synthetic import generate
from emotions_hf.labels import EMOTIONS

SMALL = {"balanced_counts": {"Excitation": 3, "Neutral": 2}, "test_size": 18, "test_fraction": 0.34, "progress": False}


@pytest.fixture(scope="module")
def parquet_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("parquet_source")
    return generate(root, videos_per_class=4, layout="parquet", broken=3, silent=1, seed=11, videos_per_shard=10,
                    row_group_size=4)


@pytest.fixture(scope="module")
def prepared(parquet_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "emotions"
    return out, prepare(parquet_source.root, out, **SMALL)


def _load(folder, config, cache_dir):
    return datasets.load_dataset(str(folder), config, cache_dir=str(cache_dir))


def test_parquet_source_loads_with_every_config(prepared, parquet_source, tmp_path, monkeypatch):
    out, result = prepared
    monkeypatch.chdir(tmp_path)  # the paths must open from anywhere
    valid = {v.video_id: v for v in parquet_source.valid_videos}
    assert result.videos == len(valid) == 21
    for config in ("all", "balanced", "test"):
        ds = _load(out, config, tmp_path / "cache")
        assert set(ds) == {"train", "test"}
        for split in ("train", "test"):
            assert len(ds[split]) == sum(result.counts[config][split].values())
        features = ds["train"].features
        assert features["label"].names == list(EMOTIONS.labels)
        assert features["polarity"].names == ["positive", "neutral", "negative"]
        assert isinstance(features["video"], datasets.Video) and not features["video"].decode
        assert features["duration"].dtype == "float32" and features["has_audio"].dtype == "bool"
        train_ids = set(ds["train"]["video_id"])
        assert not train_ids & set(ds["test"]["video_id"])
        for row in ds["test"]:
            truth = valid[row["video_id"]]
            assert features["label"].int2str(row["label"]) == truth.label
            assert row["has_audio"] == truth.has_audio
            assert row["video"]["path"].startswith(str(out.resolve())) and row["video"]["bytes"] is None
            assert processor_item(row) == row["video"]
    all_ids = set(_load(out, "all", tmp_path / "cache")["train"]["video_id"])
    assert len(all_ids) + sum(result.counts["all"]["test"].values()) == 21
    # every video is stored once, whatever the number of configs
    assert len(list((out / "videos").glob("*/*.mp4"))) == 21


def test_broken_videos_are_reported_not_dropped(prepared, parquet_source):
    out, result = prepared
    report = json.loads((out / "preparation_report.json").read_text())
    broken = {v.video_id: v.broken for v in parquet_source.videos if v.broken}
    assert {row["video_id"] for row in report["skipped_rows"]} == set(broken)
    assert report["skipped"] == 3 and report["videos"] == 21 and report["source_rows"] == 24
    assert all(row["reason"] and row["origin"].startswith("data/eMotions_chunk_") for row in report["skipped_rows"])
    assert report["seed"] == 1 and report["counts"] == result.counts
    card = (out / "README.md").read_text()
    assert "config_name: balanced" in card and "Wu, Xuecheng" in card and "academic research" in card
    assert "3 skipped" in card


def test_interrupted_preparation_resumes(parquet_source, tmp_path, monkeypatch):
    out = tmp_path / "emotions"
    calls = []
    real = prepare_module.process_video

    def interrupted(task):
        if len(calls) == 8:
            raise KeyboardInterrupt
        calls.append(task.video_id)
        return real(task)

    monkeypatch.setattr(prepare_module, "process_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(parquet_source.root, out, **SMALL)
    assert not list(out.glob("metadata-*.parquet"))
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(prepare_module, "process_video", lambda task: calls.append(task.video_id) or real(task))
    result = prepare(parquet_source.root, out, **SMALL)
    assert not set(first) & set(calls)  # nothing redone
    assert result.videos == 21 and len(result.skipped) == 3
    calls.clear()
    again = prepare(parquet_source.root, out, **SMALL)  # a finished folder: nothing to do
    assert calls == [] and again.counts == result.counts


def test_folder_source_with_processes_and_same_draw(tmp_path, prepared):
    source = generate(tmp_path / "src", videos_per_class=4, layout="folder", broken=3, silent=1, seed=11)
    out = tmp_path / "emotions"
    result = prepare(source.root, out, num_proc=2, **SMALL)
    assert result.videos == 21
    assert result.counts == prepared[1].counts  # same ids and labels, same seed: same draw
    ds = _load(out, "balanced", tmp_path / "cache")
    assert len(ds["train"]) + len(ds["test"]) == sum(sum(c.values()) for c in result.counts["balanced"].values())
    assert ds["train"][0]["origin"].endswith(".mp4")


def test_other_seed_other_draw(tmp_path, parquet_source, prepared):
    result = prepare(parquet_source.root, tmp_path / "emotions", seed=2, **SMALL)
    first = json.loads((prepared[0] / "preparation_report.json").read_text())
    assert result.counts["all"] == first["counts"]["all"]  # same class counts ...
    assert _test_ids(tmp_path / "emotions") != _test_ids(prepared[0])  # ... other videos


def _test_ids(folder):
    (path,) = folder.glob("metadata-all-test-*.parquet")
    return sorted(pq.read_table(path).column("video_id").to_pylist())


def _csv_source(tmp_path):
    source = generate(tmp_path / "src", videos_per_class=3, layout="csv", seed=4)
    labels = source.root / "labels.csv"
    labels.write_text(labels.read_text() + "00000099,Joy\n00000001,Fear\n00000100,Fear\n")
    return source


def test_bad_rows_are_reported(tmp_path):
    source = _csv_source(tmp_path)
    result = prepare(source.root, tmp_path / "out", test_fraction=0.34, test_size=12,
                     balanced_counts={"Excitation": 2}, progress=False)
    reasons = {row["origin"]: row["reason"] for row in result.skipped}
    assert result.videos == 18
    assert "label outside the label set" in reasons["labels.csv line 20"]
    assert "duplicate id '00000001'" in reasons["labels.csv line 21"]
    assert "missing file" in reasons["labels.csv line 22"]


def test_strict_mode_lists_every_bad_row(tmp_path):
    source = _csv_source(tmp_path)
    with pytest.raises(PrepareError) as error:
        prepare(source.root, tmp_path / "out", strict=True, progress=False)
    message = str(error.value)
    assert "3 rows" in message and "line 20" in message and "line 21" in message and "line 22" in message


def test_unreadable_shard(tmp_path):
    source = generate(tmp_path / "src", videos_per_class=3, layout="parquet", seed=4)
    (source.root / "data" / "eMotions_chunk_999.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(PrepareError, match="eMotions_chunk_999.parquet: unreadable parquet shard"):
        prepare(source.root, tmp_path / "strict", strict=True, progress=False)
    result = prepare(source.root, tmp_path / "out", test_size=12, test_fraction=0.34, progress=False)
    assert result.videos == 18
    assert [row["origin"] for row in result.skipped] == ["data/eMotions_chunk_999.parquet"]


def test_one_folder_one_source(tmp_path, prepared):
    other = generate(tmp_path / "src", videos_per_class=1, layout="folder", seed=4)
    copy = tmp_path / "copy"
    shutil.copytree(prepared[0], copy)
    with pytest.raises(PrepareError, match="another folder"):
        prepare(other.root, copy, progress=False)


def test_a_second_preparation_of_a_folder_waits_for_the_first(tmp_path):
    """Two processes preparing one folder (two bench runs of one task) must not clear each other's temporary folder
    or stage the same metadata files: the second waits for the lock the first holds, then finds the work done."""
    import threading

    from filelock import FileLock

    source = generate(tmp_path / "src", videos_per_class=2, layout="folder", seed=4)
    out = tmp_path / "out"
    first = FileLock(out / prepare_module.STATE_DIR / "prepare.lock")
    out.joinpath(prepare_module.STATE_DIR).mkdir(parents=True)
    results = []
    with first:
        second = threading.Thread(target=lambda: results.append(
            prepare(source.root, out, test_fraction=0.5, variants=["all"], progress=False)))
        second.start()
        second.join(timeout=3)
        assert second.is_alive() and not (out / "README.md").exists() and not results  # waiting, no card written
    second.join(timeout=120)
    assert not second.is_alive() and results[0].videos == len(source.videos)
    loaded = _load(out, "all", tmp_path / "cache")
    assert loaded["train"].num_rows + loaded["test"].num_rows == results[0].videos


def test_ucf101_lists_and_public_label_set(tmp_path):
    ucf = generate(tmp_path / "ucf", videos_per_class=2, layout="ucf101", seed=5)
    entries, _ = open_source(ucf.root).list()
    assert sorted((e.video_id, e.raw_label) for e in entries) == sorted((v.video_id, v.label) for v in ucf.videos)
    ve8 = generate(tmp_path / "ve8", videos_per_class=2, layout="folder", seed=5, label_set="ve8")
    result = prepare(ve8.root, tmp_path / "out", label_set="ve8", test_fraction=0.5, progress=False)
    assert list(result.counts) == ["all"]
    ds = _load(tmp_path / "out", "all", tmp_path / "cache")
    assert ds["train"].features["label"].names[:2] == ["Anger", "Anticipation"]
    assert len(ds["train"]) == len(ds["test"]) == 8


def test_missing_source_and_columns(tmp_path):
    with pytest.raises(SourceError, match="no such source"):
        open_source(tmp_path / "nowhere")
    source = generate(tmp_path / "src", videos_per_class=1, layout="parquet", seed=4)
    with pytest.raises(SourceError, match="no video column 'mp4_bytes'"):
        open_source(source.root, video_column="mp4_bytes").list()


def test_command_line(tmp_path, capsys):
    source = generate(tmp_path / "src", videos_per_class=3, layout="folder", seed=6)
    out = tmp_path / "emotions"
    code = cli.main(["prepare", str(source.root), str(out), "--balanced-counts", "Excitation=2,Neutral=2",
                     "--test-size", "12", "--test-fraction", "0.34", "--no-progress"])
    assert code == 0
    assert "18 videos, 0 skipped" in capsys.readouterr().out
    assert cli.main(["prepare", str(tmp_path / "nowhere"), str(out), "--no-progress"]) == 2
    assert "no such source" in capsys.readouterr().err


def test_proxy_and_mfcc_columns(tmp_path):
    from emotions_hf.processing_avcanet import AVCANetProcessor

    source = generate(tmp_path / "src", videos_per_class=3, layout="folder", silent=1, seed=8)
    processor = AVCANetProcessor(num_snippets=2, frames_per_snippet=2, image_size=16, mfcc_frames=64)
    prepare(source.root, tmp_path / "out", proxy=True, processor=processor, proxy_options={"short_side": 16},
            test_size=12, test_fraction=0.34, balanced_counts={"Excitation": 2}, progress=False)
    ds = _load(tmp_path / "out", "test", tmp_path / "cache")
    assert isinstance(ds["train"].features["proxy"], datasets.Video)
    row = ds["train"][0]
    item = processor_item(row)
    assert item["proxy"]["path"].endswith(".mp4") and item["mfcc"]["path"].endswith(".safetensors")
    batch = processor([processor_item(r) for r in ds["test"]])
    assert tuple(batch["pixel_values"].shape) == (len(ds["test"]), 2, 2, 3, 16, 16)
    assert batch["audio_mask"].tolist() == ds["test"]["has_audio"]


def test_json_labels_and_output_inside_source(tmp_path):
    source = generate(tmp_path / "src", videos_per_class=1, layout="csv", seed=9)
    (source.root / "labels.csv").unlink()
    (source.root / "labels.json").write_text(json.dumps({v.video_id: v.label for v in source.videos}))
    entries, _ = open_source(source.root).list()
    assert sorted((e.video_id, e.raw_label) for e in entries) == sorted((v.video_id, v.label) for v in source.videos)
    assert all(e.path.is_file() for e in entries)
    with pytest.raises(PrepareError, match="inside the source"):
        prepare(source.root, source.root / "emotions", progress=False)
