"""Everything curation does to one input file, as a pure function: ``process_input``."""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lfa.curate.config import CurateConfig
from lfa.curate.records import Clip, Decision, SampledFrame
from lfa.curate.scan import Progress, face_rows, fill_gaps, scan_video
from lfa.curate.stages.captions import caption_from_metadata
from lfa.curate.stages.cascade import cheap_angle_decision
from lfa.curate.stages.constraints import check_box_constraints, check_constraints, main_faces
from lfa.curate.stages.identity import check_identity, refine_switch
from lfa.curate.stages.pose import measure_track_pose
from lfa.curate.stages.references import pick_references
from lfa.curate.stages.shots import clip_windows, shot_spans
from lfa.curate.stages.speech import source_speech, speech_stage
from lfa.curate.stages.tracking import link_tracks, main_track
from lfa.errors import LfaError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.analyzer import build_identity, build_pose, identity_class
from lfa.face.identity import IdentityEncoder
from lfa.face.identity.impostors import encoder_name, impostor_model_for, load_impostor_model
from lfa.face.identity.score import IdentityScorer
from lfa.registry import ModelStore

log = logging.getLogger(__name__)
YAW_EDGES = (0, 15, 30, 45, 60, 75, 90)


@dataclass
class CurateModels:
    analyzer: FaceAnalyzer
    encoder: IdentityEncoder
    scorer: IdentityScorer


def build_scorer(config: CurateConfig) -> IdentityScorer:
    """The pose-aware identity score of the run: the configured impostor model, else the shipped one."""
    backend = encoder_name(config.identity_model)
    model = (load_impostor_model(config.identity.impostors) if config.identity.impostors
             else impostor_model_for(None, backend=backend))
    return IdentityScorer(model, far=config.identity.far)


class LazyPose:
    """The pose backend, built where it is first used: with the cascade, a worker that sees only clips
    rejected before any pose model never imports or loads the landmarker and WHENet (about 0.5 s of a
    worker's start-up). Every attribute is the built backend's."""

    def __init__(self, config: AnalyzerConfig, store: ModelStore) -> None:
        self._config, self._store, self._backend = config, store, None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._backend is None:
            self._backend = build_pose(self._config, self._store)
            assert self._backend is not None
        return getattr(self._backend, name)


class LazyEncoder:
    """The identity encoder, built where it first embeds: with the cascade, a worker whose clips are all
    rejected before the identity check (most of a real source's) never loads it (0.1 s of its start-up).
    ``name`` and ``template`` are the encoder class's own; the model file is looked up at once, so a
    missing one still stops the run before any input."""

    def __init__(self, config: AnalyzerConfig, store: ModelStore) -> None:
        found = identity_class(config.identity)
        if found is None:
            raise LfaError(f"no identity model {config.identity!r}", "set identity_model to dlib, arcface or "
                           "curricularface")
        cls, model = found
        store.path(model)
        self.name: str = cls.name
        self.template = cls.template
        self._config, self._store, self._encoder = config, store, None

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        if self._encoder is None:
            self._encoder = build_identity(self._config, self._store)
            assert self._encoder is not None
        return self._encoder.embed_aligned(crops)


def build_models(config: CurateConfig, store: ModelStore | None = None) -> CurateModels:
    store = store or ModelStore()
    analyzer_config = AnalyzerConfig(detector=config.detector, pose=config.pose, identity="none",
                                     min_score=config.tracking.min_score,
                                     detect_max_side=config.tracking.detect_max_side)
    lazy = config.cascade.enabled and config.pose != "none"
    identity_config = AnalyzerConfig(identity=config.identity_model)
    encoder = LazyEncoder(identity_config, store) if config.cascade.enabled else build_identity(identity_config, store)
    assert encoder is not None
    analyzer = FaceAnalyzer(replace(analyzer_config, pose="none") if lazy else analyzer_config, store=store)
    if lazy:
        analyzer.pose = LazyPose(analyzer_config, store)  # type: ignore[assignment]
    return CurateModels(analyzer, encoder, build_scorer(config))


@dataclass
class InputResult:
    source: str
    clips: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    decoded_frames: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)  # rows of warnings.parquet

    def warn(self, stage: str, message: str, clip_id: str = "") -> None:
        self.warnings.append({"source": self.source, "clip_id": clip_id, "stage": stage, "message": message})


def clip_id_for(source: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem).strip("_")[:40] or "clip"
    return f"{stem}-{hashlib.sha1(source.encode()).hexdigest()[:6]}-{index:03d}"


