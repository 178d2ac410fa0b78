"""The sound of a clip window: 16 kHz mono, or the reason there is none. No audio stream and digital
silence are states of a clip, not errors; undecodable packets are skipped (their times kept for a warning)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfa.media import probe
from lfa.media.audio import AudioTrack, decode_audio

SAMPLE_RATE = 16000


@dataclass
class ClipAudio:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE, the window only (empty without a stream)
    start: float  # window start in the source, seconds
    has_stream: bool
    damage: AudioTrack | None = field(default=None, repr=False)  # the whole track's decoding report

    @property
    def peak_dbfs(self) -> float:
        return dbfs(float(np.abs(self.samples).max()) if self.samples.size else 0.0)

    @property
    def rms_dbfs(self) -> float:
        return dbfs(float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2))) if self.samples.size else 0.0)

    def window(self, start: float, end: float | None) -> ClipAudio:
        """[start, end) in source seconds of this (whole-file) audio."""
        a = max(0, int(round((start - self.start) * SAMPLE_RATE)))
        b = len(self.samples) if end is None else max(a, int(round((end - self.start) * SAMPLE_RATE)))
        return ClipAudio(np.ascontiguousarray(self.samples[a:b]), start, self.has_stream, self.damage)


def dbfs(amplitude: float) -> float:
    return float(20 * np.log10(max(amplitude, 1e-10)))


def load_clip_audio(path: Path, start: float = 0.0, end: float | None = None) -> ClipAudio:
    """The window [start, end) of the first audio stream (the whole file when ``end`` is None). Raises
    MediaError only when no packet decodes."""
    if not probe(path).has_audio:
        return ClipAudio(np.zeros(0, np.float32), start, False)
    track = decode_audio(path, SAMPLE_RATE)
    return ClipAudio(track.samples, 0.0, True, track).window(start, end)
