"""The exception types callers can catch exactly, and the line between bad input and a broken environment.

A video that cannot be read is bad input (`VideoReadError`): skipped and reported, or an error that names
it. A full disk or a missing permission is the environment: it says nothing about the video, so work
stops with a clear message and the next run retries it (`is_environment_error`).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import av

# Errors of the machine, not of the data: no space or quota, a read-only disk, a denied access; these a bad
# file never causes, so they count wherever they come from (FFmpeg and the text of a message included).
UNAMBIGUOUS_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})
# Also the machine's when the OS raises them (limits, memory, I/O, a stale NFS handle, a refused operation);
# FFmpeg, though, reports a generic failure on a bad file as -1 (EPERM) and a damaged stream as EIO.
ENVIRONMENT_ERRNOS = UNAMBIGUOUS_ERRNOS | {errno.EPERM, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EFBIG,
                                          errno.EIO, errno.ESTALE}
# `[Errno 28]` (Python, pyarrow), `(os error 28)` (Rust libraries: safetensors)
_ERRNO_TEXT = re.compile(r"\[errno (\d+)\]|\(os error (\d+)\)", re.IGNORECASE)


class VideoReadError(ValueError):
    """A video (or its audio track) cannot be read. `source` names the file, `reason` says why."""

    def __init__(self, source, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


def check_writable(folder: str | Path) -> None:
    """Create `folder` and write (and sync) 4 KB in it, so that a full, read-only or forbidden output folder
    stops a run before its work rather than at its first write of results; raises that `OSError`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
        probe.write(b"\0" * 4096)
        probe.flush()
        os.fsync(probe.fileno())


def environment_errno(error: BaseException | str | None) -> int | None:
    """The errno of `error`, or of an error it was raised from or while handling, when the machine caused
    it (disk full, permissions, ...: a rerun can succeed once that is fixed), else None.

    Errors without an errno (pyarrow's, safetensors') and strings (recorded reasons) are searched for
    `[Errno N]` / `(os error N)`, counting only the codes a bad file never causes; so is FFmpeg's errno.
    A `VideoReadError`'s text quotes FFmpeg, so it is not searched (the error it came from is)."""
    if isinstance(error, str):
        codes = (int(python or rust) for python, rust in _ERRNO_TEXT.findall(error))
        return next((code for code in codes if code in UNAMBIGUOUS_ERRNOS), None)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = getattr(error, "errno", None)
        if isinstance(code, int):
            if code in (UNAMBIGUOUS_ERRNOS if isinstance(error, av.FFmpegError) else ENVIRONMENT_ERRNOS):
                return code
        elif not isinstance(error, VideoReadError):
            found = environment_errno(str(error))
            if found is not None:
                return found
        error = error.__cause__ or error.__context__
    return None


def is_environment_error(error: BaseException) -> bool:
    """True for an error the machine caused (see `environment_errno`): stop, say so, retry next run."""
    return environment_errno(error) is not None
