import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_pipeline_video_emotion import save_tiny_checkpoint

from emotions_hf import predict
from emotions_hf.cli import main
from emotions_hf.labels import EMOTIONS
from emotions_hf.predict import format_result
from emotions_hf.timeline_plot import emotion_colors, plot_timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-avcanet")))


def _timeline(num_windows, seed=0):
    rng = np.random.default_rng(seed)
    return [{"start": 2.0 * i, "end": 2.0 * i + 4.0, "scores": dict(zip(EMOTIONS.labels, rng.dirichlet(np.ones(6))))}
            for i in range(num_windows)]


def test_plot_from_given_probabilities(tmp_path):
    path = plot_timeline([("long.mp4", _timeline(7)), ("short.mp4", _timeline(1, seed=1))], EMOTIONS.polarity,
                         tmp_path / "plots" / "timeline.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError):
        plot_timeline([], EMOTIONS.polarity, tmp_path / "empty.png")


def test_polarity_colours_are_distinct_and_grouped():
    colors = emotion_colors(EMOTIONS.polarity)
    assert len(set(colors.values())) == len(EMOTIONS.labels)
    redness = {label: color[0] - color[1] for label, color in colors.items()}
    assert all(redness[label] > 0.2 for label in ("Fear", "Sadness", "Tension"))
    assert all(redness[label] < 0 for label in ("Excitation", "Relaxation"))
    assert abs(redness["Neutral"]) < 1e-6


def test_format_result_table():
    result = {
        "video": "clip.mp4",
        "predictions": [{"label": "Tension", "score": 0.625, "polarity": "negative"},
                        {"label": "Fear", "score": 0.25, "polarity": "negative"}],
        "has_audio": False,
        "contribution": {"label": "Tension", "logit": 1.5, "visual": 1.25, "audio": 0.5, "bias": -0.25},
        "timeline": _timeline(2),
    }
    text = format_result(result)
    lines = text.splitlines()
    assert lines[0] == "clip.mp4  (no sound)"
    assert lines[1].split() == ["Tension", "62.5", "%", "negative"]
    assert "Tension logit +1.500 = visual +1.250 + audio +0.500 + bias -0.250" in text
    assert len(lines) == 1 + 2 + 1 + 1 + 2
    assert lines[-1].split()[:4] == ["2.0", "-", "6.0", "s"]
    assert [line.split() for line in format_result(result, timeline=False).splitlines()] == \
        [line.split() for line in lines[:4]]


def test_cli_batch_with_a_broken_file(checkpoint, make_video, tmp_path, capsys):
    good = make_video("good.mp4", num_frames=20)
    silent = make_video("silent.mp4", num_frames=20, audio_seconds=0)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"definitely not an mp4")
    status = main(["predict", str(good), str(broken), str(silent), str(tmp_path / "missing.mp4"),
                   "--model", checkpoint, "--json", "--top-k", "2", "--device", "cpu"])
    captured = capsys.readouterr()
    assert status == 1
    results = json.loads(captured.out)
    assert captured.out == json.dumps(results, indent=2) + "\n"  # printed element by element, the same text
    assert [r["video"] for r in results] == [str(good), str(broken), str(silent), str(tmp_path / "missing.mp4")]
    assert "broken.mp4" in results[1]["error"] and "missing.mp4" in results[3]["error"]
    assert [r["has_audio"] for r in (results[0], results[2])] == [True, False]
    assert all(len(r["predictions"]) == 2 for r in (results[0], results[2]))
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "broken.mp4" in errors[0] and "missing.mp4" in errors[1]


def test_cli_json_lines(checkpoint, make_video, tmp_path, capsys):
    good = make_video("good.mp4", num_frames=20)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"definitely not an mp4")
    status = main(["predict", str(good), str(broken), str(good), "--model", checkpoint, "--jsonl", "--device", "cpu",
                   "--timeline", "--window", "0.4"])
    captured = capsys.readouterr()
    assert status == 1
    lines = captured.out.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["video"] for r in results] == [str(good), str(broken), str(good)]
    assert "broken.mp4" in results[1]["error"] and set(results[1]) == {"video", "error"}
    assert results[0] == results[2] and len(results[0]["timeline"]) > 1
    assert len(captured.err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["predict", str(good), "--json", "--jsonl"])
    assert "not allowed with" in capsys.readouterr().err


