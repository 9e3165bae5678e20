"""The audio half of the input: read a video's audio track as mono at a fixed rate, and its MFCC.

The MFCC is vectorised torch that reproduces `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=...)` with
librosa 0.11's defaults: centred frames with zero ("constant") padding, periodic Hann window,
power spectrogram, Slaney-style mel filterbank (Slaney scale and area normalisation),
`power_to_db(ref=1, amin=1e-10, top_db=80)` and an orthonormal DCT-II: the authors' librosa MFCC.

Long tracks (over twice the `q`-frame crop, ~95 s at the defaults): only the audio span whose frames
survive the centre crop is decoded, and `top_db` is then relative to the loudest frame of that span
(the authors' full-track MFCC uses the whole track's maximum; the two differ only in frames more than
80 dB below the peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch
from av.audio.plane import AudioPlane

from .decoding import as_source, open_container
from .errors import VideoReadError
from .paper import NUM_MFCC, SAMPLE_RATE


@dataclass(frozen=True)
class MFCCSettings:
    """The STFT/mel/MFCC parameters, librosa's defaults at the paper's 44.1 kHz and 32 coefficients."""

    sample_rate: int = SAMPLE_RATE
    num_mfcc: int = NUM_MFCC
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    top_db: float = 80.0

    def num_frames(self, num_samples: int) -> int:
        """MFCC frames librosa gives for `num_samples` samples (centred frames)."""
        return 1 + num_samples // self.hop_length


# --------------------------------------------------------------------------------------------------
# Reading


def read_audio(item, sample_rate: int = SAMPLE_RATE, start: float = 0.0,
               end: float | None = None) -> np.ndarray | None:
    """Mono float32 samples at `sample_rate` of `[start, end)` seconds of the first audio track.

    Channels are averaged with equal weights (as `librosa.load` does), whatever the layout: 5.1, 7.1,
    unnamed ones, the LFE channel included (`MonoDownmix`); the native rate is converted with FFmpeg's
    resampler. Returns `None` when there is no audio track, and no samples when the track has none.
    Only the requested span is decoded (after a seek), so memory follows the span, not the file.
    """
    source = as_source(item)
    preroll = 0.5  # codecs need a few packets before the requested time to decode it exactly
    with open_container(source) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        native_rate = stream.codec_context.sample_rate
        if not native_rate:
            raise VideoReadError(source.name, "the audio track has no sample rate")
        decoded = _decode_mono(container, stream, source, start - preroll, end, preroll)
    if decoded is None:  # the demuxer refused the seek (e.g. a track without packets): read from the start
        with open_container(source) as container:
            decoded = _decode_mono(container, container.streams.audio[0], source, 0.0, end, preroll)
    chunks, first_time = decoded
    if not chunks:
        return np.zeros(0, np.float32)
    mono = np.concatenate(chunks)
    if native_rate != sample_rate:
        mono = resample(mono, native_rate, sample_rate)
    offset = max(0, round((start - first_time) * sample_rate))
    stop = None if end is None else offset + max(0, round((end - start) * sample_rate))
    return mono[offset:stop]


def _decode_mono(container, stream, source, seek_to: float, end: float | None, margin: float) -> tuple | None:
    """Native-rate mono chunks from `seek_to` (seconds, when positive) until `end` + `margin`, and the
    first chunk's time; None when the demuxer refuses to seek there."""
    if seek_to > 0:
        try:
            container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            return None
    downmix = MonoDownmix()
    chunks, first_time = [], None
    try:
        for frame in container.decode(stream):
            time = frame.time if frame.time is not None else 0.0
            if end is not None and time > end + margin:
                break
            if first_time is None:
                first_time = time
            chunks.append(downmix(frame))
    except av.FFmpegError as error:
        if not chunks:
            raise VideoReadError(source.name, f"the audio track cannot be decoded ({error})") from None
        # a truncated tail: keep the audio decoded so far
    return chunks, first_time or 0.0


class MonoDownmix:
    """Decoded audio frames of any sample format and channel layout -> mono float32, the plain mean of
    the channels (librosa's downmix; FFmpeg's own "mono" layout weights the channels instead).

    PyAV's `AudioFrame.planes` / `to_ndarray` count planes up to a null pointer, which a planar frame of
    8 or more channels (7.1 AAC) does not have: they read past the frame and crash the interpreter.
    So planar float frames (AAC, Opus, MP3) are read plane by plane up to the channel count, and any
    other format is converted by FFmpeg to packed float, whose single plane holds every channel.
    """

    def __init__(self):
        self.key, self.to_packed = None, None

    def __call__(self, frame: av.AudioFrame) -> np.ndarray:
        if frame.format.name == "fltp":
            planes = [np.frombuffer(AudioPlane(frame, i), np.float32, count=frame.samples)
                      for i in range(frame.layout.nb_channels)]
            return np.mean(planes, axis=0, dtype=np.float32)
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self.key:  # a converter accepts only frames like its first one
            self.key, self.to_packed = key, av.AudioResampler(format="flt")
        chunks = [packed.to_ndarray().reshape(-1, packed.layout.nb_channels).mean(axis=1, dtype=np.float32)
                  for packed in self.to_packed.resample(frame)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 samples with FFmpeg's resampler (the whole signal in one pass)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32, copy=False), format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out += [f.to_ndarray()[0] for f in resampler.resample(None)]
    resampled = np.concatenate(out) if out else np.zeros(0, np.float32)
    return resampled[: round(len(samples) * target_rate / rate)]


# --------------------------------------------------------------------------------------------------
# MFCC


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = hz / f_sp
    return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz.clamp(min=1e-12) / min_log_hz) / logstep, linear)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   dtype=torch.float32) -> torch.Tensor:
    """(n_mels, 1 + n_fft // 2) triangular filters on the Slaney mel scale, area-normalised ("slaney")."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = torch.linspace(0, sample_rate / 2, 1 + n_fft // 2, dtype=torch.float64)
    mel_points = torch.linspace(_hz_to_mel(torch.tensor(float(fmin), dtype=torch.float64)).item(),
                                _hz_to_mel(torch.tensor(float(fmax), dtype=torch.float64)).item(),
                                n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz(mel_points)
    widths = edges.diff()
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.to(dtype)


def dct_matrix(num_mfcc: int, n_mels: int, dtype=torch.float32) -> torch.Tensor:
    """(num_mfcc, n_mels) orthonormal DCT-II, as `scipy.fft.dct(type=2, norm="ortho")`."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(num_mfcc, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis.to(dtype)


