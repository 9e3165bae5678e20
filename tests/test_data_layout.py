"""The layout of a prepared folder: each config split lists exactly its own files (so a Hub download of
config `test` fetches its videos, not all of them), every video is stored once, and reruns move files
(another draw, an older layout, an interrupted move, a video gone from the source) without redoing them."""

import hashlib
import json
import re
import shutil
from contextlib import suppress
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from emotions_hf.data import prepare as prepare_module
from emotions_hf.data.card import UNPLACED_DIR, group_name, shard_dir
from emotions_hf.data.prepare import STRAY_DIR, prepare
from emotions_hf.data.synthetic import generate
from emotions_hf.data.variants import SPLITS

CONFIGS = ("all", "balanced", "test")
SMALL = {"balanced_counts": {"Excitation": 3, "Neutral": 2}, "test_size": 14, "test_fraction": 0.34, "progress": False}
MEDIA_KEYS = ("file_name", "proxy_file_name", "mfcc_file_name")


def _processor():
    from emotions_hf.processing_avcanet import AVCANetProcessor

    return AVCANetProcessor(num_snippets=2, frames_per_snippet=2, image_size=16, mfcc_frames=64)


PROXY = {"proxy": True, "proxy_options": {"short_side": 16}}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("layout_source") / "src", videos_per_class=4, layout="folder", broken=1,
                    silent=1, seed=11)


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("layout_prepared") / "emotions"
    result = prepare(source.root, out, processor=_processor(), **PROXY, **SMALL)
    assert result.videos == 23 and len(result.skipped) == 1
    return out


def _metadata(folder: Path, config: str, split: str) -> Path:
    (path,) = folder.glob(f"metadata-{config}-{split}-*.parquet")
    return path


def _expected_files(folder: Path, config: str, split: str) -> set[str]:
    """The split's metadata file and every media file its rows name: what its data files must be."""
    metadata = _metadata(folder, config, split)
    table = pq.read_table(metadata)
    files = {metadata.name}
    for key in MEDIA_KEYS:
        if key in table.column_names:
            files |= set(table.column(key).to_pylist())
    return files


def _resolved(folder: Path, config: str, cache: Path) -> dict[str, set[str]]:
    builder = datasets.load_dataset_builder(str(folder), config, cache_dir=str(cache))
    root = folder.resolve()
    return {split: {Path(name).resolve().relative_to(root).as_posix() for name in files}
            for split, files in builder.config.data_files.items()}


def _check_exact(folder: Path, cache: Path) -> None:
    for config in CONFIGS:
        resolved = _resolved(folder, config, cache)
        assert set(resolved) == set(SPLITS)
        for split in SPLITS:
            assert resolved[split] == _expected_files(folder, config, split), (config, split)


class _RecordingDownloads:
    """A download manager that downloads nothing and records what the builder asks for."""

    def __init__(self):
        self.download_config = datasets.DownloadConfig()
        self.asked = []

    def download(self, files):
        self.asked += list(files)
        return list(files)

    def download_and_extract(self, files):
        assert not files, f"archives in the data files: {files}"
        return []

    def iter_files(self, paths):
        raise AssertionError("no archive to iterate")


