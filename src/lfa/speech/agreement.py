"""Audio-visual agreement: does the visible mouth follow the speech? Pearson correlation of the speech
envelope with the mouth-opening signal over a window around each speech segment, at the best lag in
±max_lag (positive lag: the sound comes later than the picture)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lfa.speech.audio import SAMPLE_RATE
from lfa.speech.lips import MouthSignal

ENVELOPE_HOP_S = 0.01
PAD_S = 0.3  # context around a segment: the mouth closes before and after speech
LAG_STEP_S = 0.02
TREND_S = 0.6  # slower changes are removed from both signals (a turning head changes the mouth ratio slowly)


@dataclass
class Agreement:
    score: float  # best correlation, NaN when it cannot be measured (no face, too few frames)
    lag_s: float
    mouth_motion: float  # std of the mouth opening in the window
    frames: int


def speech_envelope(audio: np.ndarray, hop_s: float = ENVELOPE_HOP_S) -> np.ndarray:
    """RMS per ``hop_s`` (10 ms), log-compressed (loudness, roughly)."""
    hop = int(hop_s * SAMPLE_RATE)
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    return np.log10(rms + 1e-3) + 3.0  # 0 at silence


def envelope_at(envelope: np.ndarray, times: np.ndarray, window_s: float, hop_s: float = ENVELOPE_HOP_S) -> np.ndarray:
    """Mean envelope over ``window_s`` centred at each of ``times`` (seconds from the audio's start)."""
    if envelope.size == 0:
        return np.zeros(len(times))
    csum = np.concatenate([[0.0], np.cumsum(envelope)])
    a = np.clip(np.round((times - window_s / 2) / hop_s).astype(int), 0, len(envelope))
    b = np.clip(np.round((times + window_s / 2) / hop_s).astype(int), 0, len(envelope))
    width = np.maximum(b - a, 1)
    return np.where(b > a, (csum[b] - csum[a]) / width, 0.0)


def agreement(envelope: np.ndarray, audio_start: float, mouth: MouthSignal, segment: tuple[float, float],
              max_lag_s: float) -> Agreement:
    """Agreement over one speech segment (``segment`` and ``mouth.times`` in source seconds)."""
    a, b = segment
    sel = (mouth.times >= a - PAD_S) & (mouth.times < b + PAD_S) & np.isfinite(mouth.values)
    t, m = mouth.times[sel], mouth.values[sel]
    if len(t) < 5:
        return Agreement(math.nan, 0.0, math.nan, int(len(t)))
    window = 1.0 / mouth.fps if mouth.fps > 0 else 0.08
    trend = max(3, int(round(TREND_S / window)) | 1)
    m = detrend(m, trend)
    motion = float(np.std(m))
    best, best_lag = -math.inf, 0.0
    for lag in np.arange(-max_lag_s, max_lag_s + 1e-9, LAG_STEP_S):
        e = detrend(envelope_at(envelope, t - audio_start + lag, window), trend)
        r = _pearson(e, m)
        if r > best + 1e-9 or (abs(r - best) <= 1e-9 and abs(lag) < abs(best_lag)):
            best, best_lag = r, float(lag)
    return Agreement(float(best), round(best_lag, 3), motion, int(len(t)))


def detrend(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` minus its centred moving average over ``width`` samples (edges: the shorter window there)."""
    kernel = np.ones(width)
    mean = np.convolve(x, kernel, mode="same") / np.convolve(np.ones_like(x), kernel, mode="same")
    return x - mean


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return float(np.dot(x, y) / den) if den > 1e-12 else 0.0
