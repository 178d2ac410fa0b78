"""lfa.media on videos the tests make themselves (64x48, 25 fps; the frame index is drawn
into each frame as 8 black/white 8x8 blocks so the decoded frame can be identified)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lfa.errors import MediaError
from lfa.media import (
    extract_audio,
    indices_for_times,
    is_animated_gif,
    is_image_path,
    is_video_path,
    iter_frames,
    probe,
    read_frames,
    read_image,
    rotate_upright,
    sample_times,
    write_image,
    write_video,
)
from lfa.media import decode as decode_mod

W, H, FPS, SR = 64, 48, 25, 16000


def make_frame(i: int) -> np.ndarray:
    """Moving gradient background, index bits in the top 8 rows."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0] = (x * 4 + i * 3) % 256
    img[..., 1] = (y * 5 + i * 2) % 256
    img[..., 2] = 128
    for bit in range(8):
        img[:8, bit * 8 : bit * 8 + 8] = 255 if (i >> bit) & 1 else 0
    return img


def read_code(img: np.ndarray) -> int:
    """Inverse of the index bits in ``make_frame`` (block centres, robust to coding noise)."""
    return sum(1 << b for b in range(8) if img[2:6, b * 8 + 2 : b * 8 + 6].mean() > 128)


def tone(seconds: float, hz: float = 440.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media_dir: Path) -> Path:
    """2 s, 50 frames, 440 Hz tone."""
    path = media_dir / "clip.mp4"
    write_video(path, (make_frame(i) for i in range(50)), FPS, audio=tone(2.0))
    return path


@pytest.fixture(scope="module")
def long_clip(media_dir: Path) -> Path:
    """6 s, 150 frames, a keyframe every 10 frames so seeking has somewhere to land."""
    path = media_dir / "long.mp4"
    write_video(path, (make_frame(i) for i in range(150)), FPS, keyint=10)
    return path


# ---------------------------------------------------------------- sampling


def test_sample_times_fps_and_centred_n() -> None:
    assert np.allclose(sample_times(2.0, fps=10), np.arange(20) / 10)
    assert len(sample_times(2.0, fps=25)) == 50
    assert np.allclose(sample_times(2.0, n=4), [0.25, 0.75, 1.25, 1.75])
    assert np.allclose(sample_times(2.0, n=2, start=1.0), [1.25, 1.75])
    assert np.allclose(sample_times(10.0, fps=1, start=2.0, end=5.0), [2, 3, 4])
    assert sample_times(2.0, fps=10, start=3.0).size == 0
    with pytest.raises(ValueError):
        sample_times(2.0, fps=10, n=3)


def test_indices_for_times() -> None:
    assert indices_for_times([0.0, 0.04, 0.05, 0.1], 25).tolist() == [0, 1, 2, 3]
    assert indices_for_times([1.99], 25, n_frames=50).tolist() == [49]


# ---------------------------------------------------------------- probe


def test_probe_fields(clip: Path) -> None:
    info = probe(clip)
    assert info.path == clip
    assert info.fps == pytest.approx(25.0)
    assert info.n_frames == 50
    assert (info.width, info.height) == (W, H)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.rotation == 0
    assert info.has_audio and info.audio_sample_rate == SR and info.audio_channels == 1
    assert info.codec == "h264"
    assert not info.variable_frame_rate


def test_probe_detects_variable_frame_rate(media_dir: Path) -> None:
    path = media_dir / "vfr.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        pts = np.cumsum([0] + [40] * 10 + [100] * 5 + [40] * 10)
        for i, p in enumerate(pts):
            vf = av.VideoFrame.from_ndarray(make_frame(i), format="rgb24")
            vf.pts, vf.time_base = int(p), Fraction(1, 1000)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    assert probe(path).variable_frame_rate


def test_odd_size_is_padded_to_even(media_dir: Path) -> None:
    path = media_dir / "odd.mp4"
    write_video(path, [np.zeros((47, 63, 3), np.uint8)] * 3, FPS)
    info = probe(path)
    assert (info.width, info.height) == (64, 48)


# ---------------------------------------------------------------- decode


def test_decode_all_frames_in_order(clip: Path) -> None:
    frames = read_frames(clip)
    assert [f.index for f in frames] == list(range(50))
    assert [read_code(f.image) for f in frames] == list(range(50))
    assert np.allclose([f.t for f in frames], np.arange(50) / FPS)
    f0 = frames[0]
    assert f0.image.shape == (H, W, 3) and f0.image.dtype == np.uint8
    assert np.abs(f0.image[8:].astype(int) - make_frame(0)[8:]).mean() < 3


