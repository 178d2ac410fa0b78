"""Frame decoding with seeking, sampling and upright rotation.

Selection rule: every target time (from ``fps``, ``times`` or ``indices``) yields the first
decoded frame whose timestamp is >= the target (half a timestamp tick of slack). A target
after the last frame but inside its display interval (``t_last + 1/fps``) yields the last
frame; later targets yield nothing. Targets are served in ascending order, one Frame each,
so up-sampling (``fps`` above the video's rate) repeats frames.

Times are seconds from the video stream's first timestamp; ``Frame.index`` is
``round(t * average_fps)``, which equals the frame's position for constant-rate video.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import av
import cv2
import numpy as np
from av.container import InputContainer

from lfa.errors import MediaError
from lfa.media.image import PathLike
from lfa.media.probe import VideoInfo, corrupt, open_video, probe
from lfa.media.sampling import sample_times

log = logging.getLogger(__name__)

_SEEK_GAP_S = 2.0  # without a demuxer index, seek when the next target is this far ahead
_Decoded = tuple[float, av.VideoFrame]


@dataclass(frozen=True)
class Frame:
    index: int
    t: float
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate a stored frame counter-clockwise by ``rotation`` degrees (multiple of 90)."""
    k = (int(round(rotation / 90.0))) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


class _Reader:
    """Seekable stream of (t, VideoFrame) for one open video."""

    def __init__(self, container: InputContainer, stream: av.VideoStream, info: VideoInfo):
        self.container, self.stream, self.info = container, stream, info
        self.tb = stream.time_base
        self.start_pts = stream.start_time or 0
        self.eps = float(self.tb) / 2 + 1e-6
        self.n_good = 0  # frames decoded without error, over all seeks
        self.started = False
        self.error: Exception | None = None
        entries = stream.index_entries
        self.index = entries if len(entries) >= 2 else None

    def _ticks(self, t: float) -> int:
        return self.start_pts + int(math.floor(t / self.tb))

    def _decode(self) -> Iterator[_Decoded]:
        last_t = -1.0 / self.info.fps
        try:
            for packet in self.container.demux(self.stream):
                for vf in packet.decode():
                    if vf.pts is None:
                        t = last_t + 1.0 / self.info.fps
                    else:
                        t = float((vf.pts - self.start_pts) * self.tb)
                    last_t = t
                    self.n_good += 1
                    yield t, vf
        except (av.FFmpegError, EOFError) as e:
            self.error = e
            log.warning("%s: decoding stopped early after t=%.3fs: %s", self.info.path, last_t, e)
            return
        if last_t < self.info.duration_s - max(1.5 / self.info.fps, 0.5):
            log.warning(
                "%s: video ends at t=%.3fs but its header says %.3fs (truncated?)",
                self.info.path, max(last_t, 0.0), self.info.duration_s,
            )

    def frames_from(self, t: float) -> Iterator[_Decoded]:
        """Seek (backward, to a keyframe) so that the first frame at or after ``t`` is included.

        Seeking by a demuxer's dts can land on a keyframe shown after ``t``; then the seek
        point is moved back (1 s, 2 s, 4 s …) until the first frame is not after ``t``.
        """
        self.started = True
        margin = 0.0
        while True:
            at = t - margin
            try:
                self.container.seek(
                    max(self._ticks(at), self.start_pts), backward=True, stream=self.stream
                )
            except av.FFmpegError as e:
                if self.n_good:  # already read past the target: no way back
                    raise MediaError(
                        f"cannot seek in video: {self.info.path} ({e})",
                        "re-encode it to .mp4 with ffmpeg, or read it without start/indices/times",
                    ) from None
                # Unseekable stream (e.g. raw H.264) not yet read: decode from its start.
            frames = self._decode()
            first = next(frames, None)
            if first is None or at <= 0 or first[0] <= t + self.eps:
                return chain([first] if first else [], frames)
            frames.close()
            margin = max(1.0, 2 * margin)

    def should_seek(self, cur_t: float, target: float) -> bool:
        """Seek when a keyframe lies between the current position and the target."""
        if self.index is None:
            return target - cur_t > _SEEK_GAP_S
        i = self.index.search_timestamp(self._ticks(target), backward=True)
        if i < 0:
            return False
        key_t = float((self.index[i].timestamp - self.start_pts) * self.tb)
        return key_t > cur_t + self.eps


