"""The default head pose: MediaPipe's landmark fit where it is reliable, WHENet where it is not.

The two backends fail differently. The landmark fit (:mod:`lfa.face.pose.mediapipe`) is accurate
up to ~45° but under-reads beyond (it saturates near ±46° on some faces) and the landmarker misses
faces at large yaw; WHENet (:mod:`lfa.face.pose.whenet`) answers at every angle but is several
degrees off near frontal and can flip toward the back of the head. So:

* both answer, WHENet plausible: blend on WHENet's |yaw|: landmarks alone below
  ``landmark_max_yaw``, WHENet alone above ``whenet_min_yaw``, linear in between (``"fused"``);
* both answer, WHENet implausible (beyond ``max_plausible_yaw``, or the two disagree in sign
  by more than ``flip_deg``): landmarks (``"landmarks"``, lower confidence);
* landmarks only: landmarks; WHENet only: WHENet unless implausible, then no pose with a reason.

All thresholds live in :class:`FusionConfig` with their provenance. Along a video track,
:func:`lfa.face.pose.track.guard_track` adds the temporal checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lfa.face.pose import PoseEstimator
from lfa.face.types import Detection, HeadPose


@dataclass(frozen=True)
class FusionConfig:
    """Thresholds of the fused pose (degrees unless said otherwise).

    Provenance. Starting points from issue 9's measurements on renders of unseen photos (landmark
    fit MAE ≤ 4.8° below 45° and saturating above; WHENet MAE 5–11° below 45°, 6.2° at 60–75°, one
    −143° flip on a half-shadowed profile). The blend range was then chosen on the *tuning set*
    only (``lfa synth eval-pose`` sweeps of the two sample photos, astronaut and grace_hopper,
    60 frames per sweep, 480 frames): 45–70° gave the lowest yaw MAE at 45–90° among 30–45, 35–50,
    40–55, 45–60, 45–70 and 50–65 (2.8° / 2.8° / 2.2° at 45–60 / 60–75 / 75–90; the others within
    0.4°). Held-out faces (registry packages' test photos) are reported in docs/PERFORMANCE.md.
    ``min_whenet_confidence`` is off: at 0.3 it rejected correct WHENet answers on 8% of the
    75–90° frames of the tuning set (WHENet's yaw distribution is broad even when right: ~0.27
    of its mass within 20° of the answer on the frontal sample photos).

    ``whenet_skip_yaw`` saves WHENet's time (most of curation's) on near-frontal faces, where its blend
    weight is 0 anyway. Measured on yaw, profile and pitch sweeps of 2 tuning and 9 held-out photos
    (1234 frames, script kept out of the repository): with the landmark fit at |yaw| <= 20° or 25°
    the fused answer never differed from the landmark fit's, on 43–46% of the frames; at 30° one
    tuning frame differed, a 90° profile that the landmark fit read as < 30° and WHENet rescued. 20°
    keeps a margin from that.
    """

    landmark_max_yaw: float = 45.0  # below: the landmark fit alone
    whenet_skip_yaw: float = 20.0  # landmark fit at or below this |yaw|: WHENet is not run (see below)
    whenet_min_yaw: float = 70.0  # above: WHENet alone; linear blend in between
    flip_deg: float = 40.0  # opposite-sign disagreement above this = a WHENet flip
    max_plausible_yaw: float = 100.0  # a detected face read beyond this by WHENet = a flip
    min_whenet_confidence: float = 0.0  # yaw softmax mass within 20° of the answer (WHENetPose)
    # along a track (lfa.face.pose.track)
    track_max_rate: float = 360.0  # °/s: faster yaw changes against both neighbours are outliers
    track_min_jump: float = 35.0  # ... and only jumps larger than this

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def blend_weight(abs_yaw: float, config: FusionConfig) -> float:
    """WHENet's weight for a face at ``abs_yaw``: 0 below ``landmark_max_yaw``, 1 above ``whenet_min_yaw``."""
    lo, hi = config.landmark_max_yaw, config.whenet_min_yaw
    return float(np.clip((abs_yaw - lo) / (hi - lo), 0.0, 1.0))