def test_decode_by_fps(clip: Path) -> None:
    frames = read_frames(clip, fps=10)
    expected = indices_for_times(sample_times(2.0, fps=10), FPS).tolist()
    assert len(frames) == 20
    assert expected[:4] == [0, 3, 5, 8]  # first frame at or after 0, .1, .2, .3 s
    assert [f.index for f in frames] == expected
    assert [read_code(f.image) for f in frames] == expected
    assert np.allclose([f.t for f in frames], np.array(expected) / FPS)
    # Up-sampling repeats frames; the count still follows the target grid.
    assert len(read_frames(clip, fps=50)) == 100


def test_decode_centred_n_times(clip: Path) -> None:
    frames = read_frames(clip, times=sample_times(2.0, n=4))
    assert [read_code(f.image) for f in frames] == [7, 19, 32, 44]


def test_decode_indices_with_seeking(long_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeks: list[float] = []
    decoded: list[int] = []
    original = decode_mod._Reader.frames_from

    def spy(self: decode_mod._Reader, t: float):  # type: ignore[no-untyped-def]
        seeks.append(t)
        decoded.append(self.n_good)
        return original(self, t)

    monkeypatch.setattr(decode_mod._Reader, "frames_from", spy)
    wanted = [3, 47, 120, 121, 149]
    frames = read_frames(long_clip, indices=[149, 3, 121, 47, 120])  # order does not matter
    assert [f.index for f in frames] == wanted
    assert [read_code(f.image) for f in frames] == wanted
    assert len(seeks) >= 3  # far-apart indices are reached by seeking, not decoding through
    # Neighbouring indices are decoded through, without a seek.
    seeks.clear()
    near = read_frames(long_clip, indices=[10, 12, 14])
    assert [read_code(f.image) for f in near] == [10, 12, 14]
    assert len(seeks) == 1


def test_decode_start_end_and_max_side(long_clip: Path) -> None:
    frames = list(iter_frames(long_clip, start=2.0, end=2.2))
    assert [f.index for f in frames] == [50, 51, 52, 53, 54]
    assert [read_code(f.image) for f in frames] == [50, 51, 52, 53, 54]
    small = read_frames(long_clip, indices=[0], max_side=32)
    assert small[0].image.shape == (24, 32, 3)


def test_truncated_after_header_yields_decodable_frames(
    media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """moov at the front (faststart), data cut: frames before the cut come out, with a warning."""
    path = media_dir / "faststart.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        for _ in range(100):
            img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode(None))
    cut = media_dir / "faststart_cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING, logger="lfa.media"):
        frames = read_frames(cut)
    assert 10 < len(frames) < 100
    assert "truncated" in caplog.text


# ---------------------------------------------------------------- rotation


def test_rotation_metadata_gives_upright_frames(clip: Path, media_dir: Path) -> None:
    path = media_dir / "rot90.mp4"
    write_video(path, (make_frame(i) for i in range(50)), FPS, rotation=90)
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (H, W)
    rotated = read_frames(path, indices=[0, 30])
    plain = read_frames(clip, indices=[0, 30])
    for r, p in zip(rotated, plain, strict=True):
        assert r.image.shape == (W, H, 3)
        # Same bitstream apart from the display matrix: pixels equal after a CCW turn.
        assert np.array_equal(r.image, np.rot90(p.image))


def test_rotate_upright_helper() -> None:
    img = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, axis=2)
    assert rotate_upright(img, 0) is img
    assert rotate_upright(img, 90).shape == (3, 2, 3)
    assert rotate_upright(img, 90)[2, 0, 0] == img[0, 0, 0]  # top-left goes to bottom-left
    assert np.array_equal(rotate_upright(img, 270), np.rot90(img, -1))
    assert np.array_equal(rotate_upright(img, -90), rotate_upright(img, 270))


# ---------------------------------------------------------------- audio


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def test_extract_audio_tone(clip: Path) -> None:
    a = extract_audio(clip)
    assert a.dtype == np.float32 and a.ndim == 1
    assert abs(len(a) - 2 * SR) <= 1024
    assert _peak_hz(a, SR) == pytest.approx(440, abs=3)
    assert 0.2 < np.abs(a).max() <= 1.0
    a8 = extract_audio(clip, sample_rate=8000)
    assert abs(len(a8) - 16000) <= 512
    assert _peak_hz(a8, 8000) == pytest.approx(440, abs=3)


