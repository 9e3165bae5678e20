"""Turn a source into a dataset folder that `load_dataset` reads (`emotions-hf prepare`).

The source is listed first (no media read); rows whose label is outside the label set, whose id
repeats an earlier row, whose file is missing, and shards that cannot be read are problems: with
`strict=True` they stop preparation with an error listing every one, otherwise they are skipped and
listed in the report. Then each remaining video is written once into `videos/`, opened and checked
(`emotions_hf.decoding.probe`: it must decode and have frames), and, with `proxy=True`, given its
training proxy and MFCC cache. Videos that fail are skipped with the reason. Finally the variants
and splits are drawn (`variants.draw_splits`), every video's files are placed in the folders of its
membership group (`card.py`: `videos/<group>_<hh>/`, so that each config split lists exactly its
videos), and the metadata files, card and report written.

Placement: new videos are written to `.prepare/unplaced/` (their group is known only once every video
is checked), then moved into their group's folders; a rerun that draws otherwise (another seed, other
variants, videos added or gone) moves them again, and a video no config uses any more goes back to
`.prepare/unplaced/`. Each move is journalled; a file the journal does not place where it is (a move
interrupted before its record) is looked for in the media folders, and a video whose file is gone is
redone. Files in the media folders that no video of the folder claims are moved to `.prepare/stray/`,
so that no config lists a file outside its metadata. A folder written by an older version (one
`videos/<hh>/` for all videos) is migrated the same way: its files are moved, nothing is redone.

Resuming: every finished video (kept or skipped) is appended to `.prepare/journal.jsonl` after its
files are in place (written to `.prepare/tmp/` first, then renamed), so a run that is interrupted
and started again continues where it stopped; a run after a complete one only rewrites the card
(and moves files when the draw changed).
Each video is staged in a folder of its own under `.prepare/tmp/` (named by a hash of its id), so
that no two videos' staged files can meet, whatever their ids.

Ids become file names: an id that cannot be one (empty, `.`/`..`, a path separator or a control
character such as a NUL byte, over `MAX_ID_BYTES` bytes) is a problem of its row, reported like a
bad label.

Errors of the machine, not of the data (disk full, quota, read-only file system, permission denied,
too many open files, out of memory: `errors.ENVIRONMENT_ERRNOS`) stop the run with one
`PrepareEnvironmentError` that names the folder and the error; the video that met it is not
journalled, so the next run (with space) retries it. Records that older versions journalled as skipped
for such a reason (`[Errno 28]`, ...) are retried too. `emotions-hf prepare` (`emotions_hf.cli`) prints
the message and exits with status 3 (2 for bad input or options).

Every kind of source is read the same way (`sources.Source`): its listing, then its media batch by
batch, each batch staged before the next is read; a new kind of source needs no change here.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import sys
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import VideoReadError, check_writable, environment_errno
from ..labels import POLARITIES, LabelSet
from .card import (
    MEDIA_FOLDERS,
    UNPLACED_DIR,
    dataset_features,
    group_name,
    media_names,
    metadata_filename,
    preparation_text,
    render_card,
    shard_dir,
    split_groups,
)
from .options import PrepareOptions
from .sources import Media, Source, SourceEntry, SourceProblem, open_source, shown
from .variants import SPLITS, draw_splits, memberships, split_class_counts

REPORT_FILE = "preparation_report.json"
STATE_DIR = ".prepare"
JOURNAL_FILE = "journal.jsonl"
STATE_FILE = "state.json"
STRAY_DIR = ".prepare/stray"  # files found in the media folders that no video of the folder claims
MAX_LISTED = 50  # problems spelled out in an error message
# Longest id, in UTF-8 bytes: names get suffixes (`.mfcc.safetensors.part`: 22 bytes) and must fit in 255.
MAX_ID_BYTES = 200


class PrepareError(ValueError):
    """Preparation cannot go on; the message lists the offending rows."""


class PrepareEnvironmentError(OSError):
    """The machine, not the data, stopped preparation (disk full, quota, read-only, permission, limits).

    Nothing was recorded for the videos in progress; running `prepare` again once the cause is fixed
    continues where it stopped. `errno` is the error's number (None when a worker process died).
    """

    def __init__(self, code: int | None, message: str):
        super().__init__(code, message)  # (errno, strerror): also what pickling passes back

    def __str__(self) -> str:
        return self.strerror


def _environment_error(error: BaseException, out_dir, during: str = "") -> PrepareEnvironmentError | None:
    """A `PrepareEnvironmentError` for `error` when it is an error of the machine, else None."""
    code = environment_errno(error)
    if code is None:
        return None
    free = ""
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        with suppress(OSError):
            free = f" ({shutil.disk_usage(out_dir).free / 2**20:.1f} MiB free there now)"
    return PrepareEnvironmentError(code, (
        f"{out_dir}: {os.strerror(code)} ({errno.errorcode.get(code, code)}){during}: {error}{free}. "
        "Nothing was recorded as skipped for it: fix the cause (space, quota, permissions, limits) and run the "
        "same command again; the finished videos are kept and the others are retried"))


@contextmanager
def _stop_on_environment_errors(out_dir: Path) -> Iterator[None]:
    """Turn an error of the machine met anywhere in the run into one `PrepareEnvironmentError`."""
    try:
        yield
    except (PrepareEnvironmentError, ValueError):  # ValueError: PrepareError, SourceError (the data's fault)
        raise
    except BrokenProcessPool as error:  # a worker was killed (out of memory?): its video was not journalled
        raise PrepareEnvironmentError(None, f"{out_dir}: a worker process died ({error}); run the same command "
                                            "again, perhaps with a smaller --num-proc; the finished videos are "
                                            "kept and the others are retried") from error
    except Exception as error:  # OSError, or a library's own type (safetensors) that names an errno
        environment = _environment_error(error, out_dir)
        if environment is None:
            raise
        raise environment from error


@dataclass(frozen=True)
class PrepareResult:
    out_dir: Path
    videos: int
    skipped: list[dict]
    counts: dict
    report_path: Path


# --------------------------------------------------------------------------------------------------
# Listing and triage


def _triage(entries: list[SourceEntry], label_set: LabelSet) -> tuple[list[tuple[SourceEntry, str]], list[dict]]:
    """Split listed rows into (entry, class name) to process and problems {video_id, origin, reason}."""
    valid, problems, first_seen = [], [], {}
    for entry in entries:
        try:
            label = label_set.normalize_label(entry.raw_label)
        except (ValueError, TypeError) as error:
            problems.append(_problem(entry, f"label outside the label set: {error}"))
            continue
        if entry.video_id in first_seen:
            problems.append(_problem(entry, f"duplicate id {entry.video_id!r} (first at {first_seen[entry.video_id]})"))
            continue
        first_seen[entry.video_id] = entry.origin
        unsafe = _unsafe_id(entry.video_id)
        if unsafe is not None:
            problems.append(_problem(entry, f"id {shown(entry.video_id)} cannot be a file name: {unsafe}"))
            continue
        if entry.path is not None and not entry.path.is_file():
            what = "broken symbolic link" if entry.path.is_symlink() else "missing file"
            problems.append(_problem(entry, f"{what} {entry.path}"))
            continue
        valid.append((entry, label))
    return valid, problems


def _unsafe_id(video_id: str) -> str | None:
    """Why `video_id` cannot name the video's files (`videos/<2 hex>/<id>.mp4` and the staged ones), or None."""
    if not video_id:
        return "it is empty"
    if video_id in (".", ".."):
        return "it names a folder"
    try:
        size = len(video_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    bad = sorted({c for c in video_id if c in "/\\" or unicodedata.category(c) == "Cc"})
    if bad:
        return "it holds " + ", ".join(repr(c) for c in bad)
    if size > MAX_ID_BYTES:
        return f"it is {size} bytes long (at most {MAX_ID_BYTES} bytes of UTF-8)"
    return None


def _problem(entry: SourceEntry, reason: str) -> dict:
    return {"video_id": entry.video_id, "origin": entry.origin, "reason": reason}


def _raise_listing(problems: list[dict], source) -> None:
    lines = [f"  {p['origin']}: {p['reason']}" for p in problems[:MAX_LISTED]]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise PrepareError(f"{source}: {len(problems)} rows cannot be prepared (strict mode):\n" + "\n".join(lines) + more)


# --------------------------------------------------------------------------------------------------
# Per-video work (runs in worker processes with num_proc > 1)


@dataclass(frozen=True)
class Task:
    video_id: str
    label: str
    origin: str
    staged: str  # the video's file in its own folder of .prepare/tmp (written by the main process or the worker)
    source_file: str | None  # a file the source handed over (`sources.Media`), to copy or link into `staged`
    relative: str  # destination inside the dataset folder (under .prepare/unplaced/ until the draw places it)
    out_dir: str
    link: bool
    proxy: bool
    proxy_options: dict | None
    processor: object | None


def staging_dir(video_id: str) -> str:
    """The folder of .prepare/tmp where one video's files are staged: ids differ, so do their folders."""
    return hashlib.sha1(video_id.encode("utf-8")).hexdigest()


def _stage(task: Task) -> None:
    if task.source_file is None:
        return
    staged = Path(task.staged)
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)
    if task.link:
        try:
            os.link(task.source_file, staged)
            return
        except OSError:  # another file system: copy instead
            pass
    shutil.copyfile(task.source_file, staged)