def _select(reader: _Reader, targets: np.ndarray) -> Iterator[_Decoded]:
    """Apply the selection rule of the module docstring to ascending ``targets``."""
    eps, frame_dur = reader.eps, 1.0 / reader.info.fps
    frames: Iterator[_Decoded] | None = None
    cur: _Decoded | None = None
    exhausted = False
    for target in targets:
        target = float(target)
        if cur is not None and cur[0] >= target - eps:
            yield cur
            continue
        pos = cur[0] if cur is not None else -1.0
        if frames is None or (not exhausted and reader.should_seek(pos, target)):
            frames = reader.frames_from(target)
            exhausted = False
        for item in frames:
            cur = item
            if item[0] >= target - eps:
                yield item
                break
        else:
            exhausted = True
            if cur is None or target >= cur[0] + frame_dur - eps:
                return
            yield cur


def _all(reader: _Reader, start: float, end: float) -> Iterator[_Decoded]:
    for t, vf in reader.frames_from(start):
        if t >= end - reader.eps:
            return
        if t >= start - reader.eps:
            yield t, vf


def _to_image(vf: av.VideoFrame, rotation: int, max_side: int | None) -> np.ndarray:
    w, h = vf.width, vf.height
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        arr = vf.to_ndarray(
            width=max(1, round(w * s)), height=max(1, round(h * s)),
            format="rgb24", interpolation="AREA",
        )
    else:
        arr = vf.to_ndarray(format="rgb24")
    return rotate_upright(arr, rotation)


def _targets(
    info: VideoInfo,
    fps: float | None,
    indices: Sequence[int] | np.ndarray | None,
    times: Sequence[float] | np.ndarray | None,
    start: float,
    end: float,
) -> np.ndarray | None:
    if sum(x is not None for x in (fps, indices, times)) > 1:
        raise ValueError("iter_frames takes at most one of fps=, indices=, times=")
    if fps is not None:
        return sample_times(info.duration_s, fps=fps, start=start, end=end)
    if indices is not None:
        t = np.asarray(indices, dtype=np.float64) / info.fps
    elif times is not None:
        t = np.asarray(times, dtype=np.float64)
    else:
        return None
    t = np.sort(t.reshape(-1))
    return t[(t >= start - 1e-9) & (t < end)]


def iter_frames(
    path: PathLike,
    *,
    fps: float | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    times: Sequence[float] | np.ndarray | None = None,
    start: float = 0.0,
    end: float | None = None,
    max_side: int | None = None,
) -> Iterator[Frame]:
    """Decode upright RGB frames: all of them, or sampled by ``fps``, ``indices`` or ``times``.

    Only frames in ``[start, end)`` are returned. If the file breaks part-way, the frames
    before the break are yielded and a warning is logged; MediaError only if none decoded.
    """
    prev: tuple[av.VideoFrame, np.ndarray] | None = None
    for frame in _iter_selected(path, fps, indices, times, start, end):
        if prev is not None and prev[0] is frame.video_frame:
            image = prev[1].copy()
        else:
            image = frame.rgb(max_side)
            prev = (frame.video_frame, image)
        yield Frame(index=frame.index, t=frame.t, image=image)