def whenet_implausible(whenet: HeadPose, landmarks: HeadPose | None, config: FusionConfig) -> str:
    """Why WHENet's answer looks like a flip ('' when it looks fine)."""
    if abs(whenet.yaw) > config.max_plausible_yaw:
        return f"WHENet read |yaw| {abs(whenet.yaw):.0f}° (> {config.max_plausible_yaw:g}°, a flip toward the back)"
    if whenet.confidence < config.min_whenet_confidence:
        return f"WHENet was unsure (confidence {whenet.confidence:.2f})"
    if (landmarks is not None and whenet.yaw * landmarks.yaw < 0
            and abs(whenet.yaw - landmarks.yaw) > config.flip_deg):
        return f"WHENet ({whenet.yaw:+.0f}°) and the landmarks ({landmarks.yaw:+.0f}°) disagree in sign"
    return ""


def fuse(landmarks: HeadPose | None, whenet: HeadPose | None, config: FusionConfig) -> tuple[HeadPose | None, str]:
    """The fused pose of one face and, when there is none, the reason."""
    doubt = whenet_implausible(whenet, landmarks, config) if whenet is not None else "WHENet gave no answer"
    if landmarks is None:
        if whenet is None or doubt:
            return None, f"no landmarks and {doubt}"
        return HeadPose(whenet.yaw, whenet.pitch, whenet.roll, source="whenet", confidence=whenet.confidence), ""
    if whenet is None or doubt:
        return HeadPose(landmarks.yaw, landmarks.pitch, landmarks.roll, landmarks.landmarks, source="landmarks",
                        confidence=0.5 * landmarks.confidence if whenet is not None else landmarks.confidence), ""
    w = blend_weight(abs(whenet.yaw), config)
    angles = [(1 - w) * a + w * b for a, b in zip((landmarks.yaw, landmarks.pitch, landmarks.roll),
                                                   (whenet.yaw, whenet.pitch, whenet.roll))]
    source = "landmarks" if w == 0 else "whenet" if w == 1 else "fused"
    confidence = (1 - w) * landmarks.confidence + w * whenet.confidence
    return HeadPose(*angles, landmarks.landmarks, source=source, confidence=float(confidence)), ""


class FusedPose:
    """Runs both backends on each face and fuses them (:func:`fuse`). Each answer keeps the two
    backends' (yaw, pitch, roll) in ``readings`` (for the track guard and for evaluation)."""

    name = "fused"
    missing_reason = ""

    def __init__(self, landmarks: PoseEstimator, whenet: PoseEstimator, config: FusionConfig | None = None) -> None:
        self.landmarks_backend = landmarks
        self.whenet_backend = whenet
        self.config = config or FusionConfig()

    @property
    def canonical(self) -> np.ndarray | None:
        """The landmark backend's canonical face (lfa.synth fits heads to it)."""
        return getattr(self.landmarks_backend, "canonical", None)

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        lm = self.landmarks_backend.estimate(image, detection)
        if lm is not None and abs(lm.yaw) <= self.config.whenet_skip_yaw:  # near frontal: the landmarks decide
            self.missing_reason = ""
            pose = HeadPose(lm.yaw, lm.pitch, lm.roll, lm.landmarks, source="landmarks", confidence=lm.confidence)
            pose.readings = {"landmarks": (lm.yaw, lm.pitch, lm.roll)}
            return pose
        wh = self.whenet_backend.estimate(image, detection)
        pose, self.missing_reason = fuse(lm, wh, self.config)
        if pose is not None:
            pose.readings = {k: (p.yaw, p.pitch, p.roll) for k, p in (("landmarks", lm), ("whenet", wh)) if p}
        return pose