def process_input(path: Path, config: CurateConfig, models: CurateModels,
                  progress: Progress | None = None) -> InputResult:
    """Probe, scan, split into clips and run every per-clip stage. Never raises for bad input."""
    source = str(path)
    result = InputResult(source)
    try:
        scan = scan_video(path, config, models.analyzer, models.encoder.template, progress)
        if scan.decoded == 0:
            raise LfaError(f"no frame could be decoded from {path}", "re-encode the file with ffmpeg")
    except LfaError as exc:
        result.failure = {"input": source, "error": exc.message, "fix": exc.fix or ""}
        return result
    except Exception as exc:  # a bug or an exotic file: record it, keep the run going
        log.debug("unexpected failure on %s\n%s", source, traceback.format_exc())
        result.failure = {"input": source, "error": f"{type(exc).__name__}: {exc}", "fix": "report this"}
        return result
    result.decoded_frames = scan.decoded
    if scan.truncated:
        result.warn("decode", f"decoding stopped at {scan.duration_s:.2f} s of the {scan.info.duration_s:.2f} s "
                              "the header announces (truncated or corrupt file): clips come from what decoded")
    sound = source_speech(path, config)  # read only when a shot needs cutting or a clip reaches the speech stage
    windows, short = clip_windows(scan.cuts, scan.duration_s, config.shots, sound.voice_activity if sound else None)
    if scan.upside_down:  # every window of it: the faces are upside down
        turned, checked = scan.upside_down_votes
        for k, (a, b) in enumerate(windows):
            result.rejected.append(_rejected(source, clip_id_for(source, k), a, b, Decision.reject(
                "face_constraints", "upside_down", turned / checked, 0.5, measure="upside_down_fraction")))
        windows = []
    for a, b in short:
        result.rejected.append(_rejected(source, "", a, b, Decision.reject("shots", "too_short", b - a,
                                                                              config.shots.min_clip_s,
                                                                              measure="shot_s")))
    shots = shot_spans(scan.cuts, scan.duration_s)
    for k, (a, b) in enumerate(windows):
        clip = Clip(source, clip_id_for(source, k), a, b, [fr for fr in scan.frames if a <= fr.t < b])
        shot = next((s for s in shots if s[0] <= (a + b) / 2 < s[1]), (a, b))
        gaps = scan.gaps_in(a, b)
        if gaps:  # read sparsely where the head stayed frontal (cascade.frontal_sample_fps)
            # a sparse reading may reject only where every left-out frame lies between two analysed frames
            # of this window; anything it does not reject gets the full reading
            if all(a <= g.before and g.after < b for g in gaps) and _reject_early(clip, config, result):
                continue
            filled = fill_gaps(path, scan, gaps, a, b, config, models.analyzer, models.encoder.template)
            clip.frames = sorted(clip.frames + filled, key=lambda fr: fr.t)
        _curate_clip(clip, path, config, models, scan.info, result, allow_split=True, sound=sound, shot=shot)
    if sound is not None and sound.read and sound.warning:
        result.warn("speech", sound.warning)
    return result


