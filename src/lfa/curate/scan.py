"""One decoding pass per input: every frame feeds shot detection, sampled frames get face analysis."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.curate.config import CurateConfig
from lfa.curate.records import SampledFace, SampledFrame
from lfa.curate.stages.shots import ShotBoundaries
from lfa.face.align import FaceTemplate, align_face
from lfa.face.analyzer import FaceAnalyzer
from lfa.face.patch import cut_patch
from lfa.face.pose.cheap import cheap_yaw
from lfa.media import Frame, VideoInfo, iter_decoded, probe
from lfa.media.sampling import sample_times


@dataclass
class Scan:
    info: VideoInfo
    cuts: list[float]
    frames: list[SampledFrame]
    decoded: int
    duration_s: float  # what decoded, which a broken file makes shorter than its header's duration
    upside_down_votes: tuple[int, int] = (0, 0)  # (frames whose faces detect better turned by 180°, frames checked)

    @property
    def upside_down(self) -> bool:
        turned, checked = self.upside_down_votes
        return checked > 0 and turned * 2 > checked

    @property
    def truncated(self) -> bool:
        return self.duration_s < self.info.duration_s - max(1.5 / self.fps, 0.5)

    @property
    def fps(self) -> float:
        return usable_fps(self.info)


def usable_fps(info: VideoInfo) -> float:
    return info.fps if info.fps and math.isfinite(info.fps) and info.fps > 0 else 25.0


Progress = Callable[[str, float, float], None]  # (source, seconds decoded, seconds in the file)


NOT_MEASURED = "not measured: pose is measured on each clip's main track only"


def scan_video(path: Path, config: CurateConfig, analyzer: FaceAnalyzer, template: FaceTemplate,
               progress: Progress | None = None) -> Scan:
    """``analyzer`` finds faces; each keeps its crop aligned to the identity model's ``template`` (only
    chosen ones are embedded, later) and a patch for its pose (measured later, on main tracks only). ``progress`` hears about
    every second of video decoded."""
    info = probe(path)
    fps = usable_fps(info)
    shots = ShotBoundaries(config.shots, fps)
    targets = list(sample_times(info.duration_s, fps=config.tracking.sample_fps))
    sampled: list[SampledFrame] = []
    decoded, end, reported = 0, 0.0, 0.0
    votes = [0, 0]
    # cascade.frontal_sample_fps: after a frame with one face that the cheap yaw reads near frontal, the
    # next analysed frame is 1/frontal_sample_fps later (0: never; see lfa.curate.stages.cascade)
    sparse = config.cascade.frontal_sample_fps if config.cascade.enabled else 0.0
    skip_until = -math.inf
    for decoded_frame in iter_decoded(path):
        decoded += 1
        end = decoded_frame.t + 1.0 / fps
        if progress and end - reported >= 1.0:
            progress(str(path), end, info.duration_s)
            reported = end
        # shot detection needs every frame, but small: a thumbnail costs a tenth of a converted frame
        shots.add(decoded_frame.thumbnail(config.shots.analysis_width))
        if not targets or decoded_frame.t + 0.5 / fps < targets[0]:
            continue
        while targets and targets[0] <= decoded_frame.t + 0.5 / fps:
            targets.pop(0)
        if decoded_frame.t + 0.5 / fps < skip_until:
            continue
        frame = Frame(decoded_frame.index, decoded_frame.t, decoded_frame.rgb(config.tracking.decode_max_side))
        faces = [SampledFace(f.box, f.landmarks5, f.score, math.nan, math.nan, math.nan, f.sharpness, f.area_ratio,
                             align_face(frame.image, f.landmarks5, template), patch=cut_patch(frame.image, f.box),
                             pose_missing_reason=NOT_MEASURED)
                 for f in analyzer.find(frame.image)]
        sampled.append(SampledFrame(frame.index, frame.t, faces))
        if sparse > 0 and len(faces) == 1 and abs(cheap_yaw(faces[0].landmarks5)) <= config.cascade.near_frontal_deg:
            skip_until = frame.t + 1.0 / sparse
        if faces and votes[1] < ORIENTATION_FRAMES and not _vote_decided(*votes):
            votes[0] += turned_detects_better(analyzer, frame.image, max(f.score for f in faces))
            votes[1] += 1
    return Scan(info, shots.cuts, sampled, decoded, min(end, info.duration_s) if info.duration_s > 0 else end,
                (votes[0], votes[1]))


ORIENTATION_FRAMES = 5  # sampled frames with a face checked for a video stored upside down
ORIENTATION_MARGIN = 0.02  # detector score by which the turned frame must win


def _vote_decided(turned: int, checked: int) -> bool:
    """Whether the remaining orientation checks can no longer change the majority."""
    return 2 * turned > ORIENTATION_FRAMES or 2 * (checked - turned) >= ORIENTATION_FRAMES


def turned_detects_better(analyzer: FaceAnalyzer, image: np.ndarray, score: float) -> bool:
    """Whether the detector finds the face more surely in the frame turned by 180° (a video stored upside
    down without rotation metadata: pose and landmark models read such faces as upright, the detector's
    confidence still drops; measured 0.84–0.88 vs 0.89–0.94 turned on lfa's renders)."""
    turned = analyzer.detector.detect(np.ascontiguousarray(image[::-1, ::-1]))
    return bool(turned) and max(d.score for d in turned) > score + ORIENTATION_MARGIN


def face_rows(source: str, clip_id: str, frame: SampledFrame) -> list[dict]:
    return [{"source": source, "clip_id": clip_id, "frame": frame.frame, "t": round(frame.t, 4), "track": f.track,
             "box": [float(v) for v in f.box], "landmarks5": np.asarray(f.landmarks5, float).ravel().tolist(),
             "score": float(f.score), "yaw": _num(f.yaw), "pitch": _num(f.pitch), "roll": _num(f.roll),
             "pose_source": f.pose_source,
             "sharpness": float(f.sharpness), "area_ratio": float(f.area_ratio)} for f in frame.faces]


def _num(v: float) -> float | None:
    return None if math.isnan(v) else float(v)
