"""`emotions-hf demo [--model PATH_OR_ID]`: a Gradio page that shows what AV-CANet makes of a video.

Upload a video or pick one of the bundled examples (written on first start by the synthetic generator,
`emotions_hf.data.synthetic`; no media is committed). For the whole video the page shows the top
emotions with their scores and polarity, the exact visual / audio / bias split of the winning logit
(the pipeline's `contribution`) as a small bar chart, whether the sound was used ("no sound" when the
video has none), the emotion timeline as a plot (the colours of `emotions-hf predict --plot`) and the
timeline windows as a table. Decoding and the windows show their progress in the page; a file that
cannot be read shows the command line's error message (a `VideoReadError` naming the file) and the
app keeps serving.

The same app is the Hugging Face Space in `space/` (`space/app.py` calls `main`). Gradio is imported
only when the page is built, so `import emotions_hf` (and the other `emotions-hf` commands) do not
need it: `pip install "emotions-hf[demo]"`.

The analysis runs one video at a time (Gradio's default concurrency of one per event): the progress
counter is a forward hook on the shared model.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .decoding import content_times
from .errors import VideoReadError
from .pipeline_video_emotion import (  # also registers the task
    DEFAULT_MAX_TIMELINE_WINDOWS,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW_SECONDS,
    plan_timeline,
)
from .predict import DEFAULT_MODEL, DTYPES, _positive, pipeline_for_command
from .timeline_plot import plot_timeline

DEFAULT_EXAMPLES_DIR = Path(tempfile.gettempdir()) / "emotions-hf-demo-examples"
# The bundled examples: (file name, what the page calls it, [(emotion, seconds), ...], with sound).
EXAMPLES = (
    ("excitation.mp4", "Excitation, 8 s", [("Excitation", 8.0)], True),
    ("sadness-no-sound.mp4", "Sadness, 8 s, no sound", [("Sadness", 8.0)], False),
    ("relaxation-then-tension.mp4", "Relaxation, then Tension, 16 s", [("Relaxation", 8.0), ("Tension", 8.0)],
     True),
)
EXAMPLE_SIZE = (96, 96)  # (height, width); the model resizes to its own size
EXAMPLE_FPS = 10.0
# Bar colours of the contribution chart: one per term, the logit (their sum) in black.
TERM_COLORS = {"visual": "#1f77b4", "audio": "#ff7f0e", "bias": "#8c8c8c"}
TITLE = "AV-CANet: the emotions of a short video"


class DemoInputError(ValueError):
    """A video the page cannot analyse; its message is the one the page shows (the file's name and why)."""


@dataclass
class PageOutputs:
    """What the page shows for one video, one field per output component."""

    summary: str  # Markdown: top emotion, sound, contribution as text
    top_emotions: dict[str, float]  # gr.Label: "Emotion (polarity)" -> score
    contribution: object | None  # gr.Plot: a matplotlib Figure, None when the fusion has no exact split
    timeline: object  # gr.Image: the timeline plot as a PIL image
    windows: object  # gr.Dataframe: a pandas DataFrame, one row per timeline window
    result: dict  # the pipeline's output

    def as_tuple(self) -> tuple:
        return self.summary, self.top_emotions, self.contribution, self.timeline, self.windows


def _no_progress(*args, **kwargs) -> None:
    return None


class EmotionDemo:
    """The page's logic around a loaded `video-emotion` pipeline: a video path in, `PageOutputs` out."""

    def __init__(self, pipe, top_k: int = DEFAULT_TOP_K, window: float = DEFAULT_WINDOW_SECONDS,
                 stride: float | None = None, max_timeline_windows: int = DEFAULT_MAX_TIMELINE_WINDOWS):
        self.pipe, self.top_k, self.window, self.stride = pipe, top_k, window, stride
        self.max_timeline_windows = max_timeline_windows

    @property
    def config(self):
        return self.pipe.model.config

    def analyse(self, video: str | os.PathLike, progress: Callable = _no_progress) -> PageOutputs:
        """Everything the page shows for `video` (a file path). `progress` is called like `gr.Progress`.

        Raises `DemoInputError` with the command line's message, naming the file by its name, when the
        video cannot be read.
        """
        path = str(video)
        name = Path(path).name
        progress(0.0, desc=f"reading {name}")
        try:
            # Counted before anything is decoded, as the pipeline does, so the page can count the windows.
            windows = plan_timeline(content_times(path), self.window, self.stride,
                                    max_windows=self.max_timeline_windows, name=path)
        except ValueError as error:  # VideoReadError and the planner's complaints
            raise DemoInputError(_message(error, path)) from None
        num_windows = len(windows) if len(windows) > 1 else 0  # one window: the whole-video input itself
        done = 0

        pipe_forward = self.pipe._forward

        def counting_forward(model_inputs, **kwargs):
            """The pipeline's step over a batch of inputs, counted: whole-video and window inputs alike (the
            timeline's windows may share snippet features and skip the model's own forward)."""
            nonlocal done
            output = pipe_forward(model_inputs, **kwargs)
            flags = model_inputs["is_last"]
            done += len(flags) if isinstance(flags, (list, tuple, torch.Tensor)) else 1
            if num_windows:  # the first input is the whole video, then the windows in order
                progress((done - 1, num_windows), desc="timeline windows", unit="windows")
            return output

        progress(0.0, desc=f"decoding {name}")
        self.pipe._forward = counting_forward  # this page's own pipeline; restored below
        try:
            result = self.pipe(path, top_k=self.top_k, timeline=True, timeline_window=self.window,
                               timeline_stride=self.stride, max_timeline_windows=self.max_timeline_windows,
                               errors="return")
        finally:
            del self.pipe._forward
        if "error" in result:
            raise DemoInputError(result["error"].replace(path, name))
        progress(1.0, desc="drawing")
        return PageOutputs(
            summary=summary_markdown(result, self.config),
            top_emotions={f"{p['label']} ({p['polarity']})": p["score"] for p in result["predictions"]},
            contribution=contribution_figure(result["contribution"]),
            timeline=timeline_image(name, result["timeline"], self.config.label2polarity),
            windows=windows_table(result["timeline"]),
            result=result,
        )

    def page_function(self, video, progress=None):
        """The page's event handler: the output components' values, or `gr.Error` with the message."""
        import gradio as gr

        if not video:
            return "Upload a video or pick an example.", None, None, None, None
        try:
            return self.analyse(video, progress or _no_progress).as_tuple()
        except DemoInputError as error:
            # The message may hold any file name: shown as text, never as HTML.
            message = html.escape(str(error), quote=False)
            raise gr.Error(message, duration=None, title="Cannot read this video") from None


def _message(error: ValueError, path: str) -> str:
    """The command line's message for `error` (a `VideoReadError` names the file), with the upload's
    temporary folder left out: the file is named as the user named it."""
    text = str(error) if isinstance(error, VideoReadError) else f"{path}: {error}"
    return text.replace(path, Path(path).name)


def summary_markdown(result: dict, config) -> str:
    """The top emotion, whether the sound was used and the winning logit's split, as Markdown."""
    top = result["predictions"][0]
    lines = [f"### {top['label']}: {100 * top['score']:.1f} % ({top['polarity']})"]
    if result["has_audio"]:
        lines.append("Sound: used.")
    elif not config.uses_audio:
        lines.append("**No sound**: this model sees the picture only.")
    else:
        lines.append("**No sound**: the video has no audio track, so the picture alone decides.")
    part = result["contribution"]
    if part is None:
        lines.append("This model's fusion has no exact visual / audio split of its logits.")
    else:
        terms = " + ".join(f"{name} {part[name]:+.3f}" for name in ("visual", "audio", "bias")
                           if part[name] is not None)
        lines.append(f"`{part['label']} logit {part['logit']:+.3f} = {terms}`")
    return "\n\n".join(lines)


def contribution_figure(part: dict | None):
    """A small horizontal bar chart of the winning logit's terms and their sum (None: no split)."""
    if part is None:
        return None
    from matplotlib.figure import Figure

    names = [name for name in ("visual", "audio", "bias") if part[name] is not None]
    values = [part[name] for name in names] + [part["logit"]]
    labels = names + ["logit"]
    colors = [TERM_COLORS[name] for name in names] + ["#222222"]
    figure = Figure(figsize=(5.0, 0.45 * len(labels) + 0.9), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions, values, color=colors, height=0.6)
    ax.set_yticks(positions, labels)
    ax.axvline(0.0, color="black", linewidth=0.8)
    span = max(abs(value) for value in values) or 1.0
    ax.set_xlim(-1.35 * span if min(values) < 0 else 0.0, 1.35 * span)
    for position, value in zip(positions, values):
        ax.annotate(f"{value:+.3f}", (value, position), xytext=(4 if value >= 0 else -4, 0),
                    textcoords="offset points", va="center", ha="left" if value >= 0 else "right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return figure


def timeline_image(title: str, timeline: list[dict], label2polarity: dict):
    """The timeline drawn by `plot_timeline` (the `--plot` colours), as a PIL image."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        path = plot_timeline([(title, timeline)], label2polarity, Path(scratch) / "timeline.png")
        with Image.open(path) as image:
            return image.convert("RGB")


def windows_table(timeline: list[dict]):
    """One row per window: start, end, its most likely emotion and every emotion's probability (%)."""
    import pandas as pd

    rows = []
    for window in timeline:
        label, score = max(window["scores"].items(), key=lambda item: item[1])
        rows.append({"start (s)": round(window["start"], 2), "end (s)": round(window["end"], 2),
                     "top emotion": label, "score (%)": round(100 * score, 1),
                     **{f"{name} (%)": round(100 * value, 1) for name, value in window["scores"].items()}})
    return pd.DataFrame(rows)


def make_examples(folder: str | os.PathLike = DEFAULT_EXAMPLES_DIR, seed: int = 0) -> list[tuple[Path, str]]:
    """Write the bundled example videos to `folder` unless they are there already; returns
    `[(path, caption), ...]`. Written beside it first and then moved in, so a crash leaves no half set."""
    from .data.synthetic import SAMPLE_RATE, class_cues, render_audio, render_frames
    from .data.video_writer import write_video
    from .labels import EMOTIONS

    folder = Path(folder)
    examples = [(folder / file_name, caption) for file_name, caption, _, _ in EXAMPLES]
    if all(path.is_file() for path, _ in examples):
        return examples
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    num_visual = -(-len(EMOTIONS.labels) // 2)
    for index, (file_name, _, segments, with_sound) in enumerate(EXAMPLES):
        rng = np.random.default_rng([seed, index])
        frames, sound = [], []
        for label, seconds in segments:
            visual, audio = class_cues(EMOTIONS.label2id[label], len(EMOTIONS.labels))
            num_frames = round(seconds * EXAMPLE_FPS)
            frames.append(render_frames(rng, visual, num_visual, num_frames, EXAMPLE_SIZE))
            sound.append(render_audio(rng, audio, num_frames / EXAMPLE_FPS))
        write_video(scratch / file_name, np.concatenate(frames), fps=EXAMPLE_FPS,
                    audio=np.concatenate(sound) if with_sound else None, sample_rate=SAMPLE_RATE)
    folder.mkdir(exist_ok=True)
    for path, _ in examples:
        os.replace(scratch / path.name, path)
    scratch.rmdir()
    return examples


def build_app(demo: EmotionDemo, examples: list[tuple[Path, str]] = (), model_name: str = ""):
    """The Gradio page (a `gr.Blocks`, not launched)."""
    import gradio as gr

    with gr.Blocks(title="AV-CANet video emotions") as app:
        gr.Markdown(f"# {TITLE}\n"
                    "Upload a short video (or pick an example below): AV-CANet looks at its picture and "
                    "listens to its sound, for the whole video and window by window."
                    + (f"\n\nModel: `{model_name}`" if model_name else ""))
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video")
                if examples:
                    gr.Examples(examples=[[str(path)] for path, _ in examples], inputs=[video],
                                example_labels=[caption for _, caption in examples], label="Examples",
                                cache_examples=False)
            with gr.Column(scale=3):
                summary = gr.Markdown("Upload a video or pick an example.", elem_id="summary")
                top = gr.Label(label="Top emotions (polarity)", num_top_classes=demo.top_k,
                               elem_id="top-emotions")
                contribution = gr.Plot(label="Winning logit: visual / audio / bias", format="png",
                                       elem_id="contribution")
        timeline = gr.Image(label="Emotion timeline", type="pil", format="png", interactive=False,
                            elem_id="timeline")
        windows = gr.Dataframe(label="Timeline windows", interactive=False, elem_id="windows")

        tracker = gr.Progress()  # Gradio finds the tracker by the argument's default

        def analyse(video_path, progress=tracker):
            return demo.page_function(video_path, progress)

        video.change(analyse, inputs=video, outputs=[summary, top, contribution, timeline, windows],
                     show_progress="full")
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"trained AV-CANet folder or Hub id (default: {DEFAULT_MODEL})")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="model precision (float16/bfloat16 on GPU)")
    parser.add_argument("--batch-size", type=_positive(int), default=4,
                        help="model inputs (timeline windows) per forward")
    parser.add_argument("--top-k", type=_positive(int), default=DEFAULT_TOP_K, help="emotions to list")
    parser.add_argument("--window", type=_positive(float), default=DEFAULT_WINDOW_SECONDS,
                        help="timeline window length in seconds")
    parser.add_argument("--stride", type=_positive(float),
                        help="timeline step in seconds, at most the window (default: half a window)")
    parser.add_argument("--max-timeline-windows", type=_positive(int), default=DEFAULT_MAX_TIMELINE_WINDOWS,
                        help="a video whose timeline would take more windows is refused, before decoding")
    parser.add_argument("--host",
                        help="address to serve on (default: Gradio's, 127.0.0.1 or $GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=_positive(int),
                        help="port to serve on (default: Gradio's, 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--examples-dir", type=Path, default=DEFAULT_EXAMPLES_DIR,
                        help="where the example videos are written on first start (default: %(default)s)")
    parser.add_argument("--no-examples", action="store_true", help="no example videos")


def run(args: argparse.Namespace) -> int:
    prog = "emotions-hf demo"
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"{prog}: needs gradio: pip install \"emotions-hf[demo]\"", file=sys.stderr)
        return 2
    pipe = pipeline_for_command(args, prog)
    if pipe is None:
        return 2
    demo = EmotionDemo(pipe, top_k=args.top_k, window=args.window, stride=args.stride,
                       max_timeline_windows=args.max_timeline_windows)
    examples = [] if args.no_examples else make_examples(args.examples_dir)
    app = build_app(demo, examples, model_name=str(args.model))
    app.queue().launch(server_name=args.host, server_port=args.port, show_error=True,
                       allowed_paths=[str(Path(args.examples_dir).resolve())] if examples else None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`emotions-hf demo` on its own (what `space/app.py` runs)."""
    parser = argparse.ArgumentParser(prog="emotions-hf demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DemoInputError", "EmotionDemo", "PageOutputs", "add_arguments", "build_app", "main",
           "make_examples", "run"]