_TV_TO_FULL_RANGE = np.clip(
    (np.arange(256, dtype=np.float32)[:, None] - (16, 128, 128)) * (255 / 219, 255 / 224, 255 / 224) + (0, 128, 128),
    0, 255).round().astype(np.uint8).reshape(256, 1, 3)  # cv2.LUT table: Y 16-235, Cb/Cr 16-240 -> 0-255


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame before its conversion to RGB, which at full size costs more than decoding it:
    convert each frame at the size its use needs (:meth:`rgb`)."""

    index: int
    t: float
    video_frame: av.VideoFrame
    rotation: int

    def rgb(self, max_side: int | None = None) -> np.ndarray:
        """Upright RGB uint8, scaled (area) so that its longer side is at most ``max_side``."""
        return _to_image(self.video_frame, self.rotation, max_side)

    def thumbnail(self, width: int, bgr: bool = False) -> np.ndarray:
        """Upright RGB uint8 about ``width`` pixels wide: the stored size divided by the even integer ``k``
        nearest ``stored width / width``, area averaged, made from the YUV 4:2:0 planes with OpenCV. An
        even ``k`` shrinks the half-size chroma planes by an integer too, where OpenCV's area resize is
        fast (an odd one, 512 -> 170 px, took twice the whole thumbnail's time); the thumbnail costs a
        tenth of :meth:`rgb`, whose libswscale call costs ~3 ms per frame at any size. Colours are
        approximate (BT.601, chroma averaged): for whole-frame statistics such as shot detection. Other
        pixel formats use :meth:`rgb`. ``bgr``: the same pixels in OpenCV's BGR order (converted so
        directly, not by swapping afterwards)."""
        vf = self.video_frame
        if vf.format.name not in ("yuv420p", "yuvj420p") or vf.width < 2 or vf.height < 2:
            image = self.rgb(width)
            return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if bgr else image
        w, h = vf.width, vf.height
        half = max(1, min(round(w / (2 * max(1, width))), w // 2, h // 2))  # k / 2: the chroma planes' factor
        k = 2 * half
        tw, th = w // k, h // k
        y_plane, u_plane, v_plane = vf.planes[:3]
        luma = np.frombuffer(y_plane, np.uint8).reshape(-1, y_plane.line_size)[:th * k, :tw * k]
        small = [cv2.resize(np.ascontiguousarray(luma), (tw, th), interpolation=cv2.INTER_AREA)]
        for plane in (u_plane, v_plane):
            chroma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:th * half, :tw * half]
            small.append(chroma.copy() if half == 1 else cv2.resize(chroma, (tw, th), interpolation=cv2.INTER_AREA))
        yuv = cv2.merge(small)
        if vf.format.name == "yuv420p":  # limited ("TV") range: stretch to full range first
            yuv = cv2.LUT(yuv, _TV_TO_FULL_RANGE)
        return rotate_upright(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR if bgr else cv2.COLOR_YUV2RGB), self.rotation)


def iter_decoded(path: PathLike, *, start: float = 0.0, end: float | None = None,
                 info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    """Every frame in ``[start, end)``, unconverted; same truncation rule as :func:`iter_frames`. ``info``:
    the file's :func:`probe`, where the caller has it (probing opens the file and decodes a frame)."""
    return _iter_selected(path, None, None, None, start, end, info)


def _iter_selected(path: PathLike, fps: float | None, indices: Sequence[int] | np.ndarray | None,
                   times: Sequence[float] | np.ndarray | None, start: float,
                   end: float | None, info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    info = info or probe(path)
    stop = info.duration_s + 1.0 / info.fps if end is None else float(end)
    targets = _targets(info, fps, indices, times, max(0.0, float(start)), stop)
    container, stream = open_video(path)
    with container:
        reader = _Reader(container, stream, info)
        chosen = _all(reader, float(start), stop) if targets is None else _select(reader, targets)
        for t, vf in chosen:
            yield DecodedFrame(index=int(round(t * info.fps)), t=t, video_frame=vf, rotation=info.rotation)
        if reader.started and reader.n_good == 0:
            raise corrupt(info.path, f"no frame could be decoded ({reader.error or 'no data'})")


def read_frames(
    path: PathLike,
    *,
    fps: float | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    times: Sequence[float] | np.ndarray | None = None,
    start: float = 0.0,
    end: float | None = None,
    max_side: int | None = None,
) -> list[Frame]:
    """``iter_frames`` collected into a list."""
    return list(
        iter_frames(
            path, fps=fps, indices=indices, times=times, start=start, end=end, max_side=max_side
        )
    )

