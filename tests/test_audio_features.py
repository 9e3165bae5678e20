import tracemalloc

import librosa
import numpy as np
import pytest
import torch
from media_samples import tone, write

from emotions_hf.audio_features import (
    MFCC,
    MFCCSettings,
    clip_mfcc,
    crop_span,
    fit_frames,
    mel_filterbank,
    read_audio,
)
from emotions_hf.data.video_writer import write_video
from emotions_hf.errors import VideoReadError


def _signal(seconds, sample_rate=44100, seed=0):
    """A tone over noise with a near-silent start, so the 80 dB floor of power_to_db is exercised."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)
    y[: len(y) // 5] *= 1e-5
    return y.astype(np.float32)


def test_mel_filterbank_matches_librosa():
    ours = mel_filterbank(44100, 2048, 128, dtype=torch.float64).numpy()
    np.testing.assert_allclose(ours, librosa.filters.mel(sr=44100, n_fft=2048, n_mels=128), atol=1e-8)
    small = mel_filterbank(8000, 512, 40, fmin=100.0, fmax=3000.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(small, librosa.filters.mel(sr=8000, n_fft=512, n_mels=40, fmin=100, fmax=3000),
                               atol=1e-8)


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
@pytest.mark.parametrize("num_samples", [700, 2048, 44100 * 2 + 123])
def test_mfcc_matches_librosa_defaults(num_samples):
    y = _signal(3)[-num_samples:] if num_samples > 2048 else _signal(1)[:num_samples] + 0.01
    ours = MFCC()(torch.from_numpy(y)).numpy()
    reference = librosa.feature.mfcc(y=y, sr=44100, n_mfcc=32)
    assert ours.shape == reference.shape == (32, 1 + num_samples // 512)
    np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=1e-4)


def test_mfcc_other_settings_and_batches():
    settings = MFCCSettings(sample_rate=16000, num_mfcc=20, n_fft=1024, hop_length=256, n_mels=64)
    y = np.stack([_signal(1, 16000, seed) for seed in range(2)])
    ours = MFCC(settings)(torch.from_numpy(y)).numpy()
    for row, reference in zip(ours, y):
        expected = librosa.feature.mfcc(y=reference, sr=16000, n_mfcc=20, n_fft=1024, hop_length=256, n_mels=64)
        np.testing.assert_allclose(row, expected, atol=2e-3, rtol=1e-4)


def test_fit_frames_crops_the_centre_or_tiles():
    x = torch.arange(10.0).repeat(2, 1)
    np.testing.assert_array_equal(fit_frames(x, 4)[0], [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_frames(x, 25)[1], [*range(10), *range(10), 0, 1, 2, 3, 4])
    with pytest.raises(ValueError):
        fit_frames(x[:, :0], 4)


def test_crop_span_frames_equal_the_centre_of_the_full_mfcc():
    settings = MFCCSettings()
    y = _signal(4)[44100:]  # no near-silence: the top_db floor is the same on the span and the whole
    span = crop_span(len(y), 100, settings)
    full = fit_frames(MFCC()(torch.from_numpy(y)), 100)
    part = MFCC()(torch.from_numpy(y[span[0]:span[1]]), center=False)
    assert part.shape == (32, 100)
    torch.testing.assert_close(part, full, atol=1e-3, rtol=1e-5)
    assert crop_span(len(y), 1000, settings) is None  # shorter than the crop: tiled instead


# ------------------------------------------------------------------------------------------------ reading


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_stereo_is_averaged_to_mono(tmp_path):
    audio = tone(1.0, gains=[0.4, 0.2])
    path = write_video(tmp_path / "s.mp4", [np.zeros((16, 16, 3), np.uint8)] * 5, audio=audio)
    mono = read_audio(path, 44100)
    assert abs(len(mono) - 44100) < 2048
    assert _rms(mono[4096:-4096]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_surround_5_1_is_averaged_to_mono(tmp_path):
    gains = [0.1, 0.2, 0.3, 0.0, 0.2, 0.4]
    path = write_video(tmp_path / "s.mkv", [np.zeros((16, 16, 3), np.uint8)] * 5, audio=tone(1.0, channels=6,
                                                                                             gains=gains))
    mono = read_audio(path, 44100)
    assert _rms(mono[4096:-4096]) == pytest.approx(np.mean(gains) / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("rate, name, codec", [(8000, "m.mp4", "aac"), (48000, "o.webm", "libopus")])
def test_other_rates_are_resampled(tmp_path, rate, name, codec):
    options = {"video_codec": "libvpx-vp9"} if name.endswith("webm") else {}
    path = write(tmp_path / name, num_frames=25, channels=1, sample_rate=rate, audio_codec=codec, **options)
    mono = read_audio(path, 44100)
    assert abs(len(mono) - 44100) < 2500
    spectrum = np.abs(np.fft.rfft(mono[5000:5000 + 32768]))
    assert np.argmax(spectrum) * 44100 / 32768 == pytest.approx(440, abs=3)
    # the resampled signal matches librosa's resampling of the same decoded samples
    native = read_audio(path, rate)
    expected = librosa.resample(native, orig_sr=rate, target_sr=44100)
    n = min(len(expected), len(mono))
    assert _rms(mono[2000:n - 2000] - expected[2000:n - 2000]) < 0.02


def test_read_audio_span_and_no_audio(tmp_path):
    path = write(tmp_path / "a.mp4", num_frames=50, audio_seconds=2.0)
    whole = read_audio(path, 44100)
    span = read_audio(path, 44100, start=1.0, end=1.5)
    assert len(span) == 22050
    np.testing.assert_allclose(span, whole[44100:44100 + 22050], atol=1e-4)  # decoded after a seek
    assert read_audio(write(tmp_path / "silent.mp4", channels=0), 44100) is None


def test_clip_mfcc_of_a_file_matches_librosa(tmp_path):
    path = write(tmp_path / "a.mp4", num_frames=50, audio_seconds=2.0)
    ours = clip_mfcc(path, 256, MFCCSettings(), duration=2.0)
    reference = librosa.feature.mfcc(y=read_audio(path, 44100)[:88200], sr=44100, n_mfcc=32)
    np.testing.assert_allclose(ours.numpy(), fit_frames(torch.from_numpy(reference), 256).numpy(), atol=2e-3)
    assert clip_mfcc(write(tmp_path / "silent.mp4", channels=0), 256, MFCCSettings()) is None


@pytest.mark.slow
def test_long_audio_decodes_only_the_cropped_span(tmp_path):
    """3 minutes of audio: the q-frame crop needs ~47.5 s; memory must not follow the track length."""
    frames = [np.zeros((16, 16, 3), np.uint8)] * 90
    audio = np.stack([_signal(180, seed=1)[::-1]] * 2)  # no near-silent frames in the cropped centre
    path = write_video(tmp_path / "long.mp4", frames, fps=0.5, audio=audio)
    settings = MFCCSettings()
    tracemalloc.start()
    features = clip_mfcc(path, 4096, settings, duration=180.0)
    _, span_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    whole = read_audio(path, 44100)
    _, whole_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert features.shape == (32, 4096)
    assert span_peak < 20e6 and whole_peak > 30e6  # a 47.5 s span vs 180 s of float32 samples
    # The track ends at its metadata duration (the codec's padding after it is dropped). The crop is
    # exactly librosa's but for top_db: the 80 dB floor (which binds above AAC's low-pass) is relative
    # to the span's loudest frame instead of the whole track's.
    whole = whole[: 180 * 44100]
    reference = librosa.feature.mfcc(y=whole, sr=44100, n_mfcc=32)
    start = (reference.shape[1] - 4096) // 2
    np.testing.assert_allclose(features.numpy(), reference[:, start:start + 4096], atol=0.5)
    a, b = crop_span(len(whole), 4096, settings)
    torch.testing.assert_close(features, MFCC()(torch.from_numpy(whole[a:b]), center=False))


def test_unreadable_audio_source(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        read_audio(bad, 44100)
