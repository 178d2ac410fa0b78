"""A textured 3-D head fitted to one photo: MediaPipe's 478-point face mesh plus two rings of
vertices around the face oval (hair, ears, the sides of the head), frontalised so that the
photo's own head pose cancels out of every angle rendered later."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from lfa.errors import MediaError
from lfa.face import FaceAnalyzer
from lfa.face.angles import rotation_from_angles

FACE_VERTICES = 468  # the tessellated part of the 478 points (the last 10 are irises)
RING_SCALES = (1.2, 1.5)  # face-oval rings in the image plane ...
RING_DEPTHS = (0.3, 0.75)  # ... pushed back by these fractions of the face width
PIVOT_DEPTH = 0.55  # the head turns about a point this far (x face width) behind the face centre
JAW_DROP = 0.14  # mouth fully open lowers the jaw by this fraction of the face width
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
# eye and mouth openings are holes in the tessellation: closed with a fan of triangles over each contour
EYE_LOOPS = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
)
DEPTH_SCALE = 1.0


@cache
def _mediapipe_topology() -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's face tessellation (triangles) and the face-oval loop, from the installed package."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    tri = np.array([(c.start, c.end) for c in C.FACE_LANDMARKS_TESSELATION], np.int32).reshape(-1, 3, 2)[:, :, 0]
    oval = [c.start for c in C.FACE_LANDMARKS_FACE_OVAL]
    return tri, np.array(oval, np.int32)


@dataclass
class HeadModel:
    """Vertices in a head frame (x right, y up, z toward the viewer, pivot at the origin, photo
    pixels as units); ``uv`` are the vertices' pixel positions in ``texture``."""

    label: str
    texture: np.ndarray
    vertices: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    jaw_weights: np.ndarray
    face_width: float

    @property
    def mouth_loop(self) -> np.ndarray:
        return np.array(UPPER_INNER_LIP + LOWER_INNER_LIP[::-1][1:-1], np.int32)

    def posed(self, mouth_open: float = 0.0) -> np.ndarray:
        """Vertices with the jaw lowered by ``mouth_open`` in [0, 1]."""
        v = self.vertices.copy()
        if mouth_open:
            v[:, 1] -= mouth_open * JAW_DROP * self.face_width * self.jaw_weights
        return v


def fit_head(photo: np.ndarray, analyzer: FaceAnalyzer, label: str) -> HeadModel:
    """Fit the head of the largest face in ``photo`` (needs the MediaPipe pose backend)."""
    faces = [f for f in analyzer.analyze(photo) if f.landmarks is not None]
    if not faces:
        raise MediaError(f"no face with landmarks found in photo {label!r}",
                         "use a photo with one clearly visible, roughly frontal face")
    face = max(faces, key=lambda f: f.area_ratio)
    tri, oval = _mediapipe_topology()
    pts = face.landmarks[:FACE_VERTICES].astype(np.float64)
    origin = pts[:, :2].mean(0)
    cam = np.column_stack([pts[:, 0] - origin[0], origin[1] - pts[:, 1], -DEPTH_SCALE * pts[:, 2]])  # y up, z to viewer
    width = float(np.ptp(cam[oval, 0]))
    centre = cam[oval].mean(0)
    rings = []
    for scale, depth in zip(RING_SCALES, RING_DEPTHS):
        ring = cam[oval].copy()
        ring[:, :2] = centre[:2] + scale * (ring[:, :2] - centre[:2])
        ring[:, 2] -= depth * width
        rings.append(ring)
    cam_all = np.concatenate([cam, *rings])
    uv = np.column_stack([origin[0] + cam_all[:, 0], origin[1] - cam_all[:, 1]]).astype(np.float32)
    pivot = centre - np.array([0.0, 0.0, PIVOT_DEPTH * width])
    frontal = (cam_all - pivot) @ rotation_from_angles(face.yaw, face.pitch, face.roll)  # R^T applied to rows
    mouth = tuple(UPPER_INNER_LIP + LOWER_INNER_LIP[::-1][1:-1])
    eyes = [(loop[0], a, b) for loop in (*EYE_LOOPS, mouth) for a, b in zip(loop[1:-1], loop[2:])]
    triangles = np.concatenate([tri, np.array(eyes, np.int32), _ring_strips(oval, len(oval))])
    triangles = _orient(triangles, frontal)
    return HeadModel(label, np.ascontiguousarray(photo), frontal.astype(np.float32), uv, triangles,
                     _jaw_weights(frontal, width), width)


def _ring_strips(oval: np.ndarray, n: int) -> np.ndarray:
    rings = [oval, FACE_VERTICES + np.arange(n), FACE_VERTICES + n + np.arange(n)]
    out = []
    for inner, outer in zip(rings[:-1], rings[1:]):
        for i in range(n):
            a, b, c, d = inner[i], inner[(i + 1) % n], outer[i], outer[(i + 1) % n]
            out += [(a, b, d), (a, d, c)]
    return np.array(out, np.int32)


def signed_areas(corners: np.ndarray) -> np.ndarray:
    """Twice the signed area of each (T, 3, 2) triangle: > 0 counter-clockwise in a y-up frame."""
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def _orient(triangles: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Wind every triangle counter-clockwise as seen from the front (y up), for back-face culling."""
    area = signed_areas(vertices[triangles][:, :, :2])
    flipped = triangles.copy()
    flipped[area < 0] = triangles[area < 0][:, ::-1]
    return flipped


def _jaw_weights(v: np.ndarray, width: float) -> np.ndarray:
    """1 for the lower lip and the chin, fading out above the mouth line and beyond the jaw's sides."""
    mouth = v[list(UPPER_INNER_LIP + LOWER_INNER_LIP)]
    mouth_y = mouth[:, 1].mean()
    half = 0.5 * np.ptp(v[[61, 291], 0])
    cx = v[[61, 291], 0].mean()
    below = np.clip((mouth_y - v[:, 1]) / (0.08 * width), 0.0, 1.0)
    lateral = np.clip(1.0 - (np.abs(v[:, 0] - cx) - 1.2 * half) / (1.2 * half), 0.0, 1.0)
    w = below * lateral
    w[list(LOWER_INNER_LIP[1:-1] + LOWER_OUTER_LIP[1:-1])] = 1.0
    w[list(UPPER_INNER_LIP + UPPER_OUTER_LIP)] = 0.0
    return w.astype(np.float32)
