"""Compatibility modes: score the way peers' published evaluation scripts do, quirk by quirk.

``consisid`` follows ConsisID's ``eval/get_facesim_fid.py`` and ``eval/get_clipscore.py``;
``opens2v`` follows OpenS2V-Eval's ``eval/get_facesim.py``. Their quirks, reproduced on purpose
(docs/BENCH.md lists them with the lines they come from):

1. Frames: ``np.linspace(0, n_frames - 1, K, dtype=int)`` — endpoint-inclusive, truncated indices
   (K = 16 for ConsisID, 32 for OpenS2V), not lfa's centred bins. ConsisID's CLIPScore samples
   other frames again: ``int(i * n_frames / 16)`` for ``i < 16``.
2. Face: the largest detection by box area. When none is found the image is padded with grey
   (128) by 25 % of its height above and below and 25 % of its width left and right, and detection
   runs again; the landmarks are shifted back. A frame still without a face is **skipped**: it does
   not enter the mean (lfa's own mode counts it; see ``detection_rate``).
3. Crops: ArcFace embeds a 112 px crop of the image the face was found in (the padded one after a
   retry); CurricularFace embeds a 224 px ArcFace-template crop of the original image resized to
   112 px with bilinear interpolation. Both crops use a black (0) border outside the image.
4. Similarity: ``max(0, cos)`` per frame, averaged; a video with no face anywhere scores 0.0.
   OpenS2V then leaves out frames whose *CurricularFace* score is 0 — and, through a typo
   (``if arc_scores != 0.0``), keeps every ArcFace frame.
5. ConsisID "FID": per frame, the FID formula between the reference crop's Inception activations
   and the frame's, each a single sample duplicated to two rows: the covariances are zero, so it is
   the squared distance ``|f_ref - f_frame|^2``, averaged over frames (0.0 when no face is found, the
   best possible value).
6. ConsisID CLIPScore: the mean of ``logits_per_image = exp(logit_scale) * cos`` over the frames, no
   clipping, frames handed to CLIP in **BGR** order (OpenCV's), the prompt truncated to CLIP's length.
7. The reference image is read without applying its EXIF orientation (``PIL.Image.open(...).convert("RGB")``
   does not apply it); lfa's own mode reads it upright.

dlib (lfa's always-available identity model) is scored with the same rules as ArcFace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lfa.bench.features import FACE_CROP
from lfa.bench.records import FrameRecord, Models
from lfa.face.align import ARCFACE_112, align_face, similarity_transform
from lfa.face.choose import choose_face
from lfa.media import iter_frames, read_image


@dataclass(frozen=True)
class CompatMode:
    name: str
    frames: int
    fid: bool
    clipscore: bool


MODES = {
    "consisid": CompatMode("consisid", 16, fid=True, clipscore=True),
    "opens2v": CompatMode("opens2v", 32, fid=False, clipscore=False),
}
CONSISID_CLIP_FRAMES = 16
PAD_SCALE = 1.25


def linspace_indices(n_frames: int, k: int) -> np.ndarray:
    """``np.linspace(0, n_frames - 1, k, dtype=int)``: the peers' frame indices (quirk 1)."""
    return np.linspace(0, max(n_frames - 1, 0), k, dtype=int)


def consisid_clip_indices(n_frames: int, k: int = CONSISID_CLIP_FRAMES) -> np.ndarray:
    """``int(i * n_frames / k)`` for ``i < k``: ConsisID's CLIPScore frames."""
    return np.array([int(i * n_frames / k) for i in range(k)], dtype=np.int64)


def pad_grey(image: np.ndarray, scale: float = PAD_SCALE) -> tuple[np.ndarray, tuple[int, int]]:
    """ConsisID's ``pad_np_bgr_image``: ``int((scale - 1) * h)`` grey rows above and below,
    ``int((scale - 1) * w)`` columns left and right; returns the padded image and (left, top)."""
    pad = scale - 1.0
    h, w = image.shape[:2]
    top, left = int(h * pad), int(w * pad)
    return cv2.copyMakeBorder(image, top, top, left, left, cv2.BORDER_CONSTANT, value=(128, 128, 128)), (left, top)


def norm_crop(image: np.ndarray, landmarks5: np.ndarray, size: int) -> np.ndarray:
    """InsightFace's ``face_align.norm_crop``: lfa's 5-point similarity onto the ArcFace template at
    ``size`` px, black outside the image (lfa's :func:`~lfa.face.align.align_face` replicates the edge)."""
    template = ARCFACE_112 if size == ARCFACE_112.size else ARCFACE_112.scaled(size)
    m = similarity_transform(landmarks5, template.points)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def read_reference(path: Path) -> np.ndarray:
    """The reference image as the peers read it (quirk 7): ``PIL.Image.open(...).convert("RGB")``, which
    ignores the EXIF orientation tag (lfa's own mode turns the photo upright)."""
    return read_image(path, upright=False)


