"""`prepare` against hostile sources and a hostile machine: ids that cannot be file names, shards that
differ, odd labels files, links, paths outside the source, a full or read-only disk."""

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from media_samples import write

from emotions_hf import cli
from emotions_hf.data import prepare as prepare_module
from emotions_hf.data.prepare import PrepareEnvironmentError, PrepareError, Task, prepare, process_video
from emotions_hf.data.sources import open_source
from emotions_hf.errors import VideoReadError, environment_errno

OPTIONS = {"variants": ("all",), "test_fraction": 0.5, "progress": False}
LABELS = ("Excitation", "Fear")


# --------------------------------------------------------------------------------------------------
# Helpers: tiny sources made here


def _clip(path: Path, index: int = 0) -> Path:
    """A small valid mp4 (grey ramp + tone), ~9 KB; `index` varies its length so no two are identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, num_frames=8 + index % 5, size=(16, 16))


def _clip_bytes(tmp_path: Path, count: int) -> list[bytes]:
    return [_clip(tmp_path / "clips" / f"{i}.mp4", i).read_bytes() for i in range(count)]


def _parquet_source(root: Path, shards: list[list[dict]]) -> Path:
    (root / "data").mkdir(parents=True)
    for number, rows in enumerate(shards):
        table = pa.table({name: [row[name] for row in rows] for name in rows[0]})
        pq.write_table(table, root / "data" / f"shard_{number:03d}.parquet")
    return root


def _rows(blobs: list[bytes], ids: list[str]) -> list[dict]:
    return [{"file_name": f"{video_id}.mp4", "label": LABELS[i % 2], "video_data": blob}
            for i, (video_id, blob) in enumerate(zip(ids, blobs))]


def _csv_source(root: Path, count: int = 6, header: str = "video_id,label") -> tuple[Path, list[str]]:
    """`videos/v<i>.mp4` and a `labels.csv`; returns the root and the csv lines (without the header)."""
    lines = []
    for i in range(count):
        _clip(root / "videos" / f"v{i}.mp4", i)
        lines.append(f"v{i},{LABELS[i % 2]}")
    (root / "labels.csv").write_text("\n".join([header, *lines]) + "\n")
    return root, lines


def _report(out: Path) -> dict:
    return json.loads((out / "preparation_report.json").read_text())


def _journal(out: Path) -> list[dict]:
    path = out / ".prepare" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _prepared_ids(out: Path) -> set[str]:
    return {row["video_id"] for path in out.glob("metadata-all-*.parquet")
            for row in pq.read_table(path).to_pylist()}


def _cli(source: Path, out: Path, *extra: str) -> int:
    return cli.main(["prepare", str(source), str(out), "--variants", "all", "--test-fraction", "0.5",
                     "--no-progress", *extra])


# --------------------------------------------------------------------------------------------------
# A. Parquet sources


def test_parquet_ids_that_cannot_be_file_names_are_reported(tmp_path, capsys):
    blobs = _clip_bytes(tmp_path, 8)
    ids = ["ok0", "bad\x00id", "x" * 300, "ok1", "ok2", "tab\there", "ok3", "é" * 101]  # 202 bytes of UTF-8
    source = _parquet_source(tmp_path / "src", [_rows(blobs, ids)])
    out = tmp_path / "out"
    assert _cli(source, out) == 0  # before: "error: embedded null byte" (NUL) or an OSError traceback (long id)
    assert "4 videos, 4 skipped" in capsys.readouterr().out
    assert _prepared_ids(out) == {"ok0", "ok1", "ok2", "ok3"}
    reasons = {row["origin"]: row["reason"] for row in _report(out)["skipped_rows"]}
    assert "cannot be a file name: it holds '\\x00'" in reasons["data/shard_000.parquet row 1 ('bad\\x00id.mp4')"]
    (long_origin,) = [origin for origin in reasons if "row 2" in origin]
    assert "300 bytes long" in reasons[long_origin]
    assert "holds '\\t'" in reasons["data/shard_000.parquet row 5 ('tab\\there.mp4')"]
    assert "202 bytes long" in reasons[f"data/shard_000.parquet row 7 ({'é' * 101}.mp4)"]
    assert all(len(path.name.encode()) <= 210 for path in out.rglob("*"))
    with pytest.raises(PrepareError, match=r"(?s)4 rows cannot be prepared.*row 1") as error:
        prepare(source, tmp_path / "strict", strict=True, **OPTIONS)
    assert "cannot be a file name" in str(error.value)


def test_later_shard_without_the_label_or_video_column(tmp_path, capsys):
    blobs = _clip_bytes(tmp_path, 8)
    good = _rows(blobs[:4], ["a0", "a1", "a2", "a3"])
    no_label = [{"file_name": row["file_name"].replace("a", "b"), "video_data": row["video_data"]}
                for row in _rows(blobs[4:6], ["a4", "a5"])]
    no_video = [{"file_name": row["file_name"].replace("a", "c"), "label": row["label"]}
                for row in _rows(blobs[6:], ["a6", "a7"])]
    source = _parquet_source(tmp_path / "src", [good, no_label, no_video])
    out = tmp_path / "out"
    assert _cli(source, out) == 0  # before: a KeyError (label) / IndexError (video) traceback mid-run
    assert "4 videos, 2 skipped" in capsys.readouterr().out
    reasons = {row["origin"]: row["reason"] for row in _report(out)["skipped_rows"]}
    assert "lacks the label column 'label'" in reasons["data/shard_001.parquet"]
    assert "lacks the video column 'video_data'" in reasons["data/shard_002.parquet"]
    assert _prepared_ids(out) == {"a0", "a1", "a2", "a3"}
    with pytest.raises(PrepareError, match="shard_001.parquet: shard lacks the label column"):
        prepare(source, tmp_path / "strict", strict=True, **OPTIONS)


def test_parquet_video_column_of_the_wrong_type_is_reported(tmp_path):
    blobs = _clip_bytes(tmp_path, 4)
    good = _rows(blobs, ["a0", "a1", "a2", "a3"])
    text = [{"file_name": "t0.mp4", "label": "Fear", "video_data": "not bytes"}]
    source = tmp_path / "src"
    (source / "data").mkdir(parents=True)
    pq.write_table(pa.table({k: [r[k] for r in good] for k in good[0]}), source / "data" / "s0.parquet")
    pq.write_table(pa.table({k: [r[k] for r in text] for k in text[0]}), source / "data" / "s1.parquet")
    result = prepare(source, tmp_path / "out", **OPTIONS)
    assert result.videos == 4
    assert [(row["video_id"], row["reason"]) for row in result.skipped] == [
        ("t0", "the video column holds str, not bytes")]


def test_staging_names_cannot_collide(tmp_path):
    """`a`'s staged proxy was `.prepare/tmp/a.proxy.mp4`, the staged video of `a.proxy` too: one was lost."""
    from emotions_hf.processing_avcanet import AVCANetProcessor

    blobs = _clip_bytes(tmp_path, 6)
    ids = ["a", "a.proxy", "a.mfcc", "b", "b.proxy.mp4", "c"]  # file names `<id>.mp4`
    source = _parquet_source(tmp_path / "src", [_rows(blobs, ids)])
    processor = AVCANetProcessor(num_snippets=2, frames_per_snippet=2, image_size=16, mfcc_frames=64)
    result = prepare(source, tmp_path / "out", num_proc=2, proxy=True, processor=processor,
                     proxy_options={"short_side": 16}, **OPTIONS)
    assert result.skipped == []
    assert result.videos == 6
    expected = set(ids)
    assert _prepared_ids(tmp_path / "out") == expected
    kept = {r["video_id"]: r for r in _journal(tmp_path / "out")}
    for video_id in expected:
        for key in ("file_name", "proxy_file_name", "mfcc_file_name"):
            assert (tmp_path / "out" / kept[video_id][key]).is_file()
    assert not (tmp_path / "out" / ".prepare" / "tmp").exists()