def _clear_staging(staged: Path) -> None:
    with suppress(OSError):
        staged.unlink(missing_ok=True)
    with suppress(OSError):  # the video's own staging folder, empty now (not .prepare/tmp itself)
        staged.parent.rmdir()


def process_video(task: Task) -> dict:
    """Write, validate (and proxy) one video; returns its journal record, kept or skipped.

    Raises `PrepareEnvironmentError` (and returns no record) when the machine, not the video, failed.
    """
    from ..decoding import probe

    record = {"video_id": task.video_id, "label": task.label, "origin": task.origin}
    staged = Path(task.staged)
    try:
        _stage(task)
        info = probe(staged)
        if info.num_frames < 1 or not info.duration > 0:
            raise VideoReadError(task.origin, f"no frames (num_frames={info.num_frames}, duration={info.duration})")
        destination = Path(task.out_dir) / task.relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if task.proxy:
            record.update(_write_proxy_files(task, staged))
        os.replace(staged, destination)
    except Exception as error:  # a full disk shows up in any library's own error type
        _clear_staging(staged)
        environment = _environment_error(error, task.out_dir, f" while preparing {task.origin}")
        if environment is not None:  # not the video's fault: no record, the next run retries it
            raise environment from None
        if not isinstance(error, VideoReadError | OSError):
            raise
        reason = error.reason if isinstance(error, VideoReadError) else f"{type(error).__name__}: {error}"
        return {**record, "status": "skipped", "reason": reason}
    _clear_staging(staged)
    return {**record, "status": "ok", "file_name": task.relative, "duration": info.duration,
            "has_audio": info.has_audio, "num_frames": info.num_frames, "fps": info.fps, "width": info.width,
            "height": info.height}


