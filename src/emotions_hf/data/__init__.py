"""The eMotions dataset: sources, variants and splits, preparation into a loadable folder, synthetic data.

`emotions-hf prepare SOURCE OUT` (or `emotions_hf.data.prepare.prepare`) writes a folder that
`datasets.load_dataset(OUT, "all" | "balanced" | "test")` loads; `emotions_hf.data.synthetic.generate`
writes a small source to try it on.
"""

from __future__ import annotations


def processor_item(example: dict) -> dict | str:
    """The processor input for one row of a prepared dataset: the video, plus its training proxy and
    MFCC cache when the dataset has them (the processor takes their undecoded `{"path", "bytes"}` form).

    A decoded `video` (a torchcodec `VideoDecoder` from datasets' `Video()`, see `loading.load_prepared`)
    is handed over as the `{"path", "bytes"}` it was made from: the processor samples frames and reads the
    sound itself, by timestamps, and a decoder holds no sound."""
    video = example["video"]
    encoded = getattr(video, "_hf_encoded", None)  # set by `datasets.Video.decode_example`
    if isinstance(encoded, dict):
        video = encoded
    if example.get("proxy") is None and example.get("mfcc") is None:
        return video
    return {"video": video, "proxy": example.get("proxy"), "mfcc": example.get("mfcc")}


__all__ = ["processor_item"]
