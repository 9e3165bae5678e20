"""`emotions-hf predict VIDEO...`: the emotions of video files as a table, JSON, or timeline plot.

A file that cannot be read costs one error line on stderr; the other files are still predicted.
Exit status: 0 when every file was predicted, 1 when some could not be read, 2 for bad options or a
model that cannot be loaded.

Each video's result is printed (and flushed) as soon as it is done, so an interrupted or crashed run
keeps every result it had: the table one block per video; `--json` the elements of a JSON array one
at a time (the closing `]` comes last, so a run that died mid-way leaves complete elements but an
unclosed array); `--jsonl` one JSON object per line (JSON Lines: each line parses on its own, the
best choice for long or unreliable runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import torch
from transformers import pipeline
from transformers.utils import logging as hf_logging

from .errors import VideoReadError
from .pipeline_video_emotion import (  # also registers the task
    DEFAULT_MAX_TIMELINE_WINDOWS,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW_SECONDS,
)
from .timeline_plot import plot_timeline

# The folder the README's training command (examples/train.py) writes.
DEFAULT_MODEL = "outputs/avcanet-synthetic"
DTYPES = ("auto", "float32", "float16", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to analyse")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"trained AV-CANet folder or Hub id (default: {DEFAULT_MODEL})")
    parser.add_argument("--top-k", type=_positive(int), default=DEFAULT_TOP_K, help="emotions to list per video")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print a JSON array instead of a table (each element as soon as its video is done)")
    output.add_argument("--jsonl", action="store_true",
                        help="print JSON Lines: one object per video, each line valid on its own")
    parser.add_argument("--timeline", action="store_true",
                        help="also predict emotions over time: one table row per window, `timeline` in the JSON")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="draw the timelines (one panel per video) to this image")
    parser.add_argument("--window", type=_positive(float), default=DEFAULT_WINDOW_SECONDS,
                        help="timeline window length in seconds")
    parser.add_argument("--stride", type=_positive(float),
                        help="timeline step in seconds, at most the window (default: half a window)")
    parser.add_argument("--max-timeline-windows", type=_positive(int), default=DEFAULT_MAX_TIMELINE_WINDOWS,
                        help="a video whose timeline would take more windows is an error, found before decoding "
                             f"(default: {DEFAULT_MAX_TIMELINE_WINDOWS})")
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


def pipeline_for_command(args: argparse.Namespace, prog: str):
    """The pipeline a command's `--model`, `--device`, `--dtype`, `--batch-size`, `--window` and `--stride`
    ask for, or None after one line on stderr saying what is wrong (the command then exits with 2)."""
    if args.stride is not None and args.stride > args.window:
        print(f"{prog}: --stride {args.stride} is longer than --window {args.window}: the timeline "
              "would have gaps", file=sys.stderr)
        return None
    if args.model == DEFAULT_MODEL and not Path(DEFAULT_MODEL).exists():
        print(f"{prog}: no trained model in {DEFAULT_MODEL}/. Train one with "
              "`python examples/train.py` or pass --model.", file=sys.stderr)
        return None
    try:
        return _load_pipeline(args)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"{prog}: cannot load model {args.model!r}: {first_line}\n"
              "Train one with `python examples/train.py` or pass --model.", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    pipe = pipeline_for_command(args, "emotions-hf predict")
    if pipe is None:
        return 2
    timeline = args.timeline or args.plot is not None
    call_options = {"top_k": args.top_k, "timeline": timeline, "timeline_window": args.window,
                    "timeline_stride": args.stride, "max_timeline_windows": args.max_timeline_windows}
    printer = _ResultPrinter("json" if args.json else "jsonl" if args.jsonl else "table", timeline=args.timeline)
    results = []
    for video in args.videos:
        try:
            result = {"video": video, **pipe(video, **call_options)}
        except VideoReadError as error:
            print(f"emotions-hf predict: {error}", file=sys.stderr, flush=True)
            result = {"video": video, "error": str(error)}
        results.append(result)
        printer.add(result)
    printer.close()

    succeeded = [result for result in results if "error" not in result]
    if args.plot is not None and succeeded:
        panels = [(Path(result["video"]).name, result["timeline"]) for result in succeeded]
        path = plot_timeline(panels, pipe.model.config.label2polarity, args.plot)
        print(f"timeline plot: {path}", file=sys.stderr)
    return 1 if len(succeeded) < len(results) else 0


class _ResultPrinter:
    """Prints each video's result to stdout as soon as it is known, flushed, so no result is lost when the
    run dies later: `table` (failed videos only on stderr), `json` (an array, element by element; the same
    text as `json.dumps(results, indent=2)` once closed) or `jsonl` (one object per line)."""

    def __init__(self, mode: str, timeline: bool):
        self.mode, self.timeline, self.count = mode, timeline, 0

    def add(self, result: dict) -> None:
        if self.mode == "jsonl":
            text = json.dumps(result) + "\n"
        elif self.mode == "json":
            text = ("[\n" if not self.count else ",\n") + textwrap.indent(json.dumps(result, indent=2), "  ")
        elif "error" in result:
            return
        else:
            text = ("\n\n" if self.count else "") + format_result(result, timeline=self.timeline)
        sys.stdout.write(text)
        sys.stdout.flush()
        self.count += 1

    def close(self) -> None:
        if self.mode == "json":
            sys.stdout.write("\n]\n" if self.count else "[]\n")
        elif self.mode == "table" and self.count:
            sys.stdout.write("\n")
        sys.stdout.flush()


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


__all__ = ["DEFAULT_MODEL", "add_arguments", "format_result", "pipeline_for_command", "run"]