class MFCC(torch.nn.Module):
    """Waveform (..., samples) -> MFCC (..., num_mfcc, frames), equal to librosa's to float32 precision.

    `center=False` skips librosa's edge padding: used when the samples are a span cut from inside a
    longer signal, whose frames are then exactly the long signal's frames over that span.
    """

    def __init__(self, settings: MFCCSettings = MFCCSettings()):
        super().__init__()
        self.settings = settings
        self.register_buffer("window", torch.hann_window(settings.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel", mel_filterbank(settings.sample_rate, settings.n_fft, settings.n_mels),
                             persistent=False)
        self.register_buffer("dct", dct_matrix(settings.num_mfcc, settings.n_mels), persistent=False)

    def forward(self, waveform: torch.Tensor, center: bool = True) -> torch.Tensor:
        s = self.settings
        waveform = waveform.to(torch.float32)
        if center:
            waveform = torch.nn.functional.pad(waveform, (s.n_fft // 2, s.n_fft // 2))
        if waveform.shape[-1] < s.n_fft:
            waveform = torch.nn.functional.pad(waveform, (0, s.n_fft - waveform.shape[-1]))
        spectrum = torch.stft(waveform.reshape(-1, waveform.shape[-1]), s.n_fft, s.hop_length, window=self.window,
                              center=False, return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()
        db = 10.0 * torch.log10(torch.clamp(self.mel @ power, min=1e-10))
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - s.top_db)
        mfcc = self.dct @ db
        return mfcc.reshape(*waveform.shape[:-1], s.num_mfcc, mfcc.shape[-1])


def fit_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Centre-crop (..., frames) to `num_frames`, or tile it (repeat from the start) when shorter."""
    length = features.shape[-1]
    if length == 0:
        raise ValueError("cannot fit an empty MFCC sequence")
    if length >= num_frames:
        start = (length - num_frames) // 2
        return features[..., start : start + num_frames]
    repeats = -(-num_frames // length)
    return features.tile((1,) * (features.dim() - 1) + (repeats,))[..., :num_frames]


def crop_span(num_samples: int, num_frames: int, settings: MFCCSettings) -> tuple[int, int] | None:
    """Sample span [a, b) whose uncentred frames are the centre `num_frames` frames of the whole signal.

    None when the signal is too short for a crop that stays away from the padded edges.
    """
    total = settings.num_frames(num_samples)
    first = (total - num_frames) // 2
    a = first * settings.hop_length - settings.n_fft // 2
    b = (first + num_frames - 1) * settings.hop_length + settings.n_fft // 2
    if total <= num_frames or a < 0 or b > num_samples:
        return None
    return a, b


def clip_mfcc(item, num_frames: int, settings: MFCCSettings, mfcc: MFCC | None = None,
              clip_range: tuple[float, float] | None = None, duration: float | None = None) -> torch.Tensor | None:
    """MFCC (num_mfcc, num_frames) of a video's audio, centre-cropped or tiled; None without audio.

    `duration` is the audio track's length from its metadata: the track is cut there (dropping the
    codec's padding after the last sample), so the centre crop sits at the same place whether the
    whole track or only a span is decoded. Without `clip_range`, tracks longer than twice the crop
    decode only the span the crop keeps. With `clip_range`, the MFCC of that window's audio.
    """
    mfcc = mfcc if mfcc is not None else MFCC(settings)
    rate = settings.sample_rate
    if clip_range is not None:
        samples = read_audio(item, rate, start=float(clip_range[0]), end=float(clip_range[1]))
        return None if samples is None or not len(samples) else fit_frames(mfcc(torch.from_numpy(samples)), num_frames)
    # Tracks up to twice the crop are decoded whole (exact crop position, bounded memory); longer
    # ones only over the span, placed from the container's duration (within one hop of exact).
    long_track = duration is not None and duration * rate > 2 * num_frames * settings.hop_length
    span = crop_span(round(duration * rate), num_frames, settings) if long_track else None
    if span is not None:
        samples = read_audio(item, rate, start=span[0] / rate, end=span[1] / rate)
        if samples is not None and len(samples) == span[1] - span[0]:
            return mfcc(torch.from_numpy(samples), center=False)
    samples = read_audio(item, rate, end=duration)
    if samples is None or not len(samples):
        return None
    return fit_frames(mfcc(torch.from_numpy(samples)), num_frames)


__all__ = [
    "MFCC",
    "MFCCSettings",
    "MonoDownmix",
    "clip_mfcc",
    "crop_span",
    "dct_matrix",
    "fit_frames",
    "mel_filterbank",
    "read_audio",
    "resample",
]
