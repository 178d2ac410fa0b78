"""Video metadata (``probe``) and the shared, error-mapped way of opening media with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer

from lfa.errors import MediaError
from lfa.media.image import PathLike, check_file, is_gif, is_image_path, looks_like_video_container

_REENCODE = "re-download or re-encode it with ffmpeg"


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns from a video's headers (plus its first decoded frame).

    ``rotation`` is the counter-clockwise angle (0, 90, 180 or 270) that turns the stored
    frames upright, i.e. FFmpeg's display-matrix rotation; ``width``/``height`` are the
    upright (display) size, so they are swapped for 90/270.
    """

    path: Path
    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int
    rotation: int
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    codec: str
    variable_frame_rate: bool


def corrupt(path: PathLike, detail: str) -> MediaError:
    return MediaError(f"truncated or corrupt video: {path} ({detail})", _REENCODE)


def _mp4_without_moov(path: Path) -> bool:
    """An ISO-BMFF file whose top-level boxes hold no 'moov' (the index; written last)."""
    size, pos, boxes = path.stat().st_size, 0, []
    with path.open("rb") as fh:
        while pos + 8 <= size and len(boxes) < 1000:
            fh.seek(pos)
            head = fh.read(16)
            n, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if n == 1 and len(head) == 16:
                n = int.from_bytes(head[8:16], "big")
            boxes.append(kind)
            if n < 8:
                break
            pos += n
    return bool(boxes) and boxes[0] == b"ftyp" and b"moov" not in boxes


def open_media(path: PathLike) -> InputContainer:
    """Open an existing, non-empty media file, turning FFmpeg failures into MediaError."""
    p = check_file(path)
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.FFmpegError as e:
        if looks_like_video_container(p):
            if _mp4_without_moov(p):
                why = "no 'moov' index box: it was cut off (interrupted download or recording)"
                raise corrupt(p, why) from None
            raise corrupt(p, f"FFmpeg cannot open it: {e.strerror or e}") from None
        raise MediaError(
            f"not a video or image: {p}", "pass a video (.mp4, .mov, .mkv …) or an image"
        ) from None


def open_video(path: PathLike) -> tuple[InputContainer, av.VideoStream]:
    """``open_media`` plus the first video stream, threaded decoding switched on."""
    p = check_file(path)
    if is_image_path(p) and not is_gif(p):  # an animated GIF is a video (a still one: a one-frame video)
        raise MediaError(f"not a video (it is an image): {p}",
                         "pass a video; photos are read with read_image (or as references)")
    container = open_media(p)
    if not container.streams.video:
        has_audio = bool(container.streams.audio)
        container.close()
        if has_audio:
            raise MediaError(f"no video stream: {p} (audio only)", "pass a file that has video")
        raise MediaError(f"no video stream: {p}", "pass a video (.mp4, .mov, .mkv …)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise MediaError(f"unsupported video codec in {p}", "re-encode it to H.264 with ffmpeg")
    stream.thread_type = "AUTO"
    return container, stream


def normalize_rotation(degrees: float) -> int:
    """Nearest multiple of 90 in [0, 360)."""
    return int(round(degrees / 90.0)) * 90 % 360


def _first_frame_rotation(container: InputContainer, stream: av.VideoStream) -> int | None:
    """Rotation of the first decodable frame, or None if no frame decodes."""
    try:
        for frame in container.decode(stream):
            return normalize_rotation(frame.rotation)
    except (av.FFmpegError, EOFError):
        return None
    return None


def _is_vfr(stream: av.VideoStream, n_frames: int) -> bool:
    """Timestamp spread from the demuxer index when it lists every frame, else rate mismatch."""
    entries = stream.index_entries
    if n_frames >= 3 and len(entries) >= 0.9 * n_frames:
        head = entries[: min(len(entries), 10_000)]  # enough to see VFR, still cheap
        ts = np.array([e.timestamp for e in head if not e.is_discard], dtype=np.int64)
        deltas = np.diff(np.sort(ts))
        if deltas.size >= 2:
            median = float(np.median(deltas))
            return float(deltas.max() - deltas.min()) > max(1.0, 0.01 * median)
    r, avg = stream.base_rate, stream.average_rate
    if not r or not avg:
        return False
    return abs(float(r) - float(avg)) > 0.01 * float(avg)


def is_animated_gif(path: PathLike) -> bool:
    """A GIF of more than one frame: a short video to ``lfa faces`` (curation decodes every GIF as video)."""
    if not is_gif(path):
        return False
    try:
        return probe(path).n_frames > 1
    except MediaError:
        return False


def probe(path: PathLike) -> VideoInfo:
    """Read a video's metadata; raises MediaError for anything that is not a decodable video."""
    p = Path(path)
    container, vs = open_video(p)
    with container:
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        tb = vs.time_base
        if vs.duration and tb:
            duration = float(vs.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        fps = float(rate) if rate else (vs.frames / duration if vs.frames and duration else 0.0)
        if fps <= 0:
            raise corrupt(p, "no frame rate in the headers")
        n_frames = vs.frames if vs.frames > 0 else int(round(duration * fps))
        if duration <= 0:
            duration = n_frames / fps
        vfr = _is_vfr(vs, n_frames)
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_rate = audio.codec_context.sample_rate if audio is not None else None
        audio_channels = audio.codec_context.channels if audio is not None else None
        codec = vs.codec_context.name
        w, h = vs.codec_context.width, vs.codec_context.height
        rotation = _first_frame_rotation(container, vs)
        if rotation is None:
            raise corrupt(p, "no frame could be decoded")
        if rotation == 0 and "rotate" in vs.metadata:  # legacy tag: clockwise degrees
            try:
                rotation = normalize_rotation(-float(vs.metadata["rotate"]))
            except ValueError:
                pass
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(
        path=p,
        duration_s=duration,
        fps=fps,
        n_frames=n_frames,
        width=w,
        height=h,
        rotation=rotation,
        has_audio=audio is not None,
        audio_sample_rate=audio_rate,
        audio_channels=audio_channels,
        codec=codec,
        variable_frame_rate=vfr,
    )
