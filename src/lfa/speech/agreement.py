"""Audio-visual agreement: does the visible mouth follow the speech?

The mouth opens on vowels and closes on b/m/p and in pauses; what the sound offers for that is the energy
of the voice band (300-3000 Hz, where vowels are loud and fricatives and nasal murmur are not), read as
log energy per mouth frame. Both signals lose their slow trends (0.4 s: a turning head changes the mouth
ratio slowly) and are compared by their frame-to-frame changes (the mouth opens as a syllable starts and
closes as it ends). Then:

1. one lag for the clip: the shift of the sound against the picture (±max_lag) at which the mouth and the
   band energy agree best over all its speech segments together (positive: the sound comes later);
2. per segment, ``r``: the correlation over the segment (±0.1 s of context) at that lag (±40 ms);
3. per segment, the same correlation with the segment's sound rotated inside the segment (circular shifts
   of 0.2 s up to its length less 0.2 s, every 50 ms): the speech starts and stops at the same times, only
   its syllables move. A mouth that merely starts moving when some speech starts (a dubbed face starts
   talking with the voice), or follows any speech-like rhythm, scores as well against these; only a mouth
   that follows *these* syllables stands out;
4. the AV score: how far ``r`` stands above those, in units of their spread (at least what chance gives a
   correlation over that many frames, 1/sqrt(frames - 3), as neighbouring rotations are alike). A segment
   whose mouth follows its own words scores high; a still mouth or one saying other words scores low; a
   segment shorter than a second has too few syllables to tell (no score). ``lfa.speech.status`` decides
   with a margin: speaking, voiceover, or uncertain in between.

Thresholds were calibrated on renders whose mouths say the words (docs/PERFORMANCE.md, bench/speech_sync.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lfa.speech.audio import SAMPLE_RATE
from lfa.speech.lips import MouthSignal

HOP_S = 0.01  # band-energy frames (25 ms Hann windows every 10 ms)
FRAME = 400
NFFT = 512
VOICE_BAND_HZ = (300.0, 3000.0)
PAD_S = 0.1  # context around a segment: the mouth closes before and after speech
LAG_STEP_S = 0.02
LAG_REFINE_S = 0.04  # per segment, the clip's lag ± this
ROTATION_EDGE_S, ROTATION_STEP_S = 0.2, 0.05  # rotations of a segment's sound: from 0.2 s to its length - 0.2 s
MIN_SEGMENT_S = 1.0  # a shorter segment has too few syllables to tell: no score (uncertain)
MIN_NULL = 4
TREND_S = 0.4  # slower changes are removed from both signals (syllables are faster)
MIN_FRAMES = 5


@dataclass
class Evidence:
    score: float  # the AV score (NaN: not measurable: too few mouth frames, or too little sound around them)
    r: float  # correlation at the clip's lag
    lag_s: float
    mouth_motion: float  # std of the detrended mouth opening over the segment
    frames: int


def voice_energy(audio: np.ndarray) -> np.ndarray:
    """log10 energy of the voice band per 10 ms (25 ms Hann frames), 0 at silence."""
    hop = int(HOP_S * SAMPLE_RATE)
    n = (len(audio) - FRAME) // hop + 1
    if n <= 0:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, np.float64), FRAME)[::hop][:n]
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), NFFT, axis=1)) ** 2
    freqs = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)
    band = (freqs >= VOICE_BAND_HZ[0]) & (freqs < VOICE_BAND_HZ[1])
    return np.log10(power[:, band].sum(1) + 1e-3) + 3.0


def energy_at(energy: np.ndarray, times: np.ndarray, window_s: float) -> np.ndarray:
    """Mean of ``energy`` over ``window_s`` centred at each of ``times`` (seconds from the audio's start);
    NaN where the window falls outside the audio."""
    if energy.size == 0:
        return np.full(len(times), np.nan)
    centre = times + FRAME / SAMPLE_RATE / 2  # frame k covers [k hop, k hop + 25 ms)
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    a = np.round((centre - window_s / 2) / HOP_S).astype(int)
    b = np.round((centre + window_s / 2) / HOP_S).astype(int)
    inside = (a >= 0) & (b <= len(energy)) & (b > a)
    a, b = np.clip(a, 0, len(energy)), np.clip(b, 0, len(energy))
    return np.where(inside, (csum[b] - csum[a]) / np.maximum(b - a, 1), np.nan)


def segment_evidence(audio: np.ndarray, audio_start: float, mouth: MouthSignal, segments: list[tuple[float, float]],
                     max_lag_s: float) -> tuple[list[Evidence], Evidence]:
    """The evidence of each segment (source seconds) and of all of them together."""
    energy = voice_energy(audio)
    window = 1.0 / mouth.fps if mouth.fps > 0 else 0.08
    trend = max(3, int(round(TREND_S / window)) | 1)
    finite = np.isfinite(mouth.values)
    masks = [(mouth.times >= a - PAD_S) & (mouth.times < b + PAD_S) & finite for a, b in segments]
    union = np.any(masks, axis=0) if masks else np.zeros(len(mouth.times), bool)

    def corr(mask: np.ndarray, lag: float, rotation: tuple[float, float, float] | None = None) -> float:
        """Correlation of the frame-to-frame changes over the frames of ``mask`` whose shifted sound exists
        (at least 80% of them); ``rotation`` (a, b, s): the sound inside [a, b) read ``s`` seconds on,
        wrapping around."""
        t = mouth.times[mask] - audio_start + lag
        if rotation is not None:
            a, b, s = rotation
            inside = (t >= a) & (t < b)
            t = np.where(inside, a + np.mod(t - a + s, b - a), t)
        e = energy_at(energy, t, window)
        ok = np.isfinite(e)
        if ok.sum() < max(MIN_FRAMES, 0.8 * len(t)):
            return math.nan
        return _pearson(np.diff(detrend(mouth.values[mask][ok], trend)), np.diff(detrend(e[ok], trend)))

    lags = np.round(np.arange(-max_lag_s, max_lag_s + 1e-9, LAG_STEP_S), 3)
    pooled = np.array([corr(union, lag) for lag in lags])
    lag = 0.0
    if np.isfinite(pooled).any():  # the smallest lag among equal bests
        best = np.nanmax(pooled)
        lag = float(min((lg for lg, r in zip(lags, pooled) if np.isfinite(r) and r >= best - 1e-9), key=abs))
    refine = np.arange(-LAG_REFINE_S, LAG_REFINE_S + 1e-9, LAG_STEP_S)

    def best_r(mask: np.ndarray, rotation: tuple[float, float, float] | None = None) -> float:
        values = [corr(mask, lag + d, rotation) for d in refine]
        return float(np.nanmax(values)) if np.isfinite(values).any() else math.nan

    def evidence(mask: np.ndarray, span: tuple[float, float]) -> Evidence:
        frames = int(mask.sum())
        if frames < MIN_FRAMES:
            return Evidence(math.nan, math.nan, lag, math.nan, frames)
        motion = float(np.std(detrend(mouth.values[mask], trend)))
        r = best_r(mask)
        a, b = span[0] - audio_start, span[1] - audio_start
        shifts = np.arange(ROTATION_EDGE_S, (b - a) - ROTATION_EDGE_S + 1e-9, ROTATION_STEP_S)
        null = np.array([best_r(mask, (a, b, float(s))) for s in shifts])
        null = null[np.isfinite(null)]
        if len(null) < MIN_NULL or not math.isfinite(r) or b - a < MIN_SEGMENT_S:
            return Evidence(math.nan, r, lag, motion, frames)
        # the rotations are close neighbours (50 ms apart), so their spread can be smaller than chance
        # alone gives a correlation over this many frames: never below 1/sqrt(frames - 3) (Fisher)
        score = (r - float(null.mean())) / max(float(null.std()), 1.0 / math.sqrt(max(frames - 3, 1)))
        return Evidence(float(score), r, lag, motion, frames)

    each = [evidence(m, span) for m, span in zip(masks, segments)]
    if not segments:
        return each, Evidence(math.nan, math.nan, lag, math.nan, 0)
    # the clip as a whole: the frame-weighted mean of its segments' scores
    scored = [(e.score, e.frames) for e in each if math.isfinite(e.score)]
    whole = (sum(s * n for s, n in scored) / sum(n for _, n in scored)) if scored else math.nan
    return each, Evidence(whole, math.nan, lag, math.nan, int(union.sum()))


def mouth_curve_energy(audio: np.ndarray, audio_start: float, mouth: MouthSignal) -> np.ndarray:
    """The voice-band energy at the mouth signal's times (for the report's curves)."""
    window = 1.0 / mouth.fps if mouth.fps > 0 else 0.08
    return np.nan_to_num(energy_at(voice_energy(audio), mouth.times - audio_start, window))


def detrend(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` minus its centred moving average over ``width`` samples (edges: the shorter window there)."""
    kernel = np.ones(width)
    mean = np.convolve(x, kernel, mode="same") / np.convolve(np.ones_like(x), kernel, mode="same")
    return x - mean


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return float(np.dot(x, y) / den) if den > 1e-12 else 0.0
