"""`emotions-hf predict VIDEO...`: the emotions of video files as a table, JSON, or timeline plot.

A file that cannot be read costs one error line on stderr; the other files are still predicted.
Exit status: 0 when every file was predicted, 1 when some could not be read, 2 for bad options or a
model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import pipeline
from transformers.utils import logging as hf_logging

from .errors import VideoReadError
from .pipeline_video_emotion import DEFAULT_TOP_K, DEFAULT_WINDOW_SECONDS  # also registers the task
from .timeline_plot import plot_timeline

# The folder the README's training command (examples/train.py) writes.
DEFAULT_MODEL = "outputs/avcanet-synthetic"
DTYPES = ("auto", "float32", "float16", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to analyse")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"trained AV-CANet folder or Hub id (default: {DEFAULT_MODEL})")
    parser.add_argument("--top-k", type=_positive(int), default=DEFAULT_TOP_K, help="emotions to list per video")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeline", action="store_true",
                        help="also predict emotions over time: one table row per window, `timeline` in the JSON")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="draw the timelines (one panel per video) to this image")
    parser.add_argument("--window", type=_positive(float), default=DEFAULT_WINDOW_SECONDS,
                        help="timeline window length in seconds")
    parser.add_argument("--stride", type=_positive(float),
                        help="timeline step in seconds, at most the window (default: half a window)")
    parser.add_argument("--batch-size", type=_positive(int), default=4,
                        help="model inputs (timeline windows) per forward")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: the first GPU if any)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="model precision (float16/bfloat16 on GPU)")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the expected type in its error message
    return parse


def run(args: argparse.Namespace) -> int:
    if args.stride is not None and args.stride > args.window:
        print(f"emotions-hf predict: --stride {args.stride} is longer than --window {args.window}: the timeline "
              "would have gaps", file=sys.stderr)
        return 2
    if args.model == DEFAULT_MODEL and not Path(DEFAULT_MODEL).exists():
        print(f"emotions-hf predict: no trained model in {DEFAULT_MODEL}/. Train one with "
              "`python examples/train.py` or pass --model.", file=sys.stderr)
        return 2
    try:
        pipe = _load_pipeline(args)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"emotions-hf predict: cannot load model {args.model!r}: {first_line}\n"
              "Train one with `python examples/train.py` or pass --model.", file=sys.stderr)
        return 2
    timeline = args.timeline or args.plot is not None
    call_options = {"top_k": args.top_k, "timeline": timeline, "timeline_window": args.window,
                    "timeline_stride": args.stride}
    results = []
    for video in args.videos:
        try:
            results.append({"video": video, **pipe(video, **call_options)})
        except VideoReadError as error:
            print(f"emotions-hf predict: {error}", file=sys.stderr)
            results.append({"video": video, "error": str(error)})

    succeeded = [result for result in results if "error" not in result]
    if args.json:
        print(json.dumps(results, indent=2))
    elif succeeded:
        print("\n\n".join(format_result(result, timeline=args.timeline) for result in succeeded))
    if args.plot is not None and succeeded:
        panels = [(Path(result["video"]).name, result["timeline"]) for result in succeeded]
        path = plot_timeline(panels, pipe.model.config.label2polarity, args.plot)
        print(f"timeline plot: {path}", file=sys.stderr)
    return 1 if len(succeeded) < len(results) else 0


def _load_pipeline(args):
    """The pipeline, loaded without weight-loading progress bars, which would drown the table's lines."""
    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return pipeline("video-emotion", model=args.model, device=args.device, dtype=dtype,
                        batch_size=args.batch_size)
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()


def format_result(result: dict, timeline: bool = True) -> str:
    """Readable text for one video's pipeline output (plus its `video` name); `timeline`: one row per window."""
    sound = "sound used" if result["has_audio"] else "no sound"
    lines = [f"{result['video']}  ({sound})"]
    windows = result.get("timeline", ()) if timeline else ()
    shown_labels = [p["label"] for p in result["predictions"]] + (list(windows[0]["scores"]) if windows else [])
    width = max(map(len, shown_labels))
    lines += [f"  {p['label']:<{width}}  {100 * p['score']:5.1f} %  {p['polarity']}" for p in result["predictions"]]
    part = result.get("contribution")
    if part is not None:
        terms = " + ".join(f"{name} {part[name]:+.3f}" for name in ("visual", "audio", "bias")
                           if part[name] is not None)
        lines.append(f"  {part['label']} logit {part['logit']:+.3f} = {terms}")
    if windows:
        lines.append("  timeline (most likely emotion per window):")
    for window in windows:
        label, score = max(window["scores"].items(), key=lambda item: item[1])
        lines.append(f"    {window['start']:6.1f} - {window['end']:6.1f} s  {label:<{width}}  {100 * score:5.1f} %")
    return "\n".join(lines)


__all__ = ["DEFAULT_MODEL", "add_arguments", "format_result", "run"]