def proxy_settings(proxy_options: dict | None, processor) -> dict:
    """What a video's proxy and MFCC cache are made with, as journalled: a rerun with other settings (or a
    newer file format) redoes them instead of keeping stale files."""
    from ..proxy import MFCC_CACHE_VERSION, PROXY_VERSION

    settings = {"proxy_version": PROXY_VERSION, "proxy_options": proxy_options or {},
                "mfcc_version": MFCC_CACHE_VERSION, "mfcc": dataclasses.asdict(processor.mfcc_settings)}
    return json.loads(json.dumps(settings, sort_keys=True))  # as it reads back from the journal


def _write_proxy_files(task: Task, staged: Path) -> dict:
    from ..proxy import write_mfcc_cache, write_proxy

    out_dir = Path(task.out_dir)
    unplaced = media_names(task.video_id, Path(task.relative).name, "")
    names = {"proxy_file_name": unplaced["proxy_file_name"], "mfcc_file_name": unplaced["mfcc_file_name"],
             "proxy_settings": proxy_settings(task.proxy_options, task.processor)}
    staged_proxy = staged.with_name(f"{task.video_id}.proxy.mp4")
    staged_mfcc = staged.with_name(f"{task.video_id}.mfcc.safetensors")
    try:
        write_proxy(staged, staged_proxy, **(task.proxy_options or {}))
        write_mfcc_cache(staged, staged_mfcc, task.processor)
        for staged_file, key in ((staged_proxy, "proxy_file_name"), (staged_mfcc, "mfcc_file_name")):
            target = out_dir / names[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_file, target)
    finally:
        staged_proxy.unlink(missing_ok=True)
        staged_mfcc.unlink(missing_ok=True)
    return names