def _journal(folder: Path) -> dict[str, dict]:
    records = {}
    for line in (folder / ".prepare" / "journal.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["video_id"]] = record
    return records


def _digests(folder: Path) -> dict[tuple[str, str], str]:
    """(video id, column) -> sha256 of every media file the journal names."""
    return {(video_id, key): hashlib.sha256((folder / record[key]).read_bytes()).hexdigest()
            for video_id, record in _journal(folder).items() if record["status"] == "ok"
            for key in MEDIA_KEYS if key in record}


def _count_work(monkeypatch) -> list[str]:
    calls, real = [], prepare_module.process_video
    monkeypatch.setattr(prepare_module, "process_video", lambda task: calls.append(task.video_id) or real(task))
    return calls


def _no_empty_or_unclaimed_folders(folder: Path) -> None:
    for top in ("videos", "proxy", "mfcc"):
        for sub in (folder / top).iterdir():
            assert sub.is_dir() and any(sub.iterdir()), sub
    assert not (folder / UNPLACED_DIR).exists() or not any(p.is_file() for p in (folder / UNPLACED_DIR).rglob("*"))


# --------------------------------------------------------------------------------------------------


def test_each_config_split_resolves_exactly_its_files(prepared, tmp_path):
    _check_exact(prepared, tmp_path / "cache")
    sizes = {config: sum(len(files) for files in _resolved(prepared, config, tmp_path / "cache").values())
             for config in CONFIGS}
    assert sizes["test"] < sizes["all"] and sizes["balanced"] < sizes["all"]  # nothing of the other videos


def test_the_builder_downloads_every_listed_file_and_no_other(prepared, tmp_path):
    """What a Hub download fetches: the folder builder keeps only media (first or second extension a video's)
    and metadata files of the data files. The MFCC caches (`<video>.mp4.safetensors`) must be among them."""
    for config in ("test", "all"):
        builder = datasets.load_dataset_builder(str(prepared), config, cache_dir=str(tmp_path / "cache"))
        for split in SPLITS:
            downloads = _RecordingDownloads()
            files = builder.config.data_files[split]
            media, metadata, archives = builder._split_files_and_metadata_and_archives(files)
            assert sorted(media + metadata) == sorted(files) and not archives
            assert any(name.endswith(".mp4.safetensors") for name in media)
        # the whole split generation, with downloads recorded: the config's files, each once per split
        downloads = _RecordingDownloads()
        builder._split_generators(downloads)
        asked = {Path(name).resolve().relative_to(prepared.resolve()).as_posix() for name in downloads.asked}
        assert asked == set().union(*(_expected_files(prepared, config, split) for split in SPLITS))


def test_full_load_of_every_config_gives_its_rows(prepared, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truth = {v.video_id: v for v in source.valid_videos}
    root = prepared.resolve()
    for config in CONFIGS:
        ds = datasets.load_dataset(str(prepared), config, cache_dir=str(tmp_path / "cache"))
        for split in SPLITS:
            rows = pq.read_table(_metadata(prepared, config, split)).to_pylist()
            assert sorted(ds[split]["video_id"]) == sorted(row["video_id"] for row in rows)
            by_id = {row["video_id"]: row for row in rows}
            for example in ds[split]:
                row = by_id[example["video_id"]]
                assert ds[split].features["label"].int2str(example["label"]) == truth[example["video_id"]].label
                for column, key in (("video", "file_name"), ("proxy", "proxy_file_name"), ("mfcc", "mfcc_file_name")):
                    path = Path(example[column]["path"])
                    assert path.is_file() and path.resolve() == root / row[key]


def test_every_video_is_stored_once_in_the_folder_of_its_membership(prepared):
    journal = {video_id: r for video_id, r in _journal(prepared).items() if r["status"] == "ok"}
    membership = {video_id: [] for video_id in journal}
    for config in CONFIGS:
        for split in SPLITS:
            for video_id in pq.read_table(_metadata(prepared, config, split)).column("video_id").to_pylist():
                membership[video_id].append((config, split))
    stored = sorted(p.relative_to(prepared).as_posix() for p in (prepared / "videos").rglob("*") if p.is_file())
    assert stored == sorted(r["file_name"] for r in journal.values())  # once each, nothing else
    groups = set()
    for video_id, record in journal.items():
        group = group_name(membership[video_id])
        groups.add(group)
        folder = f"{group}_{shard_dir(video_id)}"
        name = Path(record["file_name"]).name
        assert record["file_name"] == f"videos/{folder}/{name}"
        assert record["proxy_file_name"] == f"proxy/{folder}/{video_id}.mp4"
        assert record["mfcc_file_name"] == f"mfcc/{folder}/{name}.safetensors"
    assert len(groups) > 3  # the draws of this source make several groups
    assert all(re.fullmatch(r"[a-z]+-(train|test)(\.[a-z]+-(train|test))*_[0-9a-f]{2}", p.name)
               for top in ("videos", "proxy", "mfcc") for p in (prepared / top).iterdir())
    _no_empty_or_unclaimed_folders(prepared)


def test_rerun_with_another_draw_moves_files_and_redoes_nothing(prepared, source, tmp_path, monkeypatch):
    folder = tmp_path / "emotions"
    shutil.copytree(prepared, folder)
    before = _digests(folder)
    calls = _count_work(monkeypatch)
    prepare(source.root, folder, processor=_processor(), seed=2, **PROXY, **SMALL)
    assert calls == []
    after = _digests(folder)
    assert after == before  # the same files, moved
    assert {r["file_name"] for r in _journal(folder).values() if r["status"] == "ok"} != {
        r["file_name"] for r in _journal(prepared).values() if r["status"] == "ok"}
    _check_exact(folder, tmp_path / "cache")
    _no_empty_or_unclaimed_folders(folder)


def _to_old_layout(folder: Path) -> None:
    """Rewrite a prepared folder as the previous version left it: `videos/<hh>/`, `proxy/<hh>/<id>.mp4`,
    `mfcc/<hh>/<id>.safetensors`, journal records naming those, a card whose splits glob `videos/*/*`."""
    lines = []
    for video_id, record in _journal(folder).items():
        if record["status"] == "ok":
            shard = shard_dir(video_id)
            old = {"file_name": f"videos/{shard}/{Path(record['file_name']).name}",
                   "proxy_file_name": f"proxy/{shard}/{video_id}.mp4",
                   "mfcc_file_name": f"mfcc/{shard}/{video_id}.safetensors"}
            for key, name in old.items():  # `<hh>` never names a group's folder: no move meets another
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(folder / record[key], folder / name)
                with suppress(OSError):  # the group's folder, once empty
                    (folder / record[key]).parent.rmdir()
            record = {**record, **old}
        lines.append(json.dumps(record))
    (folder / ".prepare" / "journal.jsonl").write_text("\n".join(lines) + "\n")
    card = re.sub(r"    - (videos|proxy|mfcc)/[^\n]*_\?\?/\*\n", "", (folder / "README.md").read_text())
    (folder / "README.md").write_text(re.sub(r"(    - metadata-[^\n]+\.parquet\n)", r"\1    - videos/*/*\n", card))


def test_rerun_migrates_a_folder_of_the_old_layout(prepared, source, tmp_path, monkeypatch):
    folder = tmp_path / "emotions"
    shutil.copytree(prepared, folder)
    before = _digests(folder)
    _to_old_layout(folder)
    assert sorted(p.name for p in (folder / "videos").iterdir()) == sorted({shard_dir(v) for v, _ in before})
    old = datasets.load_dataset(str(folder), "test", cache_dir=str(tmp_path / "cache"))  # the old folder loads
    assert len(old["train"]) + len(old["test"]) == 14
    calls = _count_work(monkeypatch)
    result = prepare(source.root, folder, processor=_processor(), **PROXY, **SMALL)
    assert calls == [] and result.videos == 23
    assert _digests(folder) == before
    # the same draw as before the migration: every file back where the new layout puts it
    assert {k: r for k, r in _journal(folder).items()} == {k: r for k, r in _journal(prepared).items()}
    _check_exact(folder, tmp_path / "cache")
    _no_empty_or_unclaimed_folders(folder)
    assert not (folder / STRAY_DIR).exists()


def test_interrupted_moves_are_found_and_missing_files_redone(prepared, source, tmp_path, monkeypatch):
    folder = tmp_path / "emotions"
    shutil.copytree(prepared, folder)
    journal = {k: r for k, r in _journal(folder).items() if r["status"] == "ok"}
    first, second, third = sorted(journal)[:3]
    # a move whose record was not written: the video in another group's folder, an MFCC back in the pool
    wrong = folder / "videos" / f"all-test_{shard_dir(first)}" / Path(journal[first]["file_name"]).name
    if wrong.parent.name == Path(journal[first]["file_name"]).parent.name:
        wrong = folder / "videos" / f"all-train_{shard_dir(first)}" / wrong.name
    wrong.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(folder / journal[first]["file_name"], wrong)
    pool = folder / UNPLACED_DIR / "mfcc" / shard_dir(second) / Path(journal[second]["mfcc_file_name"]).name
    pool.parent.mkdir(parents=True)
    shutil.move(folder / journal[second]["mfcc_file_name"], pool)
    (folder / journal[third]["proxy_file_name"]).unlink()  # gone: the video is redone
    calls = _count_work(monkeypatch)
    prepare(source.root, folder, processor=_processor(), **PROXY, **SMALL)
    assert calls == [third]
    _check_exact(folder, tmp_path / "cache")
    _no_empty_or_unclaimed_folders(folder)
    assert not (folder / STRAY_DIR).exists()


def test_a_video_gone_from_the_source_and_stray_files_leave_the_configs(source, tmp_path, monkeypatch):
    src = tmp_path / "src"
    shutil.copytree(source.root, src)
    folder = tmp_path / "emotions"
    prepare(src, folder, **SMALL)
    journal = {k: r for k, r in _journal(folder).items() if r["status"] == "ok"}
    video_id = min(journal)
    (removed,) = [v for v in source.videos if v.video_id == video_id]
    kept_aside = tmp_path / "aside.mp4"
    shutil.move(src / removed.relative_path, kept_aside)
    group_folder = Path(journal[sorted(journal)[1]]["file_name"]).parent
    (folder / group_folder / "intruder.mp4").write_bytes(b"not ours")
    calls = _count_work(monkeypatch)
    result = prepare(src, folder, **SMALL)
    assert calls == [] and result.videos == 22
    unplaced = folder / UNPLACED_DIR / "videos" / shard_dir(video_id) / Path(journal[video_id]["file_name"]).name
    assert unplaced.is_file()  # kept for a later run, in no config
    assert (folder / STRAY_DIR / group_folder / "intruder.mp4").read_bytes() == b"not ours"
    for config in CONFIGS:
        for split, files in _resolved(folder, config, tmp_path / "cache").items():
            assert files == _expected_files(folder, config, split)
            assert not any(video_id in name or "intruder" in name for name in files)
    # the video back in the source: placed again, not redone
    shutil.move(kept_aside, src / removed.relative_path)
    result = prepare(src, folder, **SMALL)
    assert calls == [] and result.videos == 23
    assert not unplaced.exists()
    _check_exact(folder, tmp_path / "cache")
    loaded = datasets.load_dataset(str(folder), "all", cache_dir=str(tmp_path / "cache"))
    assert sorted([*loaded["train"]["video_id"], *loaded["test"]["video_id"]]) == sorted(journal)


def test_a_user_without_the_package_loads_each_config(prepared, tmp_path):
    """The dataset repo needs only `datasets`: every config loads in a process where `import emotions_hf` fails,
    each split holding exactly the files its metadata names."""
    from without_package import run_without_package

    body = """
from datasets import load_dataset

folder = sys.argv[1]
for config in ("all", "balanced", "test"):
    dataset = load_dataset(folder, config, cache_dir=sys.argv[2])
    for split in ("train", "test"):
        rows = dataset[split]
        assert len(rows) and all(row["video"]["path"].startswith(folder) for row in rows), (config, split)
        assert rows.features["label"].names[0] == "Excitation"
    print("LOADED", config, dataset["train"].num_rows, dataset["test"].num_rows)
"""
    stdout = run_without_package(tmp_path, body, prepared, tmp_path / "cache")
    assert stdout.count("LOADED") == 3
