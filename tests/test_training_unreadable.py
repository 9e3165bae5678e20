"""Training and evaluation refuse to run on a dataset they cannot read, and stop before work is lost.

A moved dataset folder once trained 12 epochs on nothing (every video "skipped"), logged loss 0 and
exited 0; a full output disk surfaced only at the first checkpoint. These tests pin the fixes.
"""

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from test_training import small_model, training_args

from emotions_hf.data.prepare import prepare
from emotions_hf.data.synthetic import generate
from emotions_hf.labels import EMOTIONS
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.training import AVCANetTrainer, UnreadableVideosError, last_complete_checkpoint


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """12 readable synthetic videos as dataset rows."""
    source = generate(tmp_path_factory.mktemp("unreadable") / "source", videos_per_class=2, layout="csv", seed=3)
    return [{"video": str(source.root / v.relative_path), "label": EMOTIONS.label2id[v.label], "video_id": v.video_id}
            for v in source.videos]


def missing(rows, folder="/nowhere/moved-away"):
    """The same rows with their files gone, as after the dataset folder was moved."""
    return [{**row, "video": f"{folder}/{Path(row['video']).name}"} for row in rows]


def trainer_for(tmp_path, train=None, evaluate=None, **overrides):
    model = small_model()
    return AVCANetTrainer(model=model, args=training_args(tmp_path, **overrides), train_dataset=train,
                          eval_dataset=evaluate, processing_class=AVCANetProcessor.from_model_config(model.config))


def test_training_on_missing_files_stops_at_the_first_batch_and_says_why(rows, tmp_path):
    trainer = trainer_for(tmp_path, train=missing(rows), num_train_epochs=12)
    with pytest.raises(UnreadableVideosError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "none of the first 4 videos could be read" in message
    assert "/nowhere/moved-away/" in message and "was the dataset folder moved" in message
    assert trainer.state.global_step == 0


def test_share_of_unreadable_videos_over_an_epoch_is_capped(rows, tmp_path):
    # 3 of 12 unreadable (25 %), never a whole batch: the epoch-end check stops the run.
    mixed = [row if i % 4 else missing([row])[0] for i, row in enumerate(rows)]
    with pytest.raises(UnreadableVideosError, match=r"3 of 12 videos could not be read \(25%"):
        trainer_for(tmp_path / "strict", train=mixed).train()
    lenient = trainer_for(tmp_path / "lenient", train=mixed, max_unreadable_fraction=0.3)
    lenient.train()
    assert lenient.state.global_step == 3 and lenient.state.log_history[-2]["skipped_videos"] == 3


def test_evaluation_on_missing_files_reports_no_metrics(rows, tmp_path):
    trainer = trainer_for(tmp_path, evaluate=missing(rows))
    with pytest.raises(UnreadableVideosError, match="none of the first 4 videos"):
        trainer.evaluate()
    assert not (Path(trainer.args.output_dir) / "evaluation").exists()


def test_unwritable_output_dir_fails_before_training_starts(rows, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="a-file/run is not writable"):
        trainer_for(tmp_path, train=rows, output_dir=str(blocker / "run"))


def test_load_prepared_rows_point_into_the_folder_after_a_move_or_a_copy(tmp_path, monkeypatch):
    """Prepare the same source twice, load one copy, delete it, move the other, then copy it: the rows must
    point into the folder being loaded, cache warm or cold (a copy shares its original's cache key: only
    load_prepared sees it)."""
    from datasets import load_dataset

    from emotions_hf.data.loading import load_prepared, media_paths

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    source = generate(tmp_path / "source", videos_per_class=3, layout="folder", seed=5)
    for name in ("a", "b"):
        prepare(source.root, tmp_path / name / "emotions", progress=False)
    load_dataset(str(tmp_path / "a" / "emotions"), "all", cache_dir=str(tmp_path / "cache"))
    shutil.rmtree(tmp_path / "a")
    (tmp_path / "c").mkdir()
    shutil.move(tmp_path / "b" / "emotions", tmp_path / "c" / "emotions")
    moved = tmp_path / "c" / "emotions"
    # two preparations of one source differ (their preparation id), so plain load_dataset tells them apart
    plain = load_dataset(str(moved), "all", cache_dir=str(tmp_path / "cache"))
    assert all(path.startswith(str(moved) + "/") for split in plain.values() for path in media_paths(split))
    copied = tmp_path / "d" / "emotions"
    for folder in (moved, copied):
        if folder == copied:
            shutil.copytree(moved, copied)
        for _ in range(2):  # the first call may rebuild the cache, the second finds it warm
            dataset = load_prepared(folder, "all", cache_dir=str(tmp_path / "cache"))
            paths = [path for split in dataset.values() for path in media_paths(split)]
            assert len(paths) == 18 and all(path.startswith(str(folder) + "/") for path in paths)
            assert all(Path(path).is_file() for path in paths)


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"tmpfs-{uuid.uuid4().hex[:6]}",
                             str(folder)], check=False, capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({result.stderr.strip() or 'not root'}): the full-disk "
                    "test needs one")