# --------------------------------------------------------------------------------------------------
# Journal


class Journal:
    """Append-only record of finished videos; a torn last line (interrupted write) is ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("video_id"), str):
                    self.records[record["video_id"]] = record
        self._handle = None

    def append(self, record: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = self.path.is_file() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n")
            # kept open across appends, closed by `close()` in prepare's `finally`
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if torn:  # start after the torn line, which the reader skips
                self._handle.write("\n")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        self.records[record["video_id"]] = record

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            with suppress(OSError):  # a record that could not be flushed (disk full) is redone next run
                handle.close()


def _check_state(state_dir: Path, state: dict) -> str:
    """Refuse to mix two different sources or label sets in one folder; return the folder's preparation id
    (drawn at its first preparation, kept by every rerun)."""
    path = state_dir / STATE_FILE
    previous = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise PrepareError(f"{path}: unreadable ({error}); remove it to prepare this folder again") from None
        keys = ("source", "label_set")
        if {k: previous.get(k) for k in keys} != {k: state.get(k) for k in keys}:
            raise PrepareError(f"{state_dir.parent} was prepared from {previous.get('source')} with label set "
                               f"{previous.get('label_set')!r}; prepare {state.get('source')} into another folder")
    state = {**state, "preparation_id": previous.get("preparation_id") or uuid.uuid4().hex}
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(state, indent=2).encode("utf-8"))
    return state["preparation_id"]


def _write_atomic(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".partial")
    staged.write_bytes(data)
    os.replace(staged, path)


# --------------------------------------------------------------------------------------------------
# The run


def prepare(source: str | Path, out_dir: str | Path, options: PrepareOptions | None = None,
            **overrides) -> PrepareResult:
    """Prepare `source` into the dataset folder `out_dir` and return what was done.

    Args:
        source: parquet shards (`data/*.parquet`, the official release), a folder of videos, or any path
            `sources.open_source` opens.
        options: a `PrepareOptions` (label set, variant draws, processes, proxies, strictness, columns...);
            the keyword `overrides`, named like its fields (`label_set="ve8"`, `proxy=True`), replace its
            values, or make the options by themselves when it is None.

    Raises:
        PrepareError (a `ValueError`): bad options, nothing valid to prepare, `strict` problems.
        PrepareEnvironmentError (an `OSError`): the machine failed (disk full, read-only, permissions...);
            nothing was recorded for the videos in progress, and running again continues.
    """
    options = PrepareOptions(**overrides) if options is None else dataclasses.replace(options, **overrides)
    out_dir = Path(out_dir)
    with _stop_on_environment_errors(out_dir):
        return _prepare(source, out_dir, options)


@dataclass(frozen=True)
class _Run:
    """One preparation: where it writes, what it reads and how, what the listing found, and the journal
    of finished videos. `_prepare` makes it; `_process` and `_finish` work from it."""

    out_dir: Path
    source: Source
    options: PrepareOptions
    entries: list[SourceEntry]  # every listed row
    valid: list[tuple[SourceEntry, str]]  # the rows to prepare, with their class name
    problems: list[dict]  # what the listing refused, {video_id, origin, reason}
    journal: Journal
    preparation_id: str

    @property
    def tmp_dir(self) -> Path:
        return self.out_dir / STATE_DIR / "tmp"


def _check_writable(out_dir: Path) -> None:
    """Fail before any work when `out_dir` cannot be written (read-only, no permission, no space left)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PrepareError(f"{out_dir} exists and is not a folder")
    check_writable(out_dir)


def _prepare(source, out_dir: Path, options: PrepareOptions) -> PrepareResult:
    src = open_source(source, **options.source_options)
    if out_dir.resolve().is_relative_to(src.root.resolve()):
        raise PrepareError(f"{out_dir} is inside the source {src.root}; write the dataset folder elsewhere")
    _check_writable(out_dir)
    with _one_preparation_at_a_time(out_dir):
        return _prepare_locked(source, src, out_dir, options)