def test_cli_timeline_window_cap(checkpoint, make_video, capsys):
    long, short = make_video("long.mp4", num_frames=50), make_video("short.mp4", num_frames=5)  # 2 s, 0.2 s
    status = main(["predict", str(long), str(short), "--model", checkpoint, "--jsonl", "--device", "cpu",
                   "--timeline", "--window", "0.2", "--max-timeline-windows", "5"])
    captured = capsys.readouterr()
    assert status == 1
    (error,) = captured.err.strip().splitlines()
    assert "long.mp4" in error and "19 windows" in error and "max_timeline_windows=5" in error
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert "error" in results[0] and len(results[1]["timeline"]) == 1


class _DiesOnSecondVideo:
    """A pipeline that dies (KeyboardInterrupt: an interrupted run) when asked for its second video."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, 0

    def __call__(self, video, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.pipe(video, **kwargs)


@pytest.mark.parametrize("mode", ["table", "--json", "--jsonl"])
def test_results_are_printed_as_they_come(checkpoint, make_video, monkeypatch, capsys, mode):
    """A run that dies on its second video has already printed the first one's result."""
    load = predict._load_pipeline
    monkeypatch.setattr(predict, "_load_pipeline", lambda args: _DiesOnSecondVideo(load(args)))
    first, second = make_video("first.mp4", num_frames=20), make_video("second.mp4", num_frames=20)
    options = [] if mode == "table" else [mode]
    with pytest.raises(KeyboardInterrupt):
        main(["predict", str(first), str(second), "--model", checkpoint, "--device", "cpu", *options])
    out = capsys.readouterr().out
    assert "second.mp4" not in out
    if mode == "table":
        assert out.startswith(f"{first}  (sound used)\n") and len(out.splitlines()) >= 4
    elif mode == "--json":  # the elements so far, each complete; only the closing bracket is missing
        (result,) = json.loads(out + "\n]")
        assert result["video"] == str(first) and len(result["predictions"]) == 3
    else:
        (result,) = [json.loads(line) for line in out.splitlines()]
        assert result["video"] == str(first) and len(result["predictions"]) == 3


@pytest.mark.slow  # a new interpreter imports torch and transformers: ~10-20 s on a loaded machine
def test_a_crashing_interpreter_keeps_the_results_already_printed(checkpoint, make_video):
    """The interpreter dies of a segfault on the second video (as on a file that crashes a decoder); the
    first video's line is on stdout all the same."""
    first, second = make_video("first.mp4", num_frames=20), make_video("second.mp4", num_frames=20)
    script = textwrap.dedent(f"""
        import os, signal
        from emotions_hf import predict
        from emotions_hf.cli import main
        load = predict._load_pipeline
        def crashing(args):
            pipe = load(args)
            def call(video, **kwargs):
                if video.endswith("second.mp4"):
                    os.kill(os.getpid(), signal.SIGSEGV)
                return pipe(video, **kwargs)
            return call
        predict._load_pipeline = crashing
        main(["predict", {str(first)!r}, {str(second)!r}, "--model", {checkpoint!r}, "--device", "cpu", "--jsonl"])
    """)
    completed = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                               timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == -11, completed.stderr[-2000:]
    (result,) = [json.loads(line) for line in completed.stdout.splitlines()]
    assert result["video"] == str(first) and len(result["predictions"]) == 3


def test_cli_table_and_timeline_plot(checkpoint, make_video, tmp_path, capsys):
    video = make_video("clip.mp4", num_frames=50)  # 2 s
    plot = tmp_path / "timeline.png"
    status = main(["predict", str(video), "--model", checkpoint, "--plot", str(plot), "--timeline", "--window", "1",
                   "--device", "cpu"])
    captured = capsys.readouterr()
    assert status == 0
    assert captured.out.startswith(f"{video}  (sound used)")
    assert " s  " in captured.out  # timeline rows
    assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_cli_reports_a_missing_model(make_video, tmp_path, capsys):
    status = main(["predict", str(make_video()), "--model", str(tmp_path / "no-such-model")])
    assert status == 2
    assert "no-such-model" in capsys.readouterr().err


@pytest.mark.slow  # a new interpreter imports torch and transformers: ~10-20 s on a loaded machine
def test_the_installed_command_in_a_fresh_process(checkpoint, make_video):
    """What a user runs: a new interpreter that has never built the model, loading it from disk."""
    video = make_video("clip.mp4", num_frames=20)
    command = [sys.executable, "-m", "emotions_hf.cli", "predict", str(video), "--model", checkpoint,
               "--device", "cpu"]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith(f"{video}  (sound used)")


def test_cli_rejects_bad_options_before_loading_anything(capsys):
    assert main(["predict", "clip.mp4", "--window", "2", "--stride", "3"]) == 2
    assert "gaps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "clip.mp4", "--top-k", "0"])
    assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err
