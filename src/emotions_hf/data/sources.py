"""Where the videos come from: the official parquet shards, or a folder of videos with labels.

Every kind of source is a `Source`: it is listed first (ids, raw labels, where each video lives; no
media read), so that label, duplicate and missing-file problems are known before any work starts; its
media are handed over later in batches (a parquet row group's bytes, or a folder's files to copy).
`open_source` picks the kind for a path among `SOURCE_TYPES`; a new kind is a class with `Source`'s
members, registered with `register_source` (`prepare` needs no change).

Layouts:
- parquet: `data/*.parquet` (or `*.parquet`) with one row per video and the mp4 bytes in a column
  (`video_data` in the official release). Column names are detected or given explicitly.
- folder with a labels file: `labels.csv` / `labels.json` / `labels.jsonl` (or any file given),
  with an id or file column and a label column.
- UCF101-style lists: `classInd.txt` with `trainlist01.txt` / `testlist01.txt` (`Class/video [id]`).
- class subfolders: `<Class>/<video>.mp4`.

Folders are walked following symbolic links (each real folder once, so a link cycle ends); a video
file that is a dangling link is listed with its path, so that it is reported as missing. Labels files
and lists are read as UTF-8 with or without a byte-order mark. A labels-file row with more fields
than the header, or without its id or label field, is a problem of its own (reported, the other rows
go on). A reference to a file outside the source (an absolute path or one that climbs out with `..`)
is refused unless `allow_outside_source=True`: the prepared folder is meant to be shared.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from ..errors import environment_errno

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".mpeg", ".mpg", ".webm", ".m4v", ".flv", ".wmv")
VIDEO_COLUMNS = ("video_data", "video", "video_bytes", "bytes", "mp4", "data", "content")
LABEL_COLUMNS = ("label", "emotion", "labels", "class", "category", "class_name", "label_name")
ID_COLUMNS = ("file_name", "filename", "video_id", "id", "name", "video_name", "path", "file")
LABEL_FILES = ("labels.csv", "labels.json", "labels.jsonl", "metadata.csv", "metadata.jsonl", "annotations.csv")
UCF_LISTS = ("trainlist01.txt", "testlist01.txt")


class SourceError(ValueError):
    """The source cannot be listed at all (no videos found, columns missing, a labels file unreadable)."""


@dataclass(frozen=True)
class SourceEntry:
    """One video of a source, before any media is read."""

    video_id: str
    raw_label: object
    origin: str  # human-readable location for reports: a relative path or "shard.parquet row 12"
    path: Path | None = None  # folder sources: the file (may be missing)
    shard: Path | None = None  # parquet sources: the shard, row group and row within it
    row_group: int = -1
    row: int = -1

    @property
    def extension(self) -> str:
        """File extension the video keeps in the dataset folder (the official release's bytes are mp4)."""
        suffix = self.path.suffix.lower() if self.path is not None else ""
        return suffix if suffix in VIDEO_EXTENSIONS else ".mp4"


@dataclass(frozen=True)
class SourceProblem:
    """A shard that cannot be read (its rows are unknown, so it is reported as a whole), a row of a
    labels file that cannot be listed (`video_id` then names it where it is known), or a listed video
    whose media cannot be had (a damaged row group, a row without bytes)."""

    origin: str
    reason: str
    video_id: str | None = None


Media = Path | bytes
"""One video as its source hands it over: a file, which the worker checking the video copies or
hard-links into its staging file (nothing read in the main process), or its bytes, read by the source."""


class Source(Protocol):
    """What `prepare` asks of a source, whatever its kind; `open_source` builds one."""

    kind: ClassVar[str]  # `parquet`, `folder`: the report's `source_kind`
    OPTIONS: ClassVar[tuple[str, ...]]  # the `open_source` keywords the constructor takes after `root`
    root: Path

    @classmethod
    def recognizes(cls, root: Path) -> bool:
        """Whether the existing path `root` is a source of this kind."""

    def identity(self) -> dict:
        """What this source is (kind, resolved root and how it is read): a dataset folder keeps the identity
        of the source it was prepared from and refuses another; the report quotes it."""

    def list(self) -> tuple[list[SourceEntry], list[SourceProblem]]:
        """Every video with its id, raw label and origin (no media read), and what cannot be listed."""

    def media(self, entries: Sequence[SourceEntry]) -> Iterator[list[tuple[SourceEntry, Media | SourceProblem]]]:
        """The media of `entries` (some of this source's listing), batch by batch: a batch is what the
        source reads at once, and it is staged before the next is asked for, which bounds the memory."""


def video_id_of(name: str) -> str:
    """The id of a video from its file name, without folder or video extension: `Fear/00000002.mp4` -> `00000002`."""
    path = Path(str(name).strip())
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else path.name


def shown(value) -> str:
    """`value` as text for a report: as it is when printable, else escaped (a NUL byte, a newline)."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def _pick_column(names: list[str], given: str | None, candidates: tuple[str, ...], what: str, where: str) -> str | None:
    if given is not None:
        if given not in names:
            raise SourceError(f"{where}: no {what} column {given!r}; columns are {names}")
        return given
    folded = {name.casefold(): name for name in names}
    for candidate in candidates:
        if candidate in folded:
            return folded[candidate]
    return None


# --------------------------------------------------------------------------------------------------
# Parquet shards (the official release)


@dataclass(frozen=True)
class ParquetColumns:
    video: str
    label: str
    id: str | None


class ParquetSource:
    """Parquet shards with the mp4 bytes in a column, read row group by row group."""

    kind = "parquet"
    OPTIONS = ("video_column", "label_column", "id_column")  # the `open_source` keywords it takes

    @classmethod
    def recognizes(cls, root: Path) -> bool:
        return root.is_dir() and (any((root / "data").glob("*.parquet")) or any(root.glob("*.parquet")))

    def __init__(self, root: str | Path, video_column: str | None = None, label_column: str | None = None,
                 id_column: str | None = None):
        self.root = Path(root)
        data = self.root / "data"
        self.shards = sorted(data.glob("*.parquet")) if data.is_dir() else []
        if not self.shards:
            self.shards = sorted(self.root.glob("*.parquet"))
        if not self.shards:
            raise SourceError(f"{self.root}: no parquet shards in data/ or at the top level")
        self._given = (video_column, label_column, id_column)
        self._columns: ParquetColumns | None = None

    def identity(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()), "shards": [s.name for s in self.shards],
                "columns": dict(zip(("video", "label", "id"), self._given))}

    def columns(self, schema_names: list[str], binary_names: list[str], where: str) -> ParquetColumns:
        """Detect (once) which columns hold the video bytes, the label and the id."""
        if self._columns is None:
            video_given, label_given, id_given = self._given
            video = _pick_column(schema_names, video_given, VIDEO_COLUMNS, "video", where)
            if video is None and len(binary_names) == 1:
                video = binary_names[0]
            label = _pick_column(schema_names, label_given, LABEL_COLUMNS, "label", where)
            if video is None or label is None:
                raise SourceError(
                    f"{where}: cannot tell which columns hold the video bytes and the label among {schema_names}; "
                    "name them with --video-column / --label-column")
            self._columns = ParquetColumns(video, label, _pick_column(schema_names, id_given, ID_COLUMNS, "id", where))
        return self._columns

    def _column_type(self, shard_file) -> tuple[list[str], list[str]]:
        import pyarrow as pa

        schema = shard_file.schema_arrow
        binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
                  or (pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0)]
        return schema.names, binary

    def list(self) -> tuple[list[SourceEntry], list[SourceProblem]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        entries, problems = [], []
        for shard in self.shards:
            where = shard.relative_to(self.root).as_posix()
            try:
                shard_file = pq.ParquetFile(shard)
                names, binary = self._column_type(shard_file)
                columns = self.columns(names, binary, where)
                missing = [f"{what} column {name!r}" for what, name in
                           (("video", columns.video), ("label", columns.label), ("id", columns.id))
                           if name is not None and name not in names]
                if missing:  # a shard written otherwise than the first one: its rows cannot be read
                    problems.append(SourceProblem(where, f"shard lacks the {' and the '.join(missing)} "
                                                         f"(its columns are {names})"))
                    continue
                wanted = [columns.label] + ([columns.id] if columns.id else [])
                start = 0
                for group in range(shard_file.num_row_groups):
                    table = shard_file.read_row_group(group, columns=wanted)
                    labels = table.column(columns.label).to_pylist()
                    ids = table.column(columns.id).to_pylist() if columns.id else [None] * len(labels)
                    for row, (raw_label, raw_id) in enumerate(zip(labels, ids)):
                        if raw_id is not None and not str(raw_id).strip():
                            raw_id = None
                        video_id = video_id_of(raw_id) if raw_id is not None else f"{shard.stem}-{start + row:06d}"
                        entries.append(SourceEntry(video_id=video_id, raw_label=raw_label, shard=shard,
                                                   origin=f"{where} row {start + row}"
                                                   + (f" ({shown(raw_id)})" if raw_id is not None else ""),
                                                   row_group=group, row=row))
                    start += len(labels)
            except (pa.ArrowException, OSError) as error:  # a damaged or truncated file
                if environment_errno(error) is not None:  # not the shard's fault: the run stops (see prepare)
                    raise
                problems.append(SourceProblem(where, f"unreadable parquet shard ({type(error).__name__}: {error})"))
        return entries, problems

    def media(self, entries: Sequence[SourceEntry]) -> Iterator[list[tuple[SourceEntry, Media | SourceProblem]]]:
        """Row group by row group: only one row group's bytes are in memory at a time."""
        by_group: dict[tuple[Path, int], list[SourceEntry]] = {}
        for entry in entries:
            by_group.setdefault((entry.shard, entry.row_group), []).append(entry)
        for (shard, group), members in by_group.items():
            yield self._group_media(shard, group, members)  # not kept here: the caller drops it when staged

    def _group_media(self, shard: Path, group: int,
                     members: list[SourceEntry]) -> list[tuple[SourceEntry, Media | SourceProblem]]:
        import pyarrow as pa

        try:
            blobs = self.read_videos(shard, group)
        except (pa.ArrowException, OSError) as error:  # a damaged row group: its rows are skipped with the reason
            if environment_errno(error) is not None:  # unless the machine failed: the run stops (see prepare)
                raise
            reason = f"unreadable row group {group} ({type(error).__name__}: {error})"
            return [(entry, SourceProblem(entry.origin, reason, entry.video_id)) for entry in members]
        return [(entry, _row_media(entry, blobs[entry.row])) for entry in members]

    def read_videos(self, shard: Path, row_group: int) -> list[bytes | None]:
        """The video bytes of one row group, in row order (None where a row holds no bytes)."""
        import pyarrow.parquet as pq

        columns = self._columns
        values = pq.ParquetFile(shard).read_row_group(row_group, columns=[columns.video]).column(0).to_pylist()
        return [value.get("bytes") if isinstance(value, dict) else value for value in values]


def _row_media(entry: SourceEntry, blob) -> Media | SourceProblem:
    """A row's video bytes, or why the row has none."""
    if not blob:
        return SourceProblem(entry.origin, "no video bytes in the row", entry.video_id)
    if not isinstance(blob, bytes | bytearray):
        return SourceProblem(entry.origin, f"the video column holds {type(blob).__name__}, not bytes", entry.video_id)
    return bytes(blob)


# --------------------------------------------------------------------------------------------------
# Folders


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under `root` (and every link that is not a folder, dangling ones included), in sorted
    order, following symbolic links to folders; a real folder reached twice (a link cycle) is walked once."""
    seen: set[tuple[int, int]] = set()

    def fail(error: OSError) -> None:  # a folder that cannot be listed: its videos would be lost silently
        raise error

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=fail):
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def outside(reference: str) -> bool:
    """Whether a labels-file reference names a file outside the source folder: absolute, or climbing out."""
    normal = os.path.normpath(reference)
    return os.path.isabs(reference) or normal == os.pardir or normal.startswith(os.pardir + os.sep)


@dataclass(frozen=True)
class _VideoIndex:
    """The video files of a folder by stem, and the dangling links named like videos."""

    files: dict[str, list[Path]]
    broken: dict[str, list[Path]]

    def find(self, stem: str) -> Path | None:
        found = self.files.get(stem) or self.broken.get(stem, [])
        return found[0] if len(found) == 1 else None


class FolderSource:
    """A folder of videos labelled by a labels file, UCF101-style lists or class subfolders."""

    kind = "folder"
    OPTIONS = ("labels_file", "label_column", "id_column", "allow_outside_source")

    @classmethod
    def recognizes(cls, root: Path) -> bool:
        """Any path no other kind takes: it is read as a folder, and refused with the reason if it is none."""
        return True

    def __init__(self, root: str | Path, labels_file: str | Path | None = None, label_column: str | None = None,
                 id_column: str | None = None, allow_outside_source: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a folder")
        self.labels_file = Path(labels_file) if labels_file else self._find_labels_file()
        self.label_column = label_column
        self.id_column = id_column
        self.allow_outside_source = bool(allow_outside_source)

    def _find_labels_file(self) -> Path | None:
        for name in LABEL_FILES:
            if (self.root / name).is_file():
                return self.root / name
        return None

    @property
    def layout(self) -> str:
        if self.labels_file is not None:
            return "labels-file"
        if (self.root / "classInd.txt").is_file() and any((self.root / name).is_file() for name in UCF_LISTS):
            return "ucf101"
        return "class-folders"

    def identity(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()), "layout": self.layout,
                "labels_file": str(self.labels_file) if self.labels_file else None}

    def media(self, entries: Sequence[SourceEntry]) -> Iterator[list[tuple[SourceEntry, Media | SourceProblem]]]:
        """One batch: the files themselves, copied or linked by the workers, so nothing is read here."""
        yield [(entry, entry.path) for entry in entries]

    def list(self) -> tuple[list[SourceEntry], list[SourceProblem]]:
        if self.layout == "labels-file":
            return self._from_labels_file()
        if self.layout == "ucf101":
            return self._from_ucf_lists()
        return self._from_class_folders(), []

    def _videos_by_stem(self) -> _VideoIndex:
        files: dict[str, list[Path]] = {}
        broken: dict[str, list[Path]] = {}
        for path in walk_files(self.root):
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                if path.is_file():
                    files.setdefault(path.stem, []).append(path)
                elif is_broken_link(path):
                    broken.setdefault(path.stem, []).append(path)
        return _VideoIndex(files, broken)

    def _entry(self, reference: str, raw_label, where: str, index: _VideoIndex) -> SourceEntry | SourceProblem:
        """An entry for `reference`: a relative path, a path without extension (the authors' lists) or a
        bare id, found by its stem when it is not a file as given. A missing file keeps its expected path.
        A reference outside the source is a problem unless `allow_outside_source`."""
        video_id = video_id_of(reference)
        if not reference:
            return SourceProblem(where, "no id or file name in the row", video_id=None)
        if outside(reference) and not self.allow_outside_source:
            return SourceProblem(where, f"{shown(reference)} is outside the source folder {self.root} (refused: "
                                        "the prepared folder is meant to be shared; allow it with "
                                        "--allow-outside-source)", video_id=video_id)
        candidate = self.root / reference
        if not candidate.is_file():
            name = Path(reference)
            found = index.find(name.stem if name.suffix.lower() in VIDEO_EXTENSIONS else name.name)
            if found is not None:
                candidate = found
        return SourceEntry(video_id=video_id, raw_label=raw_label, origin=where, path=candidate)

    @staticmethod
    def _read_text(path: Path) -> str:
        """The text of a labels file or list, with or without a UTF-8 byte-order mark. A permission or
        other machine error is left to the caller (it is not a problem of the source)."""
        try:
            return path.read_text(encoding="utf-8-sig")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise SourceError(f"{path}: cannot read it ({error})") from None

    def _read_label_rows(self) -> tuple[list[str] | None, list[tuple[str, object]]]:
        """The header (CSV, else None) and the rows with where each is: (`labels.csv line 3`, row)."""
        path = self.labels_file
        name = path.name
        try:
            text = self._read_text(path)
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(text.splitlines(keepends=True))
                rows = [(f"{name} line {reader.line_num}", row) for row in reader]
                return list(reader.fieldnames or []), rows
            if path.suffix.lower() == ".jsonl":
                return None, [(f"{name} line {number}", json.loads(line))
                              for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
            data = json.loads(text)
        except (ValueError, csv.Error) as error:
            raise SourceError(f"{path}: cannot read the labels file ({error})") from None
        if isinstance(data, dict):  # {"video_id": "label", ...}
            return None, [(f"{name} key {shown(key)}", {"video_id": key, "label": value})
                          for key, value in data.items()]
        if isinstance(data, list):
            return None, [(f"{name} item {number}", row) for number, row in enumerate(data)]
        raise SourceError(f"{path}: expected a list of rows or an {{id: label}} object")

    def _from_labels_file(self) -> tuple[list[SourceEntry], list[SourceProblem]]:
        header, rows = self._read_label_rows()
        if not rows:
            raise SourceError(f"{self.labels_file}: no rows")
        if header is None:
            first = next((row for _, row in rows if isinstance(row, dict)), None)
            if first is None:
                raise SourceError(f"{self.labels_file}: expected rows that are objects with an id and a label")
            header = [str(key) for key in first]
        where = self.labels_file.name
        label = _pick_column(header, self.label_column, LABEL_COLUMNS, "label", where)
        ident = _pick_column(header, self.id_column, ID_COLUMNS, "id", where)
        if label is None or ident is None:
            raise SourceError(f"{self.labels_file}: needs an id or file column and a label column, got {header}; "
                              "name them with --id-column / --label-column")
        index = self._videos_by_stem()
        entries, problems = [], []
        for origin, row in rows:
            if not isinstance(row, dict):
                problems.append(SourceProblem(origin, f"expected an object with {ident!r} and {label!r}, got "
                                                      f"{type(row).__name__}"))
                continue
            raw_id = row.get(ident)
            reference = "" if raw_id is None else str(raw_id).strip()
            if None in row:  # csv.DictReader puts fields beyond the header under the key None
                problems.append(SourceProblem(origin, f"{len(header) + len(row[None])} fields where the header has "
                                                      f"{len(header)} (an unquoted comma?)",
                                              video_id=video_id_of(reference) if reference else None))
                continue
            if row.get(label) is None:  # a CSV row shorter than the header, or a JSON row without it
                problems.append(SourceProblem(origin, f"no {label!r} value in the row",
                                              video_id=video_id_of(reference) if reference else None))
                continue
            entry = self._entry(reference, row.get(label), origin, index)
            (entries if isinstance(entry, SourceEntry) else problems).append(entry)
        return entries, problems

    def _from_ucf_lists(self) -> tuple[list[SourceEntry], list[SourceProblem]]:
        classes = {}
        for line in self._read_text(self.root / "classInd.txt").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                classes[parts[0]] = " ".join(parts[1:])
        index = self._videos_by_stem()
        entries, problems = [], []
        for list_name in UCF_LISTS:
            path = self.root / list_name
            if not path.is_file():
                continue
            for number, line in enumerate(self._read_text(path).splitlines(), start=1):
                parts = line.split()
                if not parts:
                    continue
                reference = parts[0]
                # the class folder names the label; a trailing id (1-based, classInd) is checked against it
                raw_label = Path(reference).parts[0] if len(Path(reference).parts) > 1 else classes.get(parts[-1])
                if len(parts) > 1 and len(Path(reference).parts) > 1 and classes.get(parts[1], raw_label) != raw_label:
                    raw_label = f"{raw_label} (folder) vs {classes[parts[1]]} (classInd id {parts[1]})"
                entry = self._entry(reference, raw_label, f"{list_name} line {number}", index)
                (entries if isinstance(entry, SourceEntry) else problems).append(entry)
        return entries, problems

    def _from_class_folders(self) -> list[SourceEntry]:
        entries = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in walk_files(folder):
                # a dangling link is listed too: the report then names it as a missing file
                if path.suffix.lower() in VIDEO_EXTENSIONS and (path.is_file() or is_broken_link(path)):
                    relative = path.relative_to(self.root).as_posix()
                    entries.append(SourceEntry(video_id=path.stem, raw_label=folder.name, origin=relative, path=path))
        if not entries:
            raise SourceError(f"{self.root}: no labels file, no classInd.txt lists and no videos in class subfolders")
        return entries


# The kinds `open_source` tries, in order; the first that recognizes the path opens it. FolderSource,
# which takes any path, stays last.
SOURCE_TYPES: list[type[Source]] = [ParquetSource, FolderSource]


def register_source(source_type: type[Source]) -> type[Source]:
    """Make `open_source` try the `Source` class `source_type` before the kinds known so far; usable as a
    class decorator. `prepare` then reads such sources like any other."""
    SOURCE_TYPES.insert(0, source_type)
    return source_type


def open_source(root: str | Path, **options) -> Source:
    """The source at `root`, of the first kind in `SOURCE_TYPES` that recognizes it (parquet shards if
    there are any, else a folder of videos); each kind takes the `options` it knows, None ones as unset."""
    root = Path(root)
    if not root.exists():
        raise SourceError(f"{root}: no such source")
    source_type = next(kind for kind in SOURCE_TYPES if kind.recognizes(root))
    return source_type(root, **{name: value for name, value in options.items()
                                if name in source_type.OPTIONS and value is not None})


__all__ = ["SOURCE_TYPES", "FolderSource", "Media", "ParquetSource", "Source", "SourceEntry", "SourceError",
           "SourceProblem", "open_source", "register_source", "video_id_of", "walk_files"]
