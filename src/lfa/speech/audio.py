"""The sound of a clip window: 16 kHz mono, or the reason there is none. No audio stream and digital
silence are states of a clip, not errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.media import extract_audio, probe

SAMPLE_RATE = 16000


@dataclass
class ClipAudio:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE, the window only (empty without a stream)
    start: float  # window start in the source, seconds
    has_stream: bool

    @property
    def peak_dbfs(self) -> float:
        return dbfs(float(np.abs(self.samples).max()) if self.samples.size else 0.0)

    @property
    def rms_dbfs(self) -> float:
        return dbfs(float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2))) if self.samples.size else 0.0)


def dbfs(amplitude: float) -> float:
    return float(20 * np.log10(max(amplitude, 1e-10)))


def load_clip_audio(path: Path, start: float = 0.0, end: float | None = None) -> ClipAudio:
    """The window [start, end) of the first audio stream (the whole file when ``end`` is None)."""
    if not probe(path).has_audio:
        return ClipAudio(np.zeros(0, np.float32), start, False)
    audio = extract_audio(path, SAMPLE_RATE)
    a = int(round(start * SAMPLE_RATE))
    b = len(audio) if end is None else int(round(end * SAMPLE_RATE))
    return ClipAudio(np.ascontiguousarray(audio[a:b]), start, True)
