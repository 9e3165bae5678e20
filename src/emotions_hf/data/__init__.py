"""The eMotions dataset: sources, variants and splits, preparation into a loadable folder, synthetic data.

`emotions-hf prepare SOURCE OUT` (or `emotions_hf.data.prepare.prepare`) writes a folder that
`datasets.load_dataset(OUT, "all" | "balanced" | "test")` loads; `emotions_hf.data.synthetic.generate`
writes a small source to try it on.
"""

from __future__ import annotations


def processor_item(example: dict) -> dict | str:
    """The processor input for one row of a prepared dataset: the video, plus its training proxy and
    MFCC cache when the dataset has them (the processor takes their undecoded `{"path", "bytes"}` form)."""
    video = example["video"]
    if example.get("proxy") is None and example.get("mfcc") is None:
        return video
    return {"video": video, "proxy": example.get("proxy"), "mfcc": example.get("mfcc")}


__all__ = ["processor_item"]
