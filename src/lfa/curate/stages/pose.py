"""Head pose of a clip's main track, measured once tracking has said which faces matter.

Measuring every detected face cost most of curation's time (the fused pose runs MediaPipe and WHENet
per face); the faces of other tracks only ever need their boxes. Along the track, the fused pose's
continuity check (:func:`lfa.face.pose.track.guard_track`) drops WHENet flips.
"""

from __future__ import annotations

from lfa.curate.records import SampledFace
from lfa.face.analyzer import FaceAnalyzer
from lfa.face.pose.track import guard_track
from lfa.face.types import Face


def measure_track_pose(timed: list[tuple[float, SampledFace]], analyzer: FaceAnalyzer, *, guard: bool) -> None:
    """Measure the pose of the faces of one track (``(t, face)`` in time order) that still have a patch;
    in place. ``guard`` applies the continuity check to the whole track afterwards."""
    for _, face in timed:
        patch = face.patch
        if patch is None:
            continue
        probe = Face(box=patch.to_patch(face.box.reshape(2, 2)).ravel(), score=face.score,
                     landmarks5=patch.to_patch(face.landmarks5), sharpness=face.sharpness, area_ratio=face.area_ratio)
        analyzer.measure_pose(patch.image, probe)
        face.yaw, face.pitch, face.roll = probe.yaw, probe.pitch, probe.roll
        face.pose_source, face.pose_confidence = probe.pose_source, probe.pose_confidence
        face.pose_missing_reason, face.pose_readings = probe.pose_missing_reason, probe.pose_readings
        face.landmarks = None if probe.landmarks is None else patch.to_frame(probe.landmarks)
        face.patch = None  # measured: the pixels are no longer needed
    if guard:
        guard_track([f for _, f in timed], [t for t, _ in timed])
