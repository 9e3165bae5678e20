import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emotions_hf.data.video_writer import write_video

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
# `from presets import ...` in the tests: the demo presets live next to examples/train.py.
sys.path.append(str(Path(__file__).resolve().parents[1] / "examples"))


@pytest.fixture
def make_video(tmp_path):
    """Write a small h264+AAC mp4 whose frame i is uniformly grey level (8*i) % 256; returns its path."""

    def make(name="clip.mp4", num_frames=30, fps=25.0, size=(48, 64), audio_seconds=None, sample_rate=44100,
             channels=2, **kwargs):
        frames = (np.full((*size, 3), (8 * i) % 256, np.uint8) for i in range(num_frames))
        audio = None
        if audio_seconds is None:
            audio_seconds = num_frames / fps
        if audio_seconds:
            t = np.arange(int(audio_seconds * sample_rate)) / sample_rate
            audio = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t))[None], channels, axis=0)
        return write_video(tmp_path / name, frames, fps=fps, audio=audio, sample_rate=sample_rate, **kwargs)

    return make
