"""What `prepare` is asked to do, in one value: the label set, the variant draws, the work and the source.

`prepare(source, out_dir, **keywords)` builds a `PrepareOptions` from its keywords, so the keywords and
the fields are the same names; a caller that prepares several folders alike can build one and pass it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..labels import LabelSet, get_label_set
from .variants import DEFAULT_SEED, DEFAULT_TEST_FRACTION, TEST_VARIANT_SIZE, VARIANTS, VariantSpec

# the fields that say how to read the source (`sources.open_source` keywords)
SOURCE_FIELDS = ("video_column", "label_column", "id_column", "labels_file", "allow_outside_source")


@dataclass(frozen=True)
class PrepareOptions:
    """Options of `prepare`.

    Attributes:
        label_set: `emotions` (default), `ve8`, `ekman6` or `music_video`, or a `LabelSet`.
        seed, balanced_counts, test_size, test_fraction: the variant draws (`variants.VariantSpec`).
        variants: configs to write; eMotions gets `all`, `balanced`, `test`, other label sets `all`.
        num_proc: processes validating (and proxying) videos.
        proxy: also write the training proxies and MFCC cache (`emotions_hf.proxy`); `proxy_options`
            go to `write_proxy`, `processor` (an `AVCANetProcessor`, default settings if None) sets the MFCC.
        strict: raise `PrepareError` listing bad labels, duplicate ids, missing files and unreadable
            shards instead of skipping them (unreadable videos are always skipped and reported).
        link: hard-link folder videos into the dataset instead of copying them (same file system).
        video_column, label_column, id_column: parquet / labels-file column names (detected if None).
        labels_file: labels CSV/JSON of a folder source (found by name if None).
        allow_outside_source: let a labels file name videos outside the source folder (absolute paths or
            `../`); refused (reported per row) by default, since the prepared folder is meant to be shared.
        progress: show a progress bar.
    """

    label_set: str | LabelSet = "emotions"
    seed: int = DEFAULT_SEED
    variants: Iterable[str] | None = None
    balanced_counts: dict[str, int] | None = None
    test_size: int = TEST_VARIANT_SIZE
    test_fraction: float = DEFAULT_TEST_FRACTION
    num_proc: int = 1
    proxy: bool = False
    proxy_options: dict | None = None
    processor: object | None = None
    strict: bool = False
    link: bool = False
    video_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    labels_file: str | Path | None = None
    allow_outside_source: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.variants is not None:  # a generator would be spent by the first look
            object.__setattr__(self, "variants", tuple(self.variants))
        # bad options fail here, before any file is touched
        unknown = [v for v in self.variant_names if v not in VARIANTS]
        if unknown or not self.variant_names:
            raise ValueError(f"variants {unknown or self.variant_names} are not a non-empty subset of {VARIANTS}")
        _ = self.spec  # making the VariantSpec checks the test size and fraction

    @property
    def labels(self) -> LabelSet:
        """The label set itself (`label_set` may name it)."""
        return get_label_set(self.label_set) if isinstance(self.label_set, str) else self.label_set

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The configs to write: as given, else every variant for eMotions and `all` for other label sets."""
        if self.variants is not None:
            return self.variants
        return VARIANTS if self.labels.name == "emotions" else ("all",)

    @property
    def spec(self) -> VariantSpec:
        return VariantSpec(balanced_counts=self.balanced_counts, test_size=self.test_size,
                           test_fraction=self.test_fraction, seed=self.seed)

    @property
    def source_options(self) -> dict:
        """The keywords of `sources.open_source`."""
        return {name: getattr(self, name) for name in SOURCE_FIELDS}


__all__ = ["PrepareOptions"]
