"""One decoding pass per input: every frame feeds shot detection, sampled frames get face analysis."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfa.curate.config import CurateConfig
from lfa.curate.records import SampledFace, SampledFrame
from lfa.curate.stages.shots import ShotBoundaries
from lfa.curate.stages.tracking import link_cost
from lfa.face.align import FaceTemplate, align_face
from lfa.face.analyzer import FaceAnalyzer
from lfa.face.patch import cut_patch
from lfa.face.pose.cheap import cheap_yaw
from lfa.media import Frame, VideoInfo, iter_decoded, probe
from lfa.media.decode import DecodedFrame
from lfa.media.sampling import sample_times


@dataclass
class Gap:
    """Sampled frames that a sparse reading of a frontal stretch left out (``cascade.frontal_sample_fps``):
    their times, between two analysed frames (``before``, ``after``) that each show one face, near
    frontal, linked to each other, with no shot cut detected in between."""

    before: float
    after: float
    times: list[float]


@dataclass
class Scan:
    info: VideoInfo
    cuts: list[float]
    frames: list[SampledFrame]
    decoded: int
    duration_s: float  # what decoded, which a broken file makes shorter than its header's duration
    upside_down_votes: tuple[int, int] = (0, 0)  # (frames whose faces detect better turned by 180°, frames checked)
    gaps: list[Gap] = field(default_factory=list)  # sampled frames left unanalysed (cascade.frontal_sample_fps)

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

    def gaps_in(self, a: float, b: float) -> list[Gap]:
        return [g for g in self.gaps if any(a <= t < b for t in g.times)]


def usable_fps(info: VideoInfo) -> float:
    return info.fps if info.fps and math.isfinite(info.fps) and info.fps > 0 else 25.0


Progress = Callable[[str, float, float], None]  # (source, seconds decoded, seconds in the file)


NOT_MEASURED = "not measured: pose is measured on each clip's main track only"


def analyse_frame(decoded_frame: DecodedFrame, config: CurateConfig, analyzer: FaceAnalyzer,
                  template: FaceTemplate) -> tuple[SampledFrame, np.ndarray]:
    """Detect the faces of one sampled frame; each keeps its aligned crop and its pose patch. Also returns
    the RGB image the detector saw."""
    frame = Frame(decoded_frame.index, decoded_frame.t, decoded_frame.rgb(config.tracking.decode_max_side))
    faces = [SampledFace(f.box, f.landmarks5, f.score, math.nan, math.nan, math.nan, f.sharpness, f.area_ratio,
                         align_face(frame.image, f.landmarks5, template), patch=cut_patch(frame.image, f.box),
                         pose_missing_reason=NOT_MEASURED)
             for f in analyzer.find(frame.image)]
    return SampledFrame(frame.index, frame.t, faces), frame.image


def _lone_frontal(frame: SampledFrame, near_frontal_deg: float) -> bool:
    return len(frame.faces) == 1 and abs(cheap_yaw(frame.faces[0].landmarks5)) <= near_frontal_deg


def scan_video(path: Path, config: CurateConfig, analyzer: FaceAnalyzer, template: FaceTemplate,
               progress: Progress | None = None) -> Scan:
    """``analyzer`` finds faces; each keeps its crop aligned to the identity model's ``template`` (only
    chosen ones are embedded, later) and a patch for its pose (measured later, on main tracks only). ``progress`` hears about
    every second of video decoded.

    With ``cascade.frontal_sample_fps`` > 0 (and the cascade on), a frontal stretch is read sparsely: after
    an analysed frame with one face that the cheap yaw reads near frontal, the sampled frames of the next
    1/frontal_sample_fps seconds wait; if the next analysed frame shows that face still alone and near
    frontal (and no shot cut came), they are left out and recorded as a :class:`Gap` (curation analyses them
    later for every clip that the sparse reading does not reject: :func:`fill_gaps`), else they are
    analysed at once. Frames before the upside-down vote is decided are never left out."""
    info = probe(path)
    fps = usable_fps(info)
    shots = ShotBoundaries(config.shots, fps)
    targets = list(sample_times(info.duration_s, fps=config.tracking.sample_fps))
    sampled: list[SampledFrame] = []
    decoded, end, reported = 0, 0.0, 0.0
    votes = [0, 0]
    sparse = config.cascade.frontal_sample_fps if config.cascade.enabled else 0.0
    near = config.cascade.near_frontal_deg
    skip_until = -math.inf
    waiting: list[DecodedFrame] = []  # sampled frames of the current sparse stretch, not analysed yet
    cuts_before = 0
    gaps: list[Gap] = []
    for decoded_frame in iter_decoded(path, info=info):
        decoded += 1
        end = decoded_frame.t + 1.0 / fps
        if progress and end - reported >= 1.0:
            progress(str(path), end, info.duration_s)
            reported = end
        # shot detection needs every frame, but small: a thumbnail costs a tenth of a converted frame
        shots.add(decoded_frame.thumbnail(config.shots.analysis_width, bgr=True))
        if not targets or decoded_frame.t + 0.5 / fps < targets[0]:
            continue
        while targets and targets[0] <= decoded_frame.t + 0.5 / fps:
            targets.pop(0)
        if decoded_frame.t + 0.5 / fps < skip_until:
            waiting.append(decoded_frame)
            continue
        current, image = analyse_frame(decoded_frame, config, analyzer, template)
        frontal = _lone_frontal(current, near)
        if waiting:
            before = sampled[-1]
            if (frontal and len(shots.cuts) == cuts_before
                    and link_cost(before.faces[0].box, current.faces[0].box) <= config.tracking.link_max_cost):
                gaps.append(Gap(before.t, current.t, [w.t for w in waiting]))
            else:  # the head turned, left, or met another face or a cut: read that stretch in full
                sampled.extend(analyse_frame(w, config, analyzer, template)[0] for w in waiting)
            waiting = []
        sampled.append(current)
        faces = current.faces
        if faces and votes[1] < ORIENTATION_FRAMES and not _vote_decided(*votes):
            votes[0] += turned_detects_better(analyzer, image, max(f.score for f in faces))
            votes[1] += 1
        if sparse > 0 and frontal and (votes[1] >= ORIENTATION_FRAMES or _vote_decided(*votes)):
            skip_until = current.t + 1.0 / sparse
            cuts_before = len(shots.cuts)
    sampled.extend(analyse_frame(w, config, analyzer, template)[0] for w in waiting)  # the video ended
    return Scan(info, shots.cuts, sampled, decoded, min(end, info.duration_s) if info.duration_s > 0 else end,
                (votes[0], votes[1]), gaps)


def fill_gaps(path: Path, scan: Scan, gaps: list[Gap], a: float, b: float, config: CurateConfig,
              analyzer: FaceAnalyzer, template: FaceTemplate) -> list[SampledFrame]:
    """The frames of ``gaps`` within [a, b), decoded a second time (that stretch only) and analysed as the
    scan analyses every sampled frame: the same frames, so the same faces as a full-rate scan."""
    wanted = sorted(t for g in gaps for t in g.times if a <= t < b)
    if not wanted:
        return []
    eps = 0.25 / scan.fps
    out: list[SampledFrame] = []
    k = 0
    for decoded_frame in iter_decoded(path, start=max(0.0, wanted[0] - eps), end=wanted[-1] + eps, info=scan.info):
        while k < len(wanted) and wanted[k] < decoded_frame.t - eps:
            k += 1  # not found again (an exotic stream): left out
        if k == len(wanted):
            break
        if abs(decoded_frame.t - wanted[k]) <= eps:
            out.append(analyse_frame(decoded_frame, config, analyzer, template)[0])
            k += 1
    return out


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
