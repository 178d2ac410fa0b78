"""Head rotation from dense landmarks by fitting MediaPipe's canonical face model.

MediaPipe's own facial transformation matrix assumes a perspective camera with a fixed field of
view; on a face crop (the only way FaceLandmarker finds small faces) that camera is wrong and the
matrix under-reads yaw (about 21° for a true 30°, 33° for 45° on lfa's ground-truth renders,
while the landmarks themselves were within 3% of the face width). A weak-perspective fit of the
same landmarks to the canonical model reads 29° and 44°. The canonical model is read from the
``geometry_pipeline_metadata_landmarks.binarypb`` inside the ``face_landmarker.task`` bundle.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np

from lfa.errors import ModelLoadError

METADATA_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
CANONICAL_VERTICES = 468
VERTEX_FLOATS = 5  # x, y, z, u, v


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Protocol-buffer wire format: (field number, wire type, value) for one message level."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 5:
            value, i = struct.unpack_from("<f", buf, i)[0], i + 4
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


@cache
def canonical_face(task_path: Path) -> np.ndarray:
    """(468, 3) canonical face vertices (x right, y up, z toward the viewer; centimetres)."""
    try:
        with zipfile.ZipFile(task_path) as bundle:
            metadata = bundle.read(METADATA_MEMBER)
        meshes = [v for n, w, v in _fields(metadata) if w == 2 and len(v) > 4 * CANONICAL_VERTICES]
        floats = [v for n, w, v in _fields(meshes[0]) if w == 5] if meshes else []
        vertices = np.asarray(floats, np.float64).reshape(CANONICAL_VERTICES, VERTEX_FLOATS)[:, :3]
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{task_path} has no readable canonical face model ({exc})",
                             "re-fetch the FaceLandmarker bundle with `lfa models fetch`") from exc
    return vertices - vertices.mean(0)


def fit_rotation(model: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Rotation R (3x3) such that the image points ≈ s * (R @ model)[:2] + t (weak perspective).

    ``points`` are in a y-up frame (pass ``(x, -y)`` of image pixels).
    """
    x = model - model.mean(0)
    y = points - points.mean(0)
    affine, *_ = np.linalg.lstsq(x, y, rcond=None)  # (3, 2): y ≈ x @ affine
    r1 = affine[:, 0] / np.linalg.norm(affine[:, 0])
    r2 = affine[:, 1] - (affine[:, 1] @ r1) * r1
    r2 /= np.linalg.norm(r2)
    rot = np.stack([r1, r2, np.cross(r1, r2)])
    u, _, vt = np.linalg.svd(rot)  # nearest proper rotation
    return u @ vt


IRIS_BLOCKS = (468, 473)  # the two irises: centre then four contour points each


def mirror_permutation(face: np.ndarray) -> np.ndarray:
    """Index map of the 478 landmarks under a left-right mirror: the mesh vertex whose canonical position
    is the mirror image of each vertex (the canonical face is symmetric), and the two iris blocks swapped."""
    mirrored = face * np.array([-1.0, 1.0, 1.0])
    distances = np.linalg.norm(face[None, :, :] - mirrored[:, None, :], axis=2)
    mesh = np.argmin(distances, axis=1)
    first, second = (np.arange(start, start + 5) for start in IRIS_BLOCKS)
    irises = np.concatenate([second, first])
    return np.concatenate([mesh, irises])