def test_workers_do_not_hang_after_torch_ran_in_the_parent(tmp_path):
    """Forked workers inherited a started torch (OpenMP) thread pool and hung in their first MFCC; a child
    process with a time limit, so that a hang fails the test instead of the suite."""
    root, _ = _csv_source(tmp_path / "src", count=4)
    script = (
        "import sys, torch\n"
        "x = torch.randn(1500, 1500); (x @ x).sum(); torch.hann_window(400)\n"
        "from emotions_hf.data.prepare import prepare\n"
        "from emotions_hf.processing_avcanet import AVCANetProcessor\n"
        "processor = AVCANetProcessor(num_snippets=2, frames_per_snippet=2, image_size=16, mfcc_frames=64)\n"
        "result = prepare(sys.argv[1], sys.argv[2], num_proc=2, proxy=True, processor=processor,\n"
        "                 proxy_options={'short_side': 16}, variants=('all',), test_fraction=0.5, progress=False)\n"
        "print('videos', result.videos)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(root), str(tmp_path / "out")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the hung workers too
        child.communicate()
        pytest.fail("prepare(num_proc=2) hung after torch had run in the parent process")
    assert child.returncode == 0 and "videos 4" in stdout, stderr[-2000:]


def test_tasks_stage_in_folders_of_their_own(tmp_path):
    source = _parquet_source(tmp_path / "src", [_rows([b"x", b"y"], ["a", "a.proxy"])])
    entries, _ = open_source(source).list()
    tasks = [prepare_module._task(e, "Fear", None, tmp_path, tmp_path / "tmp", link=False, proxy=True,
                                  proxy_options=None, processor=None) for e in entries]
    folders = [Path(task.staged).parent for task in tasks]
    assert len(set(folders)) == 2 and all(folder.parent == tmp_path / "tmp" for folder in folders)
    # the proxy staged next to `a`'s video is not `a.proxy`'s video
    staged_proxy_of_a = Path(tasks[0].staged).with_name("a.proxy.mp4")
    assert staged_proxy_of_a != Path(tasks[1].staged)


# --------------------------------------------------------------------------------------------------
# B. Folder sources


def test_labels_csv_with_a_byte_order_mark(tmp_path):
    root, _ = _csv_source(tmp_path / "src")
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + (root / "labels.csv").read_bytes())
    result = prepare(root, tmp_path / "out", **OPTIONS)  # before: SourceError, columns ['\ufeffvideo_id', 'label']
    assert result.videos == 6 and result.skipped == []


