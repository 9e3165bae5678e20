"""Counting unreadable videos, so that a run on a dataset whose files are gone stops at once and says why."""

from __future__ import annotations

from dataclasses import dataclass, field

UNREADABLE_CHECK_AFTER = 100  # videos read before the running share of unreadable ones is judged
MISSING_FILE_REASON = "no such file"  # what `decoding.as_source` says of a path that does not exist


class UnreadableVideosError(RuntimeError):
    """Too many videos of a run cannot be read: training or evaluating on the rest would mislead."""


@dataclass
class UnreadableTally:
    """Videos read and skipped in one phase (a training epoch, an evaluation), with the first skipped ones
    named, so that the error can say which files to look at."""

    phase: str
    read: int = 0
    skipped: int = 0
    examples: list = field(default_factory=list)

    def add(self, read: int, skipped: list[str]) -> None:
        self.read += read
        self.skipped += len(skipped)
        self.examples += skipped[: max(0, 5 - len(self.examples))]

    @property
    def total(self) -> int:
        return self.read + self.skipped

    def check(self, max_fraction: float, final: bool = False) -> None:
        """Raise `UnreadableVideosError` when nothing was readable in the first batch, or the share of
        unreadable videos is above `max_fraction` (judged after `UNREADABLE_CHECK_AFTER` videos, or at the
        end of the phase). `max_fraction` 1 never raises."""
        if not self.skipped or max_fraction >= 1.0:
            return
        nothing_read = self.read == 0
        share = self.skipped / self.total
        if not (nothing_read or ((final or self.total >= UNREADABLE_CHECK_AFTER) and share > max_fraction)):
            return
        what = (f"none of the first {self.total} videos could be read" if nothing_read else
                f"{self.skipped} of {self.total} videos could not be read ({share:.0%}, more than "
                f"max_unreadable_fraction={max_fraction})")
        raise UnreadableVideosError(f"{self.phase}: {what}. First: " + "; ".join(self.examples) + ". "
                                    + _likely_cause(self.examples))


def _likely_cause(examples: list[str]) -> str:
    if any(MISSING_FILE_REASON in example for example in examples):
        return ("The files are missing: was the dataset folder moved, copied or deleted after it was loaded? "
                "`datasets` caches the rows of a local folder with the paths of the first place it was "
                "loaded from; load it with `emotions_hf.data.load_prepared(folder, config)`, or pass "
                "download_mode='force_redownload' to load_dataset.")
    return ("Check the files named above (emotions-hf prepare validates every video and lists the bad ones "
            "in preparation_report.json), or raise max_unreadable_fraction.")