# ---------------------------------------------------------------- encode


def _dirty_heap(seed: int) -> None:
    """Leave random bytes in freed FFmpeg buffers: x264 once read such memory (AVX-512)."""
    rng = np.random.default_rng(seed)
    junk = [rng.bytes(n) for n in (100, 1000, 5000, 20000, 70000, 300000) for _ in range(20)]
    frames = [av.VideoFrame(256, 256, "yuv420p") for _ in range(50)]
    for f in frames:
        for plane in f.planes:
            np.frombuffer(plane, np.uint8)[:] = rng.integers(0, 256, plane.buffer_size, np.uint8)
    del junk, frames


def test_same_frames_same_bytes(media_dir: Path) -> None:
    outputs = []
    for k in range(4):
        _dirty_heap(k)
        path = media_dir / f"det_{k}.mp4"
        write_video(path, (make_frame(i) for i in range(25)), FPS, audio=tone(1.0))
        outputs.append(path.read_bytes())
    assert all(out == outputs[0] for out in outputs)


def test_write_video_rejects_bad_frames(media_dir: Path) -> None:
    path = media_dir / "bad.mp4"
    with pytest.raises(MediaError, match="no frames"):
        write_video(path, [], FPS)
    with pytest.raises(MediaError, match="uint8"):
        write_video(path, [np.zeros((H, W, 3), np.float32)], FPS)
    with pytest.raises(MediaError, match="frame 1 is"):
        write_video(path, [np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 2, 3), np.uint8)], FPS)
    assert not path.exists()  # no half-written file left behind


# ---------------------------------------------------------------- bad inputs


def test_empty_file(media_dir: Path) -> None:
    path = media_dir / "empty.mp4"
    path.write_bytes(b"")
    for fn in (probe, read_frames, extract_audio, read_image):
        with pytest.raises(MediaError, match=r"empty file: .*empty\.mp4"):
            fn(path)


def test_text_file_named_mp4(media_dir: Path) -> None:
    path = media_dir / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(MediaError, match=r"not a video or image: .*notes\.mp4"):
        probe(path)
    with pytest.raises(MediaError, match="not a video or image"):
        read_frames(path)
    with pytest.raises(MediaError, match=r"not an image: .*notes\.mp4"):
        read_image(path)
    assert not is_video_path(path) and not is_image_path(path)


def test_truncated_mp4(clip: Path, media_dir: Path) -> None:
    path = media_dir / "cut.mp4"
    data = clip.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    with pytest.raises(MediaError, match=r"truncated or corrupt video: .*cut\.mp4") as err:
        probe(path)
    assert "moov" in str(err.value) and "re-encode" in str(err.value)
    with pytest.raises(MediaError, match="truncated or corrupt video"):
        read_frames(path)


def test_audio_only_file(media_dir: Path) -> None:
    path = media_dir / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=SR, layout="mono")
        samples = tone(1.0)
        for k in range(0, len(samples), 1024):
            chunk = samples[None, k : k + 1024]
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            af.sample_rate, af.pts = SR, k
            out.mux(stream.encode(af))
        out.mux(stream.encode(None))
    with pytest.raises(MediaError, match=r"no video stream: .*voice\.m4a"):
        probe(path)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(path)
    assert _peak_hz(extract_audio(path), SR) == pytest.approx(440, abs=3)


def test_video_without_audio(long_clip: Path) -> None:
    with pytest.raises(MediaError, match=r"no audio stream: .*long\.mp4"):
        extract_audio(long_clip)


def test_missing_path(media_dir: Path) -> None:
    path = media_dir / "nope.mp4"
    for fn in (probe, read_frames, extract_audio, read_image):
        with pytest.raises(MediaError, match=r"file not found: .*nope\.mp4"):
            fn(path)


def test_error_text_is_one_line_with_fix(media_dir: Path) -> None:
    with pytest.raises(MediaError) as err:
        probe(media_dir / "nope.mp4")
    assert "\n" not in str(err.value) and err.value.fix


# ---------------------------------------------------------------- images


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def test_read_image_png_and_jpeg(astronaut: np.ndarray, media_dir: Path) -> None:
    png, jpg = media_dir / "astro.png", media_dir / "astro.jpg"
    Image.fromarray(astronaut).save(png)
    Image.fromarray(astronaut).save(jpg, quality=90)
    a = read_image(png)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert np.array_equal(a, astronaut)
    b = read_image(jpg)
    assert b.shape == (512, 512, 3) and np.abs(b.astype(int) - astronaut).mean() < 6
    assert is_image_path(png) and is_image_path(jpg) and not is_video_path(png)