def _one_preparation_at_a_time(out_dir: Path):
    """A lock on the dataset folder: a second preparation of it (two bench processes of one task, say) waits for
    the first and then finds its work done, instead of clearing the first one's temporary folder and staging the
    same metadata files under it."""
    from filelock import FileLock

    (out_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    return FileLock(out_dir / STATE_DIR / "prepare.lock")


def _prepare_locked(source, src: Source, out_dir: Path, options: PrepareOptions) -> PrepareResult:
    label_set = options.labels
    entries, source_problems = src.list()
    valid, problems = _triage(entries, label_set)
    problems = [{"video_id": p.video_id, "origin": p.origin, "reason": p.reason} for p in source_problems] + problems
    if options.strict and problems:
        _raise_listing(problems, source)
    processor = options.processor
    if options.proxy and processor is None:
        from ..processing_avcanet import AVCANetProcessor

        processor = AVCANetProcessor()
    if options.proxy and "short_side" not in (options.proxy_options or {}):
        # The size training decodes at (the paper's full-short-side crop of 112 px needs no resize at all), but never
        # above the default: multi-scale crops would ask for 224 px at 3x the decoding cost, and upscale instead.
        from ..proxy import PROXY_SHORT_SIDE

        short_side = min(PROXY_SHORT_SIDE, processor.training_short_side())
        options = dataclasses.replace(options, proxy_options={**(options.proxy_options or {}), "short_side": short_side})

    state_dir = out_dir / STATE_DIR
    preparation_id = _check_state(state_dir, {"source": src.identity(), "label_set": label_set.name})
    run = _Run(out_dir=out_dir, source=src, options=options, entries=entries, valid=valid, problems=problems,
               journal=Journal(state_dir / JOURNAL_FILE), preparation_id=preparation_id)
    shutil.rmtree(run.tmp_dir, ignore_errors=True)  # what an interrupted run left (it holds no finished work)
    run.tmp_dir.mkdir(parents=True, exist_ok=True)
    settings = proxy_settings(options.proxy_options, processor) if options.proxy else None
    gone = _locate(run)
    pending = [(entry, label) for entry, label in valid
               if entry.video_id in gone or _needs_work(run.journal.records.get(entry.video_id), settings)]
    _process(run, pending, {"link": options.link, "proxy": options.proxy, "proxy_options": options.proxy_options,
                            "processor": processor})
    return _finish(run)


def _needs_work(record: dict | None, settings: dict | None) -> bool:
    """Whether a video must be (re)done; `settings` are the current `proxy_settings`, None without proxies."""
    if record is None:
        return True
    if record.get("status") != "ok" and environment_errno(str(record.get("reason"))) is not None:
        return True  # journalled as skipped by an older version for a machine error (disk full...): retry
    return settings is not None and record.get("status") == "ok" and record.get("proxy_settings") != settings


def _process(run: _Run, pending: list[tuple[SourceEntry, str]], common: dict) -> None:
    """Stage, check (and proxy) the `pending` videos, batch by batch as the source hands their media over;
    `common` are the `Task` fields every video shares."""
    labels = {entry.video_id: label for entry, label in pending}
    num_proc = run.options.num_proc
    bar = tqdm(total=len(run.valid), initial=len(run.valid) - len(pending), desc="prepare", unit="video",
               disable=not run.options.progress)
    executor = ProcessPoolExecutor(num_proc, initializer=_worker_init) if num_proc > 1 and pending else None
    try:
        for batch in run.source.media([entry for entry, _ in pending]):
            tasks = [task for entry, media in batch
                     if (task := _staged_task(run, entry, labels[entry.video_id], media, common, bar)) is not None]
            del batch  # its bytes are in the staged files now: one batch in memory at a time
            _run_tasks(tasks, executor, run.journal, bar)
    finally:
        bar.close()
        run.journal.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        shutil.rmtree(run.tmp_dir, ignore_errors=True)  # frees the space of staged files after an error too


def _task(entry: SourceEntry, label: str, source_file: Path | None, out_dir: Path, tmp_dir: Path, **common) -> Task:
    name = f"{entry.video_id}{entry.extension}"
    return Task(video_id=entry.video_id, label=label, origin=entry.origin,
                staged=str(tmp_dir / staging_dir(entry.video_id) / name),
                source_file=None if source_file is None else str(source_file),
                relative=media_names(entry.video_id, name, "")["file_name"], out_dir=str(out_dir), **common)


def _staged_task(run: _Run, entry: SourceEntry, label: str, media: Media | SourceProblem, common: dict,
                 bar) -> Task | None:
    """The task of one video, with its bytes staged when the source read them (a file is staged by the
    worker); None, journalled as skipped, when its media cannot be had."""
    task = _task(entry, label, media if isinstance(media, Path) else None, run.out_dir, run.tmp_dir, **common)
    reason = media.reason if isinstance(media, SourceProblem) else None
    if isinstance(media, bytes):
        reason = _write_staged(media, Path(task.staged))
    if reason is None:
        return task
    run.journal.append({**_problem(entry, reason), "label": label, "status": "skipped"})
    bar.update(1)
    return None


def _write_staged(data: bytes, staged: Path) -> str | None:
    """Write a video's bytes to its staging file; why not when that is the file's fault. A machine error
    (disk full) stops the run (`prepare`), nothing recorded."""
    try:
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(data)
    except OSError as error:
        if environment_errno(error) is not None:
            raise
        return f"cannot stage the video ({type(error).__name__}: {error})"
    return None


def _worker_init() -> None:
    """Workers are forked: a torch thread pool the parent started (an MFCC computed there, a notebook's work)
    would hang a child's first parallel op (OpenMP after fork), so each worker computes on one thread; the
    parallelism is across workers."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _run_tasks(tasks: list[Task], executor, journal: Journal, bar) -> None:
    results = executor.map(process_video, tasks) if executor else map(process_video, tasks)
    for record in results:
        journal.append(record)
        bar.update(1)


# --------------------------------------------------------------------------------------------------
# Placement: every video's files in the folders of its membership group


def _media_index(out_dir: Path) -> dict[tuple[str, str, str], str]:
    """Every file of the media folders and of `.prepare/unplaced/`, keyed by (top folder, the folder's two
    hex digits, file name): where a file that is not where the journal says can be (a move interrupted before
    its record)."""
    index = {}
    for top in MEDIA_FOLDERS.values():
        for base in (out_dir / top, out_dir / UNPLACED_DIR / top):
            if not base.is_dir():
                continue
            for folder in os.scandir(base):
                if folder.is_dir(follow_symlinks=False):
                    for item in os.scandir(folder.path):
                        if item.is_file():
                            index[(top, folder.name[-2:], item.name)] = Path(item.path).relative_to(out_dir).as_posix()
    return index


def _locate(run: _Run) -> set[str]:
    """Check that the files of every journalled video of the listing are where the journal says. A file found
    elsewhere in the media folders gets its record corrected; the ids of videos with a file gone are returned
    (they are redone)."""
    out_dir, journal, index, gone = run.out_dir, run.journal, None, set()
    for entry, _ in run.valid:
        record = journal.records.get(entry.video_id)
        if record is None or record.get("status") != "ok":
            continue
        moved = {}
        for key, top in MEDIA_FOLDERS.items():
            name = record.get(key)
            if name is None or (out_dir / name).is_file():
                continue
            if index is None:
                index = _media_index(out_dir)
            unplaced = media_names(entry.video_id, Path(record["file_name"]).name, "")[key]
            shard = shard_dir(entry.video_id)
            found = next((index[(top, shard, Path(n).name)] for n in (name, unplaced)
                          if (top, shard, Path(n).name) in index), None)
            if found is None:
                gone.add(entry.video_id)
                break
            moved[key] = found
        if moved and entry.video_id not in gone:
            journal.append({**record, **moved})
    return gone


def _move(out_dir: Path, record: dict, names: dict[str, str], missing_ok: bool = False) -> dict:
    """Move the files of `record` to `names` (same keys); returns the record with the new names."""
    for key, target in names.items():
        current = record[key]
        if current == target:
            continue
        source, destination = out_dir / current, out_dir / target
        if source.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
        elif not destination.is_file():
            if missing_ok:
                return record
            raise PrepareError(f"{source}: the file of video {record['video_id']!r} disappeared while preparing; "
                               "run the same command again to redo it")
    return {**record, **names}


def _place(run: _Run, kept: list[dict], groups: list[str]) -> list[dict]:
    """Move every kept video's files into the folders of its group (`groups[i]` for `kept[i]`), the files of
    journalled videos no config uses into `.prepare/unplaced/`, and what no video claims into
    `.prepare/stray/`; returns the kept records with their new names. Each video's move is journalled."""
    out_dir, journal = run.out_dir, run.journal
    placed = []
    for record, group in zip(kept, groups):
        keys = [key for key in MEDIA_FOLDERS if key in record]
        names = media_names(record["video_id"], Path(record["file_name"]).name, group)
        moved = _move(out_dir, record, {key: names[key] for key in keys})
        if moved is not record:
            journal.append({**journal.records[record["video_id"]], **{key: moved[key] for key in keys}})
        placed.append(moved)
    in_use = {record["video_id"] for record in kept}
    for video_id, record in list(journal.records.items()):
        if record.get("status") == "ok" and video_id not in in_use and "file_name" in record:
            names = media_names(video_id, Path(record["file_name"]).name, "")
            moved = _move(out_dir, record, {key: names[key] for key in MEDIA_FOLDERS if key in record},
                          missing_ok=True)
            if moved is not record:
                journal.append(moved)
    _sweep(out_dir, {record[key] for record in placed for key in MEDIA_FOLDERS if key in record})
    return placed


def _sweep(out_dir: Path, claimed: set[str]) -> None:
    """Move the files of the media folders that no kept video claims to `.prepare/stray/` (a config's folders
    hold its videos and nothing else), and remove the folders left empty."""
    for top in MEDIA_FOLDERS.values():
        base = out_dir / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):  # files before their folders
            relative = path.relative_to(out_dir).as_posix()
            if path.is_dir() and not path.is_symlink():
                with suppress(OSError):
                    path.rmdir()  # only when empty
            elif relative not in claimed:
                stray = out_dir / STRAY_DIR / relative
                stray.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, stray)
        with suppress(OSError):
            base.rmdir()
    unplaced = out_dir / UNPLACED_DIR
    if unplaced.is_dir():
        for path in sorted(unplaced.rglob("*"), reverse=True):
            if path.is_dir():
                with suppress(OSError):
                    path.rmdir()


