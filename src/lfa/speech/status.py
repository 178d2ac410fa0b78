"""Status rules: per speech segment and per clip, from the audio state, the speech found and the
audio-visual agreement. Statuses: speaking, voiceover, silent, non_speech_audio."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lfa.speech.agreement import Agreement
from lfa.speech.audio import ClipAudio
from lfa.speech.config import SpeechConfig


@dataclass
class Segment:
    start: float  # source seconds
    end: float
    status: str  # speaking | voiceover
    av_score: float  # NaN: not measurable (no mouth seen)
    lag_s: float
    text: str
    mouth_motion: float = math.nan

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "status": self.status,
                "av_score": _num(self.av_score), "lag_s": round(self.lag_s, 3), "text": self.text}


def _num(v: float) -> float | None:
    return None if not math.isfinite(v) else round(float(v), 4)


def follows(ag: Agreement, config: SpeechConfig) -> bool:
    """Whether the visible mouth follows the speech: it moves, and it moves with the envelope."""
    return (math.isfinite(ag.score) and ag.score >= config.min_av_score
            and math.isfinite(ag.mouth_motion) and ag.mouth_motion >= config.min_mouth_motion)


def segment_status(ag: Agreement, config: SpeechConfig) -> str:
    return "speaking" if follows(ag, config) else "voiceover"


def quiet_status(audio: ClipAudio, config: SpeechConfig) -> str:
    """The status of a clip in which no speech was found: silent, or sound that is not speech."""
    if not audio.has_stream or audio.peak_dbfs < config.silence_dbfs or audio.rms_dbfs < config.noise_dbfs:
        return "silent"
    return "non_speech_audio"


def clip_status(segments: list[Segment], config: SpeechConfig) -> str:
    """speaking when enough of the speech time is in speaking segments, else voiceover."""
    total = sum(s.end - s.start for s in segments)
    speaking = sum(s.end - s.start for s in segments if s.status == "speaking")
    return "speaking" if total > 0 and speaking / total >= config.min_speaking_fraction else "voiceover"