def test_read_image_applies_exif_orientation(astronaut: np.ndarray, media_dir: Path) -> None:
    path = media_dir / "portrait.jpg"
    tall = astronaut[:, :256]  # 512 x 256
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(tall).save(path, exif=exif, quality=95)
    img = read_image(path)
    assert img.shape == (256, 512, 3)
    assert np.abs(img.astype(int) - np.rot90(tall, -1)).mean() < 6


def test_write_image_round_trip_and_sniffing(media_dir: Path, clip: Path) -> None:
    path = media_dir / "sub" / "frame.png"
    img = make_frame(7)
    write_image(path, img)
    assert np.array_equal(read_image(path), img)
    assert is_video_path(clip) and not is_image_path(clip)
    assert is_video_path(media_dir / "future.mp4") and is_image_path(media_dir / "future.png")
    with pytest.raises(MediaError, match="not an image"):
        read_image(clip)
    with pytest.raises(MediaError, match="not a video"):
        probe(path)


def test_an_animated_gif_is_a_video_and_a_still_image_is_not(media_dir: Path) -> None:
    """Reaction GIFs are short videos: probe and decode read them; a photo stays refused with a fix."""
    path = media_dir / "turn.gif"
    frames = [Image.fromarray(make_frame(i)) for i in range(12)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)
    info = probe(path)
    assert info.codec == "gif" and (info.width, info.height) == (W, H)
    decoded = read_frames(path)
    assert len(decoded) == 12 and decoded[5].image.shape == (H, W, 3)
    assert np.abs(decoded[5].image.astype(int) - make_frame(5)).mean() < 12  # a 256-colour palette
    assert np.abs(read_image(path).astype(int) - decoded[0].image).mean() < 2  # still its first frame to read_image
    still = media_dir / "still.png"
    write_image(still, make_frame(0))
    one = media_dir / "one.gif"
    frames[0].save(one)
    assert is_animated_gif(path) and not is_animated_gif(one) and not is_animated_gif(still)
    with pytest.raises(MediaError, match="it is an image") as err:
        probe(still)
    assert "read_image" in str(err.value)


def test_thumbnail_matches_a_scaled_frame_and_is_upright(clip: Path, media_dir: Path) -> None:
    import cv2

    from lfa.media import iter_decoded

    plain = list(iter_decoded(clip))[::10]
    for frame in plain:
        thumb = frame.thumbnail(20)
        assert thumb.shape == (H // 4, W // 4, 3)  # the stored size divided by the even integer nearest 64 / 20
        assert frame.thumbnail(8).shape == (H // 8, W // 8, 3)
        scaled = cv2.resize(frame.rgb(), (W // 4, H // 4), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(thumb.astype(int) - scaled).mean() < 8  # colours approximate (chroma averaged)
    rotated = media_dir / "rot90_thumb.mp4"
    write_video(rotated, (make_frame(i) for i in range(50)), FPS, rotation=90)
    turned = list(iter_decoded(rotated))[::10]  # same bitstream, display matrix 90°
    for r, p in zip(turned, plain, strict=True):
        assert np.array_equal(r.thumbnail(20), np.rot90(p.thumbnail(20)))


def test_undecodable_audio_packets_are_skipped_in_place(clip: Path, media_dir: Path) -> None:
    from lfa.media.audio import decode_audio
    from tests.damage import corrupt_audio_packets

    damaged = media_dir / "damaged.mp4"
    times = corrupt_audio_packets(clip, damaged, which=(0, 10))
    intact, broken = decode_audio(clip), decode_audio(damaged)
    assert len(broken.skipped) == 2 and broken.skipped[1] == pytest.approx(times[1], abs=0.01)
    assert "2 undecodable audio packets skipped" in broken.warning() and f"{broken.skipped[1]:.2f}" in broken.warning()
    assert intact.warning() is None and len(broken.samples) == len(intact.samples)
    gap = slice(int(times[1] * SR), int(times[1] * SR) + 1024)
    assert np.abs(broken.samples[gap]).max() == 0.0  # silence where the packet was
    after = slice(gap.stop + 2048, gap.stop + 2048 + SR // 4)  # past the decoder's warm-up: the same sound, in place
    assert np.abs(broken.samples[after] - intact.samples[after]).max() < 1e-3
    assert _peak_hz(extract_audio(damaged), SR) == pytest.approx(440, abs=3)
