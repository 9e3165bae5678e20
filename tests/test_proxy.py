import av
import numpy as np
import pytest
import torch
from media_samples import bright_corner, corner_marked, grey_frames, tone, write
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from emotions_hf.audio_features import read_audio
from emotions_hf.data.video_writer import write_video
from emotions_hf.decoding import probe, read_clip
from emotions_hf.errors import VideoReadError
from emotions_hf.processing_avcanet import AVCANetProcessor
from emotions_hf.proxy import write_mfcc_cache, write_proxy
from emotions_hf.video_processing_avcanet import MULTI_SCALE_CROP_SCALES


def small_processor(**kwargs):
    # q = 256 MFCC frames (~3 s): the test clips' audio is decoded whole, as for most real short videos
    return AVCANetProcessor(num_snippets=4, frames_per_snippet=2, image_size=32, mfcc_frames=256, **kwargs)


def textured_video(path, num_frames=60, size=(120, 160), **kwargs):
    """A smooth texture panning across, with a noisy tone: resizing differences show, unlike on flat
    grey frames, and no mel band falls 80 dB below the peak."""
    rng = np.random.default_rng(0)
    coarse = torch.rand(1, 3, size[0] // 12 + 2, (size[1] + 4 * num_frames) // 12 + 2, generator=torch.manual_seed(0))
    texture = torch.nn.functional.interpolate(coarse, scale_factor=12, mode="bilinear")[0].permute(1, 2, 0)
    texture = (texture * 255).round().to(torch.uint8).numpy()
    frames = (texture[: size[0], 4 * i: 4 * i + size[1]] for i in range(num_frames))
    audio = tone(num_frames / 25) + 0.05 * rng.standard_normal((2, round(num_frames / 25 * 44100)))
    return write_video(path, frames, audio=audio, **kwargs)


def _packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]


def test_proxy_is_small_seekable_and_keeps_timing_and_audio(tmp_path):
    original = textured_video(tmp_path / "original.mp4")
    proxy = write_proxy(original, tmp_path / "proxy.mp4", short_side=64, keyframe_interval=4)
    source_info, proxy_info = probe(original), probe(proxy)
    assert (proxy_info.width, proxy_info.height) == (84, 64)  # 160x120 to short side 64, even sizes
    assert proxy_info.num_frames == source_info.num_frames == 60
    assert proxy_info.duration == pytest.approx(source_info.duration)
    assert proxy_info.has_audio and proxy_info.audio_channels == 2
    packets = sorted(_packets(proxy))
    assert [pts for pts, _ in packets] == sorted(pts for pts, _ in _packets(original))  # same timestamps
    assert [i for i, (_, key) in enumerate(packets) if key] == list(range(0, 60, 4))
    assert not list(tmp_path.glob("*.part*"))


def test_proxy_timestamps_come_from_the_container_index(tmp_path):
    from emotions_hf.decoding import _index_timestamps

    original = write(tmp_path / "bframes.mp4", num_frames=40, video_options={"bf": "3", "g": "250"})
    proxy = write_proxy(original, tmp_path / "proxy.mp4", short_side=32, keyframe_interval=8)
    with av.open(str(original)) as container:  # B-frames: decode order differs, the index cannot be used
        assert _index_timestamps(container, container.streams.video[0]) is None
    with av.open(str(proxy)) as container:
        times, keyframes = _index_timestamps(container, container.streams.video[0])
    packets = sorted(_packets(proxy))
    np.testing.assert_array_equal(times, [pts for pts, _ in packets])
    np.testing.assert_array_equal(keyframes, [pts for pts, key in packets if key])


def test_proxy_keeps_variable_frame_rate_and_rotation(tmp_path):
    times = np.concatenate([np.arange(20) * 0.025, 0.5 + np.arange(5) * 0.3])
    vfr = write_video(tmp_path / "vfr.mp4", grey_frames(25), frame_times=times)
    proxy = write_proxy(vfr, tmp_path / "vfr_proxy.mp4", short_side=32)
    clips = [read_clip(p, 4, 2, short_side=16) for p in (vfr, proxy)]
    np.testing.assert_array_equal(clips[0].sample.indices, clips[1].sample.indices)
    np.testing.assert_allclose(clips[0].sample.timestamps, clips[1].sample.timestamps)

    phone = write_video(tmp_path / "phone.mp4", corner_marked(), rotation=90)
    phone_proxy = write_proxy(phone, tmp_path / "phone_proxy.mp4", short_side=32)
    assert probe(phone_proxy).rotation == 90
    assert bright_corner(read_clip(phone_proxy, 1, 1).frames) == bright_corner(read_clip(phone, 1, 1).frames)