def _finish(run: _Run) -> PrepareResult:
    """Draw the splits over the kept videos, place their files, and write the metadata files, card and report."""
    try:
        return _write_dataset(run)
    finally:
        run.journal.close()


def _write_dataset(run: _Run) -> PrepareResult:
    import pyarrow as pa

    out_dir, src, journal = run.out_dir, run.source, run.journal
    label_set, variants, spec = run.options.labels, run.options.variant_names, run.options.spec
    # labels and origins come from the current listing: a label corrected in the source needs no redo
    records = [{**journal.records[entry.video_id], "label": label, "origin": entry.origin}
               for entry, label in run.valid if entry.video_id in journal.records]
    kept = sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["video_id"])
    skipped = run.problems + [{k: r.get(k) for k in ("video_id", "origin", "reason")} for r in records
                              if r["status"] != "ok"]
    if not kept:
        report = _write_report(out_dir, {"source": src.identity(), "videos": 0}, skipped)
        raise PrepareError(f"{src.root}: no valid video among {len(run.entries)} rows; the reasons are in {report}")
    labels = [r["label"] for r in kept]
    splits = draw_splits([r["video_id"] for r in kept], labels, label_set.labels, variants, spec)
    counts = split_class_counts(splits, labels, label_set.labels)
    empty = [f"{variant}/{split}" for variant, by_split in splits.items() for split in SPLITS if not len(by_split[split])]
    if empty:  # datasets cannot load a split without rows
        raise PrepareError(f"{src.root}: splits {empty} would be empty with {len(kept)} valid videos; use more "
                           "videos, a larger test fraction or a larger test size (the finished videos are kept)")
    with_proxy = run.options.proxy or all("proxy_file_name" in r for r in kept)
    membership = memberships(splits, len(kept))
    kept = _place(run, kept, [group_name(m) for m in membership])
    groups = split_groups(membership)
    features = dataset_features(label_set, with_proxy)
    table = _metadata_table(kept, label_set, with_proxy, run.preparation_id)
    files = {variant: {split: _write_metadata(table.take(pa.array(rows[split], type=pa.int64())), out_dir, variant,
                                              split) for split in SPLITS}
             for variant, rows in splits.items()}
    current = {name for by_split in files.values() for name in by_split.values()}
    for stale in out_dir.glob("metadata-*.parquet"):  # an earlier preparation's draw
        if stale.name not in current:
            stale.unlink()
    summary = {
        "source_kind": src.kind,
        "source": src.identity(),
        "label_set": label_set.name,
        "source_rows": len(run.entries),
        "videos": len(kept),
        "skipped": len(skipped),
        "skipped_by_reason": dict(Counter(_reason_kind(s["reason"]) for s in skipped)),
        "seed": spec.seed,
        "variants": list(variants),
        "balanced_counts": dict(spec.balanced_counts),
        "test_size": spec.test_size,
        "test_fraction": spec.test_fraction,
        "counts": counts,
        "features": list(features),
    }
    report_path = _write_report(out_dir, summary, skipped)
    card = render_card(label_set, files, groups, counts, spec, with_proxy, preparation_text(summary),
                       folder=out_dir.name, pretty_name="eMotions" if label_set.name == "emotions" else label_set.name,
                       videos=len(kept))
    _write_atomic(out_dir / "README.md", card.encode("utf-8"))
    return PrepareResult(out_dir=out_dir, videos=len(kept), skipped=skipped, counts=counts, report_path=report_path)


