"""Audio-visual agreement: does the visible mouth follow the speech?

Two tests compare the mouth opening with the voice band's (300-3000 Hz) log energy, each in units of its own
null distribution (how far the real alignment stands above the sound moved in time), since each alone is
fooled by one kind of voice-over. Their sum is the segment's AV score.

1. **syllables** (a mouth that says *these* words): the jaw opens into each syllable, where the voice band is
   loudest. The opening and the energy, each with its slow trend (over 0.4 s) removed, are correlated at the
   best lag within ``max_lag_s`` (60 ms) of the window's lag, against the same with the energy rotated inside
   the segment (0.2 s up to its length less 0.2 s, every 50 ms): the speech starts and stops at the same
   times, only its syllables move. A dub timed to the voice's phrases scores low. The test once used a train
   of bumps at the syllable nuclei instead of the energy itself: its AUC alone, on renders read by the
   landmarker, was 0.72 against 0.86 now (docs/PERFORMANCE.md). A segment under a second, or with fewer than
   3 nuclei (peaks of the band's energy), has no syllable score.
   The lag search is narrow on purpose: syllables come every 0.2-0.25 s, so a search over +-0.3 s lines up
   any mouth that moves at a speaking rhythm. The window's lag (``window_lag``) is where its sound sits
   against its picture: the natural lead (``mouth_lead_s``, a mouth opens some 60 ms before it is heard),
   unless the mouth follows the sound's level clearly better elsewhere within +-``max_offset_s`` (a badly
   muxed file).
2. **level** (a mouth that talks *when* the voice does): the mouth opening itself against the band energy
   over the segment and 1 s either side (a speaking mouth closes in the pauses and the silence around
   them), at the best lag within ``max_lag_s`` of the window's lag (on its coarser 40-ms grid, at least as
   wide), against the sound rotated over that window (0.3 s on up to its length less 0.3 s, every 80 ms).
   A still mouth, or one that talks in the voice's pauses, scores low. A long run of speech with short
   pauses has little silence to tell by, so its level score stays moderate.

Both scores are floored at what chance gives a correlation over that many frames (1/sqrt(frames - 3)), as
neighbouring rotations are alike. ``lfa.speech.status`` decides: voiceover where either test fails, speaking
where their sum is high, uncertain in between. The mouth needs 25 samples a second to resolve syllables
(4-5 a second). Thresholds were calibrated on renders whose mouths say the words (docs/PERFORMANCE.md,
bench/speech_sync.py).
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
MIN_SEGMENT_S = 1.0  # a shorter segment has too few syllables to tell: no score (uncertain)
MIN_NULL = 4
MIN_FRAMES = 5
TREND_S = 0.4  # syllables: slower changes are removed from both signals
# syllables: nuclei are peaks of the band energy (30 ms smoothing) this prominent (log10 units, 1.5 dB) and apart;
# a segment with fewer has no syllable score
NUCLEUS_PROMINENCE, NUCLEUS_GAP_S = 0.15, 0.1
MIN_NUCLEI = 3
SYLLABLE_PAD_S = 0.1  # the mouth closes just before and after the speech
SYLLABLE_LAG_STEP_S = 0.02
OFFSET_PRIOR = 0.3  # window_lag: the correlation a lag at the edge of the offset search must gain to be taken
MIN_OFFSET_R = 0.5  # window_lag: a mouth that follows the sound at least this well (else: the natural lead)
LEVEL_LAG_STEP_S = 0.04
SYLLABLE_ROTATION_S = 0.2, 0.05  # rotations of the energy: from 0.2 s to the segment's length - 0.2 s, every 50 ms
LEVEL_CONTEXT_S = 1.0  # level: around a segment, the silence in which a speaking mouth closes
LEVEL_ROTATION_S = 0.3, 0.08  # rotations of the window's sound: from 0.3 s to its length - 0.3 s, every 80 ms


@dataclass
class Evidence:
    score: float  # the AV score: syllable + level (NaN where the syllable test is not: too short, too few nuclei)
    r: float  # the syllable test's correlation at ``lag_s``
    lag_s: float  # the syllable lag (the sound later than the picture)
    mouth_motion: float  # std of the detrended mouth opening over the segment
    frames: int
    syllable: float = math.nan
    level: float = math.nan


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


def syllable_nuclei(energy: np.ndarray, start: float, end: float) -> np.ndarray:
    """Times (seconds from the audio's start) of the syllable nuclei in [start, end): peaks of the voice-band
    log energy (``voice_energy``, smoothed over 30 ms) at least 1.5 dB prominent and 0.1 s apart."""
    from scipy.signal import find_peaks

    a, b = max(0, int(start / HOP_S)), min(len(energy), int(end / HOP_S))
    if b - a < 3:
        return np.zeros(0)
    smooth = np.convolve(energy, np.ones(3) / 3, mode="same")[a:b]
    peaks, _ = find_peaks(smooth, prominence=NUCLEUS_PROMINENCE, distance=int(round(NUCLEUS_GAP_S / HOP_S)))
    return (a + peaks) * HOP_S + FRAME / SAMPLE_RATE / 2


def lag_grid(mouth_lead_s: float, max_lag_s: float, step_s: float) -> np.ndarray:
    """Lags (the sound later than the picture) from ``mouth_lead_s - max_lag_s`` to ``mouth_lead_s + max_lag_s``
    every ``step_s``, the half-width rounded up to a whole step."""
    half = math.ceil(round(max_lag_s / step_s, 6)) * step_s
    return np.round(mouth_lead_s + np.arange(-half, half + 1e-9, step_s), 3)


def syllable_score(energy: np.ndarray, audio_start: float, mouth: MouthSignal, segment: tuple[float, float],
                   centre: float, max_lag_s: float) -> tuple[float, float, float]:
    """(score, r, lag) of the syllable test for ``segment`` (source seconds): the mouth opening against the
    voice-band energy with both signals' trends over 0.4 s removed, at the best lag within ``max_lag_s`` of
    ``centre``, against the same with the energy rotated inside the segment; NaN where not measurable (under a
    second, fewer than 3 syllable nuclei, too few mouth frames)."""
    a, b = segment[0] - audio_start, segment[1] - audio_start
    mask = (mouth.times >= segment[0] - SYLLABLE_PAD_S) & (mouth.times < segment[1] + SYLLABLE_PAD_S)
    mask &= np.isfinite(mouth.values)
    if b - a < MIN_SEGMENT_S or mask.sum() < MIN_FRAMES or len(syllable_nuclei(energy, a, b)) < MIN_NUCLEI:
        return math.nan, math.nan, math.nan
    times = mouth.times[mask] - audio_start
    trend = _odd_width(TREND_S * mouth.fps)
    opening = detrend(mouth.values[mask], trend)
    lags = lag_grid(centre, max_lag_s, SYLLABLE_LAG_STEP_S)
    frame_s = _frame_s(mouth)

    def best(rotation: float) -> tuple[float, float]:
        rs = []
        for lag in lags:  # the sound heard at t + lag was mouthed at t
            heard = times + lag if rotation == 0 else a + np.mod(times + lag - a + rotation, b - a)
            rs.append(_pearson(opening, detrend(np.nan_to_num(energy_at(energy, heard, frame_s), nan=0.0), trend)))
        k = int(np.argmax(rs))
        return rs[k], float(lags[k])

    r, lag = best(0.0)
    edge, step = SYLLABLE_ROTATION_S
    null = np.array([best(float(s))[0] for s in np.arange(edge, (b - a) - edge + 1e-9, step)])
    if len(null) < MIN_NULL:
        return math.nan, r, lag
    return _z(r, null, len(opening)), r, lag


def level_score(energy: np.ndarray, audio_start: float, mouth: MouthSignal, segment: tuple[float, float],
                mouth_lead_s: float, max_lag_s: float) -> float:
    """The level test for ``segment``: the mouth opening against the voice-band energy over the segment and
    1 s either side, against rotations of that window's sound (NaN: too few frames or rotations)."""
    window = _frame_s(mouth)
    a, b = segment
    mask = (mouth.times >= a - LEVEL_CONTEXT_S) & (mouth.times < b + LEVEL_CONTEXT_S) & np.isfinite(mouth.values)
    if mask.sum() < MIN_FRAMES:
        return math.nan
    times, opening = mouth.times[mask], mouth.values[mask]
    span = float(times[-1] + window - times[0])
    lags = lag_grid(mouth_lead_s, max_lag_s, LEVEL_LAG_STEP_S)

    def best(rotation: float) -> float:
        t = times[0] + np.mod(times - times[0] + rotation, span) - audio_start
        return float(level_fit(energy, t, opening, lags, window).max())

    edge, step = LEVEL_ROTATION_S
    null = np.array([best(float(s)) for s in np.arange(edge, span - edge + 1e-9, step)])
    if len(null) < MIN_NULL:
        return math.nan
    return _z(best(0.0), null, int(mask.sum()))


def level_fit(energy: np.ndarray, times: np.ndarray, opening: np.ndarray, lags: np.ndarray,
              frame_s: float) -> np.ndarray:
    """Per lag: the correlation of the mouth ``opening`` at ``times`` (seconds from the audio's start) with the
    voice-band energy heard ``lag`` later (mean over ``frame_s``)."""
    return np.array([_pearson(opening, np.nan_to_num(energy_at(energy, times + lag, frame_s), nan=0.0))
                     for lag in lags])


def window_lag(energy: np.ndarray, audio_start: float, mouth: MouthSignal, mouth_lead_s: float,
               max_offset_s: float) -> float:
    """The lag (the sound later than the picture, on a 20-ms grid within ``mouth_lead_s`` +- ``max_offset_s``) at
    which the mouth opening best follows the voice-band energy over the whole window: where a file's sound
    sits against its picture. A lag far from ``mouth_lead_s`` must fit better to be taken (its correlation
    less ``OFFSET_PRIOR`` times the squared distance in units of ``max_offset_s``), and only a mouth that
    follows the sound (correlation ``MIN_OFFSET_R`` there; a dub's rarely does) moves the search: else, and
    with too few mouth frames, ``mouth_lead_s``."""
    finite = np.isfinite(mouth.values)
    if finite.sum() < MIN_FRAMES or max_offset_s <= 0:
        return mouth_lead_s
    times, opening = mouth.times[finite] - audio_start, mouth.values[finite]
    lags = lag_grid(mouth_lead_s, max_offset_s, SYLLABLE_LAG_STEP_S)
    rs = level_fit(energy, times, opening, lags, _frame_s(mouth))
    k = int(np.argmax(rs - OFFSET_PRIOR * ((lags - mouth_lead_s) / max_offset_s) ** 2))
    return float(lags[k]) if rs[k] >= MIN_OFFSET_R else mouth_lead_s


def segment_evidence(audio: np.ndarray, audio_start: float, mouth: MouthSignal, segments: list[tuple[float, float]],
                     mouth_lead_s: float, max_lag_s: float,
                     max_offset_s: float = 0.0) -> tuple[list[Evidence], Evidence]:
    """The evidence of each segment (source seconds) and of all of them together. Lags are searched within
    ``max_lag_s`` of the window's lag (``window_lag`` within ``mouth_lead_s`` +- ``max_offset_s``; with
    ``max_offset_s`` 0, ``mouth_lead_s`` itself)."""
    energy = voice_energy(audio)
    centre = window_lag(energy, audio_start, mouth, mouth_lead_s, max_offset_s)
    trend = _odd_width(TREND_S * mouth.fps)
    finite = np.isfinite(mouth.values)

    def evidence(span: tuple[float, float]) -> Evidence:
        mask = (mouth.times >= span[0] - SYLLABLE_PAD_S) & (mouth.times < span[1] + SYLLABLE_PAD_S) & finite
        frames = int(mask.sum())
        if frames < MIN_FRAMES:
            return Evidence(math.nan, math.nan, math.nan, math.nan, frames)
        motion = float(np.std(detrend(mouth.values[mask], trend)))
        syllable, r, lag = syllable_score(energy, audio_start, mouth, span, centre, max_lag_s)
        level = level_score(energy, audio_start, mouth, span, centre, max_lag_s)
        return Evidence(syllable + level, r, lag, motion, frames, syllable, level)

    each = [evidence(span) for span in segments]
    scored = [e for e in each if math.isfinite(e.score)]
    if not scored:
        return each, Evidence(math.nan, math.nan, math.nan, math.nan, sum(e.frames for e in each))
    # the clip as a whole: the frame-weighted mean of its segments' scores, the lag of its longest scored one
    whole = sum(e.score * e.frames for e in scored) / sum(e.frames for e in scored)
    lag = max(scored, key=lambda e: e.frames).lag_s
    return each, Evidence(whole, math.nan, lag, math.nan, sum(e.frames for e in each))


def _z(r: float, null: np.ndarray, frames: int) -> float:
    """How far ``r`` stands above ``null`` in units of its spread, never below chance over ``frames``."""
    return float((r - null.mean()) / max(float(null.std()), 1.0 / math.sqrt(max(frames - 3, 1))))


def _frame_s(mouth: MouthSignal) -> float:
    """The time one mouth sample stands for (80 ms where the rate is unknown)."""
    return 1.0 / mouth.fps if mouth.fps > 0 else 0.08


def _odd_width(frames: float) -> int:
    return max(3, int(round(frames)) | 1)


def mouth_curve_energy(audio: np.ndarray, audio_start: float, mouth: MouthSignal) -> np.ndarray:
    """The voice-band energy at the mouth signal's times (for the report's curves)."""
    return np.nan_to_num(energy_at(voice_energy(audio), mouth.times - audio_start, _frame_s(mouth)))


def detrend(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` minus its centred moving average over ``width`` samples (edges: the shorter window there; a signal
    shorter than ``width``: over all of it)."""
    kernel = np.ones(max(1, min(width, len(x))))
    mean = np.convolve(x, kernel, mode="same") / np.convolve(np.ones_like(x), kernel, mode="same")
    return x - mean


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return float(np.dot(x, y) / den) if den > 1e-12 else 0.0