@pytest.mark.parametrize("training", [False, True])
def test_processor_gives_the_same_tensors_from_proxy_and_cache(tmp_path, training):
    original = textured_video(tmp_path / "original.mp4")
    # Multi-scale crops decode at 64 px, so the proxy is resampled, not re-encoded at the final 32 px (where x264's
    # loss on a near-Nyquist texture alone reaches the bound below).
    processor = small_processor(crop_scales=MULTI_SCALE_CROP_SCALES)
    item = {"video": str(original), "proxy": str(tmp_path / "p.mp4"), "mfcc": str(tmp_path / "m.safetensors")}
    write_proxy(original, item["proxy"], short_side=processor.training_short_side())
    write_mfcc_cache(original, item["mfcc"], processor)
    direct = processor(str(original), training=training, seed=3)
    cached = processor(item, training=training, seed=3)
    torch.testing.assert_close(cached["input_features"], direct["input_features"])
    assert cached["audio_mask"].tolist() == direct["audio_mask"].tolist() == [True]
    difference = (cached["pixel_values"] - direct["pixel_values"]).abs()
    # Resampling twice and re-encoding, in ImageNet-std units: about what separates the decord and PyAV
    # resizers on the same original (~0.2 on this near-Nyquist texture).
    assert difference.mean() < 0.3
    other = processor(str(original), training=training, seed=4)["pixel_values"]
    if training:  # other frames and crops differ by far more than the proxy does
        assert (other - direct["pixel_values"]).abs().mean() > 2 * difference.mean()


def test_missing_proxy_or_cache_falls_back_to_the_original(tmp_path):
    original = textured_video(tmp_path / "original.mp4", num_frames=30)
    processor = small_processor()
    item = {"video": str(original), "proxy": str(tmp_path / "none.mp4"),
            "mfcc": str(tmp_path / "none.safetensors")}
    expected = processor(str(original))
    for key, value in processor(item).items():
        torch.testing.assert_close(value, expected[key])


def test_cache_of_a_silent_video_and_clip_range(tmp_path):
    processor = small_processor()
    silent = write(tmp_path / "silent.mp4", num_frames=10, channels=0)
    cache = write_mfcc_cache(silent, tmp_path / "silent.safetensors", processor)
    assert load_file(cache)["mfcc"].shape == (32, 0)
    batch = processor({"video": str(silent), "mfcc": str(cache)})
    assert not batch["audio_mask"][0] and (batch["input_features"] == 0).all()

    sound = write(tmp_path / "sound.mp4", num_frames=75, audio_seconds=3.0)
    cache = write_mfcc_cache(sound, tmp_path / "sound.safetensors", processor)
    window = processor({"video": str(sound), "mfcc": str(cache)}, clip_range=(1.0, 2.0))["input_features"]
    direct = processor(str(sound), clip_range=(1.0, 2.0))["input_features"]
    assert (window - direct).abs().mean() < 0.05 * direct.abs().mean()  # same window, edges computed apart


def test_webm_opus_proxy_keeps_the_audio(tmp_path):
    source = write(tmp_path / "a.webm", num_frames=20, video_codec="libvpx-vp9", audio_codec="libopus",
                   sample_rate=48000)
    proxy = write_proxy(source, tmp_path / "a_proxy.mp4", short_side=32)
    info = probe(proxy)
    assert info.has_audio and info.audio_sample_rate == 48000 and info.codec == "h264"


def test_proxy_audio_is_copied_or_re_encoded_in_place(tmp_path):
    aac = write(tmp_path / "aac.mp4", num_frames=25)
    copied = write_proxy(aac, tmp_path / "aac_proxy.mp4", short_side=32)
    np.testing.assert_array_equal(read_audio(copied, 44100), read_audio(aac, 44100))  # same packets

    pcm = write(tmp_path / "pcm.mkv", num_frames=25, audio_codec="pcm_s16le")  # mp4 refuses this PCM
    encoded = write_proxy(pcm, tmp_path / "pcm_proxy.mp4", short_side=32)
    original, proxy_audio = read_audio(pcm, 44100), read_audio(encoded, 44100)
    assert probe(encoded).has_audio and abs(len(proxy_audio) - len(original)) < 2048
    np.testing.assert_allclose(proxy_audio[2048:40000], original[2048:40000], atol=0.05)  # AAC, not shifted


def test_broken_sources_and_caches(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        write_proxy(broken, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob("*.part*"))
    original = write(tmp_path / "ok.mp4", num_frames=10)
    processor = small_processor()
    bad_cache = write_mfcc_cache(original, tmp_path / "bad.safetensors", processor)
    with safe_open(bad_cache, "pt") as cache:
        metadata = cache.metadata()
    save_file({"mfcc": torch.zeros(7, 10)}, bad_cache, metadata=metadata)
    with pytest.raises(VideoReadError, match=r"bad.safetensors.*\(7, 10\)"):  # right settings, wrong contents
        processor({"video": str(original), "mfcc": str(bad_cache)})
    bad_cache.write_bytes(b"\x10" + bytes(40))
    with pytest.raises(VideoReadError, match="bad.safetensors: cannot read the MFCC cache"):
        processor({"video": str(original), "mfcc": str(bad_cache)})