def test_rows_with_more_fields_than_the_header(tmp_path, capsys):
    root, lines = _csv_source(tmp_path / "src", count=7)
    lines[0] += ",surplus"  # the first row: before, AttributeError traceback ('NoneType' ... 'casefold')
    lines[3] += ",Fear"  # a later row: before, prepared as if nothing were wrong
    lines[5] = "v5"  # a row without its label
    (root / "labels.csv").write_text("\n".join(["video_id,label", *lines]) + "\n")
    out = tmp_path / "out"
    assert _cli(root, out) == 0
    assert "4 videos, 3 skipped" in capsys.readouterr().out
    reasons = {row["origin"]: (row["video_id"], row["reason"]) for row in _report(out)["skipped_rows"]}
    assert reasons["labels.csv line 2"] == ("v0", "3 fields where the header has 2 (an unquoted comma?)")
    assert reasons["labels.csv line 5"] == ("v3", "3 fields where the header has 2 (an unquoted comma?)")
    assert reasons["labels.csv line 7"] == ("v5", "no 'label' value in the row")
    assert _prepared_ids(out) == {"v1", "v2", "v4", "v6"}


def test_csv_line_numbers_count_blank_lines(tmp_path):
    root, lines = _csv_source(tmp_path / "src")
    (root / "labels.csv").write_text("video_id,label\n\n" + "\n".join(lines) + "\nv9,Fear\n")
    result = prepare(root, tmp_path / "out", **OPTIONS)
    assert [row["origin"] for row in result.skipped] == ["labels.csv line 9"]


def test_videos_folder_that_is_a_symbolic_link(tmp_path):
    root, _ = _csv_source(tmp_path / "src")
    shutil.move(root / "videos", tmp_path / "elsewhere")
    (root / "videos").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a cycle
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace("v2,", "videos/v2.mp4,"))
    result = prepare(root, tmp_path / "out", **OPTIONS)  # before: "missing file" for every row
    assert result.videos == 6 and result.skipped == []