def _write_metadata(table, out_dir: Path, variant: str, split: str) -> str:
    """Write one split's metadata file, named after its content digest; returns the name."""
    import pyarrow.parquet as pq

    staged = out_dir / f".metadata-{variant}-{split}.partial"
    pq.write_table(table, staged)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()[:10]
    name = metadata_filename(variant, split, digest)
    os.replace(staged, out_dir / name)
    return name


def _reason_kind(reason: str) -> str:
    """A short kind for the report's tally: the text before the first colon or parenthesis."""
    return reason.split(":")[0].split("(")[0].strip()


def _write_report(out_dir: Path, summary: dict, skipped: list[dict]) -> Path:
    path = out_dir / REPORT_FILE
    _write_atomic(path, json.dumps({**summary, "skipped_rows": skipped}, indent=2, default=str).encode("utf-8"))
    return path


def _metadata_table(kept: list[dict], label_set: LabelSet, with_proxy: bool, preparation_id: str):
    """One row per kept video, columns in the order of `dataset_features` (`file_name` -> `video`).

    The folder's preparation id rides in the schema metadata, so the file digests, hence the configs'
    data files, hence `datasets`' cache key, differ between two preparations of the same source: without
    it, loading one folder then another with the same content gave rows pointing into the first."""
    import pyarrow as pa

    columns = {
        "file_name": pa.array([r["file_name"] for r in kept], pa.string()),
        "video_id": pa.array([r["video_id"] for r in kept], pa.string()),
        "label": pa.array([label_set.label2id[r["label"]] for r in kept], pa.int64()),
        "polarity": pa.array([POLARITIES.index(label_set.polarity[r["label"]]) for r in kept], pa.int64()),
        "duration": pa.array([r["duration"] for r in kept], pa.float32()),
        "has_audio": pa.array([r["has_audio"] for r in kept], pa.bool_()),
        "num_frames": pa.array([r["num_frames"] for r in kept], pa.int32()),
        "fps": pa.array([r["fps"] for r in kept], pa.float32()),
        "width": pa.array([r["width"] for r in kept], pa.int32()),
        "height": pa.array([r["height"] for r in kept], pa.int32()),
        "origin": pa.array([r["origin"] for r in kept], pa.string()),
    }
    if with_proxy:
        columns["proxy_file_name"] = pa.array([r["proxy_file_name"] for r in kept], pa.string())
        columns["mfcc_file_name"] = pa.array([r["mfcc_file_name"] for r in kept], pa.string())
    return pa.table(columns).replace_schema_metadata({"emotions_hf_preparation_id": preparation_id})


__all__ = ["PrepareEnvironmentError", "PrepareError", "PrepareResult", "prepare", "process_video"]
