"""Frame sampling: the one place that turns "fps=…" or "n=…" into target times.

Rules (used by ``decode.iter_frames`` and everything built on it):

* ``fps=r``: uniform times ``start, start + 1/r, start + 2/r, …`` strictly before ``end``.
  The first sample is always at ``start`` itself.
* ``n=k``: centred bins. ``[start, end)`` is cut into ``k`` equal bins and each sample is
  the bin's centre, ``start + (i + 0.5) * (end - start) / k``. Unlike endpoint-inclusive
  spacing this never asks for ``end`` (which lies after the last frame of a video) and
  gives every sample the same share of the clip.
* A target time maps to the first frame whose timestamp is >= the target
  (``indices_for_times``), the same rule the decoder applies to real timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Slack, in seconds/frames, for float round-off when comparing times with frame grids.
_EPS = 1e-6


def sample_times(
    duration_s: float,
    fps: float | None = None,
    n: int | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> np.ndarray:
    """Target times in seconds (float64, ascending) for exactly one of ``fps`` or ``n``."""
    if (fps is None) == (n is None):
        raise ValueError("sample_times needs exactly one of fps= or n=")
    stop = float(duration_s) if end is None else min(float(end), float(duration_s))
    start = max(0.0, float(start))
    span = stop - start
    if span <= 0:
        return np.zeros(0, dtype=np.float64)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        count = int(np.ceil(span * fps - _EPS))
        return start + np.arange(count, dtype=np.float64) / float(fps)
    assert n is not None
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return start + (np.arange(n, dtype=np.float64) + 0.5) * (span / n)


def indices_for_times(
    times: Sequence[float] | np.ndarray, video_fps: float, n_frames: int | None = None
) -> np.ndarray:
    """Frame index (int64) of the first frame at or after each time, for a constant-rate video.

    With ``n_frames`` the indices are clipped to the last frame, which is what the decoder
    returns for a time inside the last frame's display interval.
    """
    if video_fps <= 0:
        raise ValueError(f"video_fps must be > 0, got {video_fps}")
    t = np.asarray(times, dtype=np.float64)
    idx = np.ceil(t * float(video_fps) - _EPS).astype(np.int64)
    idx = np.maximum(idx, 0)
    if n_frames is not None:
        idx = np.minimum(idx, max(n_frames - 1, 0))
    return idx
