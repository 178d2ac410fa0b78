"""MediaPipe FaceLandmarker on a crop around each detected face.

FaceLandmarker is a short-range model: on a whole frame it misses small faces, so each detection
is cropped (``crop_scale`` x its box, resized to ``crop_size``) first. The head rotation comes
from fitting the landmarks to MediaPipe's canonical face (``solver="canonical"``, default, see
:mod:`lfa.face.pose.canonical` for why) or from FaceLandmarker's own transformation matrix
(``solver="matrix"``); both are in the camera frame of :mod:`lfa.face.angles`.

FaceLandmarker is direction-biased at large yaw: on lfa's renders it found 10 of 16 faces at
yaw −45…−60° but all 16 of their mirror images. When it finds no face in a crop, the mirrored crop is
tried (``mirror_retry``) and the landmarks are mirrored back, with their left/right indices swapped.
"""

from __future__ import annotations

import os
import sys
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from lfa.errors import ConfigError
from lfa.logs import native_output_to_log
from lfa.face.angles import angles_from_rotation
from lfa.face.pose.canonical import CANONICAL_VERTICES, canonical_face, fit_rotation, mirror_permutation
from lfa.face.quality import face_crop
from lfa.face.types import Detection, HeadPose

os.environ.setdefault("GLOG_minloglevel", "2")


MIRRORED_CONFIDENCE = 0.7
_skip_pyplot = False


def skip_pyplot_import() -> None:
    """For processes that never plot (curation's worker processes): MediaPipe's package imports
    ``matplotlib.pyplot`` for one 3-D plotting helper (``drawing_utils.plot_landmarks``), 0.5 s of its
    0.7 s import. From now on, while MediaPipe is imported, placeholders stand in for matplotlib if it
    is not loaded yet; they are removed at once, so only that helper is left without it."""
    global _skip_pyplot
    _skip_pyplot = True


@contextmanager
def _pyplot_placeholders() -> Iterator[None]:
    if not _skip_pyplot or "matplotlib" in sys.modules or "mediapipe" in sys.modules:
        yield
        return
    placeholders = {name: types.ModuleType(name, "not loaded in this process (lfa skip_pyplot_import)")
                    for name in ("matplotlib", "matplotlib.pyplot")}
    placeholders["matplotlib"].pyplot = placeholders["matplotlib.pyplot"]  # type: ignore[attr-defined]
    sys.modules.update(placeholders)
    try:
        yield
    finally:
        for name, module in placeholders.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


class MediaPipePose:
    name = "mediapipe"
    missing_reason = ""

    def __init__(self, model_path: Path, *, crop_scale: float = 1.8, crop_size: int = 256,
                 solver: str = "canonical", mirror_retry: bool = True) -> None:
        with native_output_to_log(), _pyplot_placeholders():  # absl's "Logging before InitGoogle()" line on import
            from mediapipe.tasks.python import BaseOptions, vision

        if solver not in ("canonical", "matrix"):
            raise ConfigError(f"unknown MediaPipe pose solver {solver!r}", "use 'canonical' or 'matrix'")
        self.solver = solver
        self.canonical = canonical_face(Path(model_path))
        self.mirror_retry = mirror_retry
        self._mirror = mirror_permutation(self.canonical)
        self.crop_scale = crop_scale
        self.crop_size = crop_size
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            output_facial_transformation_matrixes=True,
            num_faces=1,
            min_face_detection_confidence=0.3,
            min_face_presence_confidence=0.3,
        )
        with native_output_to_log():  # MediaPipe/TFLite start-up lines, printed on creation and first use
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
            self._finalizer = weakref.finalize(self, _close_quietly, self._landmarker)
            self._landmarks(np.zeros((self.crop_size, self.crop_size, 3), np.uint8))

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        crop, (left, top) = face_crop(image, detection.box, self.crop_scale)
        factor = self.crop_size / crop.shape[0]
        crop = np.ascontiguousarray(cv2.resize(crop, (self.crop_size, self.crop_size),
                                               interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR))
        found = self._landmarks(crop)
        mirrored = found is None and self.mirror_retry
        if mirrored:
            found = self._landmarks(np.ascontiguousarray(crop[:, ::-1]))
        if found is None:
            self.missing_reason = "the landmarker found no face in the crop" + (" or its mirror" if self.mirror_retry else "")
            return None
        pts, matrix = found
        if mirrored:
            flip = np.diag([-1.0, 1.0, 1.0])
            pts[:, 0] = self.crop_size - pts[:, 0]
            pts = pts[self._mirror[: len(pts)]]
            matrix = flip @ matrix @ flip
        pts = pts / factor + np.array([left, top, 0], np.float32)
        if self.solver == "canonical":
            image_up = np.column_stack([pts[:CANONICAL_VERTICES, 0], -pts[:CANONICAL_VERTICES, 1]])
            rotation = fit_rotation(self.canonical, image_up)
        else:
            rotation = matrix
        yaw, pitch, roll = angles_from_rotation(rotation)
        # a face found only in the mirrored crop is a weaker answer (the landmarker doubted it)
        return HeadPose(yaw, pitch, roll, pts, source="landmarks", confidence=MIRRORED_CONFIDENCE if mirrored else 1.0)

    def _landmarks(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Dense landmarks in crop pixels and the transformation matrix (3x3), or None."""
        import mediapipe as mp

        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop))
        if not result.face_landmarks:
            return None
        pts = np.array([[p.x, p.y, p.z] for p in result.face_landmarks[0]], np.float32) * self.crop_size
        return pts, np.array(result.facial_transformation_matrixes[0])[:3, :3]

    def close(self) -> None:
        self._finalizer()


def _close_quietly(landmarker: object) -> None:
    """MediaPipe closes through a thread pool that is already shut down at interpreter exit, and
    its ``__del__`` then raises into stderr; mark the handle closed so nothing runs twice."""
    try:
        landmarker.close()  # type: ignore[attr-defined]
    except Exception:
        landmarker._handle = None  # type: ignore[attr-defined]


def check_model(path: Path) -> None:
    MediaPipePose(path).close()
