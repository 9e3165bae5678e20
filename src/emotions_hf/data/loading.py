"""Load a prepared folder so that its rows point at its own files, wherever the folder is now.

`datasets` keys the cache of a local folder on the card's *relative* data-file patterns and the
folder's base name, not on where the folder is: prepare a source into `a/emotions`, load it, then
load the same content from `c/emotions` (a copy, a move, another disk) and the rows come from the
cache, their `video.path` still inside `a/emotions`. `load_prepared` checks every media path of the
loaded rows and rebuilds the cached table from the folder being loaded when one points elsewhere
(metadata only: no video is read, so the rebuild costs seconds).

It also decides how the `video` column comes back. A dataset card's features are static, and the
card of a prepared folder declares `Video(decode=False)` (`{"path", "bytes"}`), which loads anywhere.
`load_prepared(..., decode_video=None)` casts `video` to datasets' decoding `Video()` (rows then hold a
`torchcodec.decoders.VideoDecoder`) when torchcodec imports and decodes a video here, and leaves it
undecoded otherwise (`torchcodec_status` says why). `proxy` and `mfcc` always stay undecoded: they are
caches the processor reads by path, and the MFCC file is not a video.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from datasets import DownloadMode, Video, load_dataset
from datasets.exceptions import DatasetGenerationError
from transformers.utils import logging

logger = logging.get_logger(__name__)

MEDIA_COLUMNS = ("video", "proxy", "mfcc")


def media_paths(split) -> list[str]:
    """The local paths of every media column of a split (read from the Arrow table, no decoding)."""
    paths = []
    for name in MEDIA_COLUMNS:
        if name in split.column_names:
            column = split.data.column(name)
            paths += [path for path in column.combine_chunks().field("path").to_pylist() if path]
    return paths


def paths_outside(split, folder: str | Path) -> list[str]:
    """Media paths of `split` that do not lie inside `folder` (resolved)."""
    root = os.path.join(os.path.realpath(folder), "")
    return [path for path in media_paths(split) if not os.path.realpath(path).startswith(root)]


class PreparedFolderError(ValueError):
    """A prepared folder that cannot be loaded as it is (its files are missing); the message names them."""


def _load_local(folder, config_name, load_kwargs):
    """`load_dataset` on a local folder; when the build fails because files its metadata lists are gone,
    an error that names them instead of `datasets`' cast error."""
    try:
        return load_dataset(str(folder), config_name, **load_kwargs)
    except DatasetGenerationError:
        absent = missing_files(folder)
        if not absent:
            raise
        raise PreparedFolderError(
            f"{folder}: {len(absent)} files its metadata lists are missing, e.g. {', '.join(absent[:3])}. Was "
            "the folder copied or moved without them? Copy the whole folder (videos/, proxy/, mfcc/ included), "
            "or prepare the source again into a new folder."
        ) from None


def missing_files(folder: str | Path) -> list[str]:
    """Files named by the metadata files of a prepared folder (`*file_name` columns) that do not exist."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    absent = []
    for metadata in sorted(folder.glob("metadata-*.parquet")):
        table = pq.read_table(metadata)
        for column in (name for name in table.column_names if name.endswith("file_name")):
            absent += [name for name in table.column(column).to_pylist() if name and not (folder / name).exists()]
    return sorted(set(absent))


def _first_outside(dataset, folder) -> str | None:
    splits = dataset.values() if hasattr(dataset, "values") else [dataset]  # a DatasetDict or one split
    return next((path for split in splits for path in paths_outside(split, folder)), None)


@functools.cache
def torchcodec_status() -> str | None:
    """None when torchcodec works here (it imports and decodes a small video), else why not.

    `datasets` only checks that a `torchcodec` package is installed; the PyPI wheel beside a CPU build of
    torch is installed but fails to load (it links torch's CUDA libraries), so decoding is tried once."""
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError, RuntimeError) as error:  # OSError / RuntimeError: its native libraries
        return f"torchcodec cannot be imported ({type(error).__name__}: {error})"
    import numpy as np

    from .video_writer import write_video

    with tempfile.TemporaryDirectory() as folder:
        path = write_video(Path(folder) / "check.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, fps=2.0)
        try:
            frame = VideoDecoder(str(path))[0]
        except (OSError, RuntimeError, ValueError) as error:
            return f"torchcodec cannot decode a video ({type(error).__name__}: {error})"
    if tuple(frame.shape) != (3, 16, 16):
        return f"torchcodec decoded a 16x16 frame as shape {tuple(frame.shape)}"
    return None


def set_video_decoding(dataset, decode: bool):
    """`dataset` (a split, a `DatasetDict` or their iterable kinds) with its `video` column decoding or not;
    unchanged when it is already so."""
    features = dataset.features if hasattr(dataset, "features") else next(iter(dataset.values())).features
    current = (features or {}).get("video")
    if not isinstance(current, Video) or current.decode == decode:
        return dataset
    return dataset.cast_column("video", Video(decode=decode))


def load_prepared(folder: str | Path, config_name: str | None = None, decode_video: bool | None = None,
                  **load_kwargs):
    """`datasets.load_dataset(folder, config_name, **load_kwargs)` for a folder written by
    `emotions-hf prepare`, whose rows always point into `folder` (see the module docstring).

    `decode_video`: True gives `video` as datasets' decoded `Video()` (a torchcodec `VideoDecoder` per row;
    an error when torchcodec does not work here), False as `{"path", "bytes"}` (what the processor and the
    Trainer read fastest: a decoder scans the whole file when made), None (default) decoded exactly when
    torchcodec works. A Hub id (anything that is not a local folder) is loaded as `load_dataset` would.
    """
    if decode_video is None:
        decode_video = torchcodec_status() is None
    elif decode_video and torchcodec_status() is not None:
        raise RuntimeError(f"{folder}: decode_video=True needs torchcodec, but {torchcodec_status()}; pass "
                           "decode_video=False (or None) for `{\"path\", \"bytes\"}` videos")
    return set_video_decoding(_load_prepared(folder, config_name, load_kwargs), decode_video)


def _load_prepared(folder, config_name, load_kwargs):
    if not Path(folder).is_dir():
        return load_dataset(str(folder), config_name, **load_kwargs)
    dataset = _load_local(folder, config_name, load_kwargs)
    stale = _first_outside(dataset, folder)
    if stale is None:
        return dataset
    logger.warning(
        f"{folder}: the cached rows of config {config_name!r} point outside the folder (e.g. {stale}): a copy "
        "or an earlier location of the same dataset was loaded before. Rebuilding them from this folder."
    )
    load_kwargs["download_mode"] = DownloadMode.FORCE_REDOWNLOAD
    dataset = _load_local(folder, config_name, load_kwargs)
    stale = _first_outside(dataset, folder)
    if stale is not None:  # the metadata itself names files elsewhere: not a folder written by `prepare`
        raise ValueError(f"{folder}: rows of config {config_name!r} point outside the folder ({stale})")
    return dataset


__all__ = ["PreparedFolderError", "load_prepared", "media_paths", "missing_files", "paths_outside",
           "set_video_decoding", "torchcodec_status"]
