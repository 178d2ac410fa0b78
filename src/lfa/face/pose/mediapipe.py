"""MediaPipe FaceLandmarker on a crop around each detected face.

FaceLandmarker is a short-range model: on a whole frame it misses small faces, so each detection
is cropped (``crop_scale`` x its box, resized to ``crop_size``) first. Its facial transformation
matrix is in an OpenGL camera frame (x right, y up, z toward the viewer), which is the frame of
:mod:`lfa.face.angles`.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import cv2
import numpy as np

from lfa.face.angles import angles_from_rotation
from lfa.face.quality import face_crop
from lfa.face.types import Detection, HeadPose

os.environ.setdefault("GLOG_minloglevel", "2")


class MediaPipePose:
    name = "mediapipe"

    def __init__(self, model_path: Path, *, crop_scale: float = 1.8, crop_size: int = 256) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        self.crop_scale = crop_scale
        self.crop_size = crop_size
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            output_facial_transformation_matrixes=True,
            num_faces=1,
            min_face_detection_confidence=0.3,
            min_face_presence_confidence=0.3,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._finalizer = weakref.finalize(self, _close_quietly, self._landmarker)

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        import mediapipe as mp

        crop, (left, top) = face_crop(image, detection.box, self.crop_scale)
        factor = self.crop_size / crop.shape[0]
        crop = cv2.resize(crop, (self.crop_size, self.crop_size),
                          interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop)))
        if not result.face_landmarks:
            return None
        pts = np.array([[p.x, p.y, p.z] for p in result.face_landmarks[0]], np.float32) * self.crop_size
        pts = pts / factor + np.array([left, top, 0], np.float32)
        yaw, pitch, roll = angles_from_rotation(np.array(result.facial_transformation_matrixes[0]))
        return HeadPose(yaw, pitch, roll, pts)

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
