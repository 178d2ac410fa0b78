"""lfa's head-angle convention, defined once.

Angles are in degrees, of the head relative to the camera, as the viewer of the image sees it:

* **yaw > 0**: the subject turns to *their own left*, so the nose points toward the image's right edge;
* **pitch > 0**: the subject looks *up*;
* **roll > 0**: the head is rotated *counter-clockwise* in the image (toward the subject's right
  shoulder).

Mirroring an image flips the sign of yaw and roll and keeps pitch. Rotating an image
counter-clockwise by θ adds θ to roll.

The rotation matrix that goes with the angles lives in a camera frame with x to the image's
right, y up and z toward the viewer (OpenGL, as MediaPipe's facial transformation matrix):
``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)``; the face's forward axis is ``R[:, 2]``.
"""

from __future__ import annotations

import math

import numpy as np


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 head rotation (camera frame x right, y up, z toward viewer) for lfa angles in degrees."""
    return _rz(math.radians(roll)) @ _ry(math.radians(yaw)) @ _rx(-math.radians(pitch))


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a rotation in the camera frame of :func:`rotation_from_angles`."""
    r = np.asarray(rotation, dtype=np.float64)[:3, :3]
    yaw = math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0]))
    pitch = -math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def yaw_bucket(yaw: float, edges: tuple[float, ...] = (0, 15, 30, 45, 60, 75, 90)) -> str:
    """Name of the |yaw| bucket, e.g. ``"15-30"``; the last bucket is closed above."""
    a = abs(yaw)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= a < hi or (hi == edges[-1] and a <= hi):
            return f"{lo:g}-{hi:g}"
    return f">{edges[-1]:g}"
