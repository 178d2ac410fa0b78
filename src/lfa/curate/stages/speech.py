"""Stage 8, speech disambiguation (CoFE): whether the main face speaks, what it says, and a caption that
says so. Per input: its sound is read once (:class:`lfa.speech.source.SourceSpeech`: voice activity before
the shots stage windows a long shot, so that cuts fall in pauses; one transcript per shot). Per clip:
:mod:`lfa.speech` on the clip window, the mouth read along the main track (frames the scan analysed keep
their landmarks' value). At merge: the caption is enriched (template, or the configured rewrite endpoint)
after the other caption sources ran."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lfa.curate.config import CurateConfig
from lfa.curate.records import Clip, Decision
from lfa.speech import SpeechConfig, SpeechModels
from lfa.speech.analyze import analyze_window
from lfa.speech.caption import rewrite_caption, template_caption
from lfa.speech.lips import (MouthSignal, interpolated_box, landmark_backend, mouth_opening, read_mouth_signal,
                             track_reader)
from lfa.speech.source import SourceSpeech

STAGE = "speech"
COLUMNS = ("speech_status", "speech_av_score", "speech_lag_s", "speech_segments", "transcript", "language",
           "speech_curve_t", "speech_mouth", "speech_envelope", "speech_sync_offset", "speech_sync_conf")


POLICY = {"voiceover": "on_voiceover", "uncertain": "on_uncertain", "unknown": "on_unknown"}  # status -> setting


@dataclass
class SpeechOutcome:
    columns: dict[str, Any]
    decision: Decision | None = None  # a rejection (voiceover/uncertain/unknown clips whose policy is drop)
    warnings: list[str] = field(default_factory=list)


@cache
def _models(config: str) -> SpeechModels:
    import json

    return SpeechModels(SpeechConfig(**json.loads(config)), threads=1)  # one per worker, like torch


def source_speech(path: Path, config: CurateConfig) -> SourceSpeech | None:
    """The input's sound for all its windows (None with the stage off)."""
    import json
    from dataclasses import asdict

    settings = config.speech
    return SourceSpeech(path, settings, _models(json.dumps(asdict(settings)))) if settings.enabled else None


def speech_stage(clip: Clip, track: int, path: Path, config: CurateConfig, pose: object,
                 source: SourceSpeech | None = None, shot: tuple[float, float] | None = None) -> SpeechOutcome:
    """The speech columns of one accepted clip; ``pose`` is the scan's pose backend (its landmark model
    reads the frames between the scan's samples); ``source`` the input's sound (read here when None),
    ``shot`` the shot holding the clip (transcribed once; the clip itself when None)."""
    settings = config.speech
    if not settings.enabled:
        return SpeechOutcome(dict.fromkeys(COLUMNS))
    source = source or source_speech(path, config)
    assert source is not None
    faces = [(fr.frame, fr.t, f) for fr in clip.frames for f in fr.faces if f.track == track]
    # the landmarks the pose stage measured on the scanned frames (NaN too: no second landmark pass on them)
    known = {frame: mouth_opening(f.landmarks) for frame, _, f in faces}
    box_at = interpolated_box(np.array([t for _, t, _ in faces]), np.array([f.box for _, _, f in faces]).reshape(-1, 4))

    def mouth() -> MouthSignal:
        reader = track_reader(landmark_backend(pose), box_at, known)
        return read_mouth_signal(path, clip.start, clip.end, settings.lip_fps, reader,
                                 max_side=config.tracking.decode_max_side)

    def crops() -> np.ndarray:
        from lfa.speech.syncnet import read_crops

        return read_crops(path, clip.start, clip.end, lambda frame: box_at(frame.t),
                          max_side=config.tracking.decode_max_side)

    result = analyze_window(source, clip.start, clip.end, mouth, settings, crops=crops, shot=shot)
    warnings = [f"speech unknown: {result.reason}"] if result.status == "unknown" else []
    if result.mouth is not None and not np.isfinite(result.mouth.values).any():
        warnings.append("speech found but the main face's mouth could not be read: uncertain")
    curve = result.mouth is not None and result.envelope is not None
    columns = {
        "speech_status": result.status,
        "speech_av_score": None if not math.isfinite(result.av_score) else float(result.av_score),
        "speech_lag_s": result.lag_s, "speech_segments": [s.to_dict() for s in result.segments],
        "transcript": result.transcript, "language": result.language,
        "speech_curve_t": [round(float(t), 3) for t in result.mouth.times] if curve else None,
        "speech_mouth": [None if math.isnan(v) else round(float(v), 4) for v in result.mouth.values] if curve else None,
        "speech_envelope": [round(float(v), 4) for v in result.envelope] if curve else None,
        "speech_sync_offset": result.sync.offset_frames if result.sync else None,
        "speech_sync_conf": result.sync.confidence if result.sync else None,
    }
    decision = None
    if result.status in POLICY and getattr(settings, POLICY[result.status]) == "drop":
        score = result.av_score if math.isfinite(result.av_score) else math.nan
        decision = Decision.reject(STAGE, result.status, score, settings.min_av_score, measure="speech_av_score")
    return SpeechOutcome(columns, decision, warnings)


def enrich_captions(clips: list[dict[str, Any]], settings: SpeechConfig, cache_dir: Path) -> list[dict[str, Any]]:
    """Caption of each clip → the caption with its speaking status (and, with an endpoint, its rewrite).
    Returns rows for warnings.parquet (rewrites that failed: the template is kept)."""
    warnings = []
    for clip in clips:
        status = clip.get("speech_status")
        if status is None or (status in POLICY and getattr(settings, POLICY[status]) == "keep"):
            continue
        caption = template_caption(clip["caption"], status, clip["transcript"] or "")
        caption, failure = rewrite_caption(caption, settings, cache_dir)
        clip["caption"] = caption
        how = "speech-template" if failure or not settings.rewrite_endpoint else "speech-llm"
        clip["caption_source"] = f"{clip['caption_source']}+{how}" if clip["caption_source"] else how
        if failure:
            warnings.append({"source": clip["source"], "clip_id": clip["clip_id"], "stage": STAGE,
                             "message": f"caption rewrite failed, template kept: {failure}"})
    return warnings
