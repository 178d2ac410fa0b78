"""Stage 3, face constraints (MoFE's data pipeline): one prominent face, big enough, turning enough."""

from __future__ import annotations

import numpy as np

from lfa.curate.config import ConstraintConfig
from lfa.curate.records import Clip, Decision, SampledFace

STAGE = "face_constraints"


def main_faces(clip: Clip, track: int) -> list[SampledFace]:
    return [f for frame in clip.frames for f in frame.faces if f.track == track]


def angle_ranges(faces: list[SampledFace], percentiles: tuple[float, float]) -> dict[str, float]:
    posed = np.array([(f.yaw, f.pitch, f.roll) for f in faces if f.has_pose])
    if len(posed) < 2:
        return {"yaw_range": 0.0, "pitch_range": 0.0, "roll_range": 0.0, "euler_sum": 0.0}
    lo, hi = np.percentile(posed, percentiles, axis=0)
    yaw, pitch, roll = (float(v) for v in hi - lo)
    return {"yaw_range": yaw, "pitch_range": pitch, "roll_range": roll, "euler_sum": yaw + pitch + roll}


def check_box_constraints(clip: Clip, track: int | None, config: ConstraintConfig) -> Decision:
    """The constraints that the detector's boxes decide alone (presence, other prominent faces, size): no
    pose needed, so curation's cascade takes them before any pose model runs. Accepted: its stats."""
    n = len(clip.frames)
    if track is None or n == 0:
        return Decision.reject(STAGE, "no_face", 0.0, config.min_face_fraction, measure="main_face_fraction")
    with_main = [fr for fr in clip.frames if any(f.track == track for f in fr.faces)]
    face_fraction = len(with_main) / n
    faces = main_faces(clip, track)
    px = float(np.median([f.short_side for f in faces]))
    if face_fraction < config.min_face_fraction:
        # a face found on few frames because it is tiny is too small, not absent
        if px < config.min_face_px:
            return Decision.reject(STAGE, "face_too_small", px, config.min_face_px, measure="face_px_median")
        return Decision.reject(STAGE, "no_face", face_fraction, config.min_face_fraction,
                               measure="main_face_fraction")
    prominent = []  # (t, box) of other faces above max_other_face_area of the main face's area
    single = 0
    for fr in with_main:
        main = next(f for f in fr.faces if f.track == track)
        others = [(fr.t, [float(v) for v in f.box]) for f in fr.faces
                  if f.track != track and f.area_ratio / main.area_ratio > config.max_other_face_area]
        prominent += others
        single += not others
    single_fraction = single / len(with_main)
    if single_fraction < config.min_single_face_fraction:
        return Decision.reject(STAGE, "multiple_faces", single_fraction, config.min_single_face_fraction,
                               measure="single_face_fraction", offending=prominent)
    area = float(np.median([f.area_ratio for f in faces]))
    if px < config.min_face_px:
        return Decision.reject(STAGE, "face_too_small", px, config.min_face_px, measure="face_px_median")
    if area < config.min_face_area_ratio:
        return Decision.reject(STAGE, "face_too_small", area, config.min_face_area_ratio, measure="face_ratio_median")
    return Decision.accept(face_fraction=face_fraction, single_face_fraction=single_fraction,
                           face_ratio_median=area, face_px_median=px)


def angle_threshold(config: ConstraintConfig) -> float:
    return {"yaw_range": config.min_yaw_range, "pitch_range": config.min_pitch_range,
            "euler_sum": config.min_euler_sum}[config.angle_criterion]


def check_constraints(clip: Clip, track: int | None, config: ConstraintConfig) -> Decision:
    boxes = check_box_constraints(clip, track, config)
    if not boxes.accepted:
        return boxes
    assert track is not None
    faces = main_faces(clip, track)
    pose_fraction = sum(f.has_pose for f in faces) / len(faces)
    if pose_fraction < config.min_pose_fraction:  # an angle range measured on a few frames says little
        return Decision.reject(STAGE, "pose_unmeasured", pose_fraction, config.min_pose_fraction,
                               measure="pose_fraction")
    ranges = angle_ranges(faces, config.range_percentiles)
    criterion = config.angle_criterion
    threshold = angle_threshold(config)
    stats = {**boxes.stats, "pose_fraction": pose_fraction, **ranges}
    if ranges[criterion] < threshold:
        return Decision.reject(STAGE, "insufficient_angle_variation", ranges[criterion], threshold,
                               measure=criterion, **stats)
    return Decision.accept(**stats)