def process_image(extractor: Models, image: np.ndarray, *, frame: int = 0, t: float = 0.0) -> FrameRecord:
    """ConsisID's ``process_image`` + per-model inference on one RGB image (quirks 2 and 3)."""
    detector = extractor.detector
    detections = detector.detect(image)
    record = FrameRecord(frame=frame, t=t, n_faces=len(detections))
    used, offset = image, np.zeros(2, np.float32)
    if not detections:
        used, (left, top) = pad_grey(image)
        detections = detector.detect(used)
        offset = np.array([left, top], np.float32)
        record.padded = True
    det = choose_face(detections)
    if det is None:
        return record
    kps_used = det.landmarks5.astype(np.float32)
    kps = kps_used - offset
    record.detected, record.det_score, record.landmarks5 = True, det.score, kps
    record.box = det.box - np.tile(offset, 2)
    crop224 = None
    for name, encoder in extractor.encoders.items():
        if name == "curricularface":
            crop224 = norm_crop(image, kps, FACE_CROP.size) if crop224 is None else crop224
            chip = cv2.resize(crop224, (ARCFACE_112.size, ARCFACE_112.size), interpolation=cv2.INTER_LINEAR)
        elif encoder.template.name == ARCFACE_112.name:
            chip = norm_crop(used, kps_used, encoder.template.size)
        else:  # dlib: lfa's own chip, from the image the face was found in
            chip = align_face(used, kps_used, encoder.template)
        record.embeddings[name] = encoder.embed_aligned(chip[None])[0]
    if extractor.features is not None:
        crop224 = norm_crop(image, kps, FACE_CROP.size) if crop224 is None else crop224
        record.feature = extractor.features(crop224[None])[0]
    return record


def analyze(extractor: Models, mode: str, path: Path, n_frames: int, prompt: str,
            timing: dict[str, float], cache: dict[int, FrameRecord] | None = None) -> dict[str, list[FrameRecord]]:
    """Per-frame records of one video in a compat mode (``{mode: [...]}``, plus ``consisid_clip``).

    ``cache`` (frame index -> record) shares frames between compat modes of one video and between
    repeated indices (more samples than frames); a repeated frame still counts once per sample.
    """
    spec = MODES[mode]
    cache = {} if cache is None else cache
    t0 = time.perf_counter()
    records = []
    for f in iter_frames(path, indices=linspace_indices(n_frames, spec.frames)):
        if f.index not in cache:
            cache[f.index] = process_image(extractor, f.image, frame=f.index, t=f.t)
        records.append(cache[f.index])
    out = {mode: records}
    timing[f"compat_{mode}"] += time.perf_counter() - t0
    if spec.clipscore and extractor.clip is not None:
        t0 = time.perf_counter()
        frames = list(iter_frames(path, indices=consisid_clip_indices(n_frames)))
        cos = extractor.clip.cosines([np.ascontiguousarray(f.image[:, :, ::-1]) for f in frames], prompt)
        out[f"{mode}_clip"] = [FrameRecord(frame=f.index, t=f.t, clip_cos=float(c)) for f, c in zip(frames, cos)]
        timing[f"compat_{mode}_clip"] += time.perf_counter() - t0
    return out


# -- aggregation (pure) ---------------------------------------------------------------------------
def clipped_cosines(ref: np.ndarray, embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """``max(0, cos)`` of each embedding with the reference (quirk 4)."""
    if len(embeddings) == 0:
        return np.zeros(0)
    e = np.asarray(embeddings, np.float64)
    r = np.asarray(ref, np.float64)
    cos = e @ r / (np.linalg.norm(e, axis=1) * np.linalg.norm(r))
    return np.maximum(cos, 0.0)


def _mean_or_zero(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def consisid_frame_fid(ref_feature: np.ndarray, frame_feature: np.ndarray) -> float:
    """ConsisID's per-frame "FID": both sides one sample, so ``|f_ref - f_frame|^2`` (quirk 5)."""
    d = np.asarray(ref_feature, np.float64) - np.asarray(frame_feature, np.float64)
    return float(d @ d)


def scores(mode: str, ref: FrameRecord | None, frames: list[FrameRecord], clip_frames: list[FrameRecord] | None,
           logit_scale: float | None, identities: Sequence[str]) -> dict[str, float]:
    """A video's scores in a compat mode, keyed like ``consisid_facesim_arc``; NaN when the reference
    has no face (the peers' scripts skip such a video)."""
    from lfa.bench.config import short

    out: dict[str, float] = {}
    spec = MODES[mode]
    scored = [f for f in frames if f.detected]
    out[f"{mode}_frames_scored"] = float(len(scored))
    for name in identities:
        key = f"{mode}_facesim_{short(name)}"
        if ref is None or not ref.detected or name not in ref.embeddings:
            out[key] = math.nan
            continue
        sims = clipped_cosines(ref.embeddings[name], [f.embeddings[name] for f in scored])
        if mode == "opens2v" and name == "curricularface":
            sims = sims[sims != 0.0]
        out[key] = _mean_or_zero(sims)
    if spec.fid and ref is not None and ref.detected and ref.feature is not None:
        out[f"{mode}_fid"] = _mean_or_zero(np.array([consisid_frame_fid(ref.feature, f.feature) for f in scored
                                                     if f.feature is not None]))
    if spec.clipscore and clip_frames is not None and logit_scale is not None:
        cos = np.array([f.clip_cos for f in clip_frames], np.float64)
        out[f"{mode}_clipscore"] = float(np.mean(logit_scale * cos)) if cos.size else math.nan
    return out