def test_dangling_links_are_reported(tmp_path):
    classes = tmp_path / "classes"
    for i in range(4):
        _clip(classes / LABELS[i % 2] / f"v{i}.mp4", i)
    (classes / "Fear" / "ghost.mp4").symlink_to(tmp_path / "nowhere.mp4")
    result = prepare(classes, tmp_path / "out", **OPTIONS)  # before: ghost.mp4 dropped without a word
    assert result.videos == 4
    assert [(row["video_id"], row["origin"]) for row in result.skipped] == [("ghost", "Fear/ghost.mp4")]
    assert result.skipped[0]["reason"].startswith("broken symbolic link")
    root, _ = _csv_source(tmp_path / "src")
    (root / "videos" / "v9.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "v9,Fear\n")
    result = prepare(root, tmp_path / "out2", **OPTIONS)
    assert [row["reason"] for row in result.skipped] == [f"broken symbolic link {root / 'videos' / 'v9.mp4'}"]


def test_paths_outside_the_source_are_refused_unless_allowed(tmp_path, capsys):
    root, lines = _csv_source(tmp_path / "src")
    _clip(tmp_path / "private" / "secret.mp4", 3)
    (root / "labels.csv").write_text("\n".join(["video_id,label", *lines, f"{tmp_path}/private/secret.mp4,Fear",
                                                "../private/secret.mp4,Fear", "videos/../videos/v0.mp4,Fear"]) + "\n")
    out = tmp_path / "out"
    assert _cli(root, out) == 0  # before: the secret file was copied into the folder meant for the Hub
    assert "6 videos, 3 skipped" in capsys.readouterr().out
    reasons = {row["origin"]: row["reason"] for row in _report(out)["skipped_rows"]}
    assert "is outside the source folder" in reasons["labels.csv line 8"]
    assert "is outside the source folder" in reasons["labels.csv line 9"]
    assert "--allow-outside-source" in reasons["labels.csv line 9"]
    assert "duplicate id 'v0'" in reasons["labels.csv line 10"]  # inside the source: not refused
    assert not list(out.rglob("secret*"))
    allowed = prepare(root, tmp_path / "allowed", allow_outside_source=True, **OPTIONS)
    assert "secret" in _prepared_ids(tmp_path / "allowed")
    assert [row["origin"] for row in allowed.skipped] == ["labels.csv line 9", "labels.csv line 10"]  # duplicates
    assert _cli(root, tmp_path / "allowed-cli", "--allow-outside-source") == 0
    assert "secret" in _prepared_ids(tmp_path / "allowed-cli")


# --------------------------------------------------------------------------------------------------
# C. Errors of the machine, simulated (runs everywhere)


def _fill_disk_after(monkeypatch, copies: int, code: int = errno.ENOSPC) -> list:
    """`shutil.copyfile` (how a worker stages a folder video) fails with `code` after `copies` copies."""
    real, done = shutil.copyfile, []

    def copyfile(source, target, *args, **kwargs):
        if "/.prepare/tmp/" in str(target):
            if len(done) >= copies:
                raise OSError(code, os.strerror(code), str(target))
            done.append(target)
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(prepare_module.shutil, "copyfile", copyfile)
    return done


@pytest.mark.parametrize("num_proc", [1, 2])
def test_disk_full_stops_the_run_and_the_rerun_prepares_everything(tmp_path, monkeypatch, capsys, num_proc):
    root, _ = _csv_source(tmp_path / "src", count=8)
    out = tmp_path / "out"
    _fill_disk_after(monkeypatch, 3)
    code = _cli(root, out, "--num-proc", str(num_proc))
    assert code == cli.EXIT_ENVIRONMENT  # before: 0, with 5 of 8 videos skipped for good
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{out}: No space left on device (ENOSPC) while preparing labels.csv line" in err
    assert "run the same command again" in err
    journal = _journal(out)
    assert journal and all(record["status"] == "ok" for record in journal)
    assert not (out / "preparation_report.json").exists()
    assert not (out / ".prepare" / "tmp").exists()  # staged files do not keep the space
    monkeypatch.undo()
    result = prepare(root, out, num_proc=num_proc, **OPTIONS)
    assert result.videos == 8 and result.skipped == []


def test_disk_full_while_staging_parquet_bytes(tmp_path, monkeypatch):
    blobs = _clip_bytes(tmp_path, 6)
    source = _parquet_source(tmp_path / "src", [_rows(blobs, [f"p{i}" for i in range(6)])])
    real = Path.write_bytes

    def write_bytes(self, data):
        if "/.prepare/tmp/" in str(self) and self.name.startswith("p4"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(PrepareEnvironmentError, match=r"No space left on device \(ENOSPC\)") as error:
        prepare(source, tmp_path / "out", **OPTIONS)  # before: a bare OSError traceback from the main process
    assert error.value.errno == errno.ENOSPC
    assert {r["video_id"] for r in _journal(tmp_path / "out")} <= {"p0", "p1", "p2", "p3"}
    monkeypatch.undo()
    result = prepare(source, tmp_path / "out", **OPTIONS)
    assert result.videos == 6 and result.skipped == []


def _wrapped_disk_full(task, staged):
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise VideoReadError(staged, "cannot write its proxy") from None


def _safetensors_disk_full(task, staged):
    raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")


@pytest.mark.parametrize("proxy_files", [_wrapped_disk_full, _safetensors_disk_full])
def test_environment_error_inside_a_video_reader_is_not_a_bad_video(tmp_path, monkeypatch, proxy_files):
    """A writer that turns ENOSPC into a `VideoReadError` (`from None`), or a library whose error has no
    errno (safetensors), still stops the run."""
    monkeypatch.setattr(prepare_module, "_write_proxy_files", proxy_files)
    video = _clip(tmp_path / "v.mp4")
    out = tmp_path / "out"
    staged = out / ".prepare" / "tmp" / "h" / "v.mp4"
    task = Task(video_id="v", label="Fear", origin="labels.csv line 2", staged=str(staged), source_file=str(video),
                relative="videos/00/v.mp4", out_dir=str(out), link=False, proxy=True, proxy_options=None,
                processor=None)
    with pytest.raises(PrepareEnvironmentError, match="ENOSPC.*labels.csv line 2"):
        process_video(task)
    assert not staged.exists() and not staged.parent.exists()
    # a real bad input is still a skipped video
    video.write_bytes(b"not a video")
    record = process_video(task)
    assert record["status"] == "skipped" and "not a readable media file" in record["reason"]


def test_environment_error_survives_the_trip_from_a_worker():
    error = PrepareEnvironmentError(errno.ENOSPC, "/out: No space left on device (ENOSPC)")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is PrepareEnvironmentError and back.errno == errno.ENOSPC and str(back) == str(error)
    assert isinstance(back, OSError) and not isinstance(back, ValueError)


def test_environment_errno_classification():
    assert environment_errno(OSError(errno.ENOSPC, "full")) == errno.ENOSPC
    assert environment_errno(PermissionError(errno.EACCES, "denied")) == errno.EACCES
    assert environment_errno(OSError(errno.EROFS, "ro")) == errno.EROFS
    assert environment_errno(OSError(errno.ENOENT, "gone")) is None
    assert environment_errno(OSError("Error writing bytes. Detail: [errno 28] No space left")) == errno.ENOSPC
    assert environment_errno(VideoReadError("x", "not a readable media file")) is None
    assert environment_errno("OSError: [Errno 28] No space left on device: 'x'") == errno.ENOSPC
    assert environment_errno("not a readable media file ([Errno 1094995529] Invalid data)") is None
    # safetensors (Rust) has no errno attribute, only the text
    assert environment_errno(RuntimeError("I/O error: No space left on device (os error 28)")) == errno.ENOSPC
    assert environment_errno(RuntimeError("I/O error: not found (os error 2)")) is None
    # FFmpeg reports a generic failure on a bad file as -1 (EPERM): a bad video, not the machine, even when
    # wrapped in a VideoReadError whose text quotes it; a full disk reported by FFmpeg is the machine's.
    import av

    def wrapped(error):
        try:
            raise error
        except OSError:
            try:
                raise VideoReadError("x.mp4", f"cannot seek ({error})") from None
            except VideoReadError as outer:
                return outer

    assert environment_errno(wrapped(av.error.PermissionError(errno.EPERM, "Operation not permitted"))) is None
    assert environment_errno(av.error.OSError(errno.EIO, "Input/output error")) is None
    assert environment_errno(wrapped(av.error.OSError(errno.ENOSPC, "No space left"))) == errno.ENOSPC
    assert environment_errno(PermissionError(errno.EPERM, "not permitted")) == errno.EPERM


def test_videos_journalled_as_skipped_for_a_machine_error_are_retried(tmp_path):
    root, _ = _csv_source(tmp_path / "src")
    out = tmp_path / "out"
    first = prepare(root, out, **OPTIONS)
    assert first.videos == 6
    journal = out / ".prepare" / "journal.jsonl"
    old = [  # what older versions wrote for a full disk, a quota, and (kept as it is) a bad video
        {"video_id": "v0", "label": "Excitation", "origin": "labels.csv line 2", "status": "skipped",
         "reason": "OSError: [Errno 28] No space left on device: PosixPath('/out/.prepare/tmp/v0.mp4')"},
        {"video_id": "v1", "label": "Fear", "origin": "labels.csv line 3", "status": "skipped",
         "reason": "OSError: [Errno 122] Disk quota exceeded"},
        {"video_id": "v2", "label": "Excitation", "origin": "labels.csv line 4", "status": "skipped",
         "reason": "not a readable media file (Invalid data found when processing input)"},
    ]
    journal.write_text(journal.read_text() + "".join(json.dumps(r) + "\n" for r in old))
    result = prepare(root, out, **OPTIONS)
    assert result.videos == 5
    assert [(row["video_id"], row["reason"]) for row in result.skipped] == [("v2", old[2]["reason"])]


def test_unwritable_output_folder_gets_one_message(tmp_path, monkeypatch, capsys):
    root, _ = _csv_source(tmp_path / "src", count=4)

    def read_only(fd):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(prepare_module.os, "fsync", read_only)
    out = tmp_path / "out"
    assert _cli(root, out) == cli.EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert f"{out}: Read-only file system (EROFS)" in err and "Traceback" not in err
    assert not (out / ".prepare").exists() and not list(out.iterdir())
    (tmp_path / "a_file").write_text("")
    assert _cli(root, tmp_path / "a_file") == 2
    assert "exists and is not a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# D. A real full disk: a size-limited tmpfs (needs root and mount; skipped elsewhere)


def _mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` on `folder`; returns why not when it cannot."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a size-limited tmpfs needs root and mount(8)"
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"cannot mount a tmpfs here: {done.stderr.strip()}"


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


@pytest.mark.parametrize("layout", ["csv", "parquet", "csv-proxy"])
def test_full_tmpfs_loses_nothing_after_a_rerun_with_space(tmp_path, capsys, layout):
    count = 12
    if layout == "parquet":
        blobs = _clip_bytes(tmp_path, count)
        rows = _rows(blobs, [f"v{i}" for i in range(count)]) + [
            {"file_name": "broken.mp4", "label": "Fear", "video_data": b"not a video at all"}]
        root = _parquet_source(tmp_path / "src", [rows])
    else:
        root, _ = _csv_source(tmp_path / "src", count=count)
        (root / "videos" / "broken.mp4").write_bytes(b"not a video at all")
        (root / "labels.csv").write_text((root / "labels.csv").read_text() + "broken,Fear\n")
    total = sum(len(b) for b in blobs) if layout == "parquet" else sum(
        p.stat().st_size for p in (root / "videos").glob("v*.mp4"))
    disk = tmp_path / "disk"
    # room for the write check, the state and about a third of the videos (tmpfs counts whole 4 KiB pages)
    reason = _mount_tmpfs(disk, f"{(total // 3) // 1024 + 24}k")
    if reason:
        pytest.skip(reason)
    out = disk / "emotions"
    extra = ["--proxy", "--num-proc", "2"] if layout == "csv-proxy" else []
    try:
        assert _cli(root, out, *extra) == cli.EXIT_ENVIRONMENT
        err = capsys.readouterr().err
        assert "No space left on device (ENOSPC)" in err and "Traceback" not in err, err
        assert all(record["status"] == "ok" or record["video_id"] == "broken" for record in _journal(out))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert _cli(root, out, *extra) == 0, capsys.readouterr().err
        report = _report(out)
        assert report["videos"] == count
        assert [row["video_id"] for row in report["skipped_rows"]] == ["broken"]
        assert environment_errno(report["skipped_rows"][0]["reason"]) is None
        assert _prepared_ids(out) == {f"v{i}" for i in range(count)}
    finally:
        _unmount(disk)
