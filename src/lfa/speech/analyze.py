"""One clip window through speech disambiguation: audio → voice activity → transcript → lip agreement →
statuses → caption. The mouth signal is read only when there is speech to compare it with."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.registry import ModelStore
from lfa.speech.agreement import mouth_curve_energy, segment_evidence
from lfa.speech.asr import WhisperAsr
from lfa.speech.caption import template_caption
from lfa.speech.config import SpeechConfig
from lfa.speech.lips import MouthSignal
from lfa.speech.source import SourceSpeech
from lfa.speech.status import Segment, clip_status, quiet_status, segment_status
from lfa.speech.syncnet import SyncScore, sync_score, syncnet_follows
from lfa.speech.vad import SileroVad


class SpeechModels:
    """VAD and ASR, each loaded on first use (a clip without speech never loads Whisper)."""

    def __init__(self, config: SpeechConfig, store: ModelStore | None = None, threads: int = 2) -> None:
        self.config, self.store, self.threads = config, store or ModelStore(), threads
        self._vad: SileroVad | None = None
        self._asr: WhisperAsr | None = None
        self._syncnet = None

    @property
    def vad(self) -> SileroVad:
        if self._vad is None:
            self._vad = SileroVad.from_store(self.store, self.config.vad_threshold)
        return self._vad

    @property
    def syncnet(self):  # noqa: ANN201  (a torch module)
        if self._syncnet is None:
            from lfa.speech.syncnet import load_syncnet

            self._syncnet = load_syncnet(self.store.path("syncnet"))
        return self._syncnet

    @property
    def asr(self) -> WhisperAsr:
        if self._asr is None:
            self._asr = WhisperAsr.from_store(self.config.asr_model, self.store, threads=self.threads,
                                              beam_size=self.config.beam_size)
        return self._asr


@dataclass
class SpeechResult:
    status: str
    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    transcript: str = ""
    av_score: float = math.nan  # over all the speech of the clip
    lag_s: float | None = None
    caption: str = ""
    caption_failure: str | None = None  # why the rewrite endpoint's caption was not used
    audio: str = "ok"  # ok | no_stream | digital_silence | undecodable
    reason: str | None = None  # status unknown: why the speech could not be analysed
    warnings: list[str] = field(default_factory=list)  # e.g. audio packets that did not decode
    mouth: MouthSignal | None = None
    envelope: np.ndarray | None = None  # voice-band energy at the mouth signal's times
    sync: SyncScore | None = None  # the SyncNet backend's reading, when it ran

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "segments": [s.to_dict() for s in self.segments], "language": self.language,
                "transcript": self.transcript, "caption": self.caption, "caption_failure": self.caption_failure,
                "av_score": None if not math.isfinite(self.av_score) else round(self.av_score, 4),
                "lag_s": self.lag_s, "audio": self.audio, "reason": self.reason, "warnings": self.warnings,
                "syncnet": None if self.sync is None else {"offset_frames": self.sync.offset_frames,
                                                           "confidence": round(self.sync.confidence, 4)}}


def analyze_speech(path: Path, start: float, end: float, mouth: Callable[[], MouthSignal], config: SpeechConfig,
                   models: SpeechModels, base_caption: str | None = None,
                   crops: Callable[[], np.ndarray] | None = None) -> SpeechResult:
    """The speech of the window [start, end) of ``path`` (the window taken as its own shot)."""
    return analyze_window(SourceSpeech(path, config, models), start, end, mouth, config, base_caption, crops)


def analyze_window(source: SourceSpeech, start: float, end: float, mouth: Callable[[], MouthSignal],
                   config: SpeechConfig, base_caption: str | None = None,
                   crops: Callable[[], np.ndarray] | None = None,
                   shot: tuple[float, float] | None = None) -> SpeechResult:
    """The speech of the window [start, end) of ``source`` (its sound read once for all windows; ``shot``:
    the shot holding the window, transcribed once). ``mouth`` reads the main face's mouth signal, ``crops``
    its face crops at 25 fps (for the SyncNet backend, when ``config.syncnet``)."""
    if source.error is not None:
        result = SpeechResult("unknown", audio="undecodable", reason=source.error)
    else:
        result = _analyze(source, start, end, shot or (start, end), mouth, config)
    if config.syncnet and crops is not None and result.segments:
        result.sync = sync_score(source.models.syncnet, crops(), source.window(start, end).samples)
        follows = syncnet_follows(result.sync, config.syncnet_min_confidence, config.syncnet_max_offset)
        result.status = "speaking" if follows else "voiceover"
    result.caption = template_caption(base_caption, result.status, result.transcript)
    return result


def _analyze(source: SourceSpeech, start: float, end: float, shot: tuple[float, float],
             mouth: Callable[[], MouthSignal], config: SpeechConfig) -> SpeechResult:
    audio = source.window(start, end)
    if not audio.has_stream:
        return SpeechResult("silent", audio="no_stream")
    if audio.peak_dbfs < config.silence_dbfs:
        return SpeechResult("silent", audio="digital_silence")
    spans = source.spans_in(start, end)
    if sum(b - a for a, b in spans) < config.min_speech_s:
        return SpeechResult(quiet_status(audio, config))
    transcript = source.words_in(start, end, shot)
    signal = mouth()
    evidence, whole = segment_evidence(audio.samples, audio.start, signal, spans, config.mouth_lead_s,
                                       config.max_lag_s, config.max_offset_s)
    segments = [Segment(a, b, segment_status(ev, config), ev.score, ev.lag_s, text, ev.mouth_motion, ev.level,
                        ev.syllable)
                for (a, b), ev, text in zip(spans, evidence, transcript.split(spans))]
    return SpeechResult(clip_status(segments, config), segments, transcript.language, transcript.text, whole.score,
                        whole.lag_s if math.isfinite(whole.score) else None, mouth=signal,
                        envelope=mouth_curve_energy(audio.samples, audio.start, signal))
