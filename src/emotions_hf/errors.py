"""The one exception type for media that cannot be read, so callers can catch exactly that."""

from __future__ import annotations


class VideoReadError(ValueError):
    """A video (or its audio track) cannot be read. `source` names the file, `reason` says why."""

    def __init__(self, source, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")