def _curate_clip(clip: Clip, path: Path, config: CurateConfig, models: CurateModels, info: Any,
                 result: InputResult, allow_split: bool, sound: Any = None,
                 shot: tuple[float, float] | None = None) -> None:
    if config.cascade.enabled and _reject_early(clip, config, result):
        return
    link_tracks(clip, config.tracking.link_max_cost)
    track = main_track(clip)
    timed = [(fr.t, f) for fr in clip.frames for f in fr.faces if f.track == track]  # the main track, in time order
    measure_track_pose(timed, models.analyzer, guard=config.pose == "fused")
    result.frames.extend(row for fr in clip.frames for row in face_rows(clip.source, clip.clip_id, fr))
    decision = check_constraints(clip, track, config.constraints)
    if not decision.accepted:
        result.rejected.append(_rejected(clip.source, clip.clip_id, clip.start, clip.end, decision, track))
        return
    identity, evidence = check_identity(timed, models.encoder, config.identity, models.scorer)
    if not identity.accepted:
        cut = refine_switch(path, timed, identity.stats["switch_between"], models.analyzer.detector, models.encoder,
                            config.tracking.decode_max_side, config.tracking.link_max_cost)  # to the frame
        if config.identity.on_switch == "split" and allow_split:
            result.frames[:] = [r for r in result.frames if r["clip_id"] != clip.clip_id]
            for suffix, (a, b) in (("a", (clip.start, cut)), ("b", (cut, clip.end))):
                if b - a >= config.shots.min_clip_s:
                    part = Clip(clip.source, f"{clip.clip_id}{suffix}", a, b, _copy_frames(clip.frames, a, b))
                    _curate_clip(part, path, config, models, info, result, allow_split=False, sound=sound, shot=shot)
                else:
                    result.rejected.append(_rejected(clip.source, f"{clip.clip_id}{suffix}", a, b, Decision.reject(
                        "identity", "too_short_after_split", b - a, config.shots.min_clip_s, measure="clip_s")))
            return
        identity.offending = [(t, [float(v) for v in f.box]) for t, f in timed if t >= cut]  # the second person
        result.rejected.append(_rejected(clip.source, clip.clip_id, clip.start, clip.end, identity, track))
        return
    speech = speech_stage(clip, track, path, config, models.analyzer.pose, sound, shot)
    for message in speech.warnings:
        result.warn("speech", message, clip.clip_id)
    if speech.decision is not None:
        result.rejected.append(_rejected(clip.source, clip.clip_id, clip.start, clip.end, speech.decision, track))
        return
    faces = main_faces(clip, track)
    posed = np.array([(f.yaw, f.pitch, f.roll) for f in faces if f.has_pose]).reshape(-1, 3)
    caption, caption_source = caption_from_metadata(path, config.captions)
    result.clips.append({
        "clip_id": clip.clip_id, "source": clip.source, "start": clip.start, "end": clip.end,
        "duration": round(clip.duration, 4), "fps": float(info.fps), "width": int(info.width),
        "height": int(info.height), "sampled_frames": len(clip.frames), "main_track": int(track),
        **{f"{name}_{stat}": float(fn(posed[:, i])) if len(posed) else None
           for i, name in enumerate(("yaw", "pitch", "roll")) for stat, fn in (("min", np.min), ("max", np.max),
                                                                                ("mean", np.mean))},
        "yaw_range": decision.stats["yaw_range"], "pitch_range": decision.stats["pitch_range"],
        "roll_range": decision.stats["roll_range"], "euler_sum": decision.stats["euler_sum"],
        "yaw_hist": np.histogram(np.abs(posed[:, 0]), bins=YAW_EDGES)[0].tolist(),
        "face_ratio_median": decision.stats["face_ratio_median"],
        "face_ratio_min": float(min(f.area_ratio for f in faces)),
        "face_ratio_max": float(max(f.area_ratio for f in faces)),
        "face_px_median": decision.stats["face_px_median"],
        "identity_model": models.encoder.name, "identity_centroid": [float(v) for v in evidence.centroid],
        "identity_embeddings": evidence.embeddings.astype(float).tolist(),
        "identity_yaws": [None if np.isnan(y) else float(y) for y in evidence.yaws],
        "identity_min_similarity": identity.stats["identity_min_similarity"],
        "identity_split_z": _finite(identity.stats["identity_split_z"]), "cluster_id": -1,
        "references": pick_references([(fr.t, fr.frame, f) for fr in clip.frames for f in fr.faces
                                       if f.track == track]),
        "caption": caption, "caption_source": caption_source, **speech.columns,
    })


def _reject_early(clip: Clip, config: CurateConfig, result: InputResult) -> bool:
    """The cascade's checks before any pose model (lfa.curate.stages.cascade): the box-only constraints,
    then the cheap yaw. A clip they reject is recorded (frames.parquet without pose) and True returned."""
    link_tracks(clip, config.tracking.link_max_cost)
    track = main_track(clip)
    early = check_box_constraints(clip, track, config.constraints)
    if early.accepted:
        faces = [f for fr in clip.frames for f in fr.faces if f.track == track]
        early = cheap_angle_decision(faces, config.constraints, config.cascade) or early
    if early.accepted:
        return False
    result.frames.extend(row for fr in clip.frames for row in face_rows(clip.source, clip.clip_id, fr))
    result.rejected.append(_rejected(clip.source, clip.clip_id, clip.start, clip.end, early, track))
    return True


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _copy_frames(frames: list[SampledFrame], a: float, b: float) -> list[SampledFrame]:
    from copy import copy

    return [SampledFrame(fr.frame, fr.t, [copy(f) for f in fr.faces]) for fr in frames if a <= fr.t < b]


def _rejected(source: str, clip_id: str, a: float, b: float, d: Decision, main_track: int | None = None
              ) -> dict[str, Any]:
    return {"source": source, "clip_id": clip_id, "start": float(a), "end": float(b), "stage": d.stage,
            "reason": d.reason, "value": float(d.value), "threshold": float(d.threshold), "measure": d.measure,
            "main_track": main_track, "offending": [{"t": float(t), "box": box} for t, box in d.offending]}