def _fill(path: Path) -> None:
    """Write zeros to `path` until its disk is full."""
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_disk_full_mid_checkpoint_loses_nothing_after_the_rerun(rows, tmp_path):
    """Fill a 3 MB disk at the second checkpoint (each is ~2.3 MB): the run stops with ENOSPC, the partial
    checkpoint is never resumed from, and a rerun with space finishes from the last complete one."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "3m")
    try:
        _fill(disk / "filler")
        with pytest.raises(OSError, match="disk/run is not writable .No space left on device"):
            trainer_for(tmp_path, train=rows, output_dir=str(disk / "run"))
        (disk / "filler").unlink()
        options = {"output_dir": str(disk / "run"), "save_strategy": "steps", "save_steps": 1, "max_steps": 3,
                   "save_total_limit": None}
        with pytest.raises(OSError) as caught:
            trainer_for(tmp_path, train=rows, **options).train()
        assert "No space left" in str(caught.value) or caught.value.errno == 28
        assert last_complete_checkpoint(disk / "run").name == "checkpoint-1"
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = trainer_for(tmp_path, train=rows, **options)
        resumed.train(resume_from_checkpoint=True)
        assert resumed.state.global_step == 3
        assert last_complete_checkpoint(disk / "run").name == "checkpoint-3"
        assert all(last_complete_checkpoint(disk / "run").parent.joinpath(f"checkpoint-{step}", "trainer_state.json")
                   .is_file() for step in (1, 2, 3))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


def test_train_script_on_a_dataset_it_cannot_read_exits_1_with_the_cause(tmp_path):
    """examples/train.py once 'trained' 12 epochs on nothing and exited 0. Videos that are there but
    unreadable stop it at the first batch; videos that are gone stop it while loading, named."""
    import os
    import sys

    from emotions_hf.data.loading import PreparedFolderError, load_prepared

    source = generate(tmp_path / "source", videos_per_class=3, layout="folder", seed=2)
    folder = tmp_path / "emotions"
    prepare(source.root, folder, progress=False)
    script = Path(__file__).resolve().parents[1] / "examples" / "train.py"
    command = [sys.executable, str(script), "--dataset", str(folder), "--config_name", "small", "--output_dir",
               str(tmp_path / "run"), "--num_train_epochs", "12", "--report_to", "none", "--use_cpu", "true",
               "--disable_tqdm", "true", "--dataloader_num_workers", "0"]
    environment = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    videos = sorted(folder.glob("videos/*/*.mp4"))
    for video in videos:
        video.write_bytes(b"overwritten: not a video any more")
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "none of the first 8 videos could be read" in result.stderr and "not a readable media file" in result.stderr
    assert "Traceback" not in result.stderr
    for video in videos:
        video.unlink()
    with pytest.raises(PreparedFolderError, match="18 files its metadata lists are missing, e.g. videos/"):
        load_prepared(folder, "all", cache_dir=str(tmp_path / "other-cache"))
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                            env={**environment, "HF_DATASETS_CACHE": str(tmp_path / "cold")})
    assert result.returncode == 1 and "files its metadata lists are missing" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
