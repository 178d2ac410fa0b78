"""H.264 (+ AAC) writing with PyAV.

Output is byte-for-byte reproducible for the same input and the same FFmpeg/x264 build:
x264 runs single-threaded; the muxer and encoders get FFmpeg's ``bitexact`` flag (no
library version strings, no creation time); and x264's AVX-512 code is switched off,
because its macroblock-tree code reads uninitialised memory when the width is not a
multiple of 128 px, so output changed with heap contents. Without AVX-512, x264's output
equals its plain-C output (same bytes on any CPU); the speed cost is small.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np

from lfa.errors import MediaError
from lfa.media.image import PathLike

log = logging.getLogger(__name__)

_AAC_FRAME = 1024  # samples per AAC frame


def _check_frame(i: int, frame: np.ndarray, path: Path) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise MediaError(
            f"cannot write {path}: frame {i} must be (H, W, 3) uint8 RGB, "
            f"got shape {arr.shape} dtype {arr.dtype}",
            "convert frames with np.clip(x, 0, 255).astype(np.uint8)",
        )
    return arr


def _pad_even(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return arr
    return np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _check_audio(audio: np.ndarray, path: Path) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
        raise MediaError(
            f"cannot write {path}: audio must be mono float samples in [-1, 1], "
            f"got shape {a.shape} dtype {a.dtype}",
            "pass a 1-D float32 array (int16 audio: divide by 32768)",
        )
    return np.clip(a.astype(np.float32), -1.0, 1.0)


@functools.cache
def _x264_cpu_without_avx512() -> str | None:
    """x264's detected CPU capabilities minus AVX512 (as an ``asm=`` value), or None if unused."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)  # x264 reports its capabilities at INFO
    try:
        with av.logging.Capture() as logs:
            ctx = av.CodecContext.create("libx264", "w")
            ctx.width, ctx.height, ctx.pix_fmt = 16, 16, "yuv420p"
            ctx.time_base = Fraction(1, 25)
            ctx.open()
            del ctx
    finally:
        av.logging.set_level(level)
    for _, _, message in logs:
        if message.startswith("using cpu capabilities:"):
            names = message.split(":", 1)[1].split()
            if "AVX512" in names:
                return ",".join(n for n in names if n != "AVX512")
    return None


def _as_rate(fps: float | Fraction) -> Fraction:
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise MediaError(f"invalid frame rate {fps}", "pass fps > 0")
    return rate


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 18,
    keyint: int | None = None,
    rotation: int = 0,
) -> None:
    """Encode RGB uint8 frames to H.264/yuv420p (mp4/mov/mkv by extension), optionally with audio.

    Odd widths/heights are padded by one edge-replicated row/column (yuv420p needs even
    sizes). ``keyint`` is the keyframe interval in frames (default about 2 s), which bounds
    seek cost when reading back. ``rotation`` (counter-clockwise degrees, multiple of 90)
    is stored as display-matrix metadata, not applied to the pixels.
    """
    p = Path(path)
    rate = _as_rate(fps)
    it: Iterator[np.ndarray] = iter(frames)
    first = next(it, None)
    if first is None:
        raise MediaError(f"no frames to write to {p}", "pass at least one frame")
    first = _check_frame(0, first, p)
    h, w = first.shape[:2]
    if h % 2 or w % 2:
        log.warning("%s: padding %dx%d frames to even size for yuv420p", p, w, h)
    samples = _check_audio(audio, p) if audio is not None else None
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        _encode(p, first, it, rate, samples, sample_rate, crf, keyint, rotation)
    except BaseException:
        p.unlink(missing_ok=True)  # never leave a half-written file behind
        raise


def _encode(
    p: Path,
    first: np.ndarray,
    rest: Iterator[np.ndarray],
    rate: Fraction,
    samples: np.ndarray | None,
    sample_rate: int,
    crf: int,
    keyint: int | None,
    rotation: int,
) -> None:
    h, w = first.shape[:2]
    gop = keyint if keyint else max(1, round(2 * float(rate)))
    options = {"crf": str(crf), "g": str(gop), "threads": "1", "flags": "+bitexact"}
    cpu = _x264_cpu_without_avx512()
    if cpu:
        options["x264-params"] = f"asm={cpu}"
    with av.open(str(p), "w", container_options={"fflags": "+bitexact"}) as out:
        vs = out.add_stream("libx264", rate=rate, options=options)
        vs.width, vs.height = w + w % 2, h + h % 2
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        if rotation % 360:
            vs.set_display_rotation(float(rotation))
        aus = None
        if samples is not None:
            aus = out.add_stream(
                "aac", rate=sample_rate, layout="mono", options={"flags": "+bitexact"}
            )
        sent = 0  # audio samples encoded so far

        def send_audio(until: int) -> None:
            nonlocal sent
            assert aus is not None and samples is not None
            until = min(until, samples.size)
            while sent < until:
                chunk = samples[sent : sent + _AAC_FRAME]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = sample_rate
                af.pts = sent
                af.time_base = Fraction(1, sample_rate)
                out.mux(aus.encode(af))
                sent += chunk.size

        i, arr = 0, first
        while True:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(_pad_even(arr)), format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            out.mux(vs.encode(vf))
            if aus is not None:
                # Interleave: audio up to the end of this frame, rounded up to whole AAC frames.
                need = int((i + 1) / rate * sample_rate)
                send_audio(-(-need // _AAC_FRAME) * _AAC_FRAME)
            nxt = next(rest, None)
            if nxt is None:
                break
            i += 1
            arr = _check_frame(i, nxt, p)
            if arr.shape != first.shape:
                raise MediaError(
                    f"cannot write {p}: frame {i} is {arr.shape[1]}x{arr.shape[0]}, "
                    f"frame 0 was {first.shape[1]}x{first.shape[0]}",
                    "resize all frames to one size before writing",
                )
        out.mux(vs.encode(None))
        if aus is not None and samples is not None:
            send_audio(samples.size)
            out.mux(aus.encode(None))
