"""Status rules: per speech segment and per clip, from the audio state, the speech found and the
audio-visual evidence. Statuses: speaking, voiceover, uncertain, silent, non_speech_audio, unknown."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lfa.speech.agreement import Evidence
from lfa.speech.audio import ClipAudio
from lfa.speech.config import SpeechConfig


@dataclass
class Segment:
    start: float  # source seconds
    end: float
    status: str  # speaking | voiceover | uncertain
    av_score: float  # NaN: not measurable (no mouth seen, too short)
    lag_s: float
    text: str
    mouth_motion: float = math.nan
    level: float = math.nan  # the AV score's two tests (lfa.speech.agreement): either failing makes a voiceover
    syllable: float = math.nan

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "status": self.status,
                "av_score": _num(self.av_score), "level_score": _num(self.level),
                "syllable_score": _num(self.syllable), "lag_s": round(self.lag_s, 3), "text": self.text}


def _num(v: float) -> float | None:
    return None if not math.isfinite(v) else round(float(v), 4)


def segment_status(ev: Evidence, config: SpeechConfig) -> str:
    """voiceover: a still mouth, or either test at most its max_voiceover_* (a segment without a syllable score,
    such as one under a second, can only be shown not to follow: by its level); speaking: otherwise, from an AV
    score (their sum) of min_av_score; uncertain: in between, or not measurable (no mouth read)."""
    if math.isfinite(ev.mouth_motion) and ev.mouth_motion < config.min_mouth_motion:
        return "voiceover"
    if math.isfinite(ev.level) and ev.level <= config.max_voiceover_level:
        return "voiceover"
    if math.isfinite(ev.syllable) and ev.syllable <= config.max_voiceover_syllable:
        return "voiceover"
    return "speaking" if math.isfinite(ev.score) and ev.score >= config.min_av_score else "uncertain"


def quiet_status(audio: ClipAudio, config: SpeechConfig) -> str:
    """The status of a clip in which no speech was found: silent, or sound that is not speech."""
    if not audio.has_stream or audio.peak_dbfs < config.silence_dbfs or audio.rms_dbfs < config.noise_dbfs:
        return "silent"
    return "non_speech_audio"


def clip_status(segments: list[Segment], config: SpeechConfig) -> str:
    """uncertain when most of the speech time is; else speaking when enough of the decided speech time is
    in speaking segments, else voiceover."""
    total = sum(s.end - s.start for s in segments)
    unsure = sum(s.end - s.start for s in segments if s.status == "uncertain")
    if total <= 0 or unsure / total > 0.5:
        return "uncertain"
    speaking = sum(s.end - s.start for s in segments if s.status == "speaking")
    return "speaking" if speaking / (total - unsure) >= config.min_speaking_fraction else "voiceover"
